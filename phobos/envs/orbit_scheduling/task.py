"""The registration of cooperative observation scheduling in Mars orbit: its two versions.

``v0`` is the task as first published; ``v1`` adds ephemeris lookahead features, the
solar-conjunction blackout and the Earth rotation angle from its known rate (see the config's
version history). Everything the layers above read about the task is named here.
"""

from __future__ import annotations

from typing import Any

from phobos.envs.registry import register_task
from phobos.envs.task import EnvSpec, TaskSpec

NAME = "orbit-scheduling"
ID_V0 = "orbit-scheduling-v0"
"""The first version; the default environment of the commands."""
ID_V1 = "orbit-scheduling-v1"
"""With ephemeris lookahead and the conjunction blackout."""

_ENV = "phobos.envs.orbit_scheduling.env:OrbitSchedulingEnv"
_BATCH = "phobos.envs.orbit_scheduling.batch:OrbitSchedulingBatch"
_CONFIG = "phobos.envs.orbit_scheduling.config"


def describe_episode(env: Any) -> list[str]:
    """What ``phobos run`` prints about an episode: its dates, light time and station passes."""
    from astropy.time import Time, TimeDelta

    config, plan = env.config, env.plan
    start = Time(config.start) + TimeDelta(float(plan.start_offset_s[0]), format="sec")
    hours = config.horizon_steps * config.step_seconds / 3600.0
    lines = [
        f"{start.isot[:16]} UTC, {hours:.0f} h in {config.horizon_steps} steps of "
        f"{config.step_seconds:.0f} s; light time {plan.light_time_s.min():.0f}-"
        f"{plan.light_time_s.max():.0f} s"
    ]
    for s, key in enumerate(config.stations):
        seen = plan.station_sees_mars[0, :, s].mean() * hours
        mask = config.elevation_mask_deg
        lines.append(f"ground_{key}: Mars above {mask:.0f} deg for {seen:.1f} h")
    return lines


register_task(
    TaskSpec(
        name=NAME,
        envs=(
            EnvSpec(ID_V0, _ENV, f"{_CONFIG}:OrbitSchedulingConfig", _BATCH),
            EnvSpec(ID_V1, _ENV, f"{_CONFIG}:OrbitSchedulingConfigV1", _BATCH),
        ),
        teams={"greedy": "phobos.agents.orbit_greedy:greedy_team_of"},
        single_agent_view="phobos.agents.views:orbit_scheduling_view",
        metrics="phobos.envs.orbit_scheduling.metrics:OrbitMetrics",
        headline=(
            "team_return",
            "science",
            "occultation",
            "occultations",
            "data_volume_mbit",
            "energy_violations",
            "storage_violations",
            "messages_delivered",
            "messages_dropped",
            "latency_mean_s",
        ),
        telemetry_view="phobos.live.world.views:OrbitView",
        report_figure="phobos.evaluation.report_figures:schedule_section",
        describe_episode="phobos.envs.orbit_scheduling.task:describe_episode",
        oracle=True,
    )
)
