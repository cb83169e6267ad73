"""Command-line parsers of ``phobos demo`` and ``phobos agent``."""

from __future__ import annotations

from typing import Any


def add_commands(commands: Any) -> None:
    """Add the demo's subcommands to the ``phobos`` parser's ``commands``."""
    del commands  # filled in with the live demonstration


