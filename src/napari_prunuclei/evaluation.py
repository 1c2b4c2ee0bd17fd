"""Evaluating a (pruned) model on a data folder, scoring label files, tuning the watershed."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .data import NucleiDataset, distance_target, split_train_val
from .inference import predict_branch
from .io import ImageError, atomic_write, read_labels
from .metrics import METRIC_KEYS, distance_mse, mean_scores, score_instances
from .models.unet import UNet
from .postprocess import WatershedParams, watershed_instances

__all__ = [
    "EVAL_KEYS",
    "predict_dataset",
    "evaluate",
    "score_files",
    "tune_watershed",
    "format_table",
    "write_json",
]

EVAL_KEYS = (*METRIC_KEYS, "distance_mse")


def predict_dataset(
    data_dir: str | Path,
    names: list[str],
    semantic: UNet,
    distance: UNet,
    *,
    device: str = "auto",
    precision: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Branch outputs and ground truth per image: dicts of name, prob, dist, truth, distance_mse."""
    ds = NucleiDataset(data_dir)
    out = []
    for i, name in enumerate(names):
        rgb, lab = ds.load(name)
        prob = predict_branch(semantic, rgb, device=device, precision=precision)
        dist = predict_branch(distance, rgb, device=device, precision=precision)
        out.append({"name": name, "prob": prob, "dist": dist, "truth": lab,
                    "distance_mse": distance_mse(distance_target(lab), dist)})
        if progress is not None:
            progress(i + 1, len(names))
    return out


def score_predictions(preds: list[dict], params: WatershedParams) -> dict:
    """Watershed + metrics for outputs of :func:`predict_dataset`; the JSON-ready summary."""
    rows = []
    for p in preds:
        labels = watershed_instances(p["prob"], p["dist"], params)
        s = score_instances(p["truth"], labels).as_dict()
        s["distance_mse"] = p["distance_mse"]
        rows.append({"name": p["name"], **s})
    summary = mean_scores(rows, EVAL_KEYS)
    summary["n_images"] = len(rows)
    summary["per_image"] = rows
    return summary


def evaluate(
    data_dir: str | Path,
    split: str = "test",
    scheme: str = "dense",
    cr: float = 1,
    *,
    fine_tuned: bool = True,
    params: WatershedParams | None = None,
    device: str = "auto",
    precision: str = "auto",
    names: list[str] | None = None,
    models: tuple[UNet, UNet] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Mean metrics over one split (keys: dice, aji, pq, dq, sq, f1, distance_mse, n_images, per_image)."""
    from .models.zoo import default_watershed, load_model, model_info, normalize_scheme

    ds = NucleiDataset(data_dir)
    names = names if names is not None else ds.names(split)
    if not names:
        from .data import DataError

        raise DataError(f"split {split!r} of {data_dir} lists no images")
    if models is None:
        models = (load_model("semantic", scheme, cr, fine_tuned=fine_tuned),
                  load_model("distance", scheme, cr, fine_tuned=fine_tuned))
    params = params or default_watershed(scheme, cr, fine_tuned)
    preds = predict_dataset(data_dir, names, *models, device=device, precision=precision, progress=progress)
    result = score_predictions(preds, params)
    result["config"] = {
        "data": str(data_dir), "split": split, "scheme": normalize_scheme(scheme), "cr": cr,
        "fine_tuned": fine_tuned, "watershed": params.as_dict(), "precision": precision,
        "semantic": model_info(models[0]), "distance": model_info(models[1]),
    }
    return result


def _pairs(truth: Path, pred: Path) -> list[tuple[str, Path, Path]]:
    if truth.is_file() and pred.is_file():
        return [(pred.stem, truth, pred)]
    if truth.is_dir() and pred.is_dir():
        exts = {".tif", ".tiff", ".png"}
        tmap = {p.stem: p for p in sorted(truth.iterdir()) if p.suffix.lower() in exts}
        pmap = {p.stem: p for p in sorted(pred.iterdir()) if p.suffix.lower() in exts}
        common = sorted(set(tmap) & set(pmap))
        if not common:
            raise ImageError(f"no label files with the same name in {truth} and {pred}")
        return [(n, tmap[n], pmap[n]) for n in common]
    raise ImageError(f"TRUTH and PRED must be two files or two folders: {truth}, {pred}")


def score_files(truth: str | Path, pred: str | Path) -> dict:
    """Score instance label files (or folders matched by file name) against ground truth."""
    rows = []
    for name, t, p in _pairs(Path(truth), Path(pred)):
        rows.append({"name": name, **score_instances(read_labels(t), read_labels(p)).as_dict()})
    summary = mean_scores(rows, METRIC_KEYS)
    summary["n_images"] = len(rows)
    summary["per_image"] = rows
    return summary


def tune_watershed(
    preds: list[dict],
    fg: tuple[float, ...] = (0.4, 0.5, 0.6),
    marker: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7),
    min_size: tuple[int, ...] = (10, 20, 40),
) -> tuple[WatershedParams, list[dict]]:
    """Grid search maximising mean AJI on held-back predictions; return best and the grid."""
    grid = []
    for f, m, s in itertools.product(fg, marker, min_size):
        params = WatershedParams(f, m, s)
        r = score_predictions(preds, params)
        grid.append({**params.as_dict(), "aji": r["aji"], "pq": r["pq"], "dice": r["dice"]})
    best = max(grid, key=lambda g: g["aji"])
    return WatershedParams(best["fg_threshold"], best["marker_threshold"], best["min_size"]), grid


def validation_names(data_dir: str | Path, n_val: int = 4, seed: int = 0) -> list[str]:
    """The train images held back from training (same rule as :func:`training.train`)."""
    return split_train_val(NucleiDataset(data_dir).names("train"), n_val, seed)[1]


def format_table(result: dict, title: str = "") -> str:
    """A plain-text table: one row per image, then the mean."""
    keys = [k for k in EVAL_KEYS if k in result]
    head = f"{'image':<28}" + "".join(f"{k:>13}" for k in keys)
    lines = [title, head, "-" * len(head)] if title else [head, "-" * len(head)]
    for r in result["per_image"]:
        lines.append(f"{r['name'][:28]:<28}" + "".join(f"{r[k]:>13.4f}" for k in keys))
    lines.append("-" * len(head))
    lines.append(f"{'mean of ' + str(result['n_images']):<28}" + "".join(f"{result[k]:>13.4f}" for k in keys))
    return "\n".join(lines)


def write_json(path: str | Path, obj: dict) -> None:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(type(o))

    atomic_write(path, lambda t: t.write_text(json.dumps(obj, indent=1, default=default) + "\n"))
