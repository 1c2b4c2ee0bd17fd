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


def tiff_pixel_size(path) -> float | None:
    """Micrometres per pixel from a TIFF's metadata, or None: OME-XML ``PhysicalSizeX``, an SVS
    description's ``MPP``, ImageJ's micron resolution, or the resolution tags in inches or cm (only
    when they give less than 10 µm per pixel: 72 or 300 dpi are a writer's defaults, not a scanner's)."""
    import re

    import tifffile

    units = {"µm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4}
    try:
        with tifffile.TiffFile(path) as tf:
            if tf.ome_metadata:
                m = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tf.ome_metadata)
                u = re.search(r'PhysicalSizeXUnit="([^"]+)"', tf.ome_metadata)
                if m:
                    return float(m.group(1)) * units.get(u.group(1) if u else "µm", 1.0)
            page = tf.pages[0]
            desc = page.description or ""
            m = re.search(r"MPP\s*=\s*([0-9.]+)", desc)
            if m:
                return float(m.group(1))
            tags = page.tags
            if "XResolution" not in tags:
                return None
            num, den = tags["XResolution"].value
            per_unit = num / den if den else 0
            if per_unit <= 0:
                return None
            unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
            ij = tf.imagej_metadata or {}
            if unit == 1 and str(ij.get("unit", "")).lower() in units:
                return units[str(ij["unit"]).lower()] / per_unit
            um = {2: 25400.0, 3: 10000.0}.get(unit)
            if um is None or um / per_unit >= 10:
                return None
            return um / per_unit
    except Exception:  # noqa: BLE001 - metadata is a hint: an unreadable tag means "unknown"
        return None
