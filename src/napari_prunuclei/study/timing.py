"""End-to-end time of model pairs on one image, interleaved so that a busy machine slows all alike."""

from __future__ import annotations

import statistics
import time

import numpy as np

from napari_prunuclei.runtime.pairs import ModelPair
from napari_prunuclei.runtime.pipeline import segment

__all__ = ["benchmark_tile", "time_segment"]


def benchmark_tile(data=None) -> np.ndarray:
    """The 1000x1000 tile timings use: the first test image of a MoNuSeg-layout folder ``data``, or a
    synthetic tile without it."""
    if data:
        from napari_prunuclei.io.dataset import NucleiDataset

        ds = NucleiDataset(data)
        rgb, _ = ds.load(ds.names("test")[0])
    else:
        from napari_prunuclei.nuclei.synthetic import synthetic_tile

        rgb, _ = synthetic_tile(1000, seed=0)
    return np.ascontiguousarray(rgb[:1000, :1000])


def time_segment(pairs: dict[str, ModelPair], rgb: np.ndarray, *, repeat: int = 3, device: str = "cpu",
                 precision: str = "auto") -> dict[str, dict]:
    """Per label: median seconds of :func:`~napari_prunuclei.runtime.pipeline.segment` on ``rgb`` (end to end,
    both branches, watershed) over ``repeat`` rounds after a warm-up; each round runs every pair once."""
    runs: dict[str, list[tuple[float, float, float, int]]] = {k: [] for k in pairs}
    for pair in pairs.values():  # warm-up: weights prepared, caches filled
        segment(rgb, pair, device=device, precision=precision)
    for _ in range(max(1, repeat)):
        for label, pair in pairs.items():
            t = time.perf_counter()
            r = segment(rgb, pair, device=device, precision=precision)
            total = time.perf_counter() - t
            runs[label].append((r.info.seconds["semantic"] + r.info.seconds["distance"],
                                r.info.seconds["watershed"], total, r.n_nuclei))
    return {label: {"branches_s": statistics.median(r[0] for r in rs),
                    "watershed_s": statistics.median(r[1] for r in rs),
                    "total_s": statistics.median(r[2] for r in rs), "n_nuclei": rs[-1][3]}
            for label, rs in runs.items()}
