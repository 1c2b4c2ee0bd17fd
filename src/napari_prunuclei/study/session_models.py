"""What the comparison knows of the zoo without running it: the schemes and CRs, each pair's known accuracy and
notes, a run's warning, per-layer sparsity, and the CR sweep on one image."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from napari_prunuclei.base.constants import (
    DEFAULT_CRS,
    SCHEME_LABELS,
)
from napari_prunuclei.base.progress import CancelFn, Job, Progress, check_cancelled
from napari_prunuclei.nuclei.agreement import Agreement, agreement_scores
from napari_prunuclei.runtime.pairs import ModelSpec, load_pair

if TYPE_CHECKING:  # the session imports this module
    from collections.abc import Callable

    from napari_prunuclei.study.session import ComparisonResult

__all__ = [
    "ImageSweepRow",
    "own_thresholds",
    "whose_own",
    "edited_thresholds",
    "layer_sparsity",
    "model_note",
    "run_warning",
    "low_agreement",
    "mark_warm",
    "known_range",
    "RANGE_MIN_NUCLEI",
    "UNLIKE_SHARE",
    "verdict",
    "BUDGET",
    "sweep_image",
    "zoo_pairs",
    "zoo_models",
]


@dataclass
class ImageSweepRow:
    """One model of the widget's CR sweep on one image: agreement with dense (and ground truth)."""

    scheme: str
    cr: float
    fine_tuned: bool
    vs_dense: Agreement
    vs_truth: Agreement | None = None
    seconds: float | None = None  # end to end on this image (one run)
    dense_seconds: float | None = None  # dense on this image, the same way (the time axis: seconds / dense's)
    params: dict | None = None  # the pair's thresholds as run (its own, the registry's)
    others: float | None = None  # the share of the CPUs other work used during this pair's run (noise)
    dense_others: float | None = None  # the same during dense's run of ``dense_seconds``
    dense_vs_truth: Agreement | None = None  # dense against the ground truth (the baseline of ``vs_truth``)


_WARM: set[tuple] = set()  # (model, device, precision, image size, pixel size) run before in this process


def mark_warm(model: str, device, precision: str, shape: tuple, pixel_size: float | None = None) -> bool:
    """Note that ``model`` ran on this device and precision at an image of ``shape`` (rows, columns first) and
    pixel size (the models' input size follows both); whether it is its first such run in this process (its
    seconds then hold the warm-up: weights prepared, kernels chosen). A sweep's runs count (a pathologist's run
    after a sweep was said to hold one, session 39)."""
    key = (model, str(device), precision, tuple(shape[:2]), pixel_size)
    first = key not in _WARM
    _WARM.add(key)
    return first


def zoo_pairs() -> list[tuple[str, float]]:
    """Every registered (scheme, CR) of the fine-tuned zoo, unstructured and channel, dense left out."""
    return [(s, float(c)) for s, crs in zoo_models().items() if s != "dense" for c in crs]


