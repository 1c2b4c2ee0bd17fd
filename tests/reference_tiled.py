"""The tiled path as it was before issue 14 (serial, pixel by pixel), frozen as the reference the new
stages must equal label for label. Not a test module: imported by the tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed


def watershed_reference(prob, dist, params):
    """``postprocess.watershed_instances`` before issue 14 (drop small, then relabel_sequential), with the
    holes each nucleus alone encloses given to it (watershed rule 3, zoo v2)."""
    from napari_prunuclei.nuclei.watershed import fill_own_holes

    def drop_small(labels, min_size):
        if min_size <= 1:
            return labels
        small = np.bincount(labels.ravel()) < min_size
        small[0] = False
        labels[small[labels]] = 0
        return labels

    prob = np.asarray(prob, np.float32)
    dist = np.asarray(dist, np.float32)
    fg = prob > params.fg_threshold
    markers, _ = ndi.label((dist > params.marker_threshold) & fg)
    markers = drop_small(markers, max(1, params.min_size // 4))
    labels = fill_own_holes(drop_small(watershed(-dist, markers, mask=fg), params.min_size))
    labels, _, _ = relabel_sequential(labels)
    return labels.astype(np.int32)


def stitch_reference(out, local, t, next_id):
    """``tiled.stitch_tile`` before issue 14 (scipy centroids, the whole crop read and written)."""
    n = int(local.max())
    if n == 0:
        return next_id
    idx = np.arange(1, n + 1)
    centroids = np.asarray(ndi.center_of_mass(np.ones_like(local), local, idx)).reshape(-1, 2)
    cr = centroids[:, 0] + t.a0
    cc = centroids[:, 1] + t.b0
    keep = (cr >= t.r0) & (cr < t.r1) & (cc >= t.c0) & (cc < t.c1)
    if not keep.any():
        return next_id
    lut = np.zeros(n + 1, np.int32)
    lut[idx[keep]] = np.arange(next_id, next_id + int(keep.sum()), dtype=np.int32)
    new = lut[local]
    region = np.asarray(out[t.a0 : t.a1, t.b0 : t.b1])
    write = (new > 0) & (region == 0)
    region = region.copy()
    region[write] = new[write]
    out[t.a0 : t.a1, t.b0 : t.b1] = region
    return next_id + int(keep.sum())


def tiled_reference(maps_of, grid, shape, params, watershed_fn=None):
    """Labels of the old serial loop; ``maps_of(tile)`` gives the tile's (prob, dist) on core + halo.
    ``watershed_fn``: the per-tile watershed (default: the one from before issue 14)."""
    watershed_fn = watershed_fn or watershed_reference
    out = np.zeros(shape, np.int32)
    next_id = 1
    for t in grid:
        next_id = stitch_reference(out, watershed_fn(*maps_of(t), params), t, next_id)
    return out


def random_maps(shape, seed=0, blob=6.0):
    """Smooth random probability and distance maps with nuclei-like blobs (float32)."""
    rng = np.random.default_rng(seed)
    noise = ndi.gaussian_filter(rng.standard_normal(shape), blob)
    noise = (noise - noise.mean()) / noise.std()
    prob = (1 / (1 + np.exp(-3 * noise))).astype(np.float32)
    dist = np.clip(ndi.gaussian_filter(noise, 2) / 2.5, 0, 1).astype(np.float32)
    return prob, dist
