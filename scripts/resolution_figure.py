"""The shipped CMU-1 sample (20x) segmented as if it were 40x and at its own pixel size, outlines over the tissue.

    python scripts/resolution_figure.py --out docs/screenshots/cmu1_20x_before_after.png
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots/cmu1_20x_before_after.png"))
    ap.add_argument("--crop", type=int, default=512, help="side of the region shown (px of the image)")
    a = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    from napari_prunuclei import segment
    from napari_prunuclei.io.samples import load_sample

    rgb, px = load_sample("cmu1")
    runs = [("taken as 40x (0.25 µm/px, as before)", 0.25),
            (f"at its pixel size ({px:g} µm/px, read from the file)", px)]
    r0, c0 = 300, 300
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.4), dpi=110)
    for ax, (title, size) in zip(axes, runs):
        seg = segment(rgb, device="cpu", pixel_size=size)
        over = rgb.copy()
        over[find_boundaries(seg.labels, mode="inner")] = (0, 255, 0)
        ax.imshow(over[r0 : r0 + a.crop, c0 : c0 + a.crop])
        ax.set_title(f"CMU-1 skin, 20x, {title}\n{seg.n_nuclei} nuclei in the whole 1024² image", fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, bbox_inches="tight", pad_inches=0.1)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
