"""Paired bootstrap intervals over images (issue 21): decided only when the interval excludes zero."""

import numpy as np
import pytest

from napari_prunuclei.study.intervals import (
    Interval,
    difference_interval,
    largest_cr_within,
    relative_drop_interval,
    resamples,
)


def test_a_consistent_small_difference_is_decided_and_noise_is_not():
    rng = np.random.default_rng(1)
    dense = rng.uniform(0.5, 0.8, 14)  # images differ a lot ...
    same_drop = dense - 0.01  # ... but the model is 0.01 worse on every one: paired, that is certain
    iv = difference_interval(same_drop, dense)
    assert iv.point == pytest.approx(-0.01) and iv.excludes(0) and iv.high < 0
    noisy = dense + rng.normal(0, 0.03, 14)  # no systematic difference
    assert not difference_interval(noisy - noisy.mean() + dense.mean(), dense).excludes(0)
    drop = relative_drop_interval(same_drop, dense)
    assert drop.point == pytest.approx(0.01 / dense.mean()) and drop.low > 0
    assert drop.text().startswith(f"+{100 * 0.01 / dense.mean():.1f} % [")


def test_resamples_are_seeded_and_paired_lengths_are_checked():
    assert np.array_equal(resamples(5, 20, seed=3), resamples(5, 20, seed=3))
    with pytest.raises(ValueError, match="one value per image"):
        difference_interval([0.5, 0.6], [0.5])
    with pytest.raises(ValueError, match="no images"):
        resamples(0)
    assert Interval(0.1, 0.05, 0.2).excludes(0) and not Interval(0.1, -0.05, 0.2).excludes(0)


def test_the_largest_cr_within_two_percent_and_its_interval():
    dense = np.array([0.60, 0.62, 0.64, 0.66, 0.58, 0.70, 0.61, 0.63])
    per_cr = {2.0: dense * 0.999, 4.0: dense * 0.995, 8.0: dense * 0.97, 16.0: dense * 0.999}
    best, (lo, hi) = largest_cr_within(per_cr, dense)
    assert best == 4.0 and lo == hi == 4.0  # the same drop on every image: no doubt; CR16 after a miss
    noisy = dict(per_cr)
    noisy[8.0] = dense * np.array([1.0, 0.96, 1.0, 1.0, 1.0, 0.97, 1.0, 1.0])  # -0.9 % on average: within
    best, (lo, hi) = largest_cr_within(noisy, dense)
    assert best == 16.0 and lo in (4.0, 8.0, 16.0) and hi == 16.0 and lo <= best
    assert largest_cr_within({2.0: dense * 0.9}, dense) == (None, (None, None))
