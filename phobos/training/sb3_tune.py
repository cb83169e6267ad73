"""Stable-Baselines3 MaskablePPO on a single-agent view, trials run in parallel by Ray Tune.

One agent (``learner``) learns while scripted teammates fly the others (the views of
``phobos.agents.views``). Each Tune trial is one seed and learning rate; a trial reports after
every PPO update and checkpoints its model zip every ``checkpoint_every`` updates, so
``Tuner.restore`` resumes a killed run where its trials stood. The best trial by its last
training return is exported to ``policy/model.zip``; the held-out seeds of evaluation are
never seen here.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ray import tune

from phobos import config as config_tools
from phobos.training import sb3_batch
from phobos.training.config import TrainConfig
from phobos.training.run_dir import CheckpointInfo, RunDir, describe, format_progress

TUNE_FOLDER = "tune"
"""Ray Tune's experiment folder inside the run folder."""


ROUND_KINDS = ("rollout_rounds", "dagger_rounds")
"""Teaching rounds a checkpoint's ``phobos.json`` records, each a list of per-round summaries."""


def make_view(config: TrainConfig) -> Any:
    """The single-agent Gymnasium view ``config`` trains on (its task spec's view)."""
    from phobos.agents.views import single_agent

    return single_agent(config.env, config.learner, **config.env_config)


def trial(params: dict[str, Any]) -> None:
    """One Tune trial: MaskablePPO for ``params["seed"]`` and ``params["lr"]``."""
    import torch
    from sb3_contrib import MaskablePPO

    config = config_tools.from_mapping(TrainConfig, params["config"])
    torch.set_num_threads(config.learner_threads)
    seed, lr = int(params["seed"]), float(params["lr"])
    batch = config.sampler == "batch"
    env, steps = _trial_env(config, seed)
    checkpoint = tune.get_checkpoint()
    updates, elapsed, imitation = 0, 0.0, None
    rounds: dict[str, list[dict[str, float]]] = {}  # per kind of teaching round, its summaries
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            if batch:
                model = sb3_batch.load_model(config, env, Path(folder))
            else:
                model = MaskablePPO.load(Path(folder) / "model.zip", env=env, device="cpu")
            state = json.loads((Path(folder) / "phobos.json").read_text())
        updates, elapsed = state["iteration"], state["elapsed_s"]
        imitation = state.get("imitation_accuracy")
        rounds = {kind: state[kind] for kind in ROUND_KINDS if kind in state}
    else:
        model = (
            sb3_batch.new_model(config, env, seed, lr)
            if batch
            else _view_model(config, env, seed, lr)
        )
        if config.imitation_episodes > 0:
            began = time.perf_counter()
            if batch:
                cloned = sb3_batch.warm_start(model, env, config, seed)
            else:
                cloned = warm_start(model, config, seed)
            elapsed += time.perf_counter() - began  # the warm start counts in the budget
            imitation = cloned["accuracy"]
            team = config.imitation_team
            print(f"imitation: {imitation:.1%} of the {team} team's actions matched", flush=True)
            if config.warm_start_overrun(elapsed) is not None:  # no update can run: say so
                tune.report({"warm_start_s": elapsed, "seed": seed, "lr": lr})
                env.close()
                return
            if batch and config.dagger_rounds > 0:
                from phobos.training.dagger import imitate_on_policy

                began = time.perf_counter()
                rounds["dagger_rounds"] = imitate_on_policy(model, env, config, seed)
                elapsed += time.perf_counter() - began
                imitation = rounds["dagger_rounds"][-1]["accuracy"]
            if batch and config.rollout_rounds > 0:  # searches from the on-policy clone
                began = time.perf_counter()
                rounds["rollout_rounds"] = sb3_batch.improve_by_rollouts(model, env, config, seed)
                elapsed += time.perf_counter() - began
                imitation = rounds["rollout_rounds"][-1]["accuracy"]
            if batch and config.teacher_kl_coeff > 0:
                model.freeze_teacher()
    samples = config.train_batch_size * (len(env.agents) if batch else 1)
    # The batch path's episodes end together: average over the whole last batch of them.
    window = config.num_envs if batch else 20
    while not config.finished(steps(model), elapsed):
        began = time.perf_counter()
        model.learn(samples, reset_num_timesteps=False, progress_bar=False)
        seconds = time.perf_counter() - began
        updates += 1
        elapsed += seconds
        returns = [info["r"] for info in model.ep_info_buffer]
        metrics = {
            "iteration": updates,
            "env_steps": steps(model),
            "time_s": round(elapsed, 2),
            "team_return_mean": _mean(returns[-window:]),
            "env_steps_per_s": config.train_batch_size / seconds,
            "agent_steps_per_s": samples / seconds if batch else config.train_batch_size / seconds,
            "teacher_kl": getattr(model, "last_teacher_kl", float("nan")),
            "seed": seed,
            "lr": lr,
        }
        done = config.finished(steps(model), elapsed)
        if updates % config.checkpoint_every == 0 or done:
            progress = _progress(updates, steps(model), elapsed, imitation, rounds)
            _checkpoint(model, env, config, metrics, progress)
        else:
            tune.report(metrics)
    if updates == 0:  # cloning only (total_env_steps 0): the warm-started policy is the result
        metrics = {"iteration": 0, "env_steps": 0, "time_s": round(elapsed, 2), "seed": seed}
        last = rounds.get("rollout_rounds") or rounds.get("dagger_rounds")
        if last:  # the policy's return on the last teaching round's episodes
            metrics["team_return_mean"] = last[-1]["policy_return_mean"]
        progress = _progress(0, 0, elapsed, imitation, rounds)
        _checkpoint(model, env, config, metrics | {"lr": lr}, progress)
    env.close()


