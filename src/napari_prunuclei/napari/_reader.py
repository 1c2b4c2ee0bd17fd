"""Reader for H&E images: PNG, JPEG, and TIFF (multi-page and pyramidal TIFF/SVS) via tifffile."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..constants import IMAGE_EXTENSIONS as _EXT

#: pyramid levels above this many pixels are read lazily (dask over tifffile's zarr store)
LAZY_PIXELS = 4096 * 4096
#: a large TIFF without a pyramid gets lazy coarser levels down to about this side
PYRAMID_SMALLEST = 2048


def get_reader(path):
    if isinstance(path, list):
        path = path[0]
    if not str(path).lower().endswith(_EXT):
        return None
    return read_he


def _tiff_layers(p: Path):
    import tifffile

    with tifffile.TiffFile(p) as tf:
        series = tf.series[0]
        levels = series.levels
        shape = levels[0].shape
        big = int(np.prod(shape[:2])) > LAZY_PIXELS
    if big or len(levels) > 1:
        try:
            import dask.array as da
            import zarr  # noqa: F401
        except ImportError:
            da = None
        if da is not None:
            store = tifffile.imread(p, aszarr=True)
            import zarr

            grp = zarr.open(store, mode="r")
            if hasattr(grp, "shape"):
                data = [da.from_zarr(grp)]
            else:
                data = [da.from_zarr(grp[str(i)]) for i in range(len(levels))]
            if len(data) == 1 and big:
                data = _strided_pyramid(data[0])
            return data if len(data) > 1 else data[0]
    return tifffile.imread(p, key=0) if not big else tifffile.imread(p, series=0, level=0)


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
    p = Path(path if not isinstance(path, list) else path[0])
    if p.suffix.lower() in (".tif", ".tiff", ".svs"):
        data = _tiff_layers(p)
    else:
        from ..io import read_image

        data = read_image(p)
    first = data[0] if isinstance(data, list) else data
    rgb = first.ndim == 3 and first.shape[-1] in (3, 4)
    meta = {"name": p.stem, "rgb": rgb}
    if isinstance(data, list):
        meta["multiscale"] = True
    return [(data, meta, "image")]
