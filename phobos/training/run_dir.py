"""A training run's folder: its config, metrics (CSV and TensorBoard), checkpoints, export.

```
runs/train/NAME/
  run.json              what was trained (env id, framework, phobos and Ray versions, config)
  config.yaml           the config, loadable with ``phobos train --config``
  progress.csv          one row per iteration
  tensorboard/          the same metrics for TensorBoard
  checkpoints/NNNNNN/   resumable checkpoints (``phobos.json`` inside says where it stood)
  policy/               the exported policy, loadable without Ray (``phobos.json`` beside it)
```
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from phobos import config as config_tools
from phobos.training.config import TrainConfig

FORMAT_VERSION = 1
"""Version of this folder layout and of ``phobos.json``; a different one is refused."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a checkpoint stood.

    Attributes:
        path: The checkpoint folder.
        iteration: Training iterations done.
        env_steps: Environment steps sampled.
        elapsed_s: Training time before this checkpoint, summed over resumed sessions.

    """

    path: Path
    iteration: int
    env_steps: int
    elapsed_s: float


def describe(config: TrainConfig) -> dict[str, Any]:
    """The identity a checkpoint or exported policy carries: env, its version, framework."""
    name, _, version = config.env.rpartition("-v")
    return {
        "format_version": FORMAT_VERSION,
        "env": config.env,
        "env_version": int(version) if version.isdigit() else None,
        "env_config": dict(config.env_config),
        "framework": config.framework,
        "learner": config.learner if config.framework == "sb3" else None,
    }


def check_identity(found: dict[str, Any], config: TrainConfig, where: str) -> None:
    """Refuse a checkpoint of another environment, env version, framework or layout."""
    expected = describe(config)
    for key in ("format_version", "env", "env_version", "framework", "learner"):
        if found.get(key) != expected[key]:
            raise ValueError(
                f"{where} was made for {key}={found.get(key)!r}, this run has "
                f"{key}={expected[key]!r}; start a new run folder or fix the config"
            )


RESUME_FIXED = ("hidden", "sampler")
"""Config fields a checkpoint is made of (its networks' shapes, its sampler's state): a resume
that changes one is refused. The environment's agents and spaces must match as well."""


def check_resumable(found: dict[str, Any], config: TrainConfig, where: str) -> None:
    """Refuse to resume ``found`` (a ``run.json`` config) with a ``config`` it cannot load into.

    Raises:
        ValueError: Naming the field (or the agent and its space) that changed.

    """
    before = config_tools.to_mapping(config_tools.from_mapping(TrainConfig, found))
    after = config_tools.to_mapping(config)
    for key in RESUME_FIXED:
        if before[key] != after[key]:
            raise ValueError(
                f"--resume: {where} was trained with {key}={before[key]!r}, this run has "
                f"{key}={after[key]!r}; its checkpoints cannot load into that, so drop the "
                "override or start a new run folder"
            )
    was = _spaces(config_tools.from_mapping(TrainConfig, found))
    now = _spaces(config)
    if list(was) != list(now):
        raise ValueError(
            f"--resume: {where} was trained with agents {', '.join(was)}, this env_config "
            f"gives {', '.join(now)}; drop the override or start a new run folder"
        )
    for agent, signature in was.items():
        if now[agent] != signature:
            raise ValueError(
                f"--resume: {where} was trained on {agent}'s spaces {signature}, this env_config "
                f"gives {now[agent]}; drop the override or start a new run folder"
            )


