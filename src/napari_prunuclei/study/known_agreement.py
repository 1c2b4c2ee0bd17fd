"""How much each zoo pair agrees with dense on annotated 40x images, as the widget measures it (A against dense,
each with its own thresholds): the range a run without ground truth is read against.

Without ground truth the widget's only number is A's agreement with dense. On the 20x CMU-1 sample it was AJI
0.70 against 0.88-0.89 on 40x tiles, with no flag (pathologist, session 37). Each pair's agreement on every
image of MoNuSeg 2018 test and GBM40 goes into its registry entries (``agreement_with_dense``); the verdict of a
run without ground truth gives that range, and flags a run that agrees less than on nearly all of them
(:func:`~napari_prunuclei.study.session_models.low_agreement`).
The images' ground truths are not used: these images only give the range, no choice is made on them.
"""

from __future__ import annotations

import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from napari_prunuclei.base.progress import Progress, ProgressFn, drive
from napari_prunuclei.io.dataset import NucleiDataset
from napari_prunuclei.study.sweep import DATASETS

__all__ = ["KEY", "measure_agreement", "summarize_agreement", "update_registry_agreement", "pair_key"]

#: where a pair's known agreement goes in its registry entries (both branches')
KEY = "agreement_with_dense"
#: each data set's name in the registry
NAMES = {"monuseg": "monuseg2018 test", "gbm40": "gbm40"}


def pair_key(scheme: str, cr: float) -> str:
    """``channel-layerwise-cr4``: a pair's key in :func:`measure_agreement`'s result."""
    return f"{scheme}-cr{float(cr):g}"


def _one_image(task: tuple[str, str, str, str]) -> tuple[str, str, dict[str, float] | str]:
    """(a worker process) every zoo pair and dense on one image, as the widget's CR sweep runs them: each pair's
    AJI against dense, or why the image could not be measured (its ground truth is never read)."""
    import torch

    from napari_prunuclei.io.images import read_image
    from napari_prunuclei.study.session_models import sweep_image

    torch.set_num_threads(1)
    root, key, name, precision = task
    try:
        rgb = read_image(NucleiDataset(Path(root) / DATASETS[key][0]).image_path(name))
        rows = drive(sweep_image(rgb, None, "cpu", precision=precision))
    except Exception as e:  # noqa: BLE001 - one image's failure is said, the others measured
        return key, name, f"{type(e).__name__}: {e}"
    return key, name, {pair_key(r.scheme, r.cr): round(r.vs_dense.aji, 6) for r in rows if r.fine_tuned}


def measure_agreement(data_root: str | Path, datasets: tuple[str, ...] = ("monuseg", "gbm40"), *, workers: int = 2,
                      precision: str = "auto", limit: int | None = None, progress: ProgressFn | None = None,
                      failed: dict[str, str] | None = None) -> dict[str, dict[str, dict]]:
    """Pair key -> data set name -> {"images": [...], "aji": [...]}: each fine-tuned zoo pair's AJI against dense
    on each test image (``limit``: the first images of each set only), over ``workers`` processes (spawned: the
    parent's torch threads are not forked); ``failed`` gets each image that could not be measured, and why."""
    import multiprocessing

    tasks = []
    for key in datasets:
        folder, split = DATASETS[key]
        names = NucleiDataset(Path(data_root) / folder).names(split)[:limit]
        tasks += [(str(data_root), key, name, precision) for name in names]
    out: dict[str, dict[str, dict]] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context) as pool:
        for i, (key, name, ajis) in enumerate(pool.map(_one_image, tasks)):  # (in order: the same file each run)
            if isinstance(ajis, str):
                if failed is not None:
                    failed[f"{key}/{name}"] = ajis
                continue
            for pair, value in ajis.items():
                one = out.setdefault(pair, {}).setdefault(NAMES[key], {"images": [], "aji": []})
                one["images"].append(name)
                one["aji"].append(value)
            if progress is not None:
                progress(Progress(i + 1, len(tasks), f"{key} {name}"))
    return out


def summarize_agreement(per_dataset: dict[str, dict]) -> dict:
    """A pair's registry record: the range of its AJI against dense over every image, and per data set."""
    def stats(values: list[float]) -> dict:
        return {"n_images": len(values), "aji_min": min(values), "aji_median": round(statistics.median(values), 6),
                "aji_max": max(values)}

    every = [v for d in per_dataset.values() for v in d["aji"]]
    return {"data": " + ".join(per_dataset), **stats(every), "aji_sorted": sorted(round(v, 4) for v in every),
            "per_dataset": {name: stats(d["aji"]) for name, d in per_dataset.items()},
            "measured_as": "A against dense, each with its own thresholds, on the whole image (the widget's run)"}


def update_registry_agreement(measured: dict[str, dict[str, dict]]) -> int:
    """Store each pair's :func:`summarize_agreement` in its registry entries (``agreement_with_dense``); the number
    of entries updated."""
    from napari_prunuclei.models.zoo import register, registry

    n = 0
    for e in registry()["models"]:
        if e["scheme"] == "dense" or not e.get("fine_tuned", True):
            continue
        found = measured.get(pair_key(e["scheme"], e["cr"]))
        if found:
            register({**e, KEY: summarize_agreement(found)})
            n += 1
    return n