def sweep_image(rgb: np.ndarray, pairs: list[tuple[str, float]] | None, device: str,
                truth: np.ndarray | None = None, cancelled: CancelFn | None = None, precision: str = "auto",
                pixel_size: float | None = None,
                on_rows: Callable[[list[ImageSweepRow]], None] | None = None) -> Job[list[ImageSweepRow]]:
    """Each (scheme, CR) of ``pairs`` (None: every zoo pair, :func:`zoo_pairs`) on one image, fine-tuned where
    the zoo has it, else one-shot, each pair with its own thresholds and dense with dense's, as ``prunuclei
    sweep`` does; with each pair's end-to-end seconds and dense's (dense run again at the end, warm: its first
    run holds the session's warm-up). Yields Progress; ``on_rows``, if given, gets the rows so far after each
    pair (their ``dense_seconds`` are dense's first run until the warm one at the end), e.g. to draw them as
    they come."""
    from napari_prunuclei.base.machine import cpu_snapshot, others_share
    from napari_prunuclei.models.zoo import find_entry
    from napari_prunuclei.runtime.pipeline import segment

    pairs = zoo_pairs() if pairs is None else pairs
    total = 2 + len(pairs)
    dense = segment(rgb, load_pair(), device=device, precision=precision, tiling="whole", cancelled=cancelled,
                    pixel_size=pixel_size)
    mark_warm(load_pair().spec.label, device, precision, rgb.shape, pixel_size)
    yield Progress(1, total, "dense done")
    baseline = None if truth is None else agreement_scores(truth, dense.labels)
    rows = []
    for i, (scheme, cr) in enumerate(pairs):
        check_cancelled(cancelled)
        ft = find_entry("semantic", scheme, cr) is not None
        before = cpu_snapshot()
        pair = load_pair(scheme, cr, ft)
        seg = segment(rgb, pair, device=device, precision=precision, tiling="whole", cancelled=cancelled,
                      pixel_size=pixel_size)
        mark_warm(pair.spec.label, device, precision, rgb.shape, pixel_size)
        rows.append(ImageSweepRow(scheme, float(cr), ft, agreement_scores(dense.labels, seg.labels),
                                  None if truth is None else agreement_scores(truth, seg.labels),
                                  seg.info.seconds.get("total"), dense.info.seconds.get("total"),
                                  seg.info.watershed.as_dict(), others_share(before, cpu_snapshot()),
                                  dense_vs_truth=baseline))
        if on_rows is not None:
            on_rows(list(rows))
        yield Progress(i + 2, total, f"{SCHEME_LABELS[scheme]} CR{cr:g} done ({i + 1} of {len(pairs)} pairs)")
    if rows:  # dense's first run held the session's warm-up (3.2 s against 1.2 s run again): timed again, warm
        before = cpu_snapshot()
        again = segment(rgb, load_pair(), device=device, precision=precision, tiling="whole", cancelled=cancelled,
                        pixel_size=pixel_size).info.seconds.get("total")
        busy = others_share(before, cpu_snapshot())  # (every ratio's denominator: its noise flagged too)
        rows = [replace(r, dense_seconds=again, dense_others=busy) for r in rows]
        yield Progress(total, total, "dense timed again")
    return rows


def zoo_models() -> dict[str, list[float]]:
    """Scheme -> compression ratios of the registry's fine-tuned pairs (both branches shipped): the
    paper's two schemes first, then any other scheme the registry holds (e.g. structured ones), then
    dense. Without a registry: the default ladder for the paper's schemes."""
    from napari_prunuclei.models.zoo import registry

    try:
        models = registry()["models"]
    except Exception:  # noqa: BLE001 - no registry: one-shot values still work
        return {"networkwide": list(DEFAULT_CRS), "layerwise": list(DEFAULT_CRS), "dense": [1.0]}
    branches: dict[tuple[str, float], set] = {}
    for e in models:
        if e.get("fine_tuned", True) and e["scheme"] != "dense":
            branches.setdefault((e["scheme"], float(e["cr"])), set()).add(e["branch"])
    pairs: dict[str, list[float]] = {}
    for (scheme, cr), b in branches.items():
        if {"semantic", "distance"} <= b:
            pairs.setdefault(scheme, []).append(cr)
    first = [s for s in ("networkwide", "layerwise") if s in pairs]
    order = first + sorted(s for s in pairs if s not in first)
    return {**{s: sorted(pairs[s]) for s in order}, "dense": [1.0]}


