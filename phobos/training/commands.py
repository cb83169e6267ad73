"""Command-line parser of ``phobos train``."""

from __future__ import annotations

from typing import Any


def add_commands(commands: Any) -> None:
    """Add ``phobos train`` to the ``phobos`` parser's ``commands``."""
    del commands  # filled in with training
