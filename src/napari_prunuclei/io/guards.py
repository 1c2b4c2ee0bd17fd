"""Hostile-file guards: header checks before decoding (sides, declared sizes, tiles), guarded TIFF decoders, a
lazy TIFF level, and :class:`ImageError`, the one error for a file that cannot be used."""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "MIN_SIDE",
    "MAX_SIDE",
    "MAX_EXPANSION",
    "MAX_EXPANSION_LZW",
    "SMALL_DECODE_BYTES",
    "MAX_CHUNK_BYTES",
    "MAX_DECODED_BYTES",
    "ImageError",
    "human_size",
    "missing_file_error",
    "decoding",
    "check_sides",
    "check_whole_read",
    "jpeg_dims",
    "chunk_hw",
    "check_tiff_page",
    "guard_tiff_decoders",
    "read_tiff_page",
    "lazy_tiff_level",
    "check_first_chunk",
    "short_reason",
]


#: smallest image side the model accepts (smaller sides have too little context)
MIN_SIDE = 64


#: largest image side (px) any reader accepts. The largest 40x whole-slide scans are about
#: 200,000 px a side; 5x that leaves room for any real scanner and refuses absurd headers
#: (a 186-byte TIFF claiming 3,000,000,000 px) before anything is allocated
MAX_SIDE = 1_000_000


#: the most a file may expand when decoded whole. Deflate (PNG, zlib/deflate TIFF) cannot exceed
#: about 1032:1 (a 258-byte match per 2 bits at best); baseline JPEG stays below ~512:1 (2 bits per
#: 8x8 block and component at best). A whole read that would decode more than ``file size x this``
#: (or :data:`MAX_EXPANSION_LZW`) is refused: the header is corrupt or hostile, not the data well
#: compressed. Codecs that can do better on blank data (zstd, LZMA) are covered by
#: :data:`SMALL_DECODE_BYTES`; a larger blank image in them must be read lazily
MAX_EXPANSION = 1032


#: the same for LZW-compressed TIFF: a 12-bit code stands for at most 4096 bytes, so at most ~2730:1
#: (a blank LZW label image exceeds 1032:1)
MAX_EXPANSION_LZW = 2730


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


class ImageError(ValueError):
    """An image or label file cannot be used: wrong type, size, or corrupt."""


