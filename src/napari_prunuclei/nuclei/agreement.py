"""Where two instance segmentations disagree (pruned against dense, or against ground truth)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from napari_prunuclei.base.constants import DISAGREEMENT_KINDS
from napari_prunuclei.nuclei.metrics import aji, compact_ids, dice, match_instances, overlap_matrix, panoptic_quality

__all__ = ["DISAGREEMENT_KINDS", "Disagreement", "disagreement", "Agreement", "agreement_scores"]


@dataclass
class Disagreement:
    """``image``: 0 where the two agree, else a key of :data:`DISAGREEMENT_KINDS`; ``counts`` per kind."""

    image: np.ndarray
    counts: dict[str, int]


def disagreement(reference: np.ndarray, other: np.ndarray, thr: float = 0.5, part: float = 0.2) -> Disagreement:
    """Mark nuclei of ``reference`` or ``other`` that the other does not match (IoU <= ``thr``).

    - missed: a reference nucleus that ``other`` lacks;
    - extra: a nucleus of ``other`` that the reference lacks;
    - split/merged: an unmatched nucleus covered for at least ``part`` of its area by two
      or more nuclei of the other segmentation.
    """
    ref, oth = np.asarray(reference), np.asarray(other)
    inter, area_r, area_o, nr, no = overlap_matrix(ref, oth)
    pairs, _, _, _ = match_instances(ref, oth, thr)
    matched_r = np.zeros(nr + 1, bool)
    matched_o = np.zeros(no + 1, bool)
    matched_r[pairs[:, 0]] = True
    matched_o[pairs[:, 1]] = True
    sub = inter[1:, 1:].tocsr()
    frac_r = sub.multiply(1.0 / np.maximum(area_r[1:, None], 1)).tocsr()  # share of each ref object
    frac_o = sub.multiply(1.0 / np.maximum(area_o[None, 1:], 1)).tocsc()  # share of each other object
    n_big_r = np.asarray((frac_r >= part).sum(axis=1)).ravel()
    n_big_o = np.asarray((frac_o >= part).sum(axis=0)).ravel()
    kind_r = np.zeros(nr + 1, np.uint8)
    kind_o = np.zeros(no + 1, np.uint8)
    kind_r[1:] = np.where(matched_r[1:], 0, np.where(n_big_r >= 2, 3, 1))
    kind_o[1:] = np.where(matched_o[1:], 0, np.where(n_big_o >= 2, 3, 2))
    # the pieces of a split (or the parts of a merge) are split/merged too, not extra/missed
    piece_o = np.asarray((frac_o >= part).T @ (kind_r[1:] == 3).astype(float)).ravel() > 0
    piece_r = np.asarray((frac_r >= part) @ (kind_o[1:] == 3).astype(float)).ravel() > 0
    kind_o[1:][(kind_o[1:] == 2) & piece_o] = 3
    kind_r[1:][(kind_r[1:] == 1) & piece_r] = 3
    img = kind_r[compact_ids(ref)[0]]  # ids 0..n index the kind tables
    o_img = kind_o[compact_ids(oth)[0]]
    img = np.where(img == 0, o_img, img)  # a reference object's kind wins where both disagree
    counts = {
        "missed": int((kind_r[1:] == 1).sum()),
        "extra": int((kind_o[1:] == 2).sum()),
        "split/merged": int((kind_r[1:] == 3).sum() + (kind_o[1:] == 3).sum()),
    }
    return Disagreement(img.astype(np.uint8), counts)


@dataclass(frozen=True)
class Agreement:
    """How well ``other`` matches ``reference``: AJI, PQ, pixel Dice and both nucleus counts."""

    aji: float
    pq: float
    dice: float
    n_reference: int
    n_other: int

    def as_dict(self) -> dict:
        return asdict(self)


def agreement_scores(reference: np.ndarray, other: np.ndarray) -> Agreement:
    """AJI, PQ, Dice and nucleus counts of ``other`` against ``reference``."""
    reference, other = np.asarray(reference), np.asarray(other)
    pq = panoptic_quality(reference, other)
    return Agreement(
        aji=aji(reference, other), pq=pq["pq"], dice=dice(reference, other),
        n_reference=int(len(np.unique(reference)) - (reference.min(initial=0) == 0)),
        n_other=int(len(np.unique(other)) - (other.min(initial=0) == 0)),
    )
