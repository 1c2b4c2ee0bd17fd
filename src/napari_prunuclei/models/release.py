"""Putting trained weights into the package: copy, hash, register, tune the watershed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .weights import load_branch, read_metadata, sha256_file
from .zoo import WEIGHTS_DIR, register

__all__ = ["ship_dense", "ship_sparse"]


def ship_dense(semantic: Path, distance: Path, data_dir: Path, *, n_val: int = 4, device: str = "auto",
               precision: str = "fp32", grid_json: Path | None = None):
    """Copy both dense branch files into the package, register them, tune the watershed.

    The watershed thresholds are chosen by mean AJI on the ``n_val`` train images
    that training held back (never on test). Returns ``(best params, grid)``.
    """
    from ..evaluation import predict_dataset, tune_watershed, validation_names, write_json

    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    models = []
    for branch, src in (("semantic", semantic), ("distance", distance)):
        meta = read_metadata(src)
        if meta.get("branch") != branch:
            raise ValueError(f"{src} was trained as branch {meta.get('branch')!r}, not {branch!r}")
        dst = WEIGHTS_DIR / f"{branch}_dense.safetensors"
        shutil.copyfile(src, dst)
        steps = int(json.loads(meta.get("steps", "0")))
        register({"id": f"{branch}-dense", "branch": branch, "scheme": "dense", "cr": 1, "fine_tuned": True,
                  "format": "dense", "file": dst.name, "sha256": sha256_file(dst), "steps": steps,
                  "train_config": json.loads(meta.get("train_config", "{}"))})
        models.append(load_branch(dst))
    names = validation_names(data_dir, n_val)
    preds = predict_dataset(data_dir, names, *models, device=device, precision=precision)
    best, grid = tune_watershed(preds)
    register(watershed=best.as_dict())
    if grid_json:
        write_json(grid_json, {"validation_images": names, "best": best.as_dict(), "grid": grid})
    return best, grid


def stages_at_cr(meta: dict) -> list[tuple[int, float, float]]:
    """``(steps, lr, distill)`` of each fine-tuning stage a sparse file had at its own CR, oldest
    first: its own, after those of the files it continued at the same CR (``start`` metadata)."""
    cr = float(json.loads(meta["cr"]))
    stages = [(int(json.loads(meta.get("finetune_steps", "0"))), float(json.loads(meta.get("lr", "3e-4"))),
               float(json.loads(meta.get("distill", "0"))))]
    start = json.loads(meta["start"]) if "start" in meta else None
    while start is not None and float(start.get("cr", -1)) == cr:
        stages.insert(0, (int(start.get("finetune_steps", 0)), float(start.get("lr", 3e-4)),
                          float(start.get("distill", 0))))
        start = start.get("start")
    return stages


def steps_at_cr(meta: dict) -> int:
    """Fine-tuning steps a sparse file had at its own CR, continuations of the same CR included."""
    return sum(steps for steps, _, _ in stages_at_cr(meta))


def ship_sparse(path: Path, metrics: dict | None = None) -> dict:
    """Copy a fine-tuned sparse branch file into the package and register it; return the entry."""
    meta = read_metadata(path)
    branch, scheme = meta["branch"], meta["scheme"]
    cr = float(json.loads(meta["cr"]))
    dst = WEIGHTS_DIR / f"{branch}_{scheme}_cr{cr:g}.safetensors"
    shutil.copyfile(path, dst)
    entry = {"id": f"{branch}-{scheme}-cr{cr:g}", "branch": branch, "scheme": scheme, "cr": cr,
             "fine_tuned": True, "format": "sparse", "file": dst.name, "sha256": sha256_file(dst),
             "steps": steps_at_cr(meta), "metrics": metrics or {}}
    register(entry)
    return entry