def _progress(
    updates: int,
    env_steps: int,
    elapsed: float,
    imitation: float | None,
    rounds: dict[str, list[dict[str, float]]],
) -> dict[str, Any]:
    """Where a trial stands, as its checkpoints record it (``phobos.json``)."""
    import torch

    record = {
        "iteration": updates,
        "env_steps": env_steps,
        "elapsed_s": elapsed,
        "imitation_accuracy": imitation,
        "torch_threads": torch.get_num_threads(),  # as the trial ran, not as asked
    }
    return record | {kind: summaries for kind, summaries in rounds.items() if summaries}


def _checkpoint(
    model: Any, env: Any, config: TrainConfig, metrics: dict[str, Any], progress: dict[str, Any]
) -> None:
    """Report ``metrics`` with a checkpoint of ``model`` (its export and teacher beside it)."""
    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "model.zip")
        if config.sampler == "batch":
            sb3_batch.export(model, env, config, Path(folder) / "policy")
            model.save_teacher(Path(folder))
        record = describe(config) | progress
        (Path(folder) / "phobos.json").write_text(json.dumps(record, indent=2))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _trial_env(config: TrainConfig, seed: int) -> tuple[Any, Any]:
    """The trial's environment and how to read env steps off its model."""
    if config.sampler == "batch":
        env = sb3_batch.make_env(config, seed)
        return env, lambda model: sb3_batch.env_steps(model, env)
    from stable_baselines3.common.monitor import Monitor

    env = Monitor(make_view(config))
    env.reset(seed=seed)
    env.agents = (config.learner,)
    return env, lambda model: model.num_timesteps


def _view_model(config: TrainConfig, env: Any, seed: int, lr: float) -> Any:
    """MaskablePPO on the single-agent view (one learner, scripted teammates)."""
    from sb3_contrib import MaskablePPO

    from phobos.agents.activations import Tanh

    return MaskablePPO(
        "MultiInputPolicy",
        env,
        learning_rate=lr,
        n_steps=config.train_batch_size,
        policy_kwargs={"net_arch": list(config.hidden), "activation_fn": Tanh},
        seed=seed,
        **config.sb3_ppo_arguments(),
    )


def warm_start(model: Any, config: TrainConfig, seed: int) -> dict[str, float]:
    """Clone the greedy teammate of ``learner`` into the model's policy and value heads."""
    from phobos.training.imitation import clone, collect

    policy = model.policy
    rows = collect(
        config.env,
        config.env_config,
        config.imitation_episodes,
        seed,
        config.gamma,
        config.imitation_team,
    )

    def heads(observations: Any, masks: Any) -> tuple[Any, Any]:
        features = policy.extract_features({"observations": observations, "action_mask": masks})
        latent_pi, latent_vf = policy.mlp_extractor(features)
        logits = policy.action_net(latent_pi).masked_fill(masks <= 0, -1e8)
        return logits, policy.value_net(latent_vf)

    return clone(heads, policy.parameters(), rows[config.learner], config.imitation_epochs, seed)


