"""Environments: mission physics, the tasks, their PettingZoo/Gymnasium APIs and registry.

Each task registers itself in its folder's ``task.py`` (:func:`register_task`); the registry
(:mod:`phobos.envs.registry`) loads the package's own tasks on first use.
"""

from phobos.envs.registry import (
    bare_id,
    config_class,
    constructor_arguments,
    has_batch,
    make,
    make_batch,
    make_config,
    register,
    register_task,
    registered,
    registered_tasks,
    spec,
    task_named,
    task_of,
    task_spec,
)
from phobos.envs.task import EnvSpec, EpisodeMetrics, TaskSpec

__all__ = [
    "bare_id",
    "EnvSpec",
    "EpisodeMetrics",
    "TaskSpec",
    "config_class",
    "constructor_arguments",
    "has_batch",
    "make",
    "make_batch",
    "make_config",
    "register",
    "register_task",
    "registered",
    "registered_tasks",
    "spec",
    "task_named",
    "task_of",
    "task_spec",
]
