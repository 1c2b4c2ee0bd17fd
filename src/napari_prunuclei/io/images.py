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

from napari_prunuclei.io.tiff_colour import needs_conversion

__all__ = [
    "ImageError",
    "MIN_SIDE",
    "MAX_SIDE",
    "MAX_EXPANSION",
    "MAX_EXPANSION_LZW",
    "SMALL_DECODE_BYTES",
    "MAX_DECODED_BYTES",
    "MAX_CHUNK_BYTES",
    "as_rgb_uint8",
    "check_lazy_rgb",
    "read_image",
    "open_image",
    "read_labels",
    "write_labels",
    "check_label_ids",
    "label_dtype",
    "atomic_write",
    "bounded_name",
    "TEMP_PREFIX",
    "decoding",
    "tiff_main_series",
    "read_tiff_rgb",
    "check_tiff_page",
    "guard_tiff_decoders",
    "lazy_tiff_level",
    "read_tiff_page",
    "check_first_chunk",
    "png_bit_depth",
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
        raise ImageError(f"cannot read {what} {path}: corrupt, truncated or unsupported ({_why(e)})") from None


def _check_sides(path: Path, h: int, w: int, what: str) -> None:
    if h <= 0 or w <= 0:
        raise ImageError(f"{what} {path} is empty ({h}x{w} px)")
    if max(h, w) > MAX_SIDE:
        raise ImageError(
            f"{what} {path} declares {h}x{w} px; no side may exceed {MAX_SIDE:,} px: the header is corrupt"
        )


def _check_whole_read(path: Path, nbytes: int, desc: str, what: str, expansion: int = MAX_EXPANSION) -> None:
    """Refuse a whole read of ``nbytes`` if more than the ceiling or more than the file can hold."""
    if nbytes > MAX_DECODED_BYTES:
        raise ImageError(
            f"{what} {path} declares {desc} ({_size(nbytes)} decoded), more than the {_size(MAX_DECODED_BYTES)} "
            "a whole read may use" + ("; open it lazily (TIFF) or tile it first" if what == "image" else "")
        )
    size = path.stat().st_size
    if nbytes > max(SMALL_DECODE_BYTES, size * expansion):
        raise ImageError(
            f"{what} {path} declares {desc} ({_size(nbytes)} decoded) but the file holds only {_size(size)}: "
            f"more than {expansion}:1 compression is impossible, so its header is corrupt or hostile"
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
    """Read a PNG/JPEG/TIFF RGB image whole, as HxWx3 uint8, with clear errors.

    The header is checked before decoding (see :func:`check_tiff_page`, :data:`MAX_DECODED_BYTES`,
    :data:`MAX_EXPANSION`); 16-bit colour PNGs are refused rather than cut to their high byte. TIFF:
    the first pyramid level of the first series (page 0 of most files).
    """
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"image file not found: {p}")
    if p.suffix.lower() in _TIFF:
        import tifffile

        with decoding(p), tifffile.TiffFile(p) as tf:
            a = read_tiff_rgb(p, tiff_main_series(tf, p).levels[0].keyframe)
    else:
        a = _read_pillow(p, "image")
    return as_rgb_uint8(a, name=str(p))


def open_image(path: str | os.PathLike):
    """An H&E image as an H x W x 3 array-like, lazily for TIFF (tifffile's zarr store, level 0).

    Slicing the result reads only the tiles or strips needed, so a slide far larger than
    memory can be processed region by region. PNG and JPEG are read whole (:func:`read_image`).
    The header is checked first (each tile or strip at most :data:`MAX_CHUNK_BYTES`; an uncompressed
    image stored as one huge strip is memory-mapped instead) and the first tile is decoded, so a corrupt
    file fails here, with an :class:`ImageError`, not halfway through a run.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"image file not found: {p}")
    if p.suffix.lower() not in _TIFF:
        return read_image(p)
    import tifffile

    with decoding(p), tifffile.TiffFile(p) as tf:
        series = tiff_main_series(tf, p)
        level = series.levels[0]
        if needs_conversion(level.keyframe):  # CMYK, YCbCr, palette, planar, rotated: whole, converted
            return as_rgb_uint8(read_tiff_rgb(p, level.keyframe), name=str(p))
        arr = lazy_tiff_level(p, series, level.keyframe, single_page=len(level.pages) == 1, level=0)
    check_lazy_rgb(arr, str(p))
    check_first_chunk(arr, p)
    return arr


def check_lazy_rgb(arr, name: str = "image"):
    """Check an array-like (zarr, dask) is H x W x 3/4 uint8 RGB of a usable size, without reading it."""
    shape = tuple(arr.shape)
    if len(shape) != 3 or shape[-1] not in (3, 4) or np.dtype(arr.dtype) != np.uint8:
        raise ImageError(f"{name} has shape {shape} and dtype {arr.dtype}; expected H x W x 3 uint8 (RGB)")
    if min(shape[:2]) < MIN_SIDE:
        raise ImageError(f"{name} is {shape[0]}x{shape[1]}; each side must be at least {MIN_SIDE} px")
    return arr


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an instance label image (TIFF or PNG, any unsigned or non-negative integer type) as int32, or int64
    where an id needs it (ids are never cast down); 0 = background; negative ids are refused.

    A palette PNG gives its palette indices. The header is checked before decoding, as in
    :func:`read_image`.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"label file not found: {p}")
    if p.suffix.lower() in _TIFF:
        import tifffile

        with decoding(p, "labels"), tifffile.TiffFile(p) as tf:
            level = tiff_main_series(tf, p, "labels").levels[0]
            if len(level.shape) != 2:
                raise ImageError(f"labels {p} must be a 2-D integer image, got shape {tuple(level.shape)}")
            a = read_tiff_page(p, level.keyframe, "labels")
    else:
        a = _read_pillow(p, "labels")
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ImageError(f"labels {p} must be a 2-D integer image, got {a.shape} {a.dtype}")
    try:
        a = check_label_ids(a, f" {p}")
    except ValueError as e:
        raise ImageError(str(e)) from None
    return a.astype(np.int32) if int(a.max(initial=0)) < 2**31 else a  # ids kept: int64 where they need it


# ------------------------------------------------------------------------------------------------
# PNG and JPEG (Pillow)

#: bytes per band of Pillow's modes that are not 8 bits
_PIL_BAND_BYTES = {"I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}


def png_bit_depth(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(bit depth, colour type)`` from a PNG's IHDR chunk, or None if ``path`` is not a PNG.

    Pillow reads 16-bit RGB(A) PNGs as 8-bit, keeping only the high byte, and says nothing: this is
    the one reliable way to tell. Colour types: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA.
    """
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def declared_hw(p: Path) -> tuple[int, int] | None:
    """``(height, width)`` a PNG (IHDR) or JPEG (frame header in its first 256 KiB) declares, or None."""
    with open(p, "rb") as f:
        head = f.read(256 * 1024)
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return h, w
    if head[:2] == b"\xff\xd8":
        return _jpeg_dims(head)
    return None


def _read_pillow(p: Path, what: str) -> np.ndarray:
    """Decode a PNG or JPEG with Pillow after checking its header: sides, declared size, bit depth."""
    from PIL import Image

    labels = what == "labels"
    with decoding(p, what):
        depth = png_bit_depth(p)
        if not labels and depth is not None and depth[0] == 16 and depth[1] in (2, 6):
            raise ImageError(
                f"image {p} is a 16-bit {'RGBA' if depth[1] == 6 else 'RGB'} PNG; an 8-bit RGB H&E image is needed "
                "(reading it would keep only the high byte of each value): convert it to 8 bits first"
            )
        declared = declared_hw(p)  # before Pillow: its own limit would refuse first, less clearly
        if declared is not None:
            _check_sides(p, *declared, what)
            _check_whole_read(p, declared[0] * declared[1], f"{declared[1]}x{declared[0]} px", what)
        # only the formats meant: a mislabelled file of another kind is not handed to another decoder
        with Image.open(p, formats=("PNG", "JPEG")) as im:
            w, h = im.size
            _check_sides(p, h, w, what)
            palette = not labels and im.mode in ("P", "PA")
            per_px = 4 if palette else len(im.getbands()) * _PIL_BAND_BYTES.get(im.mode, 1)
            _check_whole_read(p, w * h * per_px, f"{w}x{h} px ({im.format} {im.mode})", what)
            if im.getexif().get(0x0112, 1) != 1:  # EXIF Orientation: pixels as a viewer shows them
                from PIL import ImageOps

                im = ImageOps.exif_transpose(im)
            if labels:
                return np.asarray(im)
            if im.mode == "P":
                im = im.convert(im.palette.mode if im.palette is not None else "RGB")
            elif im.mode in ("PA", "RGBa", "La"):
                im = im.convert("RGBA")
            elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            return np.asarray(im)


# ------------------------------------------------------------------------------------------------
# TIFF (tifffile): header checks before decoding, and guarded decoders

#: TIFF compressions whose tiles carry their own image header, and how to read its height and width
_JPEG = frozenset({6, 7, 33007, 34892})
_JPEG2000 = frozenset({33003, 33004, 33005, 34712})
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_dims(buf) -> tuple[int, int] | None:
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


def _chunk_hw(page) -> tuple[int, int]:
    """Height and width of one tile or strip of a TIFF page."""
    if page.is_tiled:
        return int(page.tilelength), int(page.tilewidth)
    h = int(page.imagelength)
    return min(int(page.rowsperstrip or h), h), int(page.imagewidth)


def tiff_main_series(tf, path: str | os.PathLike, what: str = "image"):
    """The image series of an open ``tifffile.TiffFile``: the largest at full resolution, never a
    thumbnail, label or macro stored before it; :class:`ImageError` if it has none."""
    from napari_prunuclei.io.tiff_colour import main_series

    series = main_series(tf) if tf.series else None
    if series is None:
        raise ImageError(f"{what} {path} contains no image series")
    return series


def read_tiff_rgb(path: str | os.PathLike, page) -> np.ndarray:
    """Decode one TIFF page whole (:func:`read_tiff_page`) as RGB as a viewer shows it: CMYK, uncompressed
    YCbCr, palette and planar RGB converted, the Orientation tag applied; a colour space that cannot be
    made RGB is refused by name."""
    from napari_prunuclei.io.tiff_colour import orient, orientation, to_rgb, unsupported_reason

    why = unsupported_reason(page)
    if why is not None:
        raise ImageError(f"image {path} is stored as {why}; an RGB H&E image is needed: convert it to RGB first")
    return orient(to_rgb(page, read_tiff_page(path, page)), orientation(page))


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
    _check_sides(p, h, w, what)
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
            f"{what} {p} declares a tile or strip of {_size(int(counts.max()))} but the file holds only "
            f"{_size(size)}: it is corrupt"
        )
    n_chunks = int(np.prod([int(c) for c in page.chunked], dtype=object))
    if min(len(page.dataoffsets), counts.size) < n_chunks and not page.is_contiguous:
        raise ImageError(
            f"{what} {p} is stored in {n_chunks} tiles or strips but lists only "
            f"{min(len(page.dataoffsets), counts.size)}: it is truncated or corrupt"
        )
    if whole:
        desc = f"{w}x{h} px x {int(page.samplesperpixel)} samples of {np.dtype(dtype).name}"
        _check_whole_read(p, nbytes, desc, what, MAX_EXPANSION_LZW if int(page.compression) == 5 else MAX_EXPANSION)
        if chunk > max(MAX_CHUNK_BYTES, nbytes):
            ch, cw = _chunk_hw(page)
            raise ImageError(
                f"{what} {p} declares {cw}x{ch} px tiles ({_size(chunk)} each), larger than the image itself "
                f"and than {_size(MAX_CHUNK_BYTES)}: the header is corrupt"
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
    ch, cw = _chunk_hw(page)
    limit = 2 * ch * cw  # pixels a tile's own header may declare (tifffile fits a taller strip)
    compression = int(page.compression)
    dims = _jpeg_dims if compression in _JPEG else _jpeg2000_dims if compression in _JPEG2000 else None

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
            raise ImageError(f"cannot read {what} {p}: tile or strip {index} is corrupt ({_why(e)})") from None

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
            ch, cw = _chunk_hw(keyframe)
            raise ImageError(
                f"{what} {p} is stored in {cw}x{ch} px tiles or strips of {_size(chunk)} each; reading any part "
                f"of it would decode one, and at most {_size(MAX_CHUNK_BYTES)} is allowed. Re-save it tiled "
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
            f"{what} {p} declares {_size(nbytes)} of uncompressed pixels at byte {offset}, but the file holds "
            f"only {_size(size)}: it is truncated or corrupt"
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


def _why(e: BaseException) -> str:
    why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return why if len(why) <= 300 else why[:300] + "..."


TEMP_PREFIX = ".prunuclei-tmp."  # every temporary file atomic_write makes starts with this (cleanup matches it)


def bounded_name(name: str, limit: int = 96) -> str:
    """``name`` itself when short, else its first characters and a hash of the whole: temporary and scratch
    names built from it stay far below the file system's 255-byte limit, and stay distinct."""
    if len(name.encode()) <= limit:
        return name
    import hashlib

    head = name.encode()[: limit - 17].decode(errors="ignore")
    return f"{head}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it.

    A failure leaves no partial file at ``path``.
    """
    p = Path(path)
    if not p.parent.is_dir():
        raise OSError(f"cannot write {p}: folder {p.parent} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise OSError(f"cannot write {p}: folder {p.parent} is not writable")
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{bounded_name(p.name)}.", suffix=p.suffix[:16], dir=p.parent)
    os.close(fd)
    tmp_p = Path(tmp)
    try:
        write(tmp_p)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_p, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_p, p)
    except OSError as e:  # e.g. [Errno 28] No space left on device: say which file, nothing left behind
        tmp_p.unlink(missing_ok=True)
        if str(p) in str(e):
            raise
        raise OSError(e.errno, f"cannot write {p}: {e.strerror or e}") from None
    except BaseException:
        tmp_p.unlink(missing_ok=True)
        raise
    return p


def check_label_ids(labels: np.ndarray, where: str = "") -> np.ndarray:
    """``labels`` (any integer type) as int64 ids, after refusing negative ids and ids >= 2**63 (which no
    signed 64-bit array keeps) with a clear error; 0 is background."""
    b = np.asarray(labels)
    if b.dtype == bool:
        b = b.astype(np.uint8)
    if not np.issubdtype(b.dtype, np.integer):
        raise ValueError(f"labels{where} must be integers, got {b.dtype}")
    if b.size and b.dtype.kind == "i" and b.min() < 0:
        raise ValueError(f"labels{where} have negative ids ({int(b.min())}); ids must be >= 0")
    if b.size and b.dtype.kind == "u" and b.dtype.itemsize == 8 and int(b.max()) >= 2**63:
        raise ValueError(f"labels{where} have ids >= 2**63 ({int(b.max())}); relabel them first")
    return b.astype(np.int64, copy=False)


def label_dtype(max_id: int) -> np.dtype:
    """The smallest unsigned type that keeps every id up to ``max_id``."""
    return np.dtype("<u2" if max_id < 2**16 else "<u4" if max_id < 2**32 else "<u8")


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write instance labels to TIFF (ids kept: 16, 32 or 64 bits as they need) or 16-bit PNG; negative ids
    and ids >= 2**63 are refused, as are ids over 65535 for PNG."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".tif", ".tiff", ".png"):
        raise ValueError(f"unsupported label format {suffix!r}: use .tif or .png")
    lab = check_label_ids(labels)
    hi = int(lab.max(initial=0))
    if suffix == ".png":
        if hi >= 2**16:
            raise ValueError(f"id {hi} does not fit a 16-bit PNG; use .tif")
        import imageio.v3 as iio

        return atomic_write(p, lambda t: iio.imwrite(t, lab.astype(np.uint16), extension=".png"))
    import tifffile

    return atomic_write(p, lambda t: tifffile.imwrite(t, lab.astype(label_dtype(hi)), compression="zlib"))
