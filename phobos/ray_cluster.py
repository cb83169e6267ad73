"""Joining or starting Ray the same way for training and evaluation: quiet, on loopback.

A local instance starts with no dashboard, no auth token and no worker logs or INFO banners on
the driver's console, bound to 127.0.0.1. An address is checked with a
plain TCP connect first, because ``ray.init`` against a dead address can wait for a long time
before it fails.
"""

from __future__ import annotations

import logging
import os
import socket

TORCH_ENV = {"THP_MEM_ALLOC_ENABLE": "1"}
"""What every training process gets in its environment before torch allocates (a value the
user set wins). ``THP_MEM_ALLOC_ENABLE``: torch backs CPU tensors of 2 MB and more with
transparent huge pages. A minibatch's activations in the lander's cell-set network are 38 MB
each (4,096 x 36 cells x 64), above glibc's 32 MB mmap ceiling, so each one is mapped fresh
and faulted in 4 kB pages: a ReLU over one took 38 ms, 10 with huge pages, and the lander
recipe's training went from 1,151-1,274 to 1,499-1,559 agent-steps/s (one trial, 15 s each,
alternating; the orbit and MLP rows unchanged). Linux only; elsewhere torch ignores it."""


def use_torch_env() -> dict[str, str]:
    """Put :data:`TORCH_ENV` into this process's environment; the values now in force."""
    for name, value in TORCH_ENV.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in TORCH_ENV}


def check_ray_address(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast, with a clear message, when nothing listens at ``host:port``."""
    if address in ("auto", "local"):
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address {address!r} must look like HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        raise ValueError(f"no Ray cluster reachable at {address!r}: {error}") from None


def init_ray(workers: int, address: str | None = None) -> bool:
    """Join ``address`` or start a local Ray instance; True when this call started one."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    torch_env = use_torch_env()  # a local instance's workers inherit it; a cluster's are told
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}  # no INFO banners
    if address is not None:
        try:
            ray.init(address=address, runtime_env={"env_vars": torch_env}, **quiet)
        except Exception as error:  # noqa: BLE001 - any failure to join is the same to a user
            raise ValueError(f"cannot join the Ray cluster at {address!r}: {error}") from error
        return True
    # Single-node mode: Ray's own processes stay on 127.0.0.1 (a cluster node needs more).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(num_cpus=workers, include_dashboard=False, **quiet)
    return True
