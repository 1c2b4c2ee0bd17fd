"""Where two instance segmentations disagree (model A against its reference B, or against ground truth).

A disagreement is counted in *events*: one event is one connected group of nuclei that the other segmentation
does not match (IoU <= 0.5): a missed B nucleus, an extra A nucleus, one B nucleus split into several A nuclei
(one split, however many pieces), several B nuclei merged into one A nucleus (one merge).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from napari_prunuclei.base.constants import DISAGREEMENT_COLORS, DISAGREEMENT_KINDS
from napari_prunuclei.io.geojson import Region
from napari_prunuclei.io.measure import compact
from napari_prunuclei.nuclei.metrics import aji, dice, match_overlaps, panoptic_quality

__all__ = ["DISAGREEMENT_KINDS", "KIND_VALUES", "DisagreementEvent", "Disagreement", "disagreement", "event_text",
           "event_regions", "Agreement", "agreement_scores"]

#: kind -> its value in the disagreement image
KIND_VALUES = {kind: value for value, kind in DISAGREEMENT_KINDS.items()}


@dataclass(frozen=True)
class DisagreementEvent:
    """One place where A (``other``) and B (``reference``) disagree: one connected group of unmatched nuclei.

    ``kind``: missed, extra, split or merged; ``a_ids``/``b_ids``: the ids (as in each label image) of A's and
    B's nuclei involved (a split also names a piece that is matched elsewhere, a merge a part); ``centroid``
    (row, col), ``bbox`` (row0, col0, row1, col1, end excluded) and ``area`` (px) of the group's unmatched
    nuclei, in the label images' frame; ``mask``: their pixels within ``bbox``.
    """

    kind: str
    a_ids: tuple[int, ...]
    b_ids: tuple[int, ...]
    centroid: tuple[float, float]
    bbox: tuple[int, int, int, int]
    area: int
    mask: np.ndarray = field(repr=False, compare=False)


@dataclass
class Disagreement:
    """``image``: 0 where the two agree, else a key of :data:`DISAGREEMENT_KINDS` (where nuclei of two events
    overlap, B's event's kind); ``counts``: events per kind; ``events``: in reading order (top to bottom)."""

    image: np.ndarray
    counts: dict[str, int]
    events: list[DisagreementEvent] = field(default_factory=list)


def _kind_of_group(n_split: int, n_merged: int, n_b: int, n_a: int, n_frag_a: int = 0, n_frag_b: int = 0) -> str:
    """A group with a split B nucleus is a split, with a merging A nucleus a merge (a tangle of both: split when
    A has more nuclei in it than B, else merged); an A fragment inside a B nucleus is a split of it, a B nucleus
    inside an A nucleus a merge into it; a lone nucleus is missed (B) or extra (A)."""
    if not (n_split or n_merged) and (n_frag_a or n_frag_b):
        n_split, n_merged = n_frag_a, n_frag_b
    if n_split and n_merged:
        return "split" if n_a > n_b else "merged"
    if n_split:
        return "split"
    if n_merged:
        return "merged"
    return "missed" if n_b else "extra"


def disagreement(reference: np.ndarray, other: np.ndarray, thr: float = 0.5, part: float = 0.2,
                 inside: float = 0.5) -> Disagreement:
    """Where ``other`` (model A) and ``reference`` (model B) disagree, as events (see the module's note).

    A nucleus is unmatched when no nucleus of the other segmentation has IoU > ``thr`` with it. An unmatched B
    nucleus covered for at least ``part`` of its area by each of two or more A nuclei is split, and those
    unmatched A nuclei are its pieces; an unmatched A nucleus covering two or more B nuclei so is merged, those
    unmatched B nuclei its parts. A split or merge and its pieces or parts, joined where they share a nucleus,
    make one event. An unmatched A nucleus lying for at least ``inside`` of its area in one B nucleus is a
    fragment of it (a split of that B nucleus, even when B's nucleus is matched to another A nucleus, which the
    event then names); an unmatched B nucleus so inside one A nucleus is merged into it. Every other unmatched
    nucleus is an event of its own (missed or extra).
    """
    ref_c, ids_r = compact(reference)  # ids 0..n (one sort of each image), and each index's own id
    oth_c, ids_o = compact(other)
    if ref_c.shape != oth_c.shape:
        raise ValueError(f"reference {ref_c.shape} and other {oth_c.shape} differ in shape")
    nr, no = len(ids_r) - 1, len(ids_o) - 1
    inter = sparse.coo_matrix((np.ones(ref_c.size, np.int64), (ref_c.ravel(), oth_c.ravel())),
                              shape=(nr + 1, no + 1)).tocsr()
    area_r, area_o = np.asarray(inter.sum(axis=1)).ravel(), np.asarray(inter.sum(axis=0)).ravel()
    pairs, _ = match_overlaps(inter, area_r, area_o, thr)
    free_r = np.ones(nr + 1, bool)
    free_o = np.ones(no + 1, bool)
    free_r[pairs[:, 0]] = False
    free_o[pairs[:, 1]] = False
    free_r, free_o = free_r[1:], free_o[1:]
    match_r = np.zeros(nr + 1, np.int64)  # the A nucleus (1-based; 0: none) each B nucleus is matched to
    match_o = np.zeros(no + 1, np.int64)
    match_r[pairs[:, 0]], match_o[pairs[:, 1]] = pairs[:, 1], pairs[:, 0]
    sub = inter[1:, 1:].tocsr()
    # big_r[i, j]: A nucleus j covers >= part of B nucleus i; big_o[i, j]: B nucleus i covers >= part of A nucleus j
    big_r = (sub.multiply(1.0 / np.maximum(area_r[1:, None], 1)) >= part).tocsr().astype(float)
    big_o = (sub.multiply(1.0 / np.maximum(area_o[None, 1:], 1)) >= part).tocsr().astype(float)
    split_r = free_r & (np.asarray(big_r.sum(axis=1)).ravel() >= 2)
    merged_o = free_o & (np.asarray(big_o.sum(axis=0)).ravel() >= 2)
    # fragments: an unmatched nucleus mostly inside one nucleus of the other model (its host, matched or not)
    host_o = np.asarray(sub.argmax(axis=0)).ravel() if nr and no else np.zeros(no, int)  # B host of each A
    host_r = np.asarray(sub.argmax(axis=1)).ravel() if nr and no else np.zeros(nr, int)  # A host of each B
    share_o = np.asarray(sub.max(axis=0).todense()).ravel() / np.maximum(area_o[1:], 1) if nr and no else \
        np.zeros(no)
    share_r = np.asarray(sub.max(axis=1).todense()).ravel() / np.maximum(area_r[1:], 1) if nr and no else \
        np.zeros(nr)
    frag_o = free_o & (share_o >= inside) & ~merged_o
    frag_r = free_r & (share_r >= inside) & ~split_r
    hosts = sparse.coo_matrix((np.ones(int(frag_o.sum())), (host_o[frag_o], np.flatnonzero(frag_o))),
                              shape=(nr, no)) + sparse.coo_matrix(
        (np.ones(int(frag_r.sum())), (np.flatnonzero(frag_r), host_r[frag_r])), shape=(nr, no))
    # links between unmatched nuclei: a split B nucleus and its pieces, a merging A nucleus and its parts, a
    # fragment and its (unmatched) host
    links = sparse.diags(split_r.astype(float)) @ big_r + big_o @ sparse.diags(merged_o.astype(float)) + hosts
    links = sparse.diags(free_r.astype(float)) @ links @ sparse.diags(free_o.astype(float))
    # fragments of one matched pair of hosts (several B nuclei swallowed by one A nucleus, several A pieces of one
    # B nucleus, or both crosswise: a B nucleus inside A's and an A nucleus inside B's of one pair) are one event,
    # not one each (a pathologist counted one crosswise group as a merge and a split, session 39): each joined to
    # the pair's first fragment, in the graph (a union: a relabelling loop lost a pair's later fragments, review)
    first: dict[tuple[int, int], int] = {}  # (B, A) of the matched pair -> its first fragment's node
    same = []
    for node, key in [*((i, (int(match_o[host_r[i] + 1]) - 1, int(host_r[i]))) for i in np.flatnonzero(frag_r)
                        if not free_o[host_r[i]]),
                      *((nr + j, (int(host_o[j]), int(match_r[host_o[j] + 1]) - 1)) for j in np.flatnonzero(frag_o)
                        if not free_r[host_o[j]])]:
        same.append((first.setdefault(key, node), node))
    if nr + no == 0:
        group = np.zeros(0, int)
    else:
        graph = sparse.bmat([[None, links], [links.T, None]], format="csr") if nr and no else \
            sparse.csr_matrix((nr + no, nr + no))
        if same:
            a, b = np.array(same).T
            graph = graph + sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=graph.shape)
        _, group = connected_components(graph, directed=False)
    free = np.concatenate([free_r, free_o])
    nodes = np.flatnonzero(free)
    order = nodes[np.argsort(group[nodes], kind="stable")]
    starts = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]]) if len(order) else np.zeros(0, int)
    box_r, box_o = ndi.find_objects(ref_c), ndi.find_objects(oth_c)
    kind_r = np.zeros(nr + 1, np.uint8)
    kind_o = np.zeros(no + 1, np.uint8)
    big_o_by_a = big_o.tocsc()
    events = []
    for members in np.split(order, starts[1:]) if len(order) else []:
        b = members[members < nr]  # 0-based B indices
        a = members[members >= nr] - nr  # 0-based A indices
        kind = _kind_of_group(int(split_r[b].sum()), int(merged_o[a].sum()), len(b), len(a),
                              int(frag_o[a].sum()), int(frag_r[b].sum()))
        kind_r[b + 1] = kind_o[a + 1] = KIND_VALUES[kind]
        # the nuclei involved: the group, and every piece of a split or part of a merge (matched elsewhere too)
        # ... and a fragment's host with the nucleus it is matched to
        host_b, host_a = host_o[a[frag_o[a]]], host_r[b[frag_r[b]]]
        partner_a = match_r[host_b + 1][match_r[host_b + 1] > 0] - 1
        partner_b = match_o[host_a + 1][match_o[host_a + 1] > 0] - 1
        a_all = np.union1d(np.union1d(a, big_r[b[split_r[b]]].indices), np.union1d(host_a, partner_a))
        b_all = np.union1d(np.union1d(b, big_o_by_a[:, a[merged_o[a]]].indices), np.union1d(host_b, partner_b))
        slices = [box_r[i] for i in b] + [box_o[j] for j in a]
        r0, r1 = min(s[0].start for s in slices), max(s[0].stop for s in slices)
        c0, c1 = min(s[1].start for s in slices), max(s[1].stop for s in slices)
        mask = np.isin(ref_c[r0:r1, c0:c1], b + 1) | np.isin(oth_c[r0:r1, c0:c1], a + 1)
        rows, cols = np.nonzero(mask)
        events.append(DisagreementEvent(
            kind, tuple(int(i) for i in ids_o[a_all + 1]), tuple(int(i) for i in ids_r[b_all + 1]),
            (float(rows.mean() + r0), float(cols.mean() + c0)), (int(r0), int(c0), int(r1), int(c1)),
            int(mask.sum()), mask))
    events.sort(key=lambda e: (round(e.centroid[0]), e.centroid[1]))
    img = kind_r[ref_c]  # ids 0..n index the kind tables
    img = np.where(img == 0, kind_o[oth_c], img)  # a B nucleus's kind wins where both disagree
    counts = {kind: sum(e.kind == kind for e in events) for kind in DISAGREEMENT_KINDS.values()}
    return Disagreement(img.astype(np.uint8), counts, events)


def event_text(event: DisagreementEvent) -> str:
    """B's nuclei and what A made of them, e.g. ``B #41 -> A #88, #90, #91`` (a split). A "split" into one piece
    (one A nucleus lying inside a B nucleus, too small to match it) and a "merge" of one part say so: to a
    pathologist they read as an undersized or an oversized nucleus, not as one cut in two."""
    def ids(tag: str, values: tuple[int, ...]) -> str:
        return f"{tag} " + ", ".join(f"#{i}" for i in values) if values else f"no {tag} nucleus"

    text = f"{ids('B', event.b_ids)} -> {ids('A', event.a_ids)}"
    if event.kind == "split" and len(event.a_ids) == 1 and len(event.b_ids) == 1:
        text += " (one piece: half or more of A's nucleus lies in B's, and they do not match)"
    elif event.kind == "merged" and len(event.a_ids) == 1 and len(event.b_ids) == 1:
        text += " (one part: half or more of B's nucleus lies in A's, and they do not match)"
    return text


def _rgb(color: str) -> tuple[int, int, int]:
    h = color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def event_regions(events: list[DisagreementEvent]) -> list[Region]:
    """Events as exportable regions (:func:`napari_prunuclei.io.export.iter_export_regions`): classified by
    kind in the disagreement layer's colour, with the kind and both models' ids as properties."""
    return [Region(e.kind, _rgb(DISAGREEMENT_COLORS[KIND_VALUES[e.kind]]), e.mask, e.bbox[:2],
                   {"kind": e.kind, "a_ids": list(e.a_ids), "b_ids": list(e.b_ids)}) for e in events]


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
