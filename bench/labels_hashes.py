"""Behaviour fingerprint: sha256 of the labels that `segment()` gives on real tiles and on a tiled slide.

Used to show that a refactor changed nothing: run it before (``--write``) and after (``--check``); the
stored JSON holds one hash per image and pair. fp32 on CPU, so the hashes do not depend on the CPU's bf16
support (the same machine kind gives the same bits).

    python bench/labels_hashes.py --data ../shared/data/monuseg2018 --write bench/labels_hashes.json
    python bench/labels_hashes.py --data ../shared/data/monuseg2018 --check bench/labels_hashes.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

PAIRS = [("dense", 1.0), ("networkwide", 20.0), ("channel-layerwise", 4.0)]


def fingerprint(labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(labels), dtype=np.int64).tobytes()).hexdigest()


def run(data: Path, n_tiles: int) -> dict:
    import torch

    from napari_prunuclei import load_pair, segment

    torch.set_num_threads(1)
    names = sorted(json.loads((data / "split.json").read_text())["test"])[:n_tiles]
    images = {n: iio.imread(data / "images" / f"{n}.png")[..., :3] for n in names}
    slide = np.concatenate([np.concatenate([images[names[0]], images[names[1]]], 1),
                            np.concatenate([images[names[2]], images[names[3]]], 1)], 0)  # 2000 x 2000
    out = {}
    for scheme, cr in PAIRS:
        pair = load_pair(scheme, cr)
        for n in names:
            out[f"{scheme}:{cr:g}:{n}"] = fingerprint(segment(images[n], pair, device="cpu", precision="fp32").labels)
        lab = segment(slide, pair, device="cpu", precision="fp32", tiling="tiled", post_workers=0).labels
        out[f"{scheme}:{cr:g}:slide2000_tiled"] = fingerprint(lab)
        print(scheme, cr, "done", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--tiles", type=int, default=6)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", type=Path)
    g.add_argument("--check", type=Path)
    a = p.parse_args()
    got = run(a.data, a.tiles)
    if a.write:
        a.write.write_text(json.dumps(got, indent=1) + "\n")
        print(f"wrote {len(got)} hashes to {a.write}")
        return 0
    want = json.loads(a.check.read_text())
    diff = sorted(k for k in want if got.get(k) != want[k])
    print(f"{len(want) - len(diff)} of {len(want)} label images identical" + (f"; differ: {diff}" if diff else ""))
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
