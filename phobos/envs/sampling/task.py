"""The registration of autonomous sampling on Phobos.

Everything the layers above read about the task is named here.
"""

from __future__ import annotations

from phobos.envs.registry import register_task
from phobos.envs.task import EnvSpec, TaskSpec

NAME = "phobos-sampling"
ID_V0 = "phobos-sampling-v0"
"""The first version."""

register_task(
    TaskSpec(
        name=NAME,
        envs=(
            EnvSpec(
                ID_V0,
                "phobos.envs.sampling.env:PhobosSamplingEnv",
                "phobos.envs.sampling.config:SamplingConfig",
                "phobos.envs.sampling.batch:PhobosSamplingBatch",
            ),
        ),
        teams={
            "greedy": "phobos.agents.sampling_policies:greedy_team",
            "cautious": "phobos.agents.sampling_policies:cautious_team",
            "oracle": "phobos.agents.sampling_policies:oracle_team",
            "informed": "phobos.agents.sampling_informed:informed_team",
        },
        array_teams={
            "greedy": "phobos.agents.sampling_policies:GreedyTeamArrays",
            "informed": "phobos.agents.sampling_informed:InformedTeamArrays",
        },
        single_agent_view="phobos.agents.views:phobos_sampling_view",
        metrics="phobos.envs.sampling.metrics:SamplingMetrics",
        headline=(
            "team_return",
            "sample_value",
            "sample_mass_g",
            "classes_stowed",
            "failures",
            "decisions_without_ground",
            "energy_violations",
            "messages_delivered",
            "latency_mean_s",
        ),
        telemetry_view="phobos.live.world.views:SamplingView",
        report_figure="phobos.evaluation.report_figures:site_section",
    )
)