def model_note(spec: ModelSpec) -> tuple[str, bool]:
    """What is known of a model's accuracy before it runs (the registry's metrics: MoNuSeg test and,
    where stored, GBM40), and whether the user should be warned (unmeasured one-shot models, pairs
    known to collapse, or losing more than 10 % AJI against dense)."""
    from napari_prunuclei.models.zoo import find_entry

    try:
        dense = find_entry("semantic", "dense", 1) or {}
        entry = None if spec.is_dense else find_entry("semantic", spec.scheme, spec.cr, spec.fine_tuned)
    except Exception:  # noqa: BLE001 - no registry: nothing known
        return "accuracy unknown (no model registry)", True
    sets = (("metrics", "MoNuSeg test"), ("metrics_gbm40", "GBM40"))
    if spec.is_dense:
        parts = [f"{name} AJI {dense[key]['aji']:.3f}" for key, name in sets if "aji" in (dense.get(key) or {})]
        return " · ".join(parts) if parts else "not measured", False
    if entry is None or not spec.fine_tuned:
        return ("one-shot pruning (not fine-tuned): accuracy not measured; one-shot models often find few "
                "or no nuclei"), True
    parts, warn, collapsed = [], False, False
    for key, name in sets:
        m, d = entry.get(key) or {}, dense.get(key) or {}
        if "aji" not in m or "aji" not in d:
            continue
        drop = (d["aji"] - m["aji"]) / d["aji"]
        parts.append(f"{name} AJI {m['aji']:.3f} ({-100 * drop:+.1f} % vs dense {d['aji']:.3f})")
        warn = warn or drop > 0.1
        collapsed = collapsed or m["aji"] < 0.3
    if not parts:  # a newly built stage: the held-back train images its thresholds were tuned on, until the sweep
        m, d = entry.get("metrics_held_back") or {}, dense.get("metrics_held_back") or {}
        if "aji" in m and "aji" in d:
            drop = (d["aji"] - m["aji"]) / d["aji"]
            return (f"4 held-back train images AJI {m['aji']:.3f} ({-100 * drop:+.1f} % vs dense {d['aji']:.3f}); "
                    f"not yet measured on test", drop > 0.1)
        return "fine-tuned; accuracy not measured", True
    text = " · ".join(parts)
    if collapsed:
        return text + ": this pair collapses (AJI under 0.3): its nuclei are missing, merged or split", True
    # the flag says why (a pathologist saw a bare ⚠, session 35)
    return (text + ": it loses over 10 % of dense's AJI: check its nuclei against the image", True) if warn \
        else (text, False)


def own_thresholds(spec: ModelSpec):
    """A model's own watershed thresholds (the registry's, tuned on held-back images; no weights loaded)."""
    from napari_prunuclei.models.zoo import default_watershed

    return default_watershed(spec.scheme, spec.cr, spec.fine_tuned)


def whose_own(spec: ModelSpec) -> str:
    """Whose a model's own thresholds are, in words: "its own", or "dense's" for a one-shot model (none tuned)."""
    return "its own" if spec.scheme == "dense" or spec.fine_tuned else "dense's"


def edited_thresholds(result: ComparisonResult):
    """Model A's thresholds where the run used others than its own (the widget's boxes), else None."""
    box = result.request.segment.params
    if box is None or result.pruned is None:
        return None
    own = own_thresholds(result.request.spec)
    return None if box.as_dict() == own.as_dict() else box


def truth_mismatch(result: ComparisonResult) -> str | None:
    """A warning when no model's nuclei match the ground truth (every AJI against it under
    :data:`TRUTH_MISMATCH_AJI`): the ground truth is likely another image's, or misplaced."""
    scores = {name: t for name, t in result.numbers.vs_truth.items() if t is not None}
    if not scores or max(t.aji for t in scores.values()) >= TRUTH_MISMATCH_AJI:
        return None
    name = f" '{result.truth_name}'" if result.truth_name else ""
    said = ", ".join(f"{model} {t.aji:.3f}" for model, t in scores.items())
    return (f"the ground truth{name} matches no model's nuclei (AJI {said}): is it this image's? Compare its "
            "outlines with the image before reading any number against it")


