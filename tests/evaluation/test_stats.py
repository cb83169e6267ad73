from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phobos.evaluation.stats import bootstrap_mean, probability_of_improvement


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), st.integers(0, 2**31))
def test_bootstrap_interval_contains_the_mean(values, seed):
    ci = bootstrap_mean(values, resamples=200, seed=seed)
    assert ci.low <= ci.estimate <= ci.high
    assert ci.estimate == pytest.approx(np.mean(values))


def test_interval_narrows_with_more_episodes_and_widens_with_spread():
    rng = np.random.default_rng(1)
    small, large = rng.normal(0, 1, 25), rng.normal(0, 1, 400)
    width = lambda ci: ci.high - ci.low  # noqa: E731
    assert width(bootstrap_mean(large)) < 0.5 * width(bootstrap_mean(small))
    assert width(bootstrap_mean(10 * small)) == pytest.approx(10 * width(bootstrap_mean(small)))
    assert width(bootstrap_mean([3.0] * 10)) == 0.0


def test_bootstrap_is_reproducible_and_rejects_nothing_to_summarise():
    values = np.arange(20.0)
    assert bootstrap_mean(values, seed=5) == bootstrap_mean(values, seed=5)
    with pytest.raises(ValueError, match="no episodes"):
        bootstrap_mean([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_mean([1.0, float("nan")])


def test_probability_of_improvement():
    x = [1.0, 2.0, 3.0, 4.0]
    assert probability_of_improvement(x, x).estimate == 0.5
    assert probability_of_improvement([5.0, 6.0], [1.0, 2.0]).estimate == 1.0
    assert probability_of_improvement([1.0, 2.0], [5.0, 6.0]).estimate == 0.0
    ci = probability_of_improvement([1.0, 3.0, 5.0], [2.0, 4.0], resamples=300)
    assert ci.estimate == pytest.approx(0.5) and 0.0 <= ci.low <= ci.estimate <= ci.high <= 1.0


def test_a_paired_comparison_counts_seeds_won_and_the_mean_difference_on_shared_seeds():
    from phobos.evaluation.stats import paired_comparison

    x = {1: 10.0, 2: 12.0, 3: 9.0, 4: 5.0, 9: 100.0}
    y = {1: 9.0, 2: 12.0, 3: 10.0, 4: 1.0, 7: 0.0}  # seeds 7 and 9 are not shared
    result = paired_comparison(x, y)
    assert (result["wins"], result["losses"], result["ties"]) == (2, 1, 1)
    assert result["difference"]["estimate"] == pytest.approx((1 + 0 - 1 + 4) / 4)
    assert result["win_rate"]["estimate"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert result["win_rate"]["low"] <= result["win_rate"]["estimate"] <= result["win_rate"]["high"]
    with pytest.raises(ValueError, match="share no seed"):
        paired_comparison({1: 1.0}, {2: 1.0})
