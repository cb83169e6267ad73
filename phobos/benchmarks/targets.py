"""Each benchmark's targets beside what it measured, with a verdict per row.

One table, ``met`` or ``MISSED`` per target, printed at the end of every ``phobos bench``
section.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One target of a benchmark and what this run measured against it."""

    what: str
    """What is measured (``"ParallelEnv vs MPE, env-steps/s"``)."""
    wanted: str
    """The target as the docs state it (``">= 5x"``)."""
    measured: str
    """This run's figure, formatted (``"7.31x"``)."""
    met: bool | None
    """Whether the figure meets the target; None when this run did not measure it."""


def verdict(met: bool | None) -> str:
    """``met``, ``**MISSED**`` (bold, so it shows in the printed text too) or ``not measured``."""
    if met is None:
        return "not measured"
    return "met" if met else "**MISSED**"


def table(targets: Sequence[Target]) -> str:
    """The Markdown table of ``targets``, with a headline counting the missed ones."""
    missed = sum(target.met is False for target in targets)
    measured = sum(target.met is not None for target in targets)
    head = (
        f"Targets: **{missed} of {measured} MISSED**."
        if missed
        else f"Targets: all {measured} measured met."
    )
    if measured < len(targets):
        head += f" {len(targets) - measured} not measured in this run."
    lines = [head, "", "| target | wanted | measured | verdict |", "|---|---:|---:|---|"]
    lines += [
        f"| {t.what} | {t.wanted} | {t.measured} | {verdict(t.met)} |" for t in targets
    ]
    return "\n".join(lines)