def run_warning(result: ComparisonResult) -> str | None:
    """A warning when the ground truth matches no model (:func:`truth_mismatch`), when a model found nothing,
    far fewer nuclei than the other (collapsed) or far more (it over-segments); it names the model, A or B."""
    mismatch = truth_mismatch(result)
    if mismatch is not None:
        return mismatch
    if result.pruned is None:
        return None
    n, label = result.pruned.n_nuclei, result.pruned.info.model
    if result.dense is None:
        return f"{label} found no nuclei" if n == 0 else None
    d, ref = result.dense.n_nuclei, result.dense.info.model
    sides = (("A", n, label), ("B", d, ref))
    for (who, mine, name), (_, theirs, other) in (sides, sides[::-1]):
        if theirs > 0 and mine < COLLAPSE * theirs:
            why = (f"at the edited thresholds (Restore gives {whose_own(result.request.spec)})"
                   if who == "A" and edited_thresholds(result)
                   else "has collapsed at this CR")
            return f"{who} ({name}) found {mine} nuclei, {other} {theirs}: {name} {why}; read its map with care"
    truth = next((t.n_reference for t in result.numbers.vs_truth.values() if t is not None), None)
    for (who, mine, name), (_, theirs, other) in (sides, sides[::-1]):
        if mine > OVERSEGMENT * max(theirs, 1) and mine >= 20:
            head = f"{who} ({name}) found {mine} nuclei, {other} {theirs}: far more nuclei than {other}"
            if truth is not None:  # the ground truth says which count is off
                off, why = ((name, "splits nuclei or marks background") if abs(mine - truth) >= abs(theirs - truth)
                            else (other, "misses nuclei"))
                return f"{head}; the ground truth has {truth}: {off} {why}; compare both maps with the image"
            return (f"{head} (either {name} splits nuclei or marks background, or {other} misses nuclei); compare "
                    "both maps with the image")
    return None


#: below this AJI against the ground truth for every model, the ground truth is taken for another image's (the
#: dense pair scores 0.65 on MoNuSeg test and 0.73 on GBM40; another tile's nuclei give about 0.1)
TRUTH_MISMATCH_AJI = 0.3
#: a model finding fewer than this share of the other's nuclei has collapsed; more than OVERSEGMENT times them,
#: it over-segments
COLLAPSE = 0.1
OVERSEGMENT = 1.5


#: the accuracy a pruned model may lose against its reference and still count as "as good" (the paper's 2 %)
BUDGET = 0.02
#: the fewest nuclei of dense for A's agreement with it to be read against its known range (a small region's AJI
#: swings with a few nuclei; the annotated images have 62 to 818 in their ground truths)
RANGE_MIN_NUCLEI = 50
#: the share of those images on which A agreed with dense better, for a run to be flagged as on an unlike image
UNLIKE_SHARE = 0.95


def verdict(result: ComparisonResult, edit: bool = True) -> str | None:
    """After a run of A against B: against the ground truth when the run had one (A's AJI within the 2 % budget
    of B's, or how far outside), else how much A agrees with B (AJI vs B) and A's known drop on MoNuSeg test;
    with ``edit``, A's thresholds named when they were edited (a pathologist: the verdict said again after a
    sweep or an image switch dropped that note, session 38)."""
    said = _verdict(result)
    box = edited_thresholds(result) if said and edit else None
    if box is not None:
        said += (f" (A's thresholds edited: fg {box.fg_threshold:g}, marker {box.marker_threshold:g}, "
                 f"min size {box.min_size:g})")
    return said


