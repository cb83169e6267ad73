"""Versioned environment ids and the tasks they belong to, in the manner of Gymnasium's registry.

``make("orbit-scheduling-v0", horizon_steps=96)`` builds a registered environment. Keyword
arguments that are fields of its configuration override them (checked); the others are passed
to the environment's constructor (``message_bus=...``), as Gymnasium's ``make`` passes its
keyword arguments; anything else is an error naming it. Bump an id's version whenever its
behaviour changes, and say so in the module's version history.

Each task registers itself once (:func:`register_task`, in its folder's ``task.py``) with a
:class:`~phobos.envs.task.TaskSpec`; this module is the only place that knows every task.
As in Gymnasium, an id written ``"some.module:tiny-v0"`` imports ``some.module`` first (which
registers its task) and then looks up ``tiny-v0``: that is how a task registered outside the
package reaches subprocesses (``phobos run --env tests.tiny_task:tiny-v0``).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from typing import Any

from phobos import config as config_tools
from phobos.envs.task import EnvSpec, TaskSpec, load_entry_point

BUILTIN_TASKS = ("phobos.envs.orbit_scheduling.task", "phobos.envs.sampling.task")
"""The modules that register the package's own tasks, imported on the registry's first use."""

_QUALIFIED_ID = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z0-9][\w-]*-v\d+")
"""``module:name-vN``: a dotted module name (nothing else is imported) and a versioned id."""

_REGISTRY: dict[str, EnvSpec] = {}
_TASKS: dict[str, TaskSpec] = {}
_builtin_loaded = False


def _builtin() -> None:
    """Register the built-in tasks once (lazily: their modules import this one)."""
    global _builtin_loaded
    if not _builtin_loaded:
        _builtin_loaded = True
        for module in BUILTIN_TASKS:
            importlib.import_module(module)


def register(spec: EnvSpec) -> None:
    """Add ``spec``; registering an id twice is an error."""
    _builtin()
    name, _, version = spec.id.rpartition("-v")
    if not name or not version.isdigit() or ":" in spec.id:
        raise ValueError(f"environment id {spec.id!r} must look like 'name-v0'")
    if spec.id in _REGISTRY:
        raise ValueError(f"environment id {spec.id!r} is already registered")
    _REGISTRY[spec.id] = spec


def register_task(task: TaskSpec) -> None:
    """Add ``task`` and every id of it; a task name or id registered twice is an error."""
    _builtin()
    if not isinstance(task, TaskSpec):
        raise ValueError(f"register_task needs a TaskSpec, got {type(task).__name__}")
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    taken = [env.id for env in task.envs if env.id in _REGISTRY]
    if taken:
        raise ValueError(f"task {task.name!r}: environment id {taken[0]!r} is already registered")
    for env in task.envs:
        register(dataclasses.replace(env, task=task.name))
    _TASKS[task.name] = task


def registered() -> list[str]:
    """Every registered id, sorted."""
    _builtin()
    return sorted(_REGISTRY)


def registered_tasks() -> list[str]:
    """Every registered task name, sorted."""
    _builtin()
    return sorted(_TASKS)


def spec(env_id: str) -> EnvSpec:
    """The spec of ``env_id`` (``"module:name-vN"`` imports ``module`` first).

    An unknown id names the registered ones.
    """
    _builtin()
    name = _import_module_of(env_id)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown environment id {env_id!r}; registered: {', '.join(registered())}"
        ) from None


def bare_id(env_id: str) -> str:
    """``env_id`` without its ``module:`` prefix (the id it is registered under)."""
    return env_id.rpartition(":")[2]


def task_spec(env_id: str) -> TaskSpec:
    """The task ``env_id`` is a version of."""
    entry = spec(env_id)
    if entry.task is None:
        raise ValueError(f"environment id {env_id!r} belongs to no registered task")
    return _TASKS[entry.task]


def task_named(name: str) -> TaskSpec:
    """The task registered as ``name``; an unknown name names the registered ones."""
    _builtin()
    try:
        return _TASKS[name]
    except KeyError:
        raise ValueError(
            f"unknown task {name!r}; registered: {', '.join(registered_tasks())}"
        ) from None


def task_of(env: Any) -> TaskSpec | None:
    """The task of an environment (or configuration) by its configuration's class, if any.

    The exact class wins over a subclass, so a task whose config subclasses another's is
    still told apart.
    """
    _builtin()
    config = getattr(env, "config", env)
    by_class = {
        config_class(env_id): _TASKS[entry.task]
        for env_id, entry in _REGISTRY.items()
        if entry.task is not None
    }
    if type(config) in by_class:
        return by_class[type(config)]
    return next((task for cls, task in by_class.items() if isinstance(config, cls)), None)


def config_class(env_id: str) -> type:
    """The configuration dataclass of ``env_id``."""
    return load_entry_point(spec(env_id).config_entry_point)


def make_config(env_id: str, **overrides: Any) -> Any:
    """The default configuration of ``env_id`` with checked overrides."""
    config_cls = config_class(env_id)
    return config_tools.replace(config_cls(), **overrides) if overrides else config_cls()


def constructor_arguments(env_id: str) -> tuple[str, ...]:
    """Keyword arguments the environment's constructor takes besides its configuration."""
    return _arguments(load_entry_point(spec(env_id).entry_point))


