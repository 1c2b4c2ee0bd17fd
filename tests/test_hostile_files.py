"""Hostile and corrupt files: the readers refuse them with ImageError, quickly and in little memory.

Everything here is small, seeded and CPU-only. Crafted files are tiny valid images whose headers are
patched to declare absurd sizes; the fuzz flips bytes in, and truncates, small valid PNG, JPEG and
TIFF files and feeds them to every reader entry point.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from napari_prunuclei.io import ImageError, open_image, read_image, read_labels, write_labels
from napari_prunuclei.napari import _reader
from napari_prunuclei.napari._reader import read_he

# --------------------------------------------------------------------------------------------------
# making files


def _rgb(h: int = 128, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth, slightly noisy RGB image (compresses like a real one, not like noise or a flat fill)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / 9.0 + k) * np.cos(yy / 13.0 - k) for k in range(3)], axis=-1)
    return np.clip(128 + 90 * base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def _labels(h: int = 70, w: int = 70) -> np.ndarray:
    lab = np.zeros((h, w), np.int32)
    lab[5:15, 5:15] = 1
    lab[20:40, 30:50] = 300
    return lab


def _tiff_bytes(data: np.ndarray, **kwargs) -> bytes:
    import tifffile

    b = io.BytesIO()
    tifffile.imwrite(b, data, **kwargs)
    return b.getvalue()


def _png_bytes(data: np.ndarray) -> bytes:
    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(data).save(b, format="PNG")
    return b.getvalue()


def _pyramid_bytes(rgb: np.ndarray) -> bytes:
    import tifffile

    b = io.BytesIO()
    with tifffile.TiffWriter(b) as tw:
        tw.write(rgb, subifds=1, tile=(64, 64), photometric="rgb", compression="zlib")
        tw.write(rgb[::2, ::2], subfiletype=1, tile=(64, 64), photometric="rgb", compression="zlib")
    return b.getvalue()


def seed_files() -> dict[str, bytes]:
    """Small valid files of every kind the readers take, by file name."""
    from PIL import Image

    rgb = _rgb()
    lab = _labels()
    jpg = io.BytesIO()
    Image.fromarray(rgb).save(jpg, format="JPEG", quality=90)
    return {
        "rgb.png": _png_bytes(rgb),
        "labels16.png": _png_bytes(lab.astype(np.uint16)),
        "rgb.jpg": jpg.getvalue(),
        "strips.tif": _tiff_bytes(rgb, photometric="rgb", rowsperstrip=16),
        "zlib_tiles.tif": _tiff_bytes(rgb, photometric="rgb", tile=(64, 64), compression="zlib"),
        "jpeg_tiles.tif": _tiff_bytes(rgb, photometric="rgb", tile=(64, 64), compression="jpeg"),
        "lzw_strips.tif": _tiff_bytes(rgb, photometric="rgb", rowsperstrip=32, compression="lzw"),
        "pyramid.tif": _pyramid_bytes(rgb),
        "labels.tif": _tiff_bytes(lab.astype(np.uint16), compression="zlib"),
    }


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption: bytes flipped (mostly in the header and directory), a 32-bit field
    overwritten with an extreme value, or the file cut short."""
    b = bytearray(data)
    kind = rng.integers(0, 4)
    head = min(len(b), 512)
    if kind == 0:  # a few random bytes anywhere
        for _ in range(rng.integers(1, 9)):
            b[rng.integers(0, len(b))] = rng.integers(0, 256)
    elif kind == 1:  # a few random bytes in the header / first directory
        for _ in range(rng.integers(1, 5)):
            b[rng.integers(0, head)] = rng.integers(0, 256)
    elif kind == 2:  # an extreme 32-bit value where a size, count or offset may lie
        i = int(rng.integers(0, max(head - 4, 1)))
        v = int(rng.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rng.integers(0, 2**32)]))
        b[i : i + 4] = struct.pack(rng.choice(["<I", ">I"]), v)
    else:  # truncated
        del b[rng.integers(0, len(b)) :]
    return bytes(b)


def _first_chunk(data) -> None:
    """Read one chunk of what a reader returned (a lazy array reads its first tile)."""
    first = data[0] if isinstance(data, list) else data
    np.asarray(first[tuple(slice(0, 64) for _ in range(2))])


def _call_read_he(p: Path) -> None:
    for data, _meta, _kind in read_he(str(p)):
        _first_chunk(data)


def _call_open_image(p: Path) -> None:
    _first_chunk(open_image(p))


ENTRY_POINTS = {
    "read_he": _call_read_he,
    "read_image": read_image,
    "open_image": _call_open_image,
    "read_labels": read_labels,
}


def fuzz(folder: Path, n_per_seed: int, seed: int = 0) -> dict:
    """Feed mutated seed files to every entry point: returns counts of what each raised."""
    rng = np.random.default_rng(seed)
    found: dict[str, int] = {}
    examples: list[str] = []
    unnamed: list[str] = []
    n = 0
    for name, data in seed_files().items():
        for i in range(n_per_seed):
            p = folder / f"{i:03d}_{name}"
            p.write_bytes(mutate(data, rng))
            for entry, call in ENTRY_POINTS.items():
                n += 1
                try:
                    call(p)
                except ImageError as e:
                    if str(p) not in str(e):
                        unnamed.append(f"{entry}: {e}")
                except Exception as e:  # noqa: BLE001 - what the fuzz is looking for
                    found[type(e).__name__] = found.get(type(e).__name__, 0) + 1
                    examples.append(f"{entry} {p.name}: {type(e).__name__}: {e}"[:300])
            p.unlink()
    return {"calls": n, "raised": found, "examples": examples, "unnamed": unnamed}
