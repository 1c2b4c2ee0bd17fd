"""Writer for labels layers: TIFF (ids kept), 16-bit PNG, GeoJSON polygons, CSV measurements."""

from __future__ import annotations

import numpy as np

from ..export import export_labels


def write_labels(path: str, data, meta: dict) -> list[str]:
    rgb = (meta.get("metadata") or {}).get("source_rgb")
    out = export_labels(path, np.asarray(data), rgb if isinstance(rgb, np.ndarray) else None)
    return [str(out)]
