"""Synthetic H&E tiles with ground truth, made by our own code (sample data and tests).

Nuclei are random ellipses with wobbly outlines, of varied size and shape,
stained by hematoxylin with chromatin texture; the stroma is eosin with fibre-like
texture; colours are composed in HED optical-density space and converted to RGB
with the Ruifrok-Johnston stain vectors, so they look like real H&E.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_prunuclei.io.dataset import RGB_FROM_HED

__all__ = ["synthetic_tile", "synthetic_tissue"]


def _wobbly_ellipse(yy, xx, cy: float, cx: float, a: float, b: float, th: float, rng, margin: tuple[int, int],
                    amp: tuple[float, float]):
    """The window ``(y0, y1, x0, x1)`` around an ellipse (semi-axes ``a``, ``b``, angle ``th``), each window
    pixel's squared normalised radius ``q`` and the outline's wobble at its angle (inside: ``q <= wobble**2``);
    None when the window is empty (then ``rng`` is not used)."""
    h, w = yy.shape
    y0, y1 = int(max(cy - a - margin[0], 0)), int(min(cy + a + margin[1], h))
    x0, x1 = int(max(cx - a - margin[0], 0)), int(min(cx + a + margin[1], w))
    if y1 <= y0 or x1 <= x0:
        return None
    dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
    u = dx * np.cos(th) + dy * np.sin(th)
    v = -dx * np.sin(th) + dy * np.cos(th)
    ang = np.arctan2(v, u)
    wobble = 1 + amp[0] * np.sin(3 * ang + rng.uniform(0, 6)) + amp[1] * np.sin(5 * ang + rng.uniform(0, 6))
    return (y0, y1, x0, x1), (u / a) ** 2 + (v / b) ** 2, wobble


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
        shape = _wobbly_ellipse(yy, xx, cy, cx, a, b, th, rng, (3, 4), (0.08, 0.05))
        if shape is None:
            continue
        (y0, y1, x0, x1), q, wobble = shape
        inside = q <= wobble**2
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
    rgb = np.exp(-(hed @ RGB_FROM_HED))
    rgb = np.clip(rgb + rng.normal(0, 0.01, rgb.shape), 0, 1)
    return (rgb * 255 + 0.5).astype(np.uint8), labels


def synthetic_tissue(size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A harder synthetic H&E tile, like real tissue: crowded nests of large, touching, unevenly
    stained nuclei, elongated stromal nuclei between them, and a darker, blurrier stain.

    Returns ``(rgb uint8 size x size x 3, labels int32)``; touching nuclei share borders (each
    pixel of an overlap goes to the nucleus whose centre is nearer, in units of its radius).
    """
    rng = np.random.default_rng(seed)
    h = w = int(size)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    best = np.full((h, w), np.inf, np.float32)  # normalised distance to the owning nucleus
    labels = np.zeros((h, w), np.int32)
    nuclei = []
    area = h * w
    for _ in range(max(2, int(area / 40000))):  # nests: packed, touching nuclei
        cy, cx, rad = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.08, 0.16) * size
        for _ in range(int(rad * rad / 40)):
            r, t = rad * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
            nuclei.append((cy + r * np.sin(t), cx + r * np.cos(t), rng.uniform(7, 13), rng.uniform(0.65, 1), "nest"))
    for _ in range(int(area / 4000)):  # stroma: thin, elongated nuclei
        nuclei.append((rng.uniform(0, h), rng.uniform(0, w), rng.uniform(7, 12), rng.uniform(0.3, 0.5), "stroma"))
    for _ in range(int(area / 9000)):  # scattered round lymphocytes
        nuclei.append((rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 6), rng.uniform(0.85, 1), "lymph"))
    kinds = {}
    for cy, cx, a, ecc, kind in nuclei:
        b, th = a * ecc, rng.uniform(0, np.pi)
        shape = _wobbly_ellipse(yy, xx, cy, cx, a, b, th, rng, (2, 3), (0.1, 0.06))
        if shape is None:
            continue
        (y0, y1, x0, x1), q, wobble = shape
        d = np.sqrt(q) / wobble
        inside = d <= 1
        if not inside.any() or (best[y0:y1, x0:x1][inside] <= 1).mean() > 0.15:  # touching, not piled up
            continue
        win = inside & (d < best[y0:y1, x0:x1])
        if win.sum() < 12:
            continue
        nid = len(kinds) + 1
        kinds[nid] = kind
        best[y0:y1, x0:x1][win] = d[win]
        labels[y0:y1, x0:x1][win] = nid
    from skimage.segmentation import relabel_sequential

    from napari_prunuclei.nuclei.watershed import drop_small

    labels = relabel_sequential(drop_small(labels, 12))[0].astype(np.int32)
    nid = int(labels.max())
    nuc = labels > 0
    noise = ndi.gaussian_filter(rng.normal(size=(h, w)), 1.0)
    chrom = ndi.gaussian_filter(rng.normal(size=(h, w)), 0.6)
    strength = rng.uniform(0.8, 1.7, size=nid + 1)  # uneven hematoxylin, some pale vesicular nuclei
    hema = np.where(nuc, strength[labels] * (0.9 + 0.5 * chrom) + 0.3 * noise, 0.08 + 0.06 * np.abs(noise))
    edge = nuc & ~ndi.binary_erosion(nuc)
    hema = np.where(edge, hema * 1.25, hema)  # darker rims, and thin pale gaps between touching nuclei
    borders = ndi.morphological_gradient(labels, size=2) > 0
    hema = np.where(borders & nuc, hema * 0.75, hema)
    hema = ndi.gaussian_filter(np.clip(hema, 0, 2.4), 0.8)  # a little out of focus
    fibres = ndi.gaussian_filter(rng.normal(size=(h, w)), (1.0, 5.0))
    eosin = 0.55 + 0.9 * ndi.gaussian_filter(rng.normal(size=(h, w)), 16) + 0.5 * fibres
    eosin = np.clip(np.where(nuc, eosin * 0.4, eosin), 0.1, 1.4)
    hed = np.stack([hema, eosin, np.zeros_like(hema)], axis=-1).astype(np.float32)
    rgb = np.exp(-(hed @ RGB_FROM_HED))
    rgb = np.clip(rgb + rng.normal(0, 0.015, rgb.shape), 0, 1)
    return (rgb * 255 + 0.5).astype(np.uint8), labels
