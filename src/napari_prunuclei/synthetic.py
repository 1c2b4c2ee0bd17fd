"""Synthetic H&E tiles with ground truth, made by our own code (sample data and tests).

Nuclei are random ellipses with wobbly outlines, of varied size and shape,
stained by hematoxylin with chromatin texture; the stroma is eosin with fibre-like
texture; colours are composed in HED optical-density space and converted to RGB
with the Ruifrok-Johnston stain vectors, so they look like real H&E.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .data import _RGB_FROM_HED

__all__ = ["synthetic_tile"]


def synthetic_tile(
    size: int = 512, n_nuclei: int | None = None, seed: int = 0, radius: tuple[float, float] = (5.0, 12.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(rgb uint8 size x size x 3, labels int32)`` of a synthetic H&E tile."""
    rng = np.random.default_rng(seed)
    h = w = int(size)
    if n_nuclei is None:
        n_nuclei = int(h * w / 2200)
    labels = np.zeros((h, w), np.int32)
    yy, xx = np.mgrid[0:h, 0:w]
    nid = 0
    for _ in range(n_nuclei * 3):
        if nid >= n_nuclei:
            break
        r = rng.uniform(*radius)
        ecc = rng.uniform(0.6, 1.0)
        a, b = r, r * ecc
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        th = rng.uniform(0, np.pi)
        y0, y1 = int(max(cy - a - 3, 0)), int(min(cy + a + 4, h))
        x0, x1 = int(max(cx - a - 3, 0)), int(min(cx + a + 4, w))
        if y1 <= y0 or x1 <= x0:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        u = dx * np.cos(th) + dy * np.sin(th)
        v = -dx * np.sin(th) + dy * np.cos(th)
        ang = np.arctan2(v, u)
        wobble = 1 + 0.08 * np.sin(3 * ang + rng.uniform(0, 6)) + 0.05 * np.sin(5 * ang + rng.uniform(0, 6))
        inside = (u / a) ** 2 + (v / b) ** 2 <= wobble**2
        region = labels[y0:y1, x0:x1]
        if np.any(region[inside] > 0):  # nuclei may touch but never overlap
            continue
        nid += 1
        region[inside] = nid
    # stain concentrations
    noise = ndi.gaussian_filter(rng.normal(size=(h, w)), 1.2)
    fibres = ndi.gaussian_filter(rng.normal(size=(h, w)), (1.0, 6.0))
    eosin = 0.35 + 0.25 * ndi.gaussian_filter(rng.normal(size=(h, w)), 12) * 4 + 0.6 * fibres
    eosin = np.clip(eosin, 0.05, 1.2)
    nuc = labels > 0
    strength = rng.uniform(0.7, 1.3, size=nid + 1)
    hema = np.where(nuc, 0.9 * strength[labels] + 0.6 * noise, 0.04 + 0.05 * np.abs(noise))
    edge = nuc & ~ndi.binary_erosion(nuc)
    hema = np.where(edge, hema * 1.15, hema)
    hema = ndi.gaussian_filter(np.clip(hema, 0, 2.0), 0.7)
    eosin = np.where(nuc, eosin * 0.3, eosin)
    hed = np.stack([hema, eosin, np.zeros_like(hema)], axis=-1).astype(np.float32)
    rgb = np.exp(-(hed @ _RGB_FROM_HED))
    rgb = np.clip(rgb + rng.normal(0, 0.01, rgb.shape), 0, 1)
    return (rgb * 255 + 0.5).astype(np.uint8), labels
