"""Evaluating a (pruned) model on a data folder, scoring label files, tuning the watershed."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_prunuclei.base.constants import LABEL_EXTENSIONS
from napari_prunuclei.base.progress import CancelFn, Progress, ProgressFn
from napari_prunuclei.io.atomic import atomic_write
from napari_prunuclei.io.dataset import NucleiDataset, distance_target, split_train_val
from napari_prunuclei.io.guards import ImageError
from napari_prunuclei.io.labels import read_labels
from napari_prunuclei.nuclei.metrics import METRIC_KEYS, distance_mse, mean_scores, score_instances
from napari_prunuclei.nuclei.watershed import WatershedParams
from napari_prunuclei.runtime.pairs import ModelPair, load_pair
from napari_prunuclei.runtime.pipeline import rewatershed, segment
from napari_prunuclei.runtime.request import Segmentation

__all__ = [
    "EVAL_KEYS",
    "held_back_scores",
    "Prediction",
    "predict_dataset",
    "score_predictions",
    "evaluate",
    "score_files",
    "tune_watershed",
    "format_table",
    "write_json",
]

EVAL_KEYS = (*METRIC_KEYS, "distance_mse")


@dataclass
class Prediction:
    """One image of a data set: its segmentation (maps kept), ground truth and distance-map MSE."""

    name: str
    segmentation: Segmentation
    truth: np.ndarray
    distance_mse: float


def predict_dataset(
    data_dir: str | Path,
    names: list[str],
    pair: ModelPair,
    params: WatershedParams | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    progress: ProgressFn | None = None,
    cancelled: CancelFn | None = None,
    pixel_size: float | None = None,
) -> list[Prediction]:
    """:func:`~napari_prunuclei.runtime.pipeline.segment` on each image, with its ground truth."""
    ds = NucleiDataset(data_dir)
    out = []
    for i, name in enumerate(names):
        rgb, lab = ds.load(name)
        seg = segment(rgb, pair, params, device=device, precision=precision, cancelled=cancelled, name=name,
                      pixel_size=pixel_size)
        out.append(Prediction(name, seg, lab, distance_mse(distance_target(lab), seg.distance)))
        if progress is not None:
            progress(Progress(i + 1, len(names), name))
    return out


def score_predictions(preds: list[Prediction], params: WatershedParams | None = None) -> dict:
    """Metrics of predictions (with other thresholds than they ran with, when ``params`` are given:
    only the watershed again); the JSON-ready summary."""
    rows = []
    for p in preds:
        seg = p.segmentation
        if params is not None and params != seg.info.watershed:
            seg = rewatershed(seg, params)
        s = score_instances(p.truth, seg.labels).as_dict()
        s["distance_mse"] = p.distance_mse
        rows.append({"name": p.name, **s})
    summary = mean_scores(rows, EVAL_KEYS)
    summary["n_images"] = len(rows)
    summary["per_image"] = rows
    return summary


def evaluate(
    data_dir: str | Path,
    split: str = "test",
    pair: ModelPair | None = None,
    *,
    params: WatershedParams | None = None,
    device: str = "auto",
    precision: str = "auto",
    names: list[str] | None = None,
    progress: ProgressFn | None = None,
    pixel_size: float | None = None,
) -> dict:
    """Mean metrics of a model pair over one split (keys: dice, aji, pq, dq, sq, f1, distance_mse,
    n_images, per_image, config); the pair's own thresholds unless ``params`` are given."""
    ds = NucleiDataset(data_dir)
    names = names if names is not None else ds.names(split)
    if not names:
        from napari_prunuclei.io.dataset import DataError

        raise DataError(f"split {split!r} of {data_dir} lists no images")
    pair = pair or load_pair()
    params = params or pair.params
    preds = predict_dataset(data_dir, names, pair, params, device=device, precision=precision, progress=progress,
                            pixel_size=pixel_size)
    result = score_predictions(preds)
    info = preds[0].segmentation.info
    result["config"] = {
        "data": str(data_dir), "split": split, "scheme": pair.spec.scheme, "cr": pair.spec.cr,
        "fine_tuned": pair.spec.fine_tuned, "watershed": params.as_dict(), "precision": info.precision,
        "semantic": info.semantic, "distance": info.distance, "resolution": info.resolution,
    }
    return result