def train(
    config: TrainConfig,
    run: RunDir,
    resume: bool,
    quiet: bool = False,
) -> CheckpointInfo:
    """Run every trial (seeds x learning rates) under Tune; export the best one."""
    lrs = list(config.trial_lrs) or [config.lr]
    # A CPU for each of the trial's torch threads, and one more for each rollout worker beyond
    # its own share (Tune launches a trial's tasks only inside the trial's placement group).
    extra = [{"CPU": 1.0}] * config.extra_rollout_workers
    bundles = [{"CPU": float(config.learner_threads)}] + extra
    trainable = tune.with_resources(trial, tune.PlacementGroupFactory(bundles))
    experiment = run.path.resolve() / TUNE_FOLDER
    if resume and tune.Tuner.can_restore(str(experiment)):
        tuner = tune.Tuner.restore(
            str(experiment),
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=True,
        )
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={
                "config": config_tools.to_mapping(config),
                "seed": tune.grid_search(list(config.trial_seeds)),
                "lr": tune.grid_search(lrs),
            },
            tune_config=tune.TuneConfig(
                max_concurrent_trials=config.max_concurrent_trials,
                trial_dirname_creator=trial_folder_name,
            ),
            run_config=tune.RunConfig(
                name=TUNE_FOLDER,
                storage_path=str(run.path.resolve()),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=2),
                callbacks=[TrialProgress(run, quiet)],
                verbose=0,
            ),
        )
    if config.imitation_episodes > 0 and not quiet:
        print(f"every trial: {config.warm_start_line()}", flush=True)
    results = tuner.fit()
    errors = [str(r.error) for r in results if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} trial(s) failed; first: {errors[0]}")
    trained = [r for r in results if r.checkpoint is not None]
    if not trained:
        spent = max(r.metrics.get("warm_start_s", 0.0) for r in results)
        raise ValueError(config.warm_start_overrun(spent) or "no trial saved a checkpoint")
    best = max(trained, key=lambda r: r.metrics.get("team_return_mean", float("-inf")))
    if not quiet:
        print(
            f"best trial seed{best.metrics['seed']}_lr{best.metrics['lr']:g} (team return "
            f"{best.metrics.get('team_return_mean', float('nan')):.2f}, best of {len(trained)} "
            f"trials): {best.path}",
            flush=True,
        )
    with best.checkpoint.as_directory() as folder:
        if run.policy.exists():
            shutil.rmtree(run.policy)
        if config.sampler == "batch":  # the shared policy: safetensors and JSON
            shutil.copytree(Path(folder) / "policy", run.policy)
        else:
            run.policy.mkdir(parents=True)
            export_model(Path(folder) / "model.zip", run.policy / "model.zip")
        state = json.loads((Path(folder) / "phobos.json").read_text())
        state |= {"seed": best.metrics["seed"], "lr": best.metrics["lr"]}
        (run.policy / "phobos.json").write_text(json.dumps(state, indent=2) + "\n")
    return CheckpointInfo(run.policy, state["iteration"], state["env_steps"], state["elapsed_s"])


def trial_folder_name(trial: Any) -> str:
    """``seed0_lr0.0003``: Tune's default names hold commas, which team specs split on."""
    return f"seed{trial.config['seed']}_lr{trial.config['lr']:g}"


def export_model(source: Path, target: Path) -> None:
    """Save ``source`` for inference only: the Adam moments (2/3 of the zip) are left out."""
    import torch
    from sb3_contrib import MaskablePPO

    model = MaskablePPO.load(source, device="cpu")
    model.policy.optimizer = torch.optim.Adam(model.policy.parameters())  # empty moments
    model.save(target)


class TrialProgress(tune.Callback):
    """Each trial result becomes a CSV/TensorBoard row of the run and a progress line.

    A module-level class, because Tune pickles its callbacks into the experiment and
    restores them with it on ``--resume``.

    Args:
        run: The run folder.
        quiet: No progress lines.

    """

    def __init__(self, run: RunDir, quiet: bool) -> None:
        self.run, self.quiet = run, quiet

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        """Log and print one trial's update."""
        if "env_steps" not in result:  # a warm start that spent the budget: no update ran
            return
        row = {key: result[key] for key in _COLUMNS if key in result}
        self.run.log(row, tag=f"seed{row.get('seed')}_lr{row.get('lr')}")
        if not self.quiet:
            config = self.run.config
            line = format_progress(row, config.total_env_steps, config.time_budget_s)
            print(f"seed {row.get('seed')} lr {row.get('lr'):g} | {line}", flush=True)


_COLUMNS = (
    "iteration",
    "env_steps",
    "time_s",
    "team_return_mean",
    "env_steps_per_s",
    "agent_steps_per_s",
    "teacher_kl",
    "seed",
    "lr",
)
