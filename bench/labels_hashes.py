"""Behaviour fingerprint: sha256 of the labels that `segment()` gives on real tiles and on a tiled slide.

Used to show that a refactor changed nothing: run it before (``--write``) and after (``--check``). fp32 on
CPU, yet the bits depend on the machine (session 33: of 21 images fingerprinted on an AMD EPYC, 7 came out the
same on an Intel Xeon with AMX, same code) and on the watershed's rule, so the stored JSON holds one section
per machine and rule (its key says which), each with one hash per image and pair and the sha256 of the pairs'
weights; ``--check`` compares only with its own machine's and rule's section, made from the same weights, and
says so where there is none (then make one with ``--write`` before the change).

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


def section() -> str:
    """The machine, libraries and rule a fingerprint belongs to: CPU name, torch's CPU capability, bf16/AMX
    flags, the versions of torch, numpy, scipy and scikit-image, the watershed's rule."""
    import torch

    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.nuclei.watershed import WATERSHED_RULE

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    import numpy
    import scipy
    import skimage

    isa = "+".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags) or "no bf16"
    libs = ", ".join(f"{m.__name__} {m.__version__}" for m in (torch, numpy, scipy, skimage))
    return f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}, {isa}); {libs}; watershed rule {WATERSHED_RULE}"


def weights() -> dict:
    """The sha256 of the fingerprinted pairs' weight files (a fingerprint of other weights is another's)."""
    from napari_prunuclei import load_pair
    from napari_prunuclei.runtime.pairs import pair_weights

    return {f"{s}:{cr:g}": pair_weights(load_pair(s, cr)) for s, cr in PAIRS}


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
    key = section()
    path = a.check or a.write
    try:
        stored = json.loads(path.read_text()) if a.check or path.is_file() else {}
        if not isinstance(stored, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        print(f"{path}: not a fingerprint file this script wrote ({e}); nothing compared or written")
        return 2
    if a.check:
        want = stored.get(key)
        if not isinstance(want, dict) or want.get("weights") != weights() or not isinstance(want.get("labels"), dict):
            why = "none was made on this machine with this rule" if want is None else "it was made from other weights"
            print(f"{a.check}: no fingerprint to compare with ({why}: {key}); make one with --write before the change")
            return 2
    got = run(a.data, a.tiles)
    if a.write:
        stored = {k: v for k, v in stored.items() if isinstance(v, dict) and "labels" in v}  # sections only
        stored[key] = {"weights": weights(), "labels": got}
        a.write.write_text(json.dumps(stored, indent=1) + "\n")
        print(f"wrote {len(got)} hashes to {a.write} ({key})")
        return 0
    want = want["labels"]
    diff = sorted(k for k in want if got.get(k) != want[k])
    print(f"{len(want) - len(diff)} of {len(want)} label images identical" + (f"; differ: {diff}" if diff else ""))
    return 1 if diff else 0

if __name__ == "__main__":
    sys.exit(main())
