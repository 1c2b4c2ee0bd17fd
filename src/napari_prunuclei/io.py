"""Reading images and labels, checking them, and writing results atomically.

Every reader here (:func:`read_image`, :func:`open_image`, :func:`read_labels`) looks at a file's
header before decoding anything and refuses, with an :class:`ImageError` naming the file, a file whose
declared size it cannot hold or whose size its bytes cannot account for: a 200-byte file may declare
billions of pixels. Any decoder failure (corrupt or truncated data, no memory) is an :class:`ImageError`
too, so a caller needs to catch only that one.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "ImageError",
    "MIN_SIDE",
    "MAX_SIDE",
    "MAX_EXPANSION",
    "SMALL_DECODE_BYTES",
    "MAX_DECODED_BYTES",
    "MAX_CHUNK_BYTES",
    "as_rgb_uint8",
    "check_lazy_rgb",
    "read_image",
    "open_image",
    "read_labels",
    "write_labels",
    "atomic_write",
    "decoding",
    "tiff_first_series",
    "check_tiff_page",
    "guard_tiff_decoders",
    "lazy_tiff_level",
    "read_tiff_page",
    "check_first_chunk",
]

#: smallest image side the model accepts (smaller sides have too little context)
MIN_SIDE = 64
#: largest image side (px) any reader accepts. The largest 40x whole-slide scans are about
#: 200,000 px a side; 5x that leaves room for any real scanner and refuses absurd headers
#: (a 186-byte TIFF claiming 3,000,000,000 px) before anything is allocated
MAX_SIDE = 1_000_000
#: the most a file may expand when decoded whole. Deflate (PNG, zlib/deflate TIFF) cannot exceed
#: about 1032:1 (one 258-byte match per ~2 bits); baseline JPEG stays below ~512:1, LZW in TIFF below
#: ~2730:1 only for constant data. A whole read that would decode more than ``file size x this`` is
#: refused: the header is corrupt or hostile, not the data well compressed
MAX_EXPANSION = 1032
#: a whole read may always decode this much, whatever the file size (a small file of a blank,
#: very well compressed image, e.g. zstd labels, is harmless at this size)
SMALL_DECODE_BYTES = 64 * 2**20
#: a single tile or strip may decode to at most this: lazy reads decode one at a time, so this bounds
#: the memory of reading any region; real slides use tiles of 256-1024 px (0.2-3 MiB)
MAX_CHUNK_BYTES = 512 * 2**20


def _memory_ceiling() -> int:
    """8 GiB, or half the physical memory where that is less."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 0
    return min(8 * 2**30, total // 2) if total > 0 else 8 * 2**30


#: the most one whole (eager) read may decode: 8 GiB or half the physical memory, whichever is less.
#: Larger images are opened lazily (:func:`open_image`, the napari reader), tile by tile
MAX_DECODED_BYTES = _memory_ceiling()

_TIFF = (".tif", ".tiff", ".svs")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageError(ValueError):
    """An image or label file cannot be used: wrong type, size, or corrupt."""


def _size(nbytes: float) -> str:
    for unit, n in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= n:
            return f"{nbytes / n:.1f} {unit}"
    return f"{int(nbytes)} bytes"


@contextlib.contextmanager
def decoding(path: str | os.PathLike, what: str = "image") -> Iterator[None]:
    """Turn any failure inside the block into an :class:`ImageError` naming ``path``.

    Decoders raise many kinds of exceptions on corrupt or hostile input (``zlib.error``, ``IndexError``,
    ``ZeroDivisionError``, ``MemoryError``, codec errors...); callers get one kind, saying what went wrong.
    """
    try:
        yield
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"cannot read {what} {path}: not enough memory to decode it") from None
    except RecursionError:
        raise ImageError(f"cannot read {what} {path}: its structure is corrupt (nested too deeply)") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure means a corrupt or unsupported file
        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if len(why) > 300:
            why = why[:300] + "..."
        raise ImageError(f"cannot read {what} {path}: corrupt, truncated or unsupported ({why})") from None


def _check_sides(path: Path, h: int, w: int, what: str) -> None:
    if h <= 0 or w <= 0:
        raise ImageError(f"{what} {path} is empty ({h}x{w} px)")
    if max(h, w) > MAX_SIDE:
        raise ImageError(
            f"{what} {path} declares {h}x{w} px; no side may exceed {MAX_SIDE:,} px: the header is corrupt"
        )


def _check_whole_read(path: Path, nbytes: int, desc: str, what: str) -> None:
    """Refuse a whole read of ``nbytes`` if more than the ceiling or more than the file can hold."""
    if nbytes > MAX_DECODED_BYTES:
        raise ImageError(
            f"{what} {path} declares {desc} ({_size(nbytes)} decoded), more than the {_size(MAX_DECODED_BYTES)} "
            "a whole read may use" + ("; open it lazily (TIFF) or tile it first" if what == "image" else "")
        )
    size = path.stat().st_size
    if nbytes > max(SMALL_DECODE_BYTES, size * MAX_EXPANSION):
        raise ImageError(
            f"{what} {path} declares {desc} ({_size(nbytes)} decoded) but the file holds only {_size(size)}: "
            f"more than {MAX_EXPANSION}:1 compression is impossible, so its header is corrupt or hostile"
        )


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
