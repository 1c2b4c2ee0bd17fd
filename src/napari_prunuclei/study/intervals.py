"""Paired bootstrap intervals over images: how sure a comparison of two models (or a "largest CR within 2 %")
is, given that both were measured on the same few test images (issue 21).

Every resample draws the images with replacement (seeded: the same draw for every comparison of one call), and
each statistic is computed on the same drawn images for both sides, so that an image that is hard for both
does not widen the interval of their difference. Intervals are the 2.5th and 97.5th percentiles of the
resampled statistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "resamples", "relative_drop_interval", "difference_interval", "largest_cr_within"]

#: resamples per interval, and the seed of the draw
N_RESAMPLES = 10_000
SEED = 0


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95 % paired bootstrap interval."""

    point: float
    low: float
    high: float

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside the interval (the comparison is decided at 95 %)."""
        return not (self.low <= value <= self.high)

    def as_dict(self) -> dict:
        return {"point": self.point, "low": self.low, "high": self.high}

    def text(self, scale: float = 100.0, unit: str = " %", digits: int = 1) -> str:
        """e.g. ``-1.2 % [-2.0, -0.4]``."""
        f = f"{{:+.{digits}f}}"
        return f"{f.format(scale * self.point)}{unit} [{f.format(scale * self.low)}, {f.format(scale * self.high)}]"


def resamples(n_images: int, n: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``n`` draws of ``n_images`` image indices with replacement (rows), seeded."""
    if n_images < 1:
        raise ValueError("no images to resample")
    return np.random.default_rng(seed).integers(0, n_images, size=(n, n_images))


def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need one value per image on both sides, got {a.shape} and {b.shape}")
    return a, b


def _interval(point: float, values: np.ndarray) -> Interval:
    low, high = np.percentile(values, [2.5, 97.5])
    return Interval(float(point), float(low), float(high))


def relative_drop_interval(model: Sequence[float], dense: Sequence[float], n: int = N_RESAMPLES,
                           seed: int = SEED) -> Interval:
    """The relative drop of the mean, ``(mean(dense) - mean(model)) / mean(dense)``, per image pairs."""
    m, d = _paired(model, dense)
    idx = resamples(len(m), n, seed)
    dm = d[idx].mean(axis=1)
    return _interval((d.mean() - m.mean()) / d.mean(), (dm - m[idx].mean(axis=1)) / dm)


def difference_interval(a: Sequence[float], b: Sequence[float], n: int = N_RESAMPLES, seed: int = SEED) -> Interval:
    """The mean difference ``mean(a - b)`` per image pairs (e.g. layer-wise AJI minus network-wide AJI)."""
    x, y = _paired(a, b)
    diff = x - y
    return _interval(diff.mean(), diff[resamples(len(diff), n, seed)].mean(axis=1))


def largest_cr_within(per_cr: Mapping[float, Sequence[float]], dense: Sequence[float], tol: float = 0.02,
                      n: int = N_RESAMPLES, seed: int = SEED) -> tuple[float | None, tuple[float | None, float | None]]:
    """The largest CR whose relative drop of the mean from dense is under ``tol`` at it and every smaller CR
    (the paper's rule), and the 95 % interval of that CR over paired resamples of the images. ``None``: no CR
    qualifies (in the interval: in more than 2.5 % of the resamples)."""
    crs = sorted(per_cr)
    d = np.asarray(dense, float)
    vals = np.stack([_paired(per_cr[c], d)[0] for c in crs]) if crs else np.zeros((0, len(d)))
    idx = resamples(len(d), n, seed)

    def largest(drops: np.ndarray) -> np.ndarray:  # drops: (crs, draws) -> largest CR index + 1 (0: none)
        ok = drops < tol
        return np.where(ok.all(axis=0), len(crs), np.argmin(ok, axis=0))

    point_drop = (d.mean() - vals.mean(axis=1)) / d.mean()
    k = int(largest(point_drop[:, None])[0]) if crs else 0
    dm = d[idx].mean(axis=1)
    drops = (dm[None, :] - vals[:, idx].mean(axis=2)) / dm[None, :] if crs else np.zeros((0, n))
    ks = largest(drops) if crs else np.zeros(n, int)
    lo, hi = (int(v) for v in np.percentile(ks, [2.5, 97.5], method="nearest"))

    def cr(i: int) -> float | None:
        return crs[i - 1] if i > 0 else None

    return cr(k), (cr(lo), cr(hi))
