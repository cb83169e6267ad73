"""Command-line parser of ``phobos train``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_commands(commands: Any) -> None:
    """Add ``phobos train`` to the ``phobos`` parser's ``commands``."""
    train = commands.add_parser(
        "train",
        help="train policies with RLlib multi-agent PPO or Stable-Baselines3 + Ray Tune",
        description="Train on Ray, locally or on a cluster; checkpoints resume after a kill.",
    )
    train.add_argument("--config", type=Path, help="YAML file of TrainConfig fields")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a field"
    )
    train.add_argument("--out", type=Path, default=Path("runs/train/latest"), help="run folder")
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    train.add_argument(
        "--force",
        action="store_true",
        help="start over in an --out that holds a run (its checkpoints and policy are deleted)",
    )
    train.add_argument("--ray-address", help="join this Ray cluster (HOST:PORT)")
    train.add_argument("--num-env-runners", type=int, help="rllib: remote sampling workers")
    train.add_argument(
        "--num-learners",
        type=int,
        help="rllib: 1 learns in a remote Ray worker; 2 or more in data parallel",
    )
    train.add_argument("--quiet", action="store_true", help="no per-iteration lines")
    train.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (defaults, --config or the resumed run's, --set) as "
        "YAML for --config, and exit without training",
    )
    train.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from phobos import config as config_tools
    from phobos.training.config import TrainConfig
    from phobos.training.run_dir import RunDir
    from phobos.training.train import TrainRequest, run

    overrides = list(args.set)
    if args.num_env_runners is not None:
        overrides.append(f"num_env_runners={args.num_env_runners}")
    if args.num_learners is not None:
        overrides.append(f"num_learners={args.num_learners}")
    if args.resume and args.force:
        raise ValueError("--resume continues the run in --out, --force deletes it; pick one")
    if args.resume:
        if args.config is not None:
            raise ValueError("--resume continues with the run's own config; drop --config")
        config = RunDir.load_config(args.out, overrides)
    else:
        config = config_tools.load(TrainConfig, args.config, overrides)
    if args.print_config:
        from phobos.training.train import check

        check(config)
        header = [f"phobos train --config THIS_FILE --out {args.out}"]
        if args.resume:  # a resume reads its config from the run folder, not from --config
            header = [f"the config phobos train --out {args.out} --resume continues with"]
        print(config_tools.dump(config, header), end="")
        return 0
    run(TrainRequest(config, args.out, args.resume, args.ray_address, args.quiet, args.force))
    return 0