def make(env_id: str, config: Any = None, **kwargs: Any) -> Any:
    """Build ``env_id`` from ``config`` (or its default).

    Keyword arguments override fields of the configuration (checked) or, when they are none,
    go to the environment's constructor (``message_bus``, ``render_mode``).

    Raises:
        ConfigError: for a keyword that is neither (naming it and what is accepted), or a
            value of the wrong type.

    """
    entry = spec(env_id)
    factory = load_entry_point(entry.entry_point)
    overrides, arguments = _split(env_id, config, kwargs, _arguments(factory))
    return factory(_configure(env_id, config, overrides), **arguments)


def make_batch(env_id: str, num_envs: int, config: Any = None, **overrides: Any) -> Any:
    """The batch core of ``env_id``: ``num_envs`` episodes stepped at once in arrays.

    A seeded batch of one equals the ``ParallelEnv`` of ``make(env_id)`` step for step.
    """
    entry = spec(env_id)
    if entry.batch_entry_point is None:
        raise ValueError(f"environment {env_id!r} has no batch core")
    config = _configure(env_id, config, overrides)
    return load_entry_point(entry.batch_entry_point)(config, num_envs=num_envs)


def has_batch(env_id: str) -> bool:
    """Whether ``env_id`` registers a batch core."""
    return spec(env_id).batch_entry_point is not None


def _configure(env_id: str, config: Any, overrides: dict[str, Any]) -> Any:
    if config is None:
        return make_config(env_id, **overrides)
    return config_tools.replace(config, **overrides) if overrides else config


def _split(
    env_id: str, config: Any, kwargs: dict[str, Any], accepted: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments -> (config overrides, constructor arguments); unknown ones raise."""
    cls = type(config) if config is not None else config_class(env_id)
    fields = sorted(f.name for f in dataclasses.fields(cls) if f.init)
    unknown = sorted(set(kwargs) - set(fields) - set(accepted))
    if unknown:
        raise config_tools.ConfigError(
            f"unknown key {unknown[0]!r} for make({env_id!r}): neither a field of "
            f"{cls.__name__} nor a constructor argument; valid keys: {', '.join(fields)}; "
            f"constructor arguments: {', '.join(accepted) or 'none'}"
        )
    overrides = {k: v for k, v in kwargs.items() if k in fields}
    return overrides, {k: v for k, v in kwargs.items() if k not in overrides}


def _arguments(factory: Any) -> tuple[str, ...]:
    """Keyword parameters of ``factory`` after its first (the configuration)."""
    parameters = list(inspect.signature(factory).parameters.values())[1:]
    return tuple(
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )


def _import_module_of(env_id: str) -> str:
    """Import the module of a ``"module:name-vN"`` id (Gymnasium's rule); returns the name."""
    if not isinstance(env_id, str):
        raise ValueError(f"environment id must be a string, got {type(env_id).__name__}")
    module, sep, name = env_id.rpartition(":")
    if not sep:
        return env_id
    if len(env_id) > 200 or not _QUALIFIED_ID.fullmatch(env_id):
        raise ValueError(f"environment id {env_id[:200]!r} must look like 'package.module:name-v0'")
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise ValueError(
            f"environment id {env_id!r}: cannot import {module!r} ({error}); check that it "
            "registers the task and can be imported"
        ) from None
    return name