def _label_files(folder: Path) -> dict[str, Path]:
    """A folder's label images by name: ``X`` for ``X.tif``, and for the outputs of ``prunuclei segment`` ``X``
    for ``X_labels.tif`` (its maps left out); two files of one name are refused, not chosen between."""
    from napari_prunuclei.io.outfolder import is_output_file

    exts = set(LABEL_EXTENSIONS)
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in exts or not p.is_file():
            continue
        key = p.stem[: -len("_labels")] if p.stem.endswith("_labels") else p.stem
        if key == p.stem and is_output_file(p):
            continue  # a probability or distance map of `prunuclei segment`
        if key in found:
            raise ImageError(f"{folder} holds two label images named {key!r} ({found[key].name} and {p.name}): "
                             "keep one")
        found[key] = p
    return found


def _pairs(truth: Path, pred: Path) -> tuple[list[tuple[str, Path, Path]], dict[str, list[str]]]:
    """The (name, truth, prediction) pairs to score, and the names found on one side only."""
    if truth.is_file() and pred.is_file():
        return [(pred.stem, truth, pred)], {"truth_only": [], "pred_only": []}
    if truth.is_dir() and pred.is_dir():
        tmap, pmap = _label_files(truth), _label_files(pred)
        common = sorted(set(tmap) & set(pmap))
        if not common:
            raise ImageError(f"no label files with the same name in {truth} and {pred}")
        return [(n, tmap[n], pmap[n]) for n in common], {"truth_only": sorted(set(tmap) - set(pmap)),
                                                          "pred_only": sorted(set(pmap) - set(tmap))}
    raise ImageError(f"TRUTH and PRED must be two files or two folders: {truth}, {pred}")


#: the largest label image `score` reads (each pixel costs about 40 bytes across the two images' copies)
SCORE_MAX_PIXELS = 64 * 2**20


def _declared_pixels(path: Path) -> int | None:
    """Pixels a label file declares in its header (TIFF: the largest series; else None)."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            return max((int(np.prod(s.shape[:2])) for s in tf.series), default=None)
    except Exception:  # noqa: BLE001 - unreadable: read_labels says why
        return None


def score_files(truth: str | Path, pred: str | Path) -> dict:
    """Score instance label files (or folders matched by file name) against ground truth."""
    rows = []
    pairs, unmatched = _pairs(Path(truth), Path(pred))
    for _, t, p in pairs:  # before reading any: scoring holds both images whole, and several copies of them
        for f in (t, p):
            n = _declared_pixels(f)
            if n is not None and n > SCORE_MAX_PIXELS:
                raise ImageError(f"{f} holds {n / 1e6:.0f} MP; scoring reads label images whole and takes at most "
                                 f"{SCORE_MAX_PIXELS / 1e6:.0f} MP: score it in parts (crops of both images)")
    for name, t, p in pairs:
        rows.append({"name": name, **score_instances(read_labels(t), read_labels(p)).as_dict()})
    summary = mean_scores(rows, METRIC_KEYS)
    summary["n_images"] = len(rows)
    summary["unmatched"] = unmatched
    summary["per_image"] = rows
    return summary


def tune_watershed(
    preds: list[Prediction],
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


def held_back_scores(data_dir: str | Path, semantic, distance) -> dict:
    """A pair of branch modules on the held-back train images (never test): the watershed grid's best
    thresholds, its mean AJI, PQ and Dice, and each image's AJI at those thresholds (for paired comparisons)."""
    from napari_prunuclei.runtime.pairs import pair_from_models

    names = validation_names(data_dir)
    preds = predict_dataset(data_dir, names, pair_from_models(semantic, distance), precision="auto")
    best, grid = tune_watershed(preds)
    top = max(grid, key=lambda g: g["aji"])
    per = {r["name"]: r["aji"] for r in score_predictions(preds, best)["per_image"]}
    return {"images": names, "best": best.as_dict(), "aji": top["aji"], "pq": top["pq"], "dice": top["dice"],
            "per_image_aji": per}
