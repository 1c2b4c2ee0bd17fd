"""A slide that is mostly glass: 4 MoNuSeg test tiles inside 8000 x 8000 px of glass, against the tissue alone.

- ``slide``: the 8000 x 8000 image (64 MP, tiled: 1024 px tiles, 128 px halo), the tissue mask on (default);
- ``tissue alone``: the same 4 tiles, each run whole as a 1000 x 1000 image (the sum of the four);
- ``no mask``: the slide with every tile through the networks (``--no-mask-run``), for the nuclei count.
Also the mask's own cost on an all-tissue mosaic: the tissue check of every tile of a ``--mosaic`` px
square of MoNuSeg tiles (as the tiled engine runs it on each crop), against the networks' time on it.

    python bench/bench_glass.py --data ../shared/data/monuseg2018 --json docs/results/glass_slide.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    import torch

    from napari_prunuclei import segment
    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.io.dataset import NucleiDataset
    from napari_prunuclei.runtime.tiles import tile_grid
    from napari_prunuclei.runtime.tissue import core_has_tissue, tissue_box

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--size", type=int, default=8000)
    p.add_argument("--mosaic", type=int, default=10000)
    p.add_argument("--no-mask-run", action="store_true", help="also run the slide without the mask (slow)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    ds = NucleiDataset(a.data)
    names = ds.names("test")[:4]
    tiles = [ds.load(n)[0] for n in names]
    rng = np.random.default_rng(0)
    slide = np.clip(rng.normal(236, 2.5, (a.size, a.size, 3)), 0, 255).astype(np.uint8)  # glass, a little noise
    spots = [(1036, 1036), (1036, 5132), (5132, 1036), (5132, 5132)]  # each inside one tile's core
    for (r, c), rgb in zip(spots, tiles):
        slide[r : r + 1000, c : c + 1000] = rgb
    segment(tiles[0][:512, :512], device="cpu")  # warm-up
    t0 = time.perf_counter()
    alone = [segment(rgb, device="cpu") for rgb in tiles]
    t_alone = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = segment(slide, device="cpu")
    t_slide = time.perf_counter() - t0
    out = {"command": "python bench/bench_glass.py " + " ".join(sys.argv[1:]), "cpu": cpu_name(),
           "slide_px": a.size, "tiles": names, "seconds_tissue_alone": t_alone, "seconds_slide": t_slide,
           "slide_over_alone": t_slide / t_alone, "nuclei_alone": int(sum(s.n_nuclei for s in alone)),
           "nuclei_slide": run.n_nuclei, "tissue": run.info.tissue}
    out["nuclei_ratio"] = out["nuclei_slide"] / out["nuclei_alone"]
    if a.no_mask_run:
        t0 = time.perf_counter()
        full = segment(slide, device="cpu", tissue_mask=False)
        out["seconds_slide_no_mask"] = time.perf_counter() - t0
        out["nuclei_slide_no_mask"] = full.n_nuclei
    del slide
    # the mask's cost on all-tissue: the check and the box of every crop of a mosaic, against its networks
    reps = int(np.ceil(a.mosaic / 1000))
    mosaic = np.concatenate([np.concatenate([tiles[(i + j) % 4] for j in range(reps)], 1) for i in range(reps)],
                            0)[: a.mosaic, : a.mosaic]
    grid = tile_grid(mosaic.shape[:2], 1024, 128)
    t0 = time.perf_counter()
    for t in grid:
        crop = np.asarray(mosaic[t.a0 : t.a1, t.b0 : t.b1])
        core_has_tissue(crop, (t.r0 - t.a0, t.r1 - t.a0, t.c0 - t.b0, t.c1 - t.b0))
        tissue_box(crop)
    t_check = time.perf_counter() - t0
    per_mp_networks = sum(s.info.seconds["semantic"] + s.info.seconds["distance"] for s in alone) / 4.0
    nets_mosaic = per_mp_networks * sum((t.a1 - t.a0) * (t.b1 - t.b0) for t in grid) / 1e6
    out["mosaic"] = {"px": a.mosaic, "tiles": len(grid), "seconds_mask": t_check,
                     "seconds_networks_estimated": nets_mosaic, "mask_over_networks": t_check / nets_mosaic,
                     "note": "networks time = the 4 tiles' measured seconds per MP times the mosaic's crop MP"}
    print(json.dumps({k: v for k, v in out.items() if k != "tiles"}, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
