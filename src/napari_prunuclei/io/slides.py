"""Slide formats tifffile cannot read (MIRAX, Hamamatsu VMS/VMU, Sakura, Ventana BIF, Zeiss CZI, DICOM), through
OpenSlide, an optional reader: ``pip install 'napari-prunuclei[slides]'`` (openslide-python with the
openslide-bin wheel, no system library needed). SVS, NDPI, SCN, OME-TIFF and pyramidal TIFF are read by
tifffile (:func:`napari_prunuclei.io.images.open_image`) and need nothing more.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_prunuclei.io.guards import ImageError, missing_file_error

__all__ = ["OPENSLIDE_SUFFIXES", "UNSUPPORTED_SUFFIXES", "OpenSlideImage", "open_slide", "slide_pixel_size"]

OPENSLIDE_SUFFIXES = (".mrxs", ".vms", ".vmu", ".svslide", ".bif", ".czi", ".dcm")
#: formats no reader here opens (Olympus VSI, Philips iSyntax need Bio-Formats or the vendor's SDK)
UNSUPPORTED_SUFFIXES = (".vsi", ".isyntax")
EXTRA = "pip install 'napari-prunuclei[slides]'"


def _openslide(path: Path):
    try:
        import openslide
    except ImportError:
        raise ImageError(f"{path}: {path.suffix} slides are read by OpenSlide, an optional reader that is not "
                         f"installed: {EXTRA}") from None
    try:
        return openslide.OpenSlide(str(path))
    except Exception as e:  # noqa: BLE001 - OpenSlide's own errors: a file it cannot use
        raise ImageError(f"cannot read slide {path}: {type(e).__name__}: {e}") from None


class OpenSlideImage:
    """Level 0 of a slide as a lazy H x W x 3 uint8 array: slicing reads only that region (RGBA composited on
    white, as glass looks)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._slide = _openslide(self.path)
        w, h = self._slide.dimensions
        self.shape = (int(h), int(w), 3)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 3

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        rows, cols = (list(key[:2]) + [slice(None)] * 2)[:2]
        if not isinstance(rows, slice) or not isinstance(cols, slice):
            raise TypeError("an OpenSlide image is read by 2-D slices (rows, columns)")
        (r0, r1, rs), (c0, c1, cs) = rows.indices(self.shape[0]), cols.indices(self.shape[1])
        if r1 <= r0 or c1 <= c0:
            return np.zeros((max(0, r1 - r0), max(0, c1 - c0), 3), np.uint8)
        region = np.asarray(self._slide.read_region((c0, r0), 0, (c1 - c0, r1 - r0)))
        alpha = region[..., 3:4].astype(np.float32) / 255.0
        rgb = np.rint(region[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        out = rgb[::rs, ::cs]
        return out[..., key[2]] if len(key) > 2 else out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = self[:, :]
        return a if dtype is None else a.astype(dtype)


def open_slide(path: str | os.PathLike) -> OpenSlideImage:
    """A slide tifffile cannot read, lazily, or :class:`ImageError` naming the file and what to install."""
    p = Path(path)
    if p.suffix.lower() in UNSUPPORTED_SUFFIXES:
        raise ImageError(f"{p}: {p.suffix} slides are not supported (no open reader: convert the slide to "
                         "OME-TIFF, e.g. with QuPath or bfconvert)")
    if not p.is_file():  # (the same reasons as every other reader: not found, a link to nothing, a folder...)
        raise missing_file_error(p, "image")
    return OpenSlideImage(p)


def slide_pixel_size(path: str | os.PathLike) -> float | None:
    """Micrometres per pixel OpenSlide reads from a slide, or None."""
    try:
        import openslide
    except ImportError:
        return None
    try:
        mpp = openslide.OpenSlide(str(path)).properties.get("openslide.mpp-x")
        return float(mpp) if mpp else None
    except Exception:  # noqa: BLE001 - a hint only
        return None
