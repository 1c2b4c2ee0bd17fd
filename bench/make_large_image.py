"""Write a large H&E test slide (tiled, compressed TIFF) by tiling real tiles, one TIFF tile in memory at a time.

    python bench/make_large_image.py --data ../shared/data/monuseg2018 --size 10000 --out /tmp/slide10k.tif

The slide is for benchmarks and memory checks only; it is derived from the licensed
data and must not be committed. :func:`mosaic` gives the same pixels as an in-memory
array (``bench/bench_throughput.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile


def sources(data: Path | None) -> list[np.ndarray]:
    """The source tiles: MoNuSeg test tiles of ``data`` (train tiles if it has no test split), or
    without ``data`` four synthetic 1000 px tiles (``napari_prunuclei.nuclei.synthetic``)."""
    if data is None:
        from napari_prunuclei.nuclei.synthetic import synthetic_tissue

        return [synthetic_tissue(1000, seed=s)[0] for s in range(4)]
    from napari_prunuclei.io.dataset import NucleiDataset

    ds = NucleiDataset(data)
    names = ds.names("test") or ds.names("train")
    return [ds.load(n)[0] for n in names]


def pixel_block(src: list[np.ndarray], r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """The slide's pixels [r0:r1, c0:c1]: source tiles laid out in a grid, flipped by position."""
    side = min(min(s.shape[:2]) for s in src)
    out = np.empty((r1 - r0, c1 - c0, 3), np.uint8)
    for gr in range(r0 // side, (r1 - 1) // side + 1):
        for gc in range(c0 // side, (c1 - 1) // side + 1):
            img = src[(gr * 7 + gc) % len(src)][:side, :side]
            if (gr + gc) % 2:
                img = img[:, ::-1]
            a0, a1 = max(r0, gr * side), min(r1, (gr + 1) * side)
            b0, b1 = max(c0, gc * side), min(c1, (gc + 1) * side)
            out[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = img[a0 - gr * side : a1 - gr * side,
                                                              b0 - gc * side : b1 - gc * side]
    return out


def mosaic(src: list[np.ndarray], size: int) -> np.ndarray:
    """The whole ``size`` x ``size`` slide in memory."""
    return pixel_block(src, 0, size, 0, size)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a MoNuSeg-layout folder")
    ap.add_argument("--size", type=int, default=10000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tile", type=int, default=512)
    a = ap.parse_args(argv)
    src = sources(a.data)
    n, t = a.size, a.tile

    def tiles():
        for r in range(0, n, t):
            for c in range(0, n, t):
                block = np.zeros((t, t, 3), np.uint8)
                b = pixel_block(src, r, min(r + t, n), c, min(c + t, n))
                block[: b.shape[0], : b.shape[1]] = b
                yield block

    tifffile.imwrite(a.out, tiles(), shape=(n, n, 3), dtype=np.uint8, tile=(t, t), photometric="rgb",
                     compression="zlib", bigtiff=True)
    side = min(min(s.shape[:2]) for s in src)
    print(f"wrote {a.out}: {n}x{n} RGB from {len(src)} tiles of {side} px")


if __name__ == "__main__":
    main()
