"""Real H&E images shipped with the package (OpenSlide test data; credit and terms in sample_data/NOTICE.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_prunuclei.io.images import read_image
from napari_prunuclei.io.pixel_size import read_pixel_size

__all__ = ["SAMPLES", "Sample", "sample_path", "load_sample"]

FOLDER = Path(__file__).parent / "sample_data"


@dataclass(frozen=True)
class Sample:
    """One shipped image: its file, a short title, and the credit it carries."""

    file: str
    title: str
    credit: str = "OpenSlide test data (openslide.org)"


SAMPLES = {
    "os1": Sample("OS-1-detail.ome.tif", "OS-1 detail, about 40x (OpenSlide)"),
    "cmu1": Sample("cmu1_skin_20x.tif", "CMU-1 skin, 20x (OpenSlide, CC0)"),
}


def sample_path(key: str) -> Path:
    """The file of sample ``key`` (one of :data:`SAMPLES`)."""
    if key not in SAMPLES:
        raise ValueError(f"no sample {key!r}; the samples are {', '.join(SAMPLES)}")
    return FOLDER / SAMPLES[key].file


def load_sample(key: str) -> tuple[np.ndarray, float | None]:
    """The RGB image of sample ``key`` and its pixel size in µm (from the file's metadata)."""
    path = sample_path(key)
    return read_image(path), read_pixel_size(path)
