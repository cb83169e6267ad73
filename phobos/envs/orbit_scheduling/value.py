"""The value-factor rule of orbit scheduling: one rule for the env, the batch core and the oracle.

A step of an activity stores ``value * factor`` of science. The factor is the joint
occultation's boost for an occultation (zero unless both spacecraft take part), times
``magnetosphere_boost`` for Yinghuo-1's field and particle instruments
(``config.magnetosphere_activities``) while it is inside the induced magnetosphere, and 1
otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from phobos.envs.orbit_scheduling.config import (
    ACTIVITIES,
    CRAFT_COUNT,
    YINGHUO1_INDEX,
    OrbitSchedulingConfig,
)

T = TypeVar("T")


def _choose(condition: Any, yes: T, no: T) -> T:
    return yes if condition else no


def value_factor(
    occultation: Any,
    joint_boost: Any,
    field_data: Any,
    in_magnetosphere: Any,
    magnetosphere_boost: float,
    where: Callable[[Any, Any, Any], Any] = _choose,
) -> Any:
    """The factor on one step's stored value (module notes).

    Scalars by default (the ``ParallelEnv``'s step and the oracle); pass ``where=np.where``
    for arrays (the batch core), where every argument broadcasts.

    Args:
        occultation: Whether the activity is the occultation.
        joint_boost: The occultation's boost when both spacecraft take part, else 0.
        field_data: Whether it is one of Yinghuo-1's magnetosphere activities.
        in_magnetosphere: Whether Yinghuo-1 is inside the induced magnetosphere.
        magnetosphere_boost: ``config.magnetosphere_boost``.
        where: ``where(condition, yes, no)``.

    """
    return where(occultation, joint_boost, 1.0) * where(
        field_data & in_magnetosphere, magnetosphere_boost, 1.0
    )


def magnetosphere_activities(config: OrbitSchedulingConfig) -> frozenset[int]:
    """Action indices of Yinghuo-1's ``config.magnetosphere_activities``."""
    names = ACTIVITIES["yinghuo1"]
    return frozenset(names.index(name) for name in config.magnetosphere_activities)


def field_data_table(config: OrbitSchedulingConfig) -> np.ndarray:
    """``[craft, activity]`` bool: the activities boosted inside the magnetosphere."""
    table = np.zeros((CRAFT_COUNT, len(ACTIVITIES["yinghuo1"])), dtype=bool)
    table[YINGHUO1_INDEX, sorted(magnetosphere_activities(config))] = True
    return table