def human_size(nbytes: float) -> str:
    for unit, n in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= n:
            return f"{nbytes / n:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def missing_file_error(path: str | os.PathLike, what: str = "image") -> ImageError:
    """Why ``path`` cannot be read as a file: not found, a link to nothing (or a loop of links), a folder, or
    not a regular file (a pipe, a device: each was called "not found")."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        return ImageError(f"{what} file {p} is a link to a missing file (or a loop of links)")
    if p.is_dir():
        return ImageError(f"{what} file {p} is a folder, not a file")
    if p.exists():
        return ImageError(f"{what} file {p} is not a regular file (a pipe, a device or a socket)")
    return ImageError(f"{what} file not found: {p}")


@contextlib.contextmanager
def decoding(path: str | os.PathLike, what: str = "image") -> Iterator[None]:
    """Turn any failure inside the block into an :class:`ImageError` naming ``path``.

    Decoders raise many kinds of exceptions on corrupt or hostile input (``zlib.error``, ``IndexError``,
    ``ZeroDivisionError``, ``MemoryError``, codec errors...); callers get one kind, saying what went wrong.
    tifffile's own log lines about the file (e.g. "invalid offset to first page") are kept off the console:
    our message names the file and the problem.
    """
    import logging

    try:
        empty = os.path.getsize(path) == 0
    except (OSError, TypeError, ValueError):  # (not a file: the block says what is wrong)
        empty = False
    if empty:
        raise ImageError(f"cannot read {what} {path}: the file is empty (0 bytes)")
    quiet = logging.getLogger("tifffile")
    muted = _Mute()
    quiet.addFilter(muted)
    try:
        yield
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"cannot read {what} {path}: not enough memory to decode it") from None
    except PermissionError:
        raise ImageError(f"cannot read {what} {path}: permission denied (not corrupt: check who may read it)") \
            from None
    except RecursionError:
        raise ImageError(f"cannot read {what} {path}: its structure is corrupt (nested too deeply)") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure means a corrupt or unsupported file
        raise ImageError(f"cannot read {what} {path}: corrupt, truncated or unsupported ({short_reason(e)})") from None
    finally:
        quiet.removeFilter(muted)


class _Mute:
    """A logging filter that drops every record (while a file is being decoded)."""

    def filter(self, record) -> bool:  # noqa: D102
        return False


def check_sides(path: Path, h: int, w: int, what: str) -> None:
    if h <= 0 or w <= 0:
        raise ImageError(f"{what} {path} is empty ({h}x{w} px)")
    if max(h, w) > MAX_SIDE:
        raise ImageError(
            f"{what} {path} declares {h}x{w} px; no side may exceed {MAX_SIDE:,} px: the header is corrupt"
        )


def check_whole_read(path: Path, nbytes: int, desc: str, what: str, expansion: int = MAX_EXPANSION) -> None:
    """Refuse a whole read of ``nbytes`` if more than the ceiling or more than the file can hold."""
    if nbytes > MAX_DECODED_BYTES:
        raise ImageError(
            f"{what} {path} declares {desc} ({human_size(nbytes)} decoded), more than the "
            f"{human_size(MAX_DECODED_BYTES)} "
            "a whole read may use" + ("; open it lazily (TIFF) or tile it first" if what == "image" else "")
        )
    size = path.stat().st_size
    if nbytes > max(SMALL_DECODE_BYTES, size * expansion):
        raise ImageError(
            f"{what} {path} declares {desc} ({human_size(nbytes)} decoded) but the file holds only {human_size(size)}: "
            f"more than {expansion}:1 compression is impossible, so its header is corrupt or hostile"
        )


#: TIFF compressions whose tiles carry their own image header, and how to read its height and width
_JPEG = frozenset({6, 7, 33007, 34892})


_JPEG2000 = frozenset({33003, 33004, 33005, 34712})


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_dims(buf) -> tuple[int, int] | None:
    """``(height, width)`` from a JPEG stream's frame header (SOF), or None if it has none before its scan."""
    b = bytes(buf)
    n, i = len(b), 0
    for _ in range(10_000):  # marker segments before the first scan
        i = b.find(b"\xff", i)
        if i < 0 or i + 3 >= n:
            return None
        m = b[i + 1]
        if m == 0xFF:
            i += 1
        elif m in (0x00, 0x01, 0xD8) or 0xD0 <= m <= 0xD7:
            i += 2
        elif m in (0xD9, 0xDA):
            return None
        elif m in _SOF_MARKERS:
            if i + 9 > n:
                return None
            return (b[i + 5] << 8) | b[i + 6], (b[i + 7] << 8) | b[i + 8]
        else:
            i += 2 + ((b[i + 2] << 8) | b[i + 3])
    return None


def _jpeg2000_dims(buf) -> tuple[int, int] | None:
    """``(height, width)`` from a JPEG 2000 codestream's SIZ marker, or None."""
    b = bytes(buf)
    i = b.find(b"\xff\x4f\xff\x51")
    if i < 0 or i + 24 > len(b):
        return None
    xsiz, ysiz, x0, y0 = struct.unpack(">IIII", b[i + 8 : i + 24])
    return max(ysiz - y0, 0), max(xsiz - x0, 0)


def chunk_hw(page) -> tuple[int, int]:
    """Height and width of one tile or strip of a TIFF page."""
    if page.is_tiled:
        return int(page.tilelength), int(page.tilewidth)
    h = int(page.imagelength)
    return min(int(page.rowsperstrip or h), h), int(page.imagewidth)