def _spaces(config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Each agent's observation and action space, reduced to what a network's shape needs."""
    from phobos.envs import make

    env = make(config.env, **config.env_config)
    try:
        return {
            agent: (_shape(env.observation_space(agent)), _shape(env.action_space(agent)))
            for agent in env.possible_agents
        }
    finally:
        env.close()


def _shape(space: Any) -> Any:
    """A space's kind, shape and size, ignoring bounds (a longer horizon may widen a Box)."""
    if hasattr(space, "spaces") and isinstance(space.spaces, dict):
        return {key: _shape(sub) for key, sub in space.spaces.items()}
    return (type(space).__name__, tuple(space.shape or ()), int(getattr(space, "n", 0)))


RUN_FILES = ("run.json", "config.yaml", "progress.csv", "tensorboard", "checkpoints", "policy")
"""What a run writes into its folder (``--force`` deletes these and only these)."""


class RunDir:
    """The folder of one training run.

    Args:
        path: The run folder (created).
        config: The run's config; written to ``run.json`` and ``config.yaml`` on a fresh run.

    """

    def __init__(self, path: Path, config: TrainConfig) -> None:
        self.path = Path(path)
        self.config = config
        self.checkpoints = self.path / "checkpoints"
        self.policy = self.path / "policy"
        self.csv_path = self.path / "progress.csv"
        self._writer: Any = None
        self._csv_columns: list[str] | None = None

    @staticmethod
    def load_config(path: Path, overrides: list[str]) -> TrainConfig:
        """The config a run folder was started with, plus ``overrides``, for ``--resume``."""
        run_json = Path(path) / "run.json"
        if not run_json.exists():
            raise ValueError(f"--resume: {path} has no run.json; is it a training run folder?")
        data = json.loads(run_json.read_text())
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"--resume: {run_json} has format version {data.get('format_version')!r}, "
                f"this phobos reads {FORMAT_VERSION}"
            )
        base = config_tools.from_mapping(TrainConfig, data["config"])
        if not overrides:
            return base
        merged = config_tools.to_mapping(base)
        extra = config_tools.load(TrainConfig, None, overrides)
        for item in overrides:
            key = item.partition("=")[0].split(".")[0]
            merged[key] = config_tools.to_mapping(extra)[key]
        return config_tools.from_mapping(TrainConfig, merged)

    def start(self, resume: bool, force: bool = False) -> CheckpointInfo | None:
        """Create the folder (fresh) or find its last checkpoint (``resume``).

        A folder that holds a run is refused unless ``force``, which deletes that run's files
        (those of the layout above; anything else in the folder stays).
        """
        if resume:
            found = json.loads((self.path / "run.json").read_text())
            check_identity(found, self.config, f"run folder {self.path}")
            check_resumable(found["config"], self.config, f"run folder {self.path}")
            latest = self.latest_checkpoint()
            if latest is None:
                raise ValueError(f"--resume: {self.checkpoints} holds no checkpoint yet")
            return latest
        if (self.path / "run.json").exists() and not force:
            raise ValueError(
                f"{self.path} already holds a run; pass --resume to continue it, --force to "
                "start over (deleting it), or choose another --out"
            )
        if force:
            self._delete_run()
        self.path.mkdir(parents=True, exist_ok=True)
        import ray

        record = describe(self.config) | {
            "ray_version": ray.__version__,
            "config": config_tools.to_mapping(self.config),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (self.path / "run.json").write_text(json.dumps(record, indent=2) + "\n")
        (self.path / "config.yaml").write_text(
            yaml.safe_dump(config_tools.to_mapping(self.config), sort_keys=False)
        )
        return None

    def _delete_run(self) -> None:
        for name in RUN_FILES:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()

    def finished(self, checkpoint: CheckpointInfo) -> bool:
        """Whether the run ended at ``checkpoint`` (its budget spent) and exported its policy."""
        spent = self.config.finished(checkpoint.env_steps, checkpoint.elapsed_s)
        return spent and (self.policy / "phobos.json").exists()

    def latest_checkpoint(self) -> CheckpointInfo | None:
        """The newest complete checkpoint (one whose ``phobos.json`` was written last)."""
        found = []
        for info_file in self.checkpoints.glob("*/phobos.json"):
            info = json.loads(info_file.read_text())
            found.append(
                CheckpointInfo(
                    info_file.parent, info["iteration"], info["env_steps"], info["elapsed_s"]
                )
            )
        return max(found, key=lambda c: c.iteration, default=None)

    def checkpoint_path(self, iteration: int) -> Path:
        """Folder for the checkpoint after ``iteration``."""
        return self.checkpoints / f"{iteration:06d}"

    def seal_checkpoint(self, info: CheckpointInfo, keep: int = 3) -> None:
        """Mark a written checkpoint complete, then drop all but the newest ``keep``."""
        record = describe(self.config) | {
            "iteration": info.iteration,
            "env_steps": info.env_steps,
            "elapsed_s": info.elapsed_s,
        }
        # Written last and renamed into place: a process killed mid-save leaves a checkpoint
        # without phobos.json, which resume ignores.
        partial = info.path / "phobos.json.partial"
        partial.write_text(json.dumps(record, indent=2) + "\n")
        partial.replace(info.path / "phobos.json")
        complete = sorted(p.parent for p in self.checkpoints.glob("*/phobos.json"))
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_writer"] = None  # reopened on the next log, wherever this was unpickled
        return state

    def log(self, row: dict[str, float], tag: str = "") -> None:
        """Append one iteration's metrics to the CSV and TensorBoard (under ``tag/``)."""
        if self._writer is None:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(self.path / "tensorboard"))
        if self._csv_columns is None:
            if self.csv_path.exists():
                with self.csv_path.open() as handle:
                    self._csv_columns = next(csv.reader(handle), None)
            if self._csv_columns is None:
                self._csv_columns = list(row)
                with self.csv_path.open("w", newline="") as handle:
                    csv.writer(handle).writerow(self._csv_columns)
        with self.csv_path.open("a", newline="") as handle:
            csv.writer(handle).writerow([row.get(c, "") for c in self._csv_columns])
        step = int(row["env_steps"])
        for key, value in row.items():
            if key not in ("iteration", "env_steps") and value == value:  # skip NaN
                self._writer.add_scalar(f"{tag}/{key}" if tag else key, value, step)
        self._writer.flush()

    def truncate_log(self, iteration: int) -> None:
        """Drop CSV rows past ``iteration``: a resumed run repeats the ones after its checkpoint."""
        if not self.csv_path.exists():
            return
        with self.csv_path.open() as handle:
            rows = list(csv.reader(handle))
        if not rows:
            return
        kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= iteration]
        with self.csv_path.open("w", newline="") as handle:
            csv.writer(handle).writerows(kept)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._writer is not None:
            self._writer.close()


def format_progress(row: dict[str, float], total_steps: int, time_budget_s: float = 0.0) -> str:
    """One concise line per iteration: steps, team return, throughput, time left."""
    rate = row.get("env_steps_per_s", float("nan"))
    left = (total_steps - row["env_steps"]) / rate if rate and rate == rate else float("nan")
    if time_budget_s > 0:
        left = min(left, time_budget_s - row.get("time_s", 0.0))
    left_text = "-" if left != left else time.strftime("%Hh%Mm%Ss", time.gmtime(max(left, 0)))
    return (
        f"iter {int(row['iteration']):4d} | {int(row['env_steps']):,}/{total_steps:,} env steps"
        f" | team return {row.get('team_return_mean', float('nan')):8.2f}"
        f" | {rate:,.0f} steps/s | {left_text} left"
    )
