"""Headless equivalent of the plugin: dense and pruned side by side, written to files.

Writes, per model, instance labels (TIFF), probability and distance maps, an info JSON,
and one PNG with the image, both models' instance outlines and the disagreement map.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("image", nargs="?", help="H&E image; default: the shipped OS-1 sample (real H&E, about 40x)")
    ap.add_argument("--out", type=Path, default=Path("out"))
    ap.add_argument("--scheme", default="networkwide")
    ap.add_argument("--cr", type=float, default=20)
    a = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    from napari_prunuclei.base.constants import DISAGREEMENT_COLORS
    from napari_prunuclei.base.progress import drive
    from napari_prunuclei.io.images import read_image
    from napari_prunuclei.io.labels import write_labels
    from napari_prunuclei.io.pixel_size import read_pixel_size
    from napari_prunuclei.io.samples import load_sample
    from napari_prunuclei.runtime.request import SegmentRequest
    from napari_prunuclei.study.session import CompareRequest, run

    if a.image:
        rgb, px, stem = read_image(a.image), read_pixel_size(a.image), Path(a.image).stem
    else:
        rgb, px = load_sample("os1")
        stem = "OS-1-detail"
    a.out.mkdir(parents=True, exist_ok=True)
    # the widget's comparison, without napari: the same job, the same numbers
    req = CompareRequest(stem, SegmentRequest(scheme=a.scheme, cr=a.cr, pixel_size=px), pixel_size=px)
    result = drive(run(rgb, req))
    dense, pruned = result.dense, result.pruned
    label = pruned.info.model
    for tag, res in (("dense", dense), (f"{a.scheme}_cr{a.cr:g}", pruned)):
        write_labels(a.out / f"{stem}_{tag}_labels.tif", res.labels)
        (a.out / f"{stem}_{tag}_info.json").write_text(
            json.dumps({"n_nuclei": res.n_nuclei, **res.info.as_dict()}, indent=1))
    agree = result.numbers.vs_dense
    counts = result.numbers.disagreement
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.4), dpi=110)
    for ax, res, title in ((axes[0], dense, "dense"), (axes[1], pruned, label)):
        over = rgb.copy()
        over[find_boundaries(res.labels)] = (0, 255, 0)
        ax.imshow(over)
        ax.set_title(f"{title}: {res.n_nuclei} nuclei")
    axes[2].imshow(rgb)
    from matplotlib.colors import to_rgba

    colours = np.array([(0, 0, 0, 0)] + [to_rgba(DISAGREEMENT_COLORS[k], 0.8) for k in (1, 2, 3, 4)])
    axes[2].imshow(colours[result.disagreement])
    axes[2].set_title(f"vs dense: AJI {agree.aji:.3f}, PQ {agree.pq:.3f}\n"
                      f"events: missed {counts['missed']} (red), extra {counts['extra']} (blue), "
                      f"split {counts['split']} (yellow), merged {counts['merged']} (orange)", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    png = a.out / f"{stem}_dense_vs_{a.scheme}_cr{a.cr:g}.png"
    fig.savefig(png, bbox_inches="tight", pad_inches=0.15)  # no title cut at the top
    print(f"dense {dense.n_nuclei} nuclei, {label} {pruned.n_nuclei} nuclei; "
          f"AJI vs dense {agree.aji:.3f}; wrote {png}")


if __name__ == "__main__":
    main()