def check_tiff_page(path: str | os.PathLike, page, *, whole: bool, what: str = "image") -> int:
    """Check a TIFF page's header before decoding it; return the bytes one tile or strip decodes to.

    Refuses (:class:`ImageError`) an unsupported sample format, an empty image, a side over
    :data:`MAX_SIDE`, and, for a ``whole`` read, more than :data:`MAX_DECODED_BYTES` or more than the file
    could hold (:data:`MAX_EXPANSION`) and tiles larger than the image's own size or
    :data:`MAX_CHUNK_BYTES`. A lazy reader must still bound the tile size (see :func:`lazy_tiff_level`).
    """
    p = Path(path)
    dtype = page.dtype
    if dtype is None:
        raise ImageError(
            f"{what} {p} has an unsupported sample format ({page.bitspersample}-bit, "
            f"SampleFormat {int(page.sampleformat)})"
        )
    h, w = int(page.imagelength), int(page.imagewidth)
    check_sides(p, h, w, what)
    shaped = tuple(int(s) for s in page.shaped)
    if 0 in shaped:
        raise ImageError(f"{what} {p} is empty (shape {page.shape})")
    itemsize = np.dtype(dtype).itemsize
    nbytes = int(np.prod(shaped, dtype=object)) * itemsize
    chunk = int(np.prod([int(c) for c in page.chunks], dtype=object)) * itemsize
    size = p.stat().st_size
    counts = np.asarray(page.databytecounts, dtype=np.uint64)
    if counts.size and int(counts.max()) > size:
        raise ImageError(
            f"{what} {p} declares a tile or strip of {human_size(int(counts.max()))} but the file holds only "
            f"{human_size(size)}: it is corrupt"
        )
    offsets = np.asarray(page.dataoffsets, dtype=np.uint64)[: counts.size]
    stored = counts[: offsets.size] > 0
    ends = offsets[stored] + counts[: offsets.size][stored]
    if ends.size and int(ends.max()) > size:  # checked at open: a lazy read found it tiles later, after hours
        k = int(np.flatnonzero(stored)[int(ends.argmax())])
        raise ImageError(
            f"{what} {p} is truncated or corrupt: its tile or strip {k} ends at byte {int(ends.max()):,} but the "
            f"file holds {size:,} bytes ({int((ends > size).sum())} of {int(stored.sum())} tiles or strips past its "
            "end)"
        )
    if int(page.compression) == 1 and int(counts.sum()) > size:  # raw tiles cannot share bytes in a real file
        raise ImageError(
            f"{what} {p} declares {human_size(int(counts.sum()))} of uncompressed tiles or strips but the file "
            f"holds only {human_size(size)}: they share bytes (a crafted or corrupt header)"
        )
    n_chunks = int(np.prod([int(c) for c in page.chunked], dtype=object))
    if min(len(page.dataoffsets), counts.size) < n_chunks and not page.is_contiguous:
        raise ImageError(
            f"{what} {p} is stored in {n_chunks} tiles or strips but lists only "
            f"{min(len(page.dataoffsets), counts.size)}: it is truncated or corrupt"
        )
    if whole:
        desc = f"{w}x{h} px x {int(page.samplesperpixel)} samples of {np.dtype(dtype).name}"
        check_whole_read(p, nbytes, desc, what, MAX_EXPANSION_LZW if int(page.compression) == 5 else MAX_EXPANSION)
        if chunk > max(MAX_CHUNK_BYTES, nbytes):
            ch, cw = chunk_hw(page)
            raise ImageError(
                f"{what} {p} declares {cw}x{ch} px tiles ({human_size(chunk)} each), larger than the image itself "
                f"and than {human_size(MAX_CHUNK_BYTES)}: the header is corrupt"
            )
    return chunk


def guard_tiff_decoders(path: str | os.PathLike, pages, what: str = "image") -> None:
    """Make tifffile's decoder of each page (and of the pages sharing its layout) safe and clear.

    Before a JPEG or JPEG 2000 tile is decoded its own header is read: a tile declaring far more pixels
    than the file's tiles (a few bytes can declare 65,535 x 65,535 px) is refused; and any decoder
    failure becomes an :class:`ImageError` naming the file and the tile, also when a lazy array decodes
    a tile long after it was opened. Replaces tifffile's decode function (``TiffPage.decode``, a cached
    property, and its per-file cache ``TiffFile._decoders`` keyed by ``TiffPage.hash``); with a tifffile
    without these this does nothing, and failures are still caught by :func:`decoding` where it is used.
    """
    for page in pages:
        try:
            cache = page.parent.root._decoders
            key = page.hash
            decode = page.decode  # tifffile makes and caches it
        except AttributeError:
            continue
        if getattr(decode, "_prunuclei_guard", False):
            continue
        guarded = _guarded_decode(decode, Path(path), page, what)
        cache[key] = guarded  # for the other pages of this layout
        with contextlib.suppress(AttributeError, TypeError):
            vars(page)["decode"] = guarded  # TiffPage.decode is a cached_property


