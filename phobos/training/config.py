"""What ``phobos train`` reads: one frozen dataclass, from YAML plus ``key=value`` overrides.

One set of PPO hyperparameters serves both back ends, named as RLlib names them; for
Stable-Baselines3 ``train_batch_size`` is ``n_steps`` and ``minibatch_size`` is ``batch_size``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from phobos.envs.orbit_scheduling import task as orbit_task


@dataclass(frozen=True)
class TrainConfig:
    """A training run: environment, back end, PPO hyperparameters, resources, checkpoints."""

    env: str = orbit_task.ID_V0
    """Registered environment id."""
    env_config: dict[str, Any] = field(default_factory=dict)
    """Overrides of the environment's config fields, checked against it before any work."""
    framework: Literal["rllib", "sb3"] = "rllib"
    """``rllib``: multi-agent PPO with one module per role. ``sb3``: MaskablePPO on the
    single-agent view (``learner`` learns, scripted teammates fly the rest), trials run by
    Ray Tune."""
    learner: str = "phobos_grunt"
    """sb3 only: the agent that learns."""
    seed: int = 0
    """Seed of the run (rllib) or of the first trial (sb3)."""
    total_env_steps: int = 200_000
    """Stop once this many environment steps were sampled (per trial for sb3)."""
    time_budget_s: float = 0.0
    """Also stop after this much training time (summed over resumed sessions); 0: no limit."""
    sampler: Literal["env", "batch"] = "env"
    """``env``: step one ``ParallelEnv`` episode at a time (the reference path). ``batch``: step
    ``num_envs`` episodes at once in the task's vectorised batch core, arrays end to end."""
    num_envs: int = 256
    """batch sampler: episodes stepped together (per env runner for rllib)."""
    critic: Literal["local", "central"] = "local"
    """``local``: each agent's value function sees its own observation. ``central`` (the batch
    sampler, either framework): it also sees the team's joint state, every agent's observation
    of that episode and step in the env's agent order (MAPPO); the actor still sees only its
    own, so deployed agents stay decentralised and the export flies a plain ``ParallelEnv``."""
    num_env_runners: int = 0
    """rllib: remote sampling workers; 0 samples in the driver."""
    num_learners: int = 0
    """rllib: 0 learns in the driver; 1 learns in a remote Ray worker of its own (on a
    cluster, a node with the cores or GPU for it); more learn in data parallel, one shard of
    the batch each, averaging gradients every SGD step (``train_batch_size`` and
    ``minibatch_size`` count per learner, as in RLlib; see
    :class:`phobos.training.rllib_learner.EpochPPOTorchLearner`)."""
    learner_threads: int = 1
    """Torch threads of the learner. rllib: the driver's learner, or the remote one's. PPO's
    phases take turns: the learner waits while the runners sample and they wait while it
    learns, so it may use the runners' cores; 2 with 2 runners on 2 cores gave 1.25x. sb3:
    each trial's (Tune gives a trial this many CPUs), for a run of fewer trials than cores;
    the lander's cell-set network's PPO updates ran 1.5x faster on 2, its cloning's small
    minibatches no faster (docs/benchmarks.md). Float sums then run in another order, so a
    run repeats only at the same setting."""
    envs_per_env_runner: int = 1
    """rllib: environments each runner steps (vectorised)."""
    train_batch_size: int = 4000
    """Environment steps per PPO update."""
    minibatch_size: int = 500
    """Steps per SGD minibatch."""
    num_epochs: int = 8
    """SGD passes over each batch."""
    lr: float = 3e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_param: float = 0.2
    """PPO's clipping range."""
    entropy_coeff: float = 0.01
    """Entropy bonus."""
    vf_loss_coeff: float = 0.5
    """Weight of the value loss."""
    hidden: tuple[int, ...] = (128, 128)
    """Hidden layer sizes of the policy and value MLPs."""
    imitation_episodes: int = 0
    """Before PPO, clone the scripted ``imitation_team`` from this many of its episodes (policy
    by cross-entropy, value by the returns it earned); 0 starts from scratch."""
    imitation_team: str = "greedy"
    """The scripted team the warm start clones: one of the task's teams (``greedy``, or for
    sampling ``informed``, ``cautious``); not ``trained`` or ``random``."""
    imitation_epochs: int = 10
    """Passes over the demonstrations when cloning."""
    reward_shaping: bool = False
    """sb3 batch sampler: potential-based shaping of the learner's reward with the batch
    core's potential (orbit scheduling: science value on board or in flight), which keeps the
    optimal policy and credits observations when stored; logs and evaluation use the true
    reward."""
    teacher_kl_coeff: float = 0.0
    """sb3: after each PPO update, pull the policy towards its warm-started self by
    minimising this weight times KL(teacher || policy) (needs ``imitation_episodes``); 0: off."""
    policy_network: Literal["mlp", "cells", "cells_areas"] = "mlp"
    """sb3 batch sampler: ``mlp``, one MLP over the agent's observation and role; ``cells``,
    for a task whose observation is a header and one block per cell of a site (sampling):
    one MLP shared by the cells scores each cell's actions (:mod:`phobos.training.
    cell_network`); ``cells_areas``, the same whose per-area actions (image an area) are
    scored from the mean latent of the area's cells."""
    rollout_rounds: int = 0
    """sb3 batch sampler, after the warm start (and any on-policy cloning rounds) and before
    PPO: rounds of distilling a rollout
    search's better actions into the policy (:mod:`phobos.training.rollout_teacher`); 0: off.
    Needs a batch core that can branch (both tasks)."""
    rollout_episodes: int = 64
    """Episodes the rollout teacher flies each round (stepped together)."""
    rollout_horizon: int = 48
    """Steps each of the teacher's rollouts flies before it counts what was delivered."""
    rollout_epochs: int = 10
    """Passes over all rounds' teacher rows after each round."""
    rollout_workers: int = 1
    """Processes the teacher's episodes are shared out over (the first in the trial, the
    others Ray tasks of one CPU each)."""
    rollout_regret_weight: float = 0.0
    """Weight of the expected-regret term when the policy learns the teacher's actions
    (:func:`~phobos.training.imitation.clone`); 0: cross-entropy only."""
    rollout_min_gain: float = 0.0
    """Team return an action of the search must gain over the policy's own to replace it."""
    rollout_samples: int = 0
    """Sites imagined from the lander's belief per decision, for a task whose world is hidden
    (phobos-sampling: :mod:`phobos.training.belief_teacher`); 0 where the batch core is
    known exactly and the search branches the true episode (orbit scheduling)."""
    rollout_true_site: bool = False
    """phobos-sampling: search on the true site instead, one try per candidate, on the states
    the policy's own actions reach, learned through the expected-regret term alone
    (:class:`~phobos.training.belief_teacher.SiteRolloutTeacher`); needs ``rollout_samples``
    0 and ``rollout_regret_weight`` above 0."""
    dagger_rounds: int = 0
    """sb3 batch sampler, after the warm start, before any rollout rounds and PPO: rounds of
    on-policy cloning (:mod:`phobos.training.dagger`): the policy flies ``dagger_episodes``
    episodes, the ``imitation_team``'s array twin labels every state it reached, and the
    policy is cloned again on all rounds' rows; 0: off."""
    dagger_episodes: int = 128
    """Episodes each on-policy cloning round flies (stepped together)."""
    dagger_epochs: int = 10
    """Passes over all rounds' rows after each on-policy cloning round."""
    checkpoint_every: int = 5
    """Save a checkpoint every this many iterations (and at the end)."""
    trial_seeds: tuple[int, ...] = (0,)
    """sb3: one Ray Tune trial per seed (times each of ``trial_lrs``)."""
    trial_lrs: tuple[float, ...] = ()
    """sb3: learning rates to grid-search; empty uses ``lr``."""
    max_concurrent_trials: int = 2
    """sb3: trials run at once (``learner_threads`` CPUs each, plus extra rollout workers)."""

    @property
    def extra_rollout_workers(self) -> int:
        """Rollout workers beyond the trial's own share, a CPU each (0 without rollout rounds)."""
        return self.rollout_workers - 1 if self.rollout_rounds > 0 else 0

    @property
    def cell_network(self) -> bool:
        """Whether the actor is the cell-set network (``cells`` or ``cells_areas``)."""
        return self.policy_network in ("cells", "cells_areas")

    def sb3_ppo_arguments(self) -> dict[str, Any]:
        """Stable-Baselines3 PPO keyword arguments these fields set, on either sampler."""
        return {
            "batch_size": self.minibatch_size,
            "n_epochs": self.num_epochs,
            "gamma": self.gamma,
            "gae_lambda": self.gae_lambda,
            "clip_range": self.clip_param,
            "ent_coef": self.entropy_coeff,
            "vf_coef": self.vf_loss_coeff,
            "device": "cpu",
            "verbose": 0,
        }

    def warm_start_overrun(self, elapsed_s: float) -> str | None:
        """Why training cannot begin after a warm start of ``elapsed_s``, or None if it can."""
        if not self.time_budget_s > 0 or elapsed_s < self.time_budget_s:
            return None
        return (
            f"the warm start (imitation_episodes={self.imitation_episodes}, imitation_epochs="
            f"{self.imitation_epochs}) took {elapsed_s:.1f} s, all of time_budget_s="
            f"{self.time_budget_s:g}, so no PPO update ran; raise time_budget_s or shorten the "
            "warm start (fewer imitation_episodes or imitation_epochs, or 0 to skip it)"
        )

    def warm_start_line(self) -> str:
        """The line printed as the warm start begins (it can take minutes)."""
        budget = f" (counts in time_budget_s={self.time_budget_s:g})" if self.time_budget_s else ""
        return (
            f"warm start: cloning the {self.imitation_team} team from {self.imitation_episodes} "
            f"episodes, "
            f"{self.imitation_epochs} epochs{budget}"
        )

    def finished(self, env_steps: int, elapsed_s: float) -> bool:
        """Whether a run at ``env_steps`` after ``elapsed_s`` of training is done."""
        out_of_time = self.time_budget_s > 0 and elapsed_s >= self.time_budget_s
        return env_steps >= self.total_env_steps or out_of_time
