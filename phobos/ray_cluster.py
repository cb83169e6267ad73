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
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}  # no INFO banners
    if address is not None:
        try:
            ray.init(address=address, **quiet)
        except Exception as error:  # noqa: BLE001 - any failure to join is the same to a user
            raise ValueError(f"cannot join the Ray cluster at {address!r}: {error}") from error
        return True
    # Single-node mode: Ray's own processes stay on 127.0.0.1 (a cluster node needs more).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(num_cpus=workers, include_dashboard=False, **quiet)
    return True
