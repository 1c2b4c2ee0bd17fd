"""Marker-controlled watershed that turns the two branch outputs into nuclei."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

__all__ = ["WATERSHED_RULE", "WatershedParams", "watershed_instances", "watershed_in_core", "own_holes",
           "fill_own_holes"]

#: the version of the watershed's rule (how markers and the foreground are made from the two maps): raised
#: whenever the rule changes what nuclei the same maps and thresholds give, so saved results of another rule
#: are not taken for this one's (output folders record it)
WATERSHED_RULE = 3  # 1: until zoo v2; 2: each nucleus is given the holes it alone encloses (owner read in the
#                     holes' 3 x 3 neighbourhoods: a nucleus touching a hole at a corner kept it open); 3: the same,
#                     owner read in the 4-neighbourhoods, which alone enclose a 4-connected hole


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


def drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects of fewer than ``min_size`` pixels to background."""
    if min_size <= 1:
        return labels
    small = np.bincount(labels.ravel()) < min_size
    small[0] = False
    labels[small[labels]] = 0
    return labels


def own_holes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The background's parts and the nucleus that alone encloses each: ``(parts, owner)``.

    ``parts``: the background's 4-connected components (as ``ndi.binary_fill_holes`` takes holes), 0 on the
    nuclei; ``owner[part]``: the one nucleus among the 4-neighbours of its pixels (they alone separate a
    4-connected part from the rest: a nucleus that touches it only at a corner does not), exactly in the
    labels' integer type, or 0 where the part reaches the image's border (not a hole) or two or more nuclei
    ring it (such as a lumen)."""
    lab = np.asarray(labels)
    parts, n = ndi.label(lab <= 0)
    acc = np.uint64 if lab.dtype.kind == "u" else np.int64  # exact for every label type
    owner = np.zeros(n + 1, acc)
    hole = np.ones(n + 1, bool)
    if lab.size:
        hole[np.concatenate([parts[0], parts[-1], parts[:, 0], parts[:, -1]])] = False  # reaches the border
    hole[0] = False
    if not hole.any():
        return parts, owner
    ys, xs = np.nonzero(hole[parts])  # never on the border, so every neighbour lies inside the image
    hid = parts[ys, xs]
    hi, lo = np.zeros(n + 1, acc), np.full(n + 1, np.iinfo(acc).max, acc)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        w = lab[ys + dy, xs + dx]
        on = w > 0
        v = w[on].astype(acc)
        np.maximum.at(hi, hid[on], v)
        np.minimum.at(lo, hid[on], v)
    owner = np.where(hole & (hi == lo) & (hi != 0), hi, 0).astype(acc)
    return parts, owner


def fill_own_holes(labels: np.ndarray) -> np.ndarray:
    """``labels`` with every hole that one nucleus alone encloses given to that nucleus (a gap ringed by several
    nuclei, such as a lumen, stays background). Watershed rule 3 (docs/models.md, the watershed pilot): the
    watershed applies it after small nuclei are dropped."""
    out = np.array(labels, copy=True)
    _fill(out)
    return out


def _fill(labels: np.ndarray) -> None:
    """:func:`fill_own_holes` in place."""
    parts, owner = own_holes(labels)
    if owner.any():
        m = owner[parts] != 0
        labels[m] = owner[parts[m]].astype(labels.dtype)


def watershed_instances(
    prob: np.ndarray, dist: np.ndarray, params: WatershedParams = WatershedParams()
) -> np.ndarray:
    """Instance labels (int32, 0 = background, ids 1..n) from semantic ``prob`` and ``dist``.

    ``skimage.segmentation.watershed(-dist, markers, mask=fg)`` (markers: the parts of the distance
    map above ``marker_threshold`` inside the foreground, those under ``min_size // 4`` px dropped),
    nuclei under ``min_size`` px dropped, each hole that one nucleus alone encloses given to it
    (:func:`fill_own_holes`; a gap ringed by several nuclei stays background), ids made sequential in
    the order of the markers. Computed
    with less work: a foreground component with one marker is that marker's nucleus and one with
    none stays background (both written from a table), and only the components with two or more
    markers are flooded, in one call on a compact canvas where they lie side by side, apart.
    Flooding separate components is independent, so the labels are those of one flooding of the
    whole foreground (tested against it on maps with continuous values, ``tests/test_postprocess.py``;
    ``bench/bench_watershed.py`` checks real tiles), with one exception: where *marker* pixels of one
    component have equal values, skimage's heap orders them by its layout, which depends on the
    other markers in the call, so such ties may be broken differently (maps with few distinct
    values, like bf16 outputs). Both are watersheds of the same markers.
    """
    return watershed_in_core(prob, dist, params)[0]


def watershed_in_core(
    prob: np.ndarray, dist: np.ndarray, params: WatershedParams = WatershedParams(),
    core: tuple[int, int, int, int] | None = None,
) -> tuple[np.ndarray, int]:
    """The nuclei of :func:`watershed_instances` whose centroid lies in ``core`` (rows ``r0:r1``,
    columns ``c0:c1`` of the maps; ``None``: everywhere), numbered 1..k in order; and k.

    Equal to the tiled stitching rule (:func:`napari_prunuclei.runtime.tiles.kept_nuclei`) applied to
    :func:`watershed_instances`, pixel for pixel, with less work: a nucleus's centroid lies in its
    bounding box (its own holes included, which lie inside the box), so only nuclei whose box crosses
    the core's border need their centroid (the exact mean of integer coordinates), and a nucleus that
    is a whole component takes its size and box from the component. Holes are filled on all the
    nuclei kept by size, before the core is chosen, so a nucleus outside the core does not open or
    close another's hole.
    """
    prob = np.asarray(prob, np.float32)
    dist = np.asarray(dist, np.float32)
    if prob.shape != dist.shape or prob.ndim != 2:
        raise ValueError(f"prob {prob.shape} and dist {dist.shape} must be equal 2-D shapes")
    h, w = prob.shape
    core = (0, h, 0, w) if core is None else tuple(int(v) for v in core)
    fg = prob > params.fg_threshold
    if not fg.any():  # glass, or a tile without nuclei: nothing to label
        return np.zeros((h, w), np.int32), 0
    markers, n_mk = ndi.label((dist > params.marker_threshold) & fg)
    if n_mk == 0:
        return np.zeros((h, w), np.int32), 0
    comp, n_comp = ndi.label(fg)  # the watershed's own connectivity (1)
    flat = markers.ravel()
    at = np.flatnonzero(flat)
    ids = flat[at]
    big = np.bincount(ids, minlength=n_mk + 1) >= max(1, params.min_size // 4)
    big[0] = False
    flat[at[~big[ids]]] = 0  # markers under min_size // 4 px are dropped
    marker_comp = np.zeros(n_mk + 1, np.int64)
    marker_comp[ids] = comp.ravel()[at]  # every marker lies inside one component
    present = np.flatnonzero(big)
    per_comp = np.bincount(marker_comp[present], minlength=n_comp + 1)
    per_comp[0] = 0
    comp_slices = ndi.find_objects(comp)
    comp_box = _boxes(comp_slices, n_comp)
    # a nucleus has its marker's id; a component with one marker is that nucleus, whole
    size = np.zeros(n_mk + 1, np.int64)
    box = np.zeros((n_mk + 1, 4), np.int64)
    sharing = per_comp[marker_comp[present]]  # markers in each present marker's component
    single = present[sharing == 1]
    size[single] = np.bincount(comp.ravel(), minlength=n_comp + 1)[marker_comp[single]]
    box[single] = comp_box[marker_comp[single]]
    flood = _Flood(dist, markers, comp, comp_slices, np.flatnonzero(per_comp >= 2), marker_comp)
    fl = present[sharing >= 2]
    size[fl] = flood.size[fl]
    box[fl] = flood.box[fl]
    keep = size >= max(params.min_size, 1)
    lut = np.zeros(n_comp + 1, np.int32)
    lut[marker_comp[single]] = np.where(keep[single], single, 0)
    whole = lut[comp]  # every nucleus kept by size, by its marker's id
    flood.write(whole, np.where(keep, np.arange(n_mk + 1, dtype=np.int32), 0))
    _fill(whole)
    r0, r1, c0, c1 = core
    inside = (box[:, 0] >= r0) & (box[:, 1] <= r1) & (box[:, 2] >= c0) & (box[:, 3] <= c1)
    apart = (box[:, 1] <= r0) | (box[:, 0] >= r1) | (box[:, 3] <= c0) | (box[:, 2] >= c1)
    across = np.flatnonzero(keep & ~inside & ~apart)
    keep &= inside
    for i in across:  # the exact centroid: a mean of integer coordinates
        y0, y1, x0, x1 = (int(v) for v in box[i])
        rr, cc = np.nonzero(whole[y0:y1, x0:x1] == i)
        n = rr.size
        keep[i] = r0 <= float(rr.sum() + y0 * n) / n < r1 and c0 <= float(cc.sum() + x0 * n) / n < c1
    k = int(keep.sum())
    number = np.zeros(n_mk + 1, np.int32)
    number[keep] = np.arange(1, k + 1, dtype=np.int32)
    return number[whole], k


def _boxes(objects: list, n: int) -> np.ndarray:
    """``(n + 1, 4)`` int64 of ``(r0, r1, c0, c1)`` per id from ``ndi.find_objects`` (zeros where absent)."""
    out = np.zeros((n + 1, 4), np.int64)
    for i, s in enumerate(objects, start=1):
        if s is not None:
            out[i] = s[0].start, s[0].stop, s[1].start, s[1].stop
    return out


class _Flood:
    """``watershed(-dist, markers, mask=component)`` for the components ``ids`` at once: each
    component's box is copied onto a compact canvas (shelves, one empty pixel apart, so no flood
    crosses from one to another), flooded in one call, and read back. ``size`` and ``box`` (in the
    maps' coordinates) per marker id."""

    def __init__(self, dist, markers, comp, slices, ids, marker_comp: np.ndarray) -> None:
        n_markers = marker_comp.size - 1
        self.size = np.zeros(n_markers + 1, np.int64)
        self.box = np.zeros((n_markers + 1, 4), np.int64)
        self.parts: list[tuple[int, tuple, tuple]] = []  # (component, its slice in the maps, on the canvas)
        if ids.size == 0:
            return
        spans = [(slices[c - 1], int(c)) for c in ids]
        spans.sort(key=lambda s: s[0][0].start - s[0][0].stop)  # tallest first: tight shelves
        area = sum((s[0].stop - s[0].start + 1) * (s[1].stop - s[1].start + 1) for s, _ in spans)
        width = max(max(s[1].stop - s[1].start for s, _ in spans), int(1.2 * area**0.5))
        y = x = shelf = 0
        for s, c in spans:
            hh, ww = s[0].stop - s[0].start, s[1].stop - s[1].start
            if x + ww > width:
                y, x, shelf = y + shelf + 1, 0, 0
            self.parts.append((c, s, np.s_[y : y + hh, x : x + ww]))
            x, shelf = x + ww + 1, max(shelf, hh)
        height = y + shelf
        image = np.zeros((height, width), np.float32)
        seeds = np.zeros((height, width), np.int32)
        mask = np.zeros((height, width), bool)
        for c, s, d in self.parts:
            m = comp[s] == c
            mask[d] = m
            image[d] = dist[s]
            seeds[d] = markers[s]
        np.negative(image, out=image)
        self.canvas = watershed(image, seeds, mask=mask)
        self.mask = mask
        self.size = np.bincount(self.canvas.ravel(), minlength=n_markers + 1)
        # a nucleus's box, moved from the canvas to the maps by its component's placement
        comp_shift = np.zeros((int(marker_comp.max()) + 1, 2), np.int64)
        for c, s, d in self.parts:
            comp_shift[c] = s[0].start - d[0].start, s[1].start - d[1].start
        self.shift = comp_shift[marker_comp]
        self.box = _boxes(ndi.find_objects(self.canvas, max_label=n_markers), n_markers)
        self.box += self.shift[:, [0, 0, 1, 1]]  # (read only for the flooded markers)

    def write(self, out: np.ndarray, number: np.ndarray) -> None:
        """Each flooded component's nuclei into ``out``, as ``number`` renames them."""
        for _, s, d in self.parts:
            np.copyto(out[s], number[self.canvas[d]], where=self.mask[d])
