"""Phobos mission autonomy: multi-agent environments, messaging and learning for a Mars mission.

Layers, imports pointing only down: ``comms`` <- ``envs`` <- ``agents`` <-
``training`` / ``evaluation`` / ``live`` <- ``demo`` (siblings do not import one another;
``tests/test_layers.py`` enforces it). Importing the package registers the single-agent
Gymnasium ids (``gymnasium.make("OrbitScheduling-v0")``, ``"PhobosSampling-v0"``); the
multi-agent ids live in :mod:`phobos.envs`'s registry.
"""

import gymnasium

__version__ = "0.1.0"

if "OrbitScheduling-v0" not in gymnasium.registry:
    gymnasium.register(
        "OrbitScheduling-v0",
        entry_point="phobos.agents.views:orbit_scheduling_single_agent",
        disable_env_checker=True,  # checked by the test suite with check_env instead
    )

if "PhobosSampling-v0" not in gymnasium.registry:
    gymnasium.register(
        "PhobosSampling-v0",
        entry_point="phobos.agents.views:phobos_sampling_single_agent",
        disable_env_checker=True,  # checked by the test suite with check_env instead
    )
