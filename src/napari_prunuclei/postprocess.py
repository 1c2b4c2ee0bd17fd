"""Marker-controlled watershed that turns the two branch outputs into nuclei."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

__all__ = ["WatershedParams", "watershed_instances"]


@dataclass(frozen=True)
class WatershedParams:
    """Thresholds of the watershed.

    - ``fg_threshold``: a pixel is nucleus where the semantic probability exceeds it;
    - ``marker_threshold``: markers are the connected parts of the distance map above it
      (inside the foreground);
    - ``min_size``: nuclei (and markers) smaller than this many pixels are dropped.
    """

    fg_threshold: float = 0.5
    marker_threshold: float = 0.4
    min_size: int = 20

    def __post_init__(self) -> None:
        if not 0 < self.fg_threshold < 1:
            raise ValueError(f"fg_threshold must be in (0, 1), got {self.fg_threshold}")
        if not 0 < self.marker_threshold < 1:
            raise ValueError(f"marker_threshold must be in (0, 1), got {self.marker_threshold}")
        if self.min_size < 0:
            raise ValueError(f"min_size must be >= 0, got {self.min_size}")

    def as_dict(self) -> dict:
        return asdict(self)


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects of fewer than ``min_size`` pixels to background."""
    if min_size <= 1:
        return labels
    small = np.bincount(labels.ravel()) < min_size
    small[0] = False
    labels[small[labels]] = 0
    return labels


def watershed_instances(
    prob: np.ndarray, dist: np.ndarray, params: WatershedParams = WatershedParams()
) -> np.ndarray:
    """Instance labels (int32, 0 = background, ids 1..n) from semantic ``prob`` and ``dist``.

    The result is ``skimage.segmentation.watershed(-dist, markers, mask=fg)`` with small
    objects dropped and ids made sequential, computed with less work: the flooding only
    runs inside foreground components that hold two or more markers. A component with one
    marker is flooded whole by it and one with none stays background, so those are written
    from a look-up table. Flooding separate components is independent, so the labels are
    those of one flooding of the whole foreground (tested on maps with continuous values,
    ``tests/test_postprocess.py``; ``bench/bench_watershed.py`` checks real tiles), with one
    exception: where *marker* pixels of one component have equal values, skimage's heap
    orders them by its internal layout, which depends on every marker of the image, so such
    ties may be broken differently (maps with few distinct values, like bf16 outputs). Both
    are watersheds of the same markers.
    """
    prob = np.asarray(prob, np.float32)
    dist = np.asarray(dist, np.float32)
    if prob.shape != dist.shape or prob.ndim != 2:
        raise ValueError(f"prob {prob.shape} and dist {dist.shape} must be equal 2-D shapes")
    fg = prob > params.fg_threshold
    markers, _ = ndi.label((dist > params.marker_threshold) & fg)
    markers = _drop_small(markers, max(1, params.min_size // 4))
    return _sequential_without_small(_flood(dist, markers, fg), params.min_size)


def _flood(dist: np.ndarray, markers: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """``watershed(-dist, markers, mask=fg)``, flooding only components with several markers."""
    comp, n_comp = ndi.label(fg)  # the watershed's own connectivity (1)
    at = markers > 0
    ids, comp_of = markers[at], comp[at]  # every marker lies inside one component
    marker_comp = np.zeros(int(markers.max()) + 1, np.int64)
    marker_comp[ids] = comp_of
    present = np.flatnonzero(marker_comp)  # ids of the markers left (each lies in a component >= 1)
    per_comp = np.bincount(marker_comp[present], minlength=n_comp + 1)
    lut = np.zeros(n_comp + 1, np.int32)
    single = per_comp[marker_comp[present]] == 1
    lut[marker_comp[present[single]]] = present[single]
    out = lut[comp]
    several = per_comp >= 2
    several[0] = False
    if several.any():
        mask = several[comp]
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        box = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        m = mask[box]
        flooded = watershed(-dist[box], np.where(m, markers[box], 0), mask=m)
        out[box][m] = flooded[m]
    return out


def _sequential_without_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Drop objects under ``min_size`` pixels and number the rest 1..n in order of their ids (int32).

    One pass: what dropping the small objects and ``skimage.segmentation.relabel_sequential``
    give, without the second sweep over the image.
    """
    counts = np.bincount(labels.ravel())
    keep = counts >= max(min_size, 1)
    keep[0] = False
    lut = np.zeros(counts.size, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]