def _guarded_decode(decode, p: Path, page, what: str):
    ch, cw = chunk_hw(page)
    limit = 2 * ch * cw  # pixels a tile's own header may declare (tifffile fits a taller strip)
    compression = int(page.compression)
    dims = jpeg_dims if compression in _JPEG else _jpeg2000_dims if compression in _JPEG2000 else None

    def guarded(data, index, /, **kwargs):
        if data is not None and dims is not None:
            for buf in (kwargs.get("jpegheader"), data):
                hw = dims(buf) if buf else None
                if hw is not None and hw[0] * hw[1] > limit:
                    raise ImageError(
                        f"cannot read {what} {p}: tile {index} declares {hw[1]}x{hw[0]} px in its own header, "
                        f"but the file's tiles are {cw}x{ch}: the file is corrupt or hostile"
                    )
        try:
            return decode(data, index, **kwargs)
        except ImageError:
            raise
        except MemoryError:
            raise ImageError(f"cannot read {what} {p}: not enough memory to decode tile {index}") from None
        except Exception as e:  # noqa: BLE001 - any decoder failure means a corrupt tile
            raise ImageError(f"cannot read {what} {p}: tile or strip {index} is corrupt ({short_reason(e)})") from None

    guarded._prunuclei_guard = True
    return guarded


def read_tiff_page(path: str | os.PathLike, page, what: str = "image") -> np.ndarray:
    """Decode one TIFF page whole, after :func:`check_tiff_page` and with guarded decoders."""
    with decoding(path, what):
        check_tiff_page(path, page, whole=True, what=what)
        guard_tiff_decoders(path, [page], what)
        return page.asarray()


def lazy_tiff_level(path: str | os.PathLike, source, keyframe, *, single_page: bool = True,
                    what: str = "image", **aszarr_kwargs):
    """A lazy array over ``source`` (a tifffile page or series; ``aszarr_kwargs`` go to its ``aszarr``).

    Zarr over tifffile's store, decoding a tile or strip at a time, with :func:`guard_tiff_decoders`.
    Tiles or strips over :data:`MAX_CHUNK_BYTES` are refused (reading any region would decode one),
    except for an uncompressed image stored contiguously, which is memory-mapped instead.
    The declared total size may be anything up to :data:`MAX_SIDE` a side: nothing is read here.
    """
    p = Path(path)
    with decoding(p, what):
        chunk = check_tiff_page(p, keyframe, whole=False, what=what)
        n_chunks = int(np.prod([int(c) for c in keyframe.chunked], dtype=object))
        listed = min(len(keyframe.dataoffsets), len(keyframe.databytecounts))
        if listed < n_chunks:  # contiguous (else refused above): one block, not one entry per strip
            if single_page and keyframe.is_memmappable:
                return _memmap_page(p, keyframe, what)
            raise ImageError(
                f"{what} {p} is stored in {n_chunks} tiles or strips but lists only {listed}: "
                "it is truncated or corrupt"
            )
        if chunk > MAX_CHUNK_BYTES:
            if single_page and keyframe.is_memmappable:
                return _memmap_page(p, keyframe, what)
            ch, cw = chunk_hw(keyframe)
            raise ImageError(
                f"{what} {p} is stored in {cw}x{ch} px tiles or strips of {human_size(chunk)} each; reading any part "
                f"of it would decode one, and at most {human_size(MAX_CHUNK_BYTES)} is allowed. Re-save it tiled "
                "(e.g. 512x512 tiles)"
            )
        import zarr

        guard_tiff_decoders(p, [keyframe], what)
        return zarr.open(source.aszarr(**aszarr_kwargs), mode="r")


def _memmap_page(p: Path, page, what: str) -> np.ndarray:
    offset = int(page.dataoffsets[0])
    dtype = np.dtype(page.parent.byteorder + page.dtype.char)
    nbytes = int(np.prod(page.shape, dtype=object)) * dtype.itemsize
    size = p.stat().st_size
    if offset + nbytes > size:
        raise ImageError(
            f"{what} {p} declares {human_size(nbytes)} of uncompressed pixels at byte {offset}, but the file holds "
            f"only {human_size(size)}: it is truncated or corrupt"
        )
    return np.memmap(p, dtype=dtype, mode="r", offset=offset, shape=tuple(page.shape))


def check_first_chunk(arr, path: str | os.PathLike, what: str = "image") -> None:
    """Decode the first tile or strip of a lazy array, so a corrupt stream is reported now."""
    if isinstance(arr, np.ndarray) or not hasattr(arr, "chunks"):
        return
    chunks = arr.chunks
    first = tuple(int(c[0]) if isinstance(c, tuple) else int(c) for c in chunks)  # dask: tuples per axis
    with decoding(path, what):
        np.asarray(arr[tuple(slice(0, c) for c in first)])


def short_reason(e: BaseException) -> str:
    why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return why if len(why) <= 300 else why[:300] + "..."
