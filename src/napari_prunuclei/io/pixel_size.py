"""The pixel size an image file declares (micrometres per pixel), read from its metadata."""

from __future__ import annotations

from pathlib import Path

from napari_prunuclei.base.constants import TIFF_EXTENSIONS

__all__ = ["read_pixel_size", "tiff_pixel_size"]


def read_pixel_size(path) -> float | None:
    """Micrometres per pixel that ``path`` declares (TIFF, OME-TIFF, SVS; see :func:`tiff_pixel_size`), or
    None (unknown; PNG and JPEG carry none a scanner sets)."""
    p = Path(path)
    from napari_prunuclei.io.slides import OPENSLIDE_SUFFIXES, slide_pixel_size

    if p.suffix.lower() in OPENSLIDE_SUFFIXES:
        px = slide_pixel_size(p)
        return px if px is not None and 0.01 <= px <= 100 else None
    if p.suffix.lower() not in TIFF_EXTENSIONS:
        return None
    px = tiff_pixel_size(p)
    return px if px is not None and 0.01 <= px <= 100 else None


#: resolutions (dots per inch) that image writers put in by default, not a pixel size
DPI_DEFAULTS = (72.0, 96.0, 150.0, 200.0, 300.0, 600.0, 1200.0)


def tiff_pixel_size(path) -> float | None:
    """Micrometres per pixel from a TIFF's metadata, or None: OME-XML ``PhysicalSizeX``, an SVS
    description's ``MPP``, ImageJ's micron resolution, or the resolution tags in inches or cm (in
    inches only when they give less than 10 µm per pixel, and never a writer's default dpi, 72 or 300: those are
    not a scanner's; in centimetres coarser sizes too, e.g. a tissue mask's 16 µm)."""
    import re

    import tifffile

    units = {"µm": 1.0, "\u03bcm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4,
             "m": 1e6, "in": 25400.0, "inch": 25400.0}  # (the micro sign and the Greek mu both)

    def square(x: float | None, y: float | None) -> float | None:
        """One size for both axes; None when they differ by over 1 % (the models need square pixels)."""
        if x is None or not x > 0 or (y is not None and not (y > 0 and abs(x - y) <= 0.01 * x)):
            return None
        return x

    try:
        with tifffile.TiffFile(path) as tf:
            # the image opened is the main series (the largest, never a thumbnail stored first): its size counts
            from napari_prunuclei.io.tiff_colour import main_series

            series = main_series(tf) if tf.series else None
            index = next((i for i, sr in enumerate(tf.series) if sr is series), 0)
            if tf.ome_metadata:
                ome = tf.ome_metadata
                images = re.split(r"<(?:\w+:)?Image[\s>]", ome)[1:]  # one chunk per OME Image, in series order
                if len(images) == len(tf.series) and len(images) > 1:
                    ome = images[index]
                pixels = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", ome)  # the image's own Pixels element only
                ome = pixels.group(0) if pixels else ""
                sizes = []
                for axis in ("X", "Y"):
                    m = re.search(rf'PhysicalSize{axis}="([0-9.eE+-]+)"', ome)
                    u = re.search(rf'PhysicalSize{axis}Unit="([^"]+)"', ome)
                    scale = units.get(u.group(1) if u else "µm")  # an unknown unit (e.g. "pixel"): no size
                    sizes.append(float(m.group(1)) * scale if m and scale is not None else None)
                if sizes[0] is not None or re.search(r'PhysicalSizeX="', ome):
                    return square(*sizes)
            page = series.keyframe if series is not None else tf.pages[0]
            desc0 = tf.pages[0].description or ""
            desc = page.description or (desc0 if "Aperio" in desc0 else "")  # SVS: MPP in the first page
            # the key MPP alone (not OriginalMPP), its value up to the next '|' or space, parsed only when short and
            # a plain number (a linear-time match: a long run of digits once took minutes to backtrack through)
            m = re.search(r"(?<![A-Za-z0-9_])MPP\s*=\s*([^|\s]*)", desc)
            if m:
                value = m.group(1)
                number = len(value) <= 32 and re.fullmatch(r"[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?", value)
                return square(float(value), None) if number else None  # unparsed: unknown, never a guess
            tags = page.tags
            if "XResolution" not in tags:
                return None

            def per_unit(tag: str) -> float | None:
                if tag not in tags:
                    return None
                num, den = tags[tag].value
                return num / den if den else 0.0

            x, y = per_unit("XResolution"), per_unit("YResolution")
            if not x or x <= 0 or (y is not None and not y > 0):  # a zero or broken Y: no square size known
                return None
            unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
            ij = tf.imagej_metadata or {}
            if unit == 1 and str(ij.get("unit", "")).lower() in units:
                um = units[str(ij["unit"]).lower()]
                return square(um / x, um / y if y else None)
            um = {2: 25400.0, 3: 10000.0}.get(unit)
            if um is None:
                return None
            dpi = x * (2.54 if unit == 3 else 1.0)
            # 10 µm or coarser in inches, or a writer's default dpi in any unit (or its number put in centimetres),
            # is no scanner's: unknown. Our own tissue masks (16 µm a mask pixel and more) are written in cm and kept
            default = any(abs(v - d) <= 0.005 * d for d in DPI_DEFAULTS for v in (dpi, x))
            if um / x >= 10 and (unit == 2 or default):
                return None
            return square(um / x, um / y if y else None)
    except Exception:  # noqa: BLE001 - metadata is a hint: an unreadable tag means "unknown"
        return None
