"""Glass is not tissue: a tile whose core shows no stained tissue skips both networks.

Slides are often 30-70 % glass. Before the networks, each tile's core (plus a small margin) is looked at
every :data:`STEP`-th pixel: a pixel is tissue when its colour is stained (the spread of its R, G, B above
:data:`MIN_SPREAD`) or dark (its smallest channel under :data:`MAX_GLASS`); glass is bright and grey. A tile
with fewer than :data:`MIN_PIXELS` tissue pixels gets empty maps: it can hold no nucleus of its own, since
a tile keeps only the nuclei whose centroid lies in its core. A tile with tissue runs the networks on the
tissue's bounding box within its crop, grown by :data:`CONTEXT` px of context (the whole crop when tissue
fills it): glass around a small piece of tissue costs no network time either. Whole-slide tools (TIAToolbox, HoVer-NeXt)
detect tissue on a thumbnail first; looking at each tile as it is read costs no second pass over the slide.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STEP", "MIN_SPREAD", "MAX_GLASS", "MIN_PIXELS", "MARGIN", "MASK_STEP", "CONTEXT", "tissue_pixels",
           "core_has_tissue", "tissue_box", "tissue_mask_of"]

STEP = 2
MIN_SPREAD = 20
MAX_GLASS = 170
MIN_PIXELS = 3
MARGIN = 4
MASK_STEP = 16  # the tissue mask written beside a slide's labels: one pixel per 16 x 16
CONTEXT = 32


def tissue_pixels(rgb: np.ndarray) -> np.ndarray:
    """Boolean mask of the tissue pixels of an RGB uint8 image (stained or dark)."""
    hi, lo = rgb.max(-1), rgb.min(-1)
    return ((hi - lo) > MIN_SPREAD) | (lo < MAX_GLASS)  # hi >= lo: no uint8 wrap-around


def core_has_tissue(crop: np.ndarray, core: tuple[int, int, int, int]) -> bool:
    """Whether the core ``(r0, r1, c0, c1)`` of a crop (in the crop's coordinates), with :data:`MARGIN` px
    around it, holds at least :data:`MIN_PIXELS` tissue pixels among every :data:`STEP`-th pixel."""
    r0, r1, c0, c1 = core
    h, w = crop.shape[:2]
    sub = crop[max(0, r0 - MARGIN) : min(h, r1 + MARGIN) : STEP, max(0, c0 - MARGIN) : min(w, c1 + MARGIN) : STEP]
    return int(np.count_nonzero(tissue_pixels(sub))) >= MIN_PIXELS


def tissue_box(crop: np.ndarray) -> tuple[int, int, int, int]:
    """The part of a crop the networks need: the bounding box ``(r0, r1, c0, c1)`` of its tissue (every
    :data:`STEP`-th pixel looked at) grown by :data:`CONTEXT` px, within the crop."""
    h, w = crop.shape[:2]
    mask = tissue_pixels(crop[::STEP, ::STEP])
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not rows.size:
        return 0, h, 0, w
    return (max(0, rows[0] * STEP - CONTEXT), min(h, (rows[-1] + 1) * STEP + CONTEXT),
            max(0, cols[0] * STEP - CONTEXT), min(w, (cols[-1] + 1) * STEP + CONTEXT))


def tissue_mask_of(image, rows: int = 1024) -> np.ndarray:
    """The tissue mask of a whole (possibly lazy) image at 1/:data:`MASK_STEP`, read ``rows`` rows at a time: the
    same pixels the tiled engine samples in each core (its tiles are multiples of MASK_STEP)."""
    h, w = image.shape[:2]
    out = np.zeros((-(-h // MASK_STEP), -(-w // MASK_STEP)), bool)
    rows -= rows % MASK_STEP
    for r in range(0, h, rows):
        block = np.asarray(image[r : r + rows : MASK_STEP, ::MASK_STEP])[..., :3]
        out[r // MASK_STEP : r // MASK_STEP + block.shape[0]] = tissue_pixels(block)
    return out
