"""Sample data: two real H&E images shipped with the package (OpenSlide test data, at 20x and about 40x, opened
with their pixel size), a synthetic tile with ground truth made by our code, and a MoNuSeg tile where
PRUNUCLEI_DATA points."""

from __future__ import annotations

import os
from pathlib import Path

from napari_prunuclei.nuclei.synthetic import synthetic_tissue


def _real(key: str):
    from napari_prunuclei.io.samples import SAMPLES, load_sample

    rgb, px = load_sample(key)
    meta = {"name": SAMPLES[key].title.split(" (")[0], "rgb": True, "scale": (px, px), "units": ("um", "um"),
            "metadata": {"pixel_size_um": px, "source": SAMPLES[key].credit}}
    return [(rgb, meta, "image")]  # the widget reads the pixel size from the metadata, as for opened files


def os1_sample():
    """OpenSlide's OS-1 (Hamamatsu), a detail at about 40x (0.227 µm/px)."""
    return _real("os1")


def cmu1_sample():
    """OpenSlide's CMU-1 (Aperio), skin at 20x (0.499 µm/px): the models see it resampled to their 0.25 µm/px."""
    return _real("cmu1")


def synthetic_sample():
    rgb, labels = synthetic_tissue(512, seed=7)
    return [
        (rgb, {"name": "synthetic H&E", "rgb": True}, "image"),
        (labels, {"name": "synthetic H&E · ground truth", "opacity": 0.4, "visible": False}, "labels"),
    ]


def monuseg_sample():
    from napari_prunuclei.io.dataset import NucleiDataset

    root = os.environ.get("PRUNUCLEI_DATA")
    if not root:
        raise ValueError("set PRUNUCLEI_DATA to a data folder holding monuseg2018/ (the MoNuSeg layout)")
    folder = Path(root)
    if (folder / "monuseg2018").is_dir():
        folder = folder / "monuseg2018"
    ds = NucleiDataset(folder)
    name = ds.names("test")[0]
    rgb, labels = ds.load(name)
    return [
        (rgb, {"name": name[:12], "rgb": True}, "image"),
        (labels, {"name": f"{name[:12]} · ground truth", "opacity": 0.4, "visible": False}, "labels"),
    ]
