"""Reading images and labels, checking them, and writing results atomically.

Every reader here (:func:`read_image`, :func:`open_image`, :func:`read_labels`) looks at a file's
header before decoding anything and refuses, with an :class:`ImageError` naming the file, a file whose
declared size it cannot hold or whose size its bytes cannot account for: a 200-byte file may declare
billions of pixels. Any decoder failure (corrupt or truncated data, no memory) is an :class:`ImageError`
too, so a caller needs to catch only that one.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from napari_prunuclei.io.guards import (
    MIN_SIDE,
    ImageError,
    check_first_chunk,
    check_sides,
    check_whole_read,
    decoding,
    jpeg_dims,
    lazy_tiff_level,
    missing_file_error,
    read_tiff_page,
)
from napari_prunuclei.io.tiff_colour import needs_conversion

__all__ = [
    "as_rgb_uint8",
    "check_lazy_rgb",
    "read_image",
    "open_image",
    "tiff_main_series",
    "read_tiff_rgb",
    "png_bit_depth",
    "declared_shape",
    "declared_hw",
]


TIFF_SUFFIXES = (".tif", ".tiff", ".svs")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
        raise missing_file_error(p, "image")
    if p.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        with decoding(p), tifffile.TiffFile(p) as tf:
            series = tiff_main_series(tf, p)
            _refuse_stack(tuple(series.levels[0].shape), str(p))  # as open_image refuses it, not page 0 silently
            a = read_tiff_rgb(p, series.levels[0].keyframe)
    else:
        a = read_pillow(p, "image")
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
    from napari_prunuclei.io.slides import OPENSLIDE_SUFFIXES, UNSUPPORTED_SUFFIXES, open_slide

    if p.suffix.lower() in OPENSLIDE_SUFFIXES + UNSUPPORTED_SUFFIXES:
        return open_slide(p)  # MIRAX and other formats tifffile cannot read: OpenSlide, an optional reader
    if not p.is_file():
        raise missing_file_error(p, "image")
    if p.suffix.lower() not in TIFF_SUFFIXES:
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


def _refuse_stack(shape: tuple, name: str) -> None:
    """A stack of RGB images (pages or planes: Z, T, a multi-page TIFF of one size) is not one image: say so."""
    if len(shape) > 3 and shape[-1] in (3, 4):
        n = int(np.prod(shape[:-3]))
        raise ImageError(f"{name} holds {n} images of {shape[-3]}x{shape[-2]} (pages or planes of a stack, shape "
                         f"{shape}); one RGB image is needed: save the one to segment on its own")


def check_lazy_rgb(arr, name: str = "image"):
    """Check an array-like (zarr, dask) is H x W x 3/4 uint8 RGB of a usable size, without reading it."""
    shape = tuple(arr.shape)
    _refuse_stack(shape, name)
    if len(shape) != 3 or shape[-1] not in (3, 4) or np.dtype(arr.dtype) != np.uint8:
        raise ImageError(f"{name} has shape {shape} and dtype {arr.dtype}; expected H x W x 3 uint8 (RGB)")
    if min(shape[:2]) < MIN_SIDE:
        raise ImageError(f"{name} is {shape[0]}x{shape[1]}; each side must be at least {MIN_SIDE} px")
    return arr


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


def declared_shape(path: str | os.PathLike) -> tuple[int, int] | None:
    """Height and width an image file declares in its header (TIFF: the main series), nothing decoded; None
    when the header cannot be read (the file's own run says why)."""
    p = Path(path)
    if p.suffix.lower() not in TIFF_SUFFIXES:
        return declared_hw(p)
    import tifffile

    try:
        with tifffile.TiffFile(p) as tf:
            page = tiff_main_series(tf, p).levels[0].keyframe
            return int(page.imagelength), int(page.imagewidth)
    except Exception:  # noqa: BLE001 - unreadable: its run reports it
        return None


def declared_hw(p: Path) -> tuple[int, int] | None:
    """``(height, width)`` a PNG (IHDR) or JPEG (frame header in its first 256 KiB) declares, or None."""
    with open(p, "rb") as f:
        head = f.read(256 * 1024)
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return h, w
    if head[:2] == b"\xff\xd8":
        return jpeg_dims(head)
    return None


def read_pillow(p: Path, what: str) -> np.ndarray:
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
            check_sides(p, *declared, what)
            check_whole_read(p, declared[0] * declared[1], f"{declared[1]}x{declared[0]} px", what)
        # only the formats meant: a mislabelled file of another kind is not handed to another decoder
        with Image.open(p, formats=("PNG", "JPEG")) as im:
            w, h = im.size
            check_sides(p, h, w, what)
            palette = not labels and im.mode in ("P", "PA")
            per_px = 4 if palette else len(im.getbands()) * _PIL_BAND_BYTES.get(im.mode, 1)
            check_whole_read(p, w * h * per_px, f"{w}x{h} px ({im.format} {im.mode})", what)
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


