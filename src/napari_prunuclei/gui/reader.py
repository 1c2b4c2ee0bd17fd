"""Reader for H&E images: PNG, JPEG, and TIFF (multi-page and pyramidal TIFF/SVS) via tifffile.

Hostile or corrupt files are refused with an :class:`~napari_prunuclei.io.guards.ImageError` naming the file,
before anything large is decoded: the header checks of :mod:`napari_prunuclei.io.images` apply (declared size
against the file's size and a ceiling for whole reads; tile size for lazy reads), and the first tile of a
lazy level is decoded at once so a corrupt stream shows up when the file is opened.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_prunuclei.base.constants import IMAGE_EXTENSIONS as _EXT
from napari_prunuclei.base.constants import TIFF_EXTENSIONS as _TIFF
from napari_prunuclei.io.pixel_size import read_pixel_size

#: pyramid levels above this many pixels are read lazily (dask over tifffile's zarr store)
LAZY_PIXELS = 4096 * 4096
#: a large TIFF without a pyramid gets lazy coarser levels down to about this side
PYRAMID_SMALLEST = 2048
#: dask chunk (px a side) of a memory-mapped uncompressed TIFF stored as one strip
MEMMAP_CHUNK = 2048


def get_reader(path):
    if isinstance(path, list):
        path = path[0]
    if not str(path).lower().endswith(_EXT):
        return None
    return read_he


def _as_dask(arr):
    import dask.array as da

    if isinstance(arr, np.ndarray):  # a memory-mapped uncompressed image
        return da.from_array(arr, chunks=(MEMMAP_CHUNK, MEMMAP_CHUNK) + arr.shape[2:])
    return da.from_zarr(arr)


def _tiff_layers(p: Path):
    import tifffile

    from napari_prunuclei.io.guards import check_first_chunk, decoding, lazy_tiff_level, read_tiff_page
    from napari_prunuclei.io.images import read_tiff_rgb, tiff_main_series
    from napari_prunuclei.io.tiff_colour import needs_conversion

    with decoding(p), tifffile.TiffFile(p) as tf:
        series = tiff_main_series(tf, p)
        levels = series.levels
        first = levels[0].keyframe
        if (int(first.samplesperpixel) > 1 or int(first.photometric) == 3) and needs_conversion(first):
            return read_tiff_rgb(p, first)  # CMYK, YCbCr, palette, planar, rotated: as the segmentation sees it
        big = int(first.imagelength) * int(first.imagewidth) > LAZY_PIXELS
        if not big and len(levels) == 1:
            return read_tiff_page(p, first)  # small: the first page, whole
        try:
            import dask.array  # noqa: F401
            import zarr  # noqa: F401
        except ImportError:
            return read_tiff_page(p, first)  # checked: refused if too large to read whole
        if len(levels) == 1:  # one large page: lazy, with coarser levels made by striding
            arrays = [lazy_tiff_level(p, first, first, single_page=True)]
        else:
            arrays = [lazy_tiff_level(p, series, level.keyframe, single_page=len(level.pages) == 1, level=i)
                      for i, level in enumerate(levels)]
    # after the file is closed: tifffile's stores reopen it themselves when they read
    for arr in arrays:
        check_first_chunk(arr, p)
    data = [_as_dask(arr) for arr in arrays]
    if len(data) == 1:
        data = _strided_pyramid(data[0])
    return data if len(data) > 1 else data[0]


def _strided_pyramid(base, smallest: int | None = None) -> list:
    """Lazy coarser levels (every 2nd, 4th, ... pixel) for a large TIFF without a pyramid.

    napari then reads only the tiles in view at a level that fits the screen, never the
    whole full-resolution plane.
    """
    smallest = smallest or PYRAMID_SMALLEST
    levels, step = [base], 2
    while max(base.shape[:2]) // step >= smallest // 2:
        levels.append(base[::step, ::step])
        step *= 2
    return levels


def read_he(path):
    """napari reader: ``[(data, meta, "image")]``; raises only ImageError for a file it cannot use."""
    from napari_prunuclei.io.guards import ImageError, decoding, missing_file_error
    from napari_prunuclei.io.images import png_bit_depth, read_image
    from napari_prunuclei.io.labels import read_labels

    p = Path(path if not isinstance(path, list) else path[0])
    if not p.is_file():
        raise missing_file_error(p, "image")
    with decoding(p):
        if p.suffix.lower() in _TIFF:
            data = _tiff_layers(p)
        else:
            try:
                data = read_image(p)
            except ImageError:
                depth = png_bit_depth(p)
                if not _named_like_labels(p) and not (depth is not None and depth == (16, 0)):
                    raise
                data = read_labels(p)  # a single-channel label PNG (16-bit ids, or a named mask)
        first = data[0] if isinstance(data, list) else data
        if first.ndim < 2 or 0 in first.shape:
            raise ImageError(f"image {p} has shape {first.shape}; nothing to show")
        rgb = first.ndim == 3 and first.shape[-1] in (3, 4)
    meta: dict = {"name": p.stem}
    if isinstance(data, list):
        meta["multiscale"] = True
    with decoding(p):  # tifffile's log lines stay off the console here too
        px = read_pixel_size(p)
    if px and (first.ndim == 2 or rgb):  # the layer carries its pixel size (scale bar in µm, results on it)
        meta["scale"], meta["units"] = (px, px), ("um", "um")
        meta["metadata"] = {"pixel_size_um": px}
    if is_label_image(first, p):
        return [(data, meta, "labels")]
    meta["rgb"] = rgb
    return [(data, meta, "image")]


def _named_like_labels(p: Path) -> bool:
    return any(k in p.stem.lower() for k in ("label", "mask", "instance", "nuclei", "truth", "gt"))


def is_label_image(first, p: Path) -> bool:
    """Single-channel integer images open as Labels layers (so they can be chosen as ground truth): any
    integer type wider than 8 bits (instance ids: MoNuSeg's uint16, our exports), and 8-bit ones whose
    name says they are labels or masks."""
    if first.ndim != 2 or not np.issubdtype(np.dtype(first.dtype), np.integer):
        return False
    return np.dtype(first.dtype).itemsize > 1 or _named_like_labels(p)
