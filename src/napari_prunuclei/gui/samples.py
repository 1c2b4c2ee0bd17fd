"""Sample data: a synthetic H&E tile made by our code, and a real tile where PRUNUCLEI_DATA points."""

from __future__ import annotations

import os
from pathlib import Path

from napari_prunuclei.nuclei.synthetic import synthetic_tissue


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