def _verdict(result: ComparisonResult) -> str | None:
    if result.pruned is None or result.dense is None:  # one model alone: against the ground truth, if any
        one = result.pruned or result.dense
        t = None if one is None else result.numbers.vs_truth.get(one.info.model)
        if t is None:
            return None
        mismatch = truth_mismatch(result)
        return (f"{one.info.model} not judged against the ground truth: it does not match (AJI {t.aji:.3f})"
                if mismatch else f"{one.info.model} against the ground truth: AJI {t.aji:.3f}, PQ {t.pq:.3f}, "
                f"{t.n_other} vs {t.n_reference} nuclei (no model B to compare with)")
    a, b = result.pruned.info.model, result.dense.info.model
    truth = result.numbers.vs_truth
    ta, tb = truth.get(a), truth.get(b)
    if ta is not None and tb is not None and truth_mismatch(result) is not None:
        return f"{a} and {b} not judged against the ground truth: it matches neither (AJI {ta.aji:.3f}, {tb.aji:.3f})"
    if ta is not None and tb is not None and tb.aji > 0:
        drop = (tb.aji - ta.aji) / tb.aji
        where = "within" if drop <= BUDGET else "outside"
        return (f"{a} {where} the {100 * BUDGET:.0f} % budget against the ground truth: AJI {ta.aji:.3f} vs "
                f"{b}'s {tb.aji:.3f} ({-100 * drop:+.1f} %)")
    agree = result.numbers.vs_dense
    note, _ = model_note(result.request.spec)
    known = known_range(result)
    unlike = low_agreement(result, known)  # (the range said once: the status is short)
    seen = f" (median {known['aji_median']:.3f} on {known['n_images']} annotated 40x images)" if known and \
        not unlike else ""
    return (f"{a} against {b}: AJI {agree.aji:.3f}{seen}, {result.pruned.n_nuclei} vs {result.dense.n_nuclei} "
            f"nuclei (no ground truth; known: {note})" + (f". ⚠ {unlike}" if unlike else "")) \
        if agree is not None else None


def known_range(result: ComparisonResult) -> dict | None:
    """A's agreement with dense on annotated 40x images (the registry's ``agreement_with_dense``: MoNuSeg test
    and GBM40, :mod:`~napari_prunuclei.study.known_agreement`), where the run is comparable: A a zoo pair at
    its own thresholds against dense, and enough nuclei for AJI to say something (a small region's swings)."""
    from napari_prunuclei.models.zoo import find_entry

    agree, spec = result.numbers.vs_dense, result.request.spec
    if (agree is None or result.pruned is None or result.dense is None or spec.is_dense or not spec.fine_tuned
            or not (result.request.reference or ModelSpec()).is_dense or edited_thresholds(result) is not None
            or result.dense.n_nuclei < RANGE_MIN_NUCLEI):
        return None
    try:
        known = (find_entry("semantic", spec.scheme, spec.cr) or {}).get("agreement_with_dense") or None
    except Exception:  # noqa: BLE001 - no registry: nothing known
        return None
    keys = ("n_images", "aji_min", "aji_median", "aji_max", "aji_sorted", "data")  # (a hand-edited registry's
    return known if isinstance(known, dict) and all(k in known for k in keys) else None  # record: not used)


def low_agreement(result: ComparisonResult, known: dict | None | bool = False) -> str | None:
    """Where A agrees with dense less than on nearly all (:data:`UNLIKE_SHARE`) of the annotated images of
    :func:`known_range`: this image is likely unlike them, and A's known accuracy may not hold on it (a 20x
    tile agreed at 0.70 against 0.88 on 40x tiles, with no flag: pathologist, session 37). ``known``: the
    :func:`known_range` of ``result`` where the caller has it (the registry read once per verdict)."""
    known = known_range(result) if known is False else known
    if known is None or not known.get("aji_sorted"):
        return None
    above = sum(v > result.numbers.vs_dense.aji for v in known["aji_sorted"])
    if above < UNLIKE_SHARE * len(known["aji_sorted"]):
        return None
    return (f"lower than on {above} of the {known['n_images']} annotated 40x images A was measured on (median "
            f"{known['aji_median']:.3f}): this image may be unlike them, and neither model's known accuracy may hold "
            "here; judge the nuclei against the image")


def layer_sparsity(spec: ModelSpec) -> dict[str, list[dict]]:
    """Per-layer sparsity of both branches of one model."""
    from napari_prunuclei.pruning.magnitude import sparsity_report

    pair = load_pair(spec)
    return {"semantic": sparsity_report(pair.semantic), "distance": sparsity_report(pair.distance)}
