"""TIFF pages that are not plain interleaved RGB, made RGB: CMYK, uncompressed YCbCr, palette, planar RGB,
and the Orientation tag; and which series of a file is the image (the largest, never a thumbnail or macro).

Plain interleaved RGB pages (and JPEG/JPEG 2000 YCbCr, which the decoder returns as RGB) are read lazily
by :mod:`napari_prunuclei.io.images`; the pages here are decoded whole (under the same size checks) and converted.
"""

from __future__ import annotations

import numpy as np

__all__ = ["main_series", "needs_conversion", "unsupported_reason", "to_rgb", "orientation", "orient"]

RGB, PALETTE, SEPARATED, YCBCR = 2, 3, 5, 6
_DECODER_RGB = frozenset({6, 7, 33003, 33004, 33005, 33007, 34712, 34892})  # JPEG, JPEG 2000: decoded to RGB
_NAMES = {0: "min-is-white grayscale", 1: "grayscale", 4: "a transparency mask", 8: "CIE L*a*b*", 9: "ICC L*a*b*",
          10: "ITU L*a*b*", 32844: "LogL", 32845: "LogLuv", 32803: "a colour filter array (raw)",
          34892: "linear raw"}


def main_series(tf):
    """The series of an open ``tifffile.TiffFile`` that is the image: the one with the most pixels at its
    full resolution (the first of equals), so a thumbnail, label or macro stored first is never taken."""
    def pixels(s):
        page = s.levels[0].keyframe
        return int(page.imagelength) * int(page.imagewidth)

    best = None
    for s in tf.series:
        if best is None or pixels(s) > pixels(best):
            best = s
    return best


def orientation(page) -> int:
    """The page's TIFF Orientation (1 = stored rows top to bottom, columns left to right)."""
    tag = page.tags.get(274)
    try:
        value = int(tag.value) if tag is not None else 1
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def needs_conversion(page) -> bool:
    """Whether the page must be decoded whole and converted (or re-oriented) to give stored-as-seen RGB."""
    photometric, compression = int(page.photometric), int(page.compression)
    if orientation(page) != 1:
        return True
    if int(page.planarconfig) == 2 and int(page.samplesperpixel) > 1:
        return True
    if photometric == RGB:
        return False
    if photometric == YCBCR:
        return compression not in _DECODER_RGB
    return photometric in (PALETTE, SEPARATED) or (photometric in _NAMES and photometric not in (0, 1))


def unsupported_reason(page) -> str | None:
    """Why a page's colour space cannot be made RGB here (None: it can, or it is grayscale, refused later)."""
    photometric = int(page.photometric)
    if photometric == SEPARATED:
        inkset = page.tags.get(332)
        if (inkset is not None and int(inkset.value) != 1) or int(page.samplesperpixel) < 4:
            return "a separated (ink) colour space that is not CMYK"
    if photometric == YCBCR and int(page.compression) not in _DECODER_RGB:
        sub = page.tags.get(530)
        if sub is not None and tuple(sub.value) != (1, 1):
            return f"uncompressed YCbCr with chroma subsampling {tuple(sub.value)}"
    if photometric in _NAMES and photometric not in (0, 1):
        return _NAMES[photometric]
    return None


def to_rgb(page, arr: np.ndarray) -> np.ndarray:
    """``arr`` (the page decoded by tifffile) as H x W x 3/4 uint8 RGB, in the page's stored orientation."""
    photometric = int(page.photometric)
    a = np.asarray(arr)
    if int(page.planarconfig) == 2 and a.ndim == 3 and a.shape[0] == int(page.samplesperpixel):
        a = np.ascontiguousarray(np.moveaxis(a, 0, -1))  # planes (samples, H, W) -> H x W x samples
    if photometric == PALETTE and a.ndim == 2:
        cmap = np.asarray(page.colormap)
        scale = 257 if cmap.max() > 255 else 1  # 16-bit colour map entries, as the standard says
        lut = (cmap.T // scale).astype(np.uint8) if scale > 1 else cmap.T.astype(np.uint8)
        return lut[np.clip(a, 0, len(lut) - 1)]
    if photometric == SEPARATED and a.ndim == 3 and a.shape[-1] >= 4 and a.dtype == np.uint8:
        cmyk = a[..., :4].astype(np.float32) / 255.0
        k = 1.0 - cmyk[..., 3:4]
        return np.round(255.0 * (1.0 - cmyk[..., :3]) * k).astype(np.uint8)
    ycbcr = photometric == YCBCR and int(page.compression) not in _DECODER_RGB
    if ycbcr and a.ndim == 3 and a.shape[-1] == 3 and a.dtype == np.uint8:
        from PIL import Image

        return np.asarray(Image.fromarray(np.ascontiguousarray(a), mode="YCbCr").convert("RGB"))
    return a


def orient(a: np.ndarray, value: int) -> np.ndarray:
    """``a`` (rows, columns, ...) as a viewer honouring TIFF/EXIF Orientation ``value`` shows it."""
    if value == 2:
        a = a[:, ::-1]
    elif value == 3:
        a = a[::-1, ::-1]
    elif value == 4:
        a = a[::-1]
    elif value == 5:
        a = np.swapaxes(a, 0, 1)
    elif value == 6:
        a = np.rot90(a, -1)
    elif value == 7:
        a = np.swapaxes(a[::-1, ::-1], 0, 1)
    elif value == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)
