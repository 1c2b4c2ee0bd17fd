"""Segmentation metrics: pixel Dice, AJI, PQ (DQ, SQ), object F1, distance-map MSE.

All instance metrics work on integer label images (0 = background). Matching
for PQ and F1 is one-to-one at IoU > 0.5, which is unique by construction
(Kirillov et al. 2019). With that matching, object F1 = 2TP / (2TP + FP + FN),
which equals DQ; both are reported because papers quote either name.
AJI follows Kumar et al. 2017: every ground-truth nucleus is paired with the
predicted nucleus of highest IoU; their intersection goes to the numerator and
their union to the denominator; predicted nuclei never paired add their area to
the denominator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from napari_prunuclei.io.labels import check_label_ids, unique_inverse

__all__ = [
    "InstanceScores",
    "dice",
    "aji",
    "panoptic_quality",
    "distance_mse",
    "score_instances",
    "match_instances",
    "match_overlaps",
    "mean_scores",
]

METRIC_KEYS = ("dice", "aji", "pq", "dq", "sq", "f1")


def compact_ids(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Map ids to 0..n (0 kept as background); return (labels, n)."""
    lab = check_label_ids(labels)  # any integer type, never cast down; negative ids refused
    ids, inv = unique_inverse(lab)
    if ids[0] != 0:
        inv = inv + 1
        n = len(ids)
    else:
        n = len(ids) - 1
    return inv, n


def overlap_matrix(truth: np.ndarray, pred: np.ndarray):
    """Intersection matrix (n_t+1 x n_p+1, row/col 0 = background) and object areas."""
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
    t, nt = compact_ids(truth)
    p, np_ = compact_ids(pred)
    cells = (nt + 1) * (np_ + 1)
    if cells <= max(4 * t.size, 1 << 20):  # a count per (truth, pred) pair: one bincount, no sort
        counts = np.bincount((t * (np_ + 1) + p).ravel(), minlength=cells)
        nz = np.flatnonzero(counts)
        rows, cols = np.divmod(nz, np_ + 1)
        indptr = np.zeros(nt + 2, np.intp)
        np.cumsum(np.bincount(rows, minlength=nt + 1), out=indptr[1:])
        inter = sparse.csr_matrix((counts[nz], cols, indptr), shape=(nt + 1, np_ + 1))
        inter.has_canonical_format = True  # sorted, no duplicates: what tocsr() makes of the pairs
    else:
        inter = sparse.coo_matrix(
            (np.ones(t.size, np.int64), (t.ravel(), p.ravel())), shape=(nt + 1, np_ + 1)
        ).tocsr()
    area_t = np.asarray(inter.sum(axis=1)).ravel()
    area_p = np.asarray(inter.sum(axis=0)).ravel()
    return inter, area_t, area_p, nt, np_


def dice(truth: np.ndarray, pred: np.ndarray) -> float:
    """Pixel Dice of the foregrounds (1.0 when both are empty)."""
    a, b = np.asarray(truth) > 0, np.asarray(pred) > 0
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * np.logical_and(a, b).sum() / s)


def aji(truth: np.ndarray, pred: np.ndarray) -> float:
    """Aggregated Jaccard Index (Kumar et al. 2017)."""
    inter, area_t, area_p, nt, np_ = overlap_matrix(truth, pred)
    if nt == 0 and np_ == 0:
        return 1.0
    if nt == 0:
        return 0.0
    sub = inter[1:, 1:].tocoo()
    best_j = np.zeros(nt + 1, np.int64)  # best-IoU partner of each truth object (0: none)
    best_v = np.zeros(nt + 1)  # its intersection
    if sub.nnz:
        i, j, v = sub.row + 1, sub.col + 1, sub.data.astype(float)
        iou = v / (area_t[i] + area_p[j] - v)
        order = np.lexsort((-iou, i))  # per truth row, highest IoU first
        i, j, v = i[order], j[order], v[order]
        first = np.r_[True, i[1:] != i[:-1]]
        best_j[i[first]], best_v[i[first]] = j[first], v[first]
    has = best_j > 0
    c = best_v[has].sum()
    u = (area_t[has] + area_p[best_j[has]] - best_v[has]).sum() + area_t[1:][~has[1:]].sum()
    used = np.unique(best_j[has])
    u += area_p[1:].sum() - area_p[used].sum()
    return float(c / u) if u else 0.0


def match_instances(truth: np.ndarray, pred: np.ndarray, thr: float = 0.5):
    """One-to-one pairs with IoU > ``thr`` (>= 0.5 makes them unique).

    Returns ``(pairs, ious, n_truth, n_pred)`` with ``pairs`` an (k, 2) array of
    (truth index, pred index) in 1..n of the relabelled images.
    """
    inter, area_t, area_p, nt, np_ = overlap_matrix(truth, pred)
    pairs, ious = match_overlaps(inter, area_t, area_p, thr)
    return pairs, ious, nt, np_


def match_overlaps(inter, area_t: np.ndarray, area_p: np.ndarray, thr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """:func:`match_instances` from an :func:`overlap_matrix` already made: ``(pairs, ious)``."""
    sub = inter[1:, 1:].tocoo()
    i, j, v = sub.row + 1, sub.col + 1, sub.data.astype(float)
    iou = v / (area_t[i] + area_p[j] - v) if v.size else v
    keep = iou > thr
    return np.stack([i[keep], j[keep]], axis=1), iou[keep]


def panoptic_quality(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """PQ, DQ, SQ and object F1 at IoU > 0.5."""
    pairs, ious, nt, np_ = match_instances(truth, pred)
    tp = len(pairs)
    fp, fn = np_ - tp, nt - tp
    if nt == 0 and np_ == 0:
        return {"pq": 1.0, "dq": 1.0, "sq": 1.0, "f1": 1.0}
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = float(ious.mean()) if tp else 0.0
    return {"pq": dq * sq, "dq": dq, "sq": sq, "f1": 2 * tp / (2 * tp + fp + fn)}


def distance_mse(target: np.ndarray, pred: np.ndarray) -> float:
    """Mean squared error between two distance maps."""
    a, b = np.asarray(target, np.float64), np.asarray(pred, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"distance maps differ in shape: {a.shape} vs {b.shape}")
    return float(np.mean((a - b) ** 2))


@dataclass
class InstanceScores:
    dice: float
    aji: float
    pq: float
    dq: float
    sq: float
    f1: float
    n_truth: int
    n_pred: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def score_instances(truth: np.ndarray, pred: np.ndarray) -> InstanceScores:
    """All instance metrics of one image."""
    pq = panoptic_quality(truth, pred)
    return InstanceScores(
        dice=dice(truth, pred), aji=aji(truth, pred), n_truth=int(len(np.unique(truth[truth > 0]))),
        n_pred=int(len(np.unique(pred[pred > 0]))), **pq,
    )


def mean_scores(per_image: list[dict], keys: tuple[str, ...]) -> dict[str, float]:
    """Mean of ``keys`` over images (the mean-over-images convention)."""
    return {k: float(np.mean([r[k] for r in per_image])) if per_image else float("nan") for k in keys}
