"""Phobos mission autonomy: multi-agent environments, messaging and learning for a Mars mission.

Layers, imports pointing only down: ``comms`` <- ``envs`` <- ``agents`` <-
``training`` / ``evaluation`` <- ``demo``.
"""

__version__ = "0.1.0"
