"""Honest statistics over episodes: bootstrap confidence intervals, probability of improvement.

Percentile bootstrap over episodes (Efron), with a seeded ``numpy.random.Generator`` so that a
report is reproducible. The probability of improvement follows rliable (Agarwal et al., 2021):
``P(X > Y) + 0.5 P(X = Y)`` over all pairs of one episode of each policy, the Mann-Whitney
statistic scaled to [0, 1]; 0.5 means neither is better. Its interval resamples both samples
independently (stratified by policy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 2000
"""Bootstrap resamples: enough for stable 95% percentile bounds at the sample sizes here."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval.

    Attributes:
        estimate: The statistic on the sample itself.
        low: Lower bound of the interval.
        high: Upper bound of the interval.
        n: Sample size.

    """

    estimate: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float]:
        """Plain ``{estimate, low, high, n}`` for JSON."""
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n}

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _check(values: Sequence[float], name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name}: no episodes to summarise")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: every value must be finite")
    return array


def bootstrap_mean(
    values: Sequence[float],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean with its percentile bootstrap interval (one value: a zero-width interval)."""
    x = _check(values)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    # The percentile interval always contains the sample mean up to float rounding; clamp it.
    return Interval(mean, float(min(low, mean)), float(max(high, mean)), int(x.size))


def _improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + 0.5 P(X = Y) over all pairs, in O((n + m) log m)."""
    ys = np.sort(y)
    below = np.searchsorted(ys, x, side="left")
    not_above = np.searchsorted(ys, x, side="right")
    return float((below + 0.5 * (not_above - below)).sum() / (x.size * y.size))


def probability_of_improvement(
    x: Sequence[float],
    y: Sequence[float],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """How likely an episode of policy ``x`` beats one of policy ``y``, with its interval."""
    a, b = _check(x, "x"), _check(y, "y")
    estimate = _improvement(a, b)
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for r in range(resamples):
        draws[r] = _improvement(
            a[rng.integers(0, a.size, a.size)], b[rng.integers(0, b.size, b.size)]
        )
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return Interval(estimate, float(min(low, estimate)), float(max(high, estimate)), a.size)


def paired_comparison(
    x: dict[int, float],
    y: dict[int, float],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Two policies flown on the same seeds, compared seed by seed.

    Args:
        x: Seed to team return of policy ``x``.
        y: The same of policy ``y``; only the seeds both flew are compared.
        confidence: Interval level.
        resamples: Bootstrap resamples.
        seed: The bootstrap's own seed.

    Returns:
        ``difference``: the mean of ``x - y`` over the shared seeds with its bootstrap
        interval (seeds resampled); ``win_rate``: the share of seeds where ``x`` returned
        more, ties counted half, with its interval; ``wins``, ``losses``, ``ties``.

    """
    seeds = sorted(set(x) & set(y))
    if not seeds:
        raise ValueError("paired comparison: the two policies share no seed")
    difference = _check([x[s] - y[s] for s in seeds], "differences")
    outcome = np.sign(difference) * 0.5 + 0.5  # 1 win, 0.5 tie, 0 loss
    return {
        "difference": bootstrap_mean(difference, confidence, resamples, seed).as_dict(),
        "win_rate": bootstrap_mean(outcome, confidence, resamples, seed).as_dict(),
        "wins": int((difference > 0).sum()),
        "losses": int((difference < 0).sum()),
        "ties": int((difference == 0).sum()),
    }
