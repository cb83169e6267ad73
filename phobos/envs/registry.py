"""Versioned environment ids, in the manner of Gymnasium's registry.

``make("orbit-scheduling-v0", horizon_steps=96)`` builds a registered environment; keyword
arguments override fields of its configuration and are checked (an unknown key is an error).
Bump an id's version whenever its behaviour changes, and say so in the module's version
history.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phobos import config as config_tools


@dataclass(frozen=True)
class EnvSpec:
    """A registered environment.

    Attributes:
        id: ``name-vN``.
        entry_point: ``"module:attribute"`` of the environment class or factory.
        config_entry_point: ``"module:attribute"`` of its configuration dataclass.
        kind: ``"parallel"`` (PettingZoo) or ``"gymnasium"`` (single agent).
        batch_entry_point: ``"module:attribute"`` of the task's vectorised batch core (called
            as ``core(config, num_envs=n)``), or ``None`` when it has none.

    """

    id: str
    entry_point: str
    config_entry_point: str
    kind: str = "parallel"
    batch_entry_point: str | None = None


_REGISTRY: dict[str, EnvSpec] = {}


def register(spec: EnvSpec) -> None:
    """Add ``spec``; registering an id twice is an error."""
    name, _, version = spec.id.rpartition("-v")
    if not name or not version.isdigit():
        raise ValueError(f"environment id {spec.id!r} must look like 'name-v0'")
    if spec.id in _REGISTRY:
        raise ValueError(f"environment id {spec.id!r} is already registered")
    _REGISTRY[spec.id] = spec


def registered() -> list[str]:
    """Every registered id, sorted."""
    return sorted(_REGISTRY)


def spec(env_id: str) -> EnvSpec:
    """The spec of ``env_id``; an unknown id names the registered ones."""
    try:
        return _REGISTRY[env_id]
    except KeyError:
        raise ValueError(
            f"unknown environment id {env_id!r}; registered: {', '.join(registered())}"
        ) from None


def make_config(env_id: str, **overrides: Any) -> Any:
    """The default configuration of ``env_id`` with checked overrides."""
    config_cls = _load(spec(env_id).config_entry_point)
    return config_tools.replace(config_cls(), **overrides) if overrides else config_cls()


def make(env_id: str, config: Any = None, **overrides: Any) -> Any:
    """Build ``env_id`` from ``config`` (or its default) with checked keyword overrides."""
    entry = spec(env_id)
    if config is None:
        config = make_config(env_id, **overrides)
    elif overrides:
        config = config_tools.replace(config, **overrides)
    factory: Callable[..., Any] = _load(entry.entry_point)
    return factory(config)


def make_batch(env_id: str, num_envs: int, config: Any = None, **overrides: Any) -> Any:
    """The batch core of ``env_id``: ``num_envs`` episodes stepped at once in arrays.

    A seeded batch of one equals the ``ParallelEnv`` of ``make(env_id)`` step for step.
    """
    entry = spec(env_id)
    if entry.batch_entry_point is None:
        raise ValueError(f"environment {env_id!r} has no batch core")
    if config is None:
        config = make_config(env_id, **overrides)
    elif overrides:
        config = config_tools.replace(config, **overrides)
    return _load(entry.batch_entry_point)(config, num_envs=num_envs)


def has_batch(env_id: str) -> bool:
    """Whether ``env_id`` registers a batch core."""
    return spec(env_id).batch_entry_point is not None


def _load(entry_point: str) -> Any:
    module, _, attribute = entry_point.partition(":")
    return getattr(importlib.import_module(module), attribute)
