"""Reading images and labels, checking them, and writing results atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "ImageError",
    "MIN_SIDE",
    "as_rgb_uint8",
    "read_image",
    "read_labels",
    "write_labels",
    "atomic_write",
]

#: smallest image side the model accepts (smaller sides have too little context)
MIN_SIDE = 64


class ImageError(ValueError):
    """An image or label file cannot be used: wrong type, size, or corrupt."""


def as_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check that ``image`` is an H&E RGB image and return it as HxWx3 uint8.

    Accepts uint8 RGB or RGBA (alpha dropped). Anything else (grayscale,
    16-bit, float, wrong shape, too small) raises :class:`ImageError` saying why.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        raise ImageError(f"{name} is grayscale ({a.shape[0]}x{a.shape[1]}); an RGB H&E image is needed")
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise ImageError(f"{name} has shape {a.shape}; expected H x W x 3 (RGB)")
    if a.dtype != np.uint8:
        raise ImageError(
            f"{name} has dtype {a.dtype}; expected 8-bit RGB (uint8). "
            "Convert 16-bit or float images to 8 bits first"
        )
    h, w = a.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"{name} is {h}x{w}; each side must be at least {MIN_SIDE} px")
    return np.ascontiguousarray(a[..., :3])


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG/JPEG/TIFF RGB image as HxWx3 uint8, with clear errors."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"image file not found: {p}")
    try:
        if p.suffix.lower() in (".tif", ".tiff", ".svs"):
            import tifffile

            a = tifffile.imread(p, key=0)
        else:
            import imageio.v3 as iio

            a = iio.imread(p)
    except Exception as e:  # noqa: BLE001 - any decoder failure means a corrupt file
        raise ImageError(f"cannot read image {p}: {e}") from None
    return as_rgb_uint8(a, name=str(p))


def open_image(path: str | os.PathLike):
    """An H&E image as an H x W x 3 array-like, lazily for TIFF (tifffile's zarr store, level 0).

    Slicing the result reads only the tiles or strips needed, so a slide far larger than
    memory can be processed region by region. PNG and JPEG are read whole.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"image file not found: {p}")
    if p.suffix.lower() not in (".tif", ".tiff", ".svs"):
        return read_image(p)
    try:
        import tifffile
        import zarr

        store = tifffile.imread(p, aszarr=True, series=0, level=0)
        arr = zarr.open(store, mode="r")
    except Exception as e:  # noqa: BLE001 - any decoder failure means a corrupt file
        raise ImageError(f"cannot read image {p}: {e}") from None
    return check_lazy_rgb(arr, str(p))


def check_lazy_rgb(arr, name: str = "image"):
    """Check an array-like (zarr, dask) is H x W x 3/4 uint8 RGB of a usable size, without reading it."""
    shape = tuple(arr.shape)
    if len(shape) != 3 or shape[-1] not in (3, 4) or np.dtype(arr.dtype) != np.uint8:
        raise ImageError(f"{name} has shape {shape} and dtype {arr.dtype}; expected H x W x 3 uint8 (RGB)")
    if min(shape[:2]) < MIN_SIDE:
        raise ImageError(f"{name} is {shape[0]}x{shape[1]}; each side must be at least {MIN_SIDE} px")
    return arr


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an instance label image (TIFF or PNG) as int32, 0 = background."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"label file not found: {p}")
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            a = tifffile.imread(p)
        else:
            import imageio.v3 as iio

            a = iio.imread(p)
    except Exception as e:  # noqa: BLE001
        raise ImageError(f"cannot read labels {p}: {e}") from None
    a = np.asarray(a)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ImageError(f"labels {p} must be a 2-D integer image, got {a.shape} {a.dtype}")
    return a.astype(np.int32)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it.

    A failure leaves no partial file at ``path``.
    """
    p = Path(path)
    if not p.parent.is_dir():
        raise OSError(f"cannot write {p}: folder {p.parent} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise OSError(f"cannot write {p}: folder {p.parent} is not writable")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=p.suffix, dir=p.parent)
    os.close(fd)
    tmp_p = Path(tmp)
    try:
        write(tmp_p)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_p, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_p, p)
    except BaseException:
        tmp_p.unlink(missing_ok=True)
        raise
    return p


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write instance labels to TIFF (ids kept, uint32 if needed) or 16-bit PNG."""
    p = Path(path)
    lab = np.asarray(labels)
    suffix = p.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        dtype = np.uint16 if lab.max(initial=0) < 2**16 else np.uint32
        return atomic_write(p, lambda t: tifffile.imwrite(t, lab.astype(dtype), compression="zlib"))
    if suffix == ".png":
        if lab.max(initial=0) >= 2**16:
            raise ValueError(f"{lab.max()} nuclei do not fit a 16-bit PNG; use .tif")
        import imageio.v3 as iio

        return atomic_write(p, lambda t: iio.imwrite(t, lab.astype(np.uint16), extension=".png"))
    raise ValueError(f"unsupported label format {suffix!r}: use .tif or .png")
