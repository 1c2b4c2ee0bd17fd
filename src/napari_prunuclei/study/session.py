"""What the widget runs, without Qt: a comparison request, the run as a job, the numbers.

The widget builds a :class:`CompareRequest`, hands :func:`run` (a job generator of the
one progress protocol) to a napari ``thread_worker``, and gives the returned
:class:`ComparisonResult` to the comparison state (``_state.py``), which owns the layers.
Every model goes through :func:`napari_prunuclei.runtime.pipeline.iter_segment`; the dense
reference always runs with the dense model's own thresholds.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from napari_prunuclei.base import machine
from napari_prunuclei.base.constants import (
    ZARR_PIXELS,
)
from napari_prunuclei.base.machine import others_share
from napari_prunuclei.base.progress import CancelFn, Job, Progress, check_cancelled
from napari_prunuclei.nuclei.agreement import Agreement, DisagreementEvent, agreement_scores, disagreement
from napari_prunuclei.nuclei.watershed import WatershedParams
from napari_prunuclei.runtime.pairs import ModelPair, ModelSpec, load_pair
from napari_prunuclei.runtime.pipeline import iter_segment, rewatershed
from napari_prunuclei.runtime.request import Segmentation, SegmentRequest
from napari_prunuclei.runtime.tiles import tile_grid
from napari_prunuclei.study.session_models import layer_sparsity, mark_warm, own_thresholds

__all__ = [
    "CompareRequest",
    "Numbers",
    "ComparisonResult",
    "run",
    "model_requests",
    "rerun_watershed",
    "compute_numbers",
    "mean_area",
    "Scratch",
    "label_pyramid",
    "nucleus_features",
    "truth_mean_area",
    "truth_digest",
]


@dataclass(frozen=True)
class CompareRequest:
    """A run of the widget: the chosen model A (``segment``) on one image layer, compared with a
    reference model B (``reference``; dense unless another is named) or alone (``compare_dense=False``).

    ``region`` (row0, row1, col0, col1): the part of the image layer that ran (a slide's visible
    region), None for the whole layer; ``pixel_size``: micrometres per pixel, None when unknown.
    """

    image_name: str
    segment: SegmentRequest = field(default_factory=SegmentRequest)
    compare_dense: bool = True
    reference: ModelSpec | None = None
    region: tuple[int, int, int, int] | None = None
    pixel_size: float | None = None

    @property
    def spec(self) -> ModelSpec:
        return self.segment.spec

    @property
    def reference_spec(self) -> ModelSpec | None:
        """Model B, or None when A runs alone (no comparison asked, or B is A itself)."""
        if not self.compare_dense:
            return None
        ref = load_pair(self.reference or ModelSpec()).spec
        return None if ref == load_pair(self.spec).spec else ref

    @property
    def offset(self) -> tuple[int, int]:
        """Where the run's (0, 0) lies in the image layer."""
        return (0, 0) if self.region is None else (int(self.region[0]), int(self.region[2]))


@dataclass
class Numbers:
    """The numbers shown beside the picture; ``disagreement``: disagreement *events* of A with B per kind (one
    B nucleus split into three A nuclei is one split; see :mod:`napari_prunuclei.nuclei.agreement`)."""

    nuclei: dict[str, int]
    vs_dense: Agreement | None = None
    disagreement: dict[str, int] | None = None
    vs_truth: dict[str, Agreement] = field(default_factory=dict)
    tiled: bool = False
    truth_mean_area_px: float | None = None  # the ground truth's mean nucleus area, in pixels of the image


@dataclass
class ComparisonResult:
    """One run: the pruned model's and the dense model's segmentations (either may be None), the
    disagreement image (kinds) and its events (in the run's frame: add the request's offset for the image's),
    the numbers, and the chosen model's per-layer sparsity."""

    request: CompareRequest
    pruned: Segmentation | None
    dense: Segmentation | None
    numbers: Numbers
    disagreement: np.ndarray | None = None
    sparsity: dict[str, list[dict]] | None = None
    scratch: list[Path] = field(default_factory=list)
    #: per-nucleus measurements of each model's instances (``"dense"``/``"pruned"`` -> columns), whole mode
    features: dict[str, dict[str, list]] = field(default_factory=dict)
    #: slides: each model's labels as a pyramid (full resolution, then every 2nd, 4th... pixel), made in
    #: the worker so that napari reads only small levels on the GUI thread
    pyramids: dict[str, list] = field(default_factory=dict)
    #: the ground-truth layer the numbers were scored against (None: none), named in the report
    truth_name: str | None = None
    #: where A and B disagree, one event per connected group of unmatched nuclei (None: no comparison)
    events: list[DisagreementEvent] | None = None
    #: a digest of the ground truth the numbers were scored against (a threshold edit keeps B's scores only
    #: against the very same truth)
    truth_digest: str | None = None
    #: A's and B's networks and watershed timed properly (:func:`~napari_prunuclei.study.timing.time_pair`),
    #: for this run only; None until asked
    timing: object | None = None
    #: the share of this process's CPUs other work used during the run (its one-run seconds are noisy above
    #: :data:`~napari_prunuclei.base.machine.BUSY_SHARE`); None: unknown
    others: float | None = None
    #: made by a threshold edit: the networks' seconds are the run's, the watershed's timed again alone
    rewatershed: bool = False
    #: the models whose first run in this process (at this image size, device and precision) this was: their
    #: one-run seconds hold the warm-up (weights prepared, kernels chosen)
    first_runs: list[str] = field(default_factory=list)
    #: a threshold edit's result: the run it was edited from (its thresholds set back give that run again)
    ran: ComparisonResult | None = field(default=None, repr=False, compare=False)

    @property
    def chosen(self) -> Segmentation:
        """The model the user chose (dense on a dense-only run)."""
        return self.pruned if self.pruned is not None else self.dense

    @property
    def tiled(self) -> bool:
        return self.chosen.tiled

    def release(self) -> None:
        """Remove this run's on-disk scratch stores (call once its layers show other data)."""
        for p in self.scratch:
            shutil.rmtree(p, ignore_errors=True)
        self.scratch.clear()


class Scratch:
    """On-disk label stores for slides above :data:`ZARR_PIXELS`, under one folder per widget."""

    def __init__(self) -> None:
        self.root: Path | None = None

    def labels(self, shape: tuple[int, int], chunk: int) -> tuple[object, Path]:
        from napari_prunuclei.runtime.stitch import label_store

        if self.root is None or not self.root.is_dir():
            self.root = Path(tempfile.mkdtemp(prefix="prunuclei_"))
        folder = Path(tempfile.mkdtemp(dir=self.root, suffix=".zarr"))
        return label_store(folder / "labels", shape, chunk), folder

    def cleanup(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def model_requests(req: CompareRequest) -> list[tuple[str, ModelPair, SegmentRequest]]:
    """The models a comparison runs, by role, each with its request: the run's settings whole, its own model
    and thresholds. Roles: "pruned" is model A when it is compared with a reference, "dense" the reference B
    (dense unless another model is named; always its own thresholds); a model alone takes "dense" if it is
    dense, else "pruned"."""
    seg_req, spec, ref = req.segment, req.spec, req.reference_spec
    jobs: list[tuple[str, ModelPair, WatershedParams | None]] = []
    if ref is not None or not spec.is_dense:
        jobs.append(("pruned", load_pair(spec), seg_req.params))
    if ref is not None:
        jobs.append(("dense", load_pair(ref), None))
    elif spec.is_dense:
        jobs.append(("dense", load_pair(), seg_req.params))
    return [(role, pair, replace(seg_req, scheme=pair.spec.scheme, cr=pair.spec.cr,
                                 fine_tuned=pair.spec.fine_tuned, params=params))
            for role, pair, params in jobs]


def _steps(shape, req: SegmentRequest) -> int:
    n = len(tile_grid(tuple(shape[:2]), req.tiling.tile, req.tiling.halo))
    return n if req.tiling.is_tiled(shape) else n + 1


def run(rgb, req: CompareRequest, cancelled: CancelFn | None = None, truth: np.ndarray | None = None,
        scratch: Scratch | None = None) -> Job[ComparisonResult]:
    """The chosen model (and the dense one, if asked) on one image; yields Progress.

    Raises :class:`~napari_prunuclei.base.progress.Cancelled` when ``cancelled()``; a
    cancelled run's scratch stores are removed.
    """
    seg_req = req.segment
    spec = req.spec
    jobs = model_requests(req)
    per_model = _steps(rgb.shape, seg_req)
    total = per_model * len(jobs)
    tiled = seg_req.tiling.is_tiled(rgb.shape)
    outputs: dict[str, Segmentation] = {}
    made: list[Path] = []
    before = machine.cpu_snapshot()  # looked up at each run (tests make the machine quiet)
    first: list[str] = []
    try:
        for k, (role, pair, model_req) in enumerate(jobs):
            check_cancelled(cancelled)
            out = None
            if tiled and scratch is not None and rgb.shape[0] * rgb.shape[1] > ZARR_PIXELS:
                out, folder = scratch.labels(tuple(rgb.shape[:2]), seg_req.tiling.tile)
                made.append(folder)
            job = iter_segment(rgb, model_req, pair=pair, out=out, cancelled=cancelled,
                               name=f"layer '{req.image_name}'")
            try:
                while True:
                    try:
                        p = next(job)
                    except StopIteration as stop:
                        outputs[role] = stop.value
                        if mark_warm(pair.spec.label, model_req.device, model_req.precision, rgb.shape,
                                     req.pixel_size):
                            first.append(stop.value.info.model)
                        break
                    yield Progress(k * per_model + p.done, total, p.message)
            finally:
                job.close()  # a run abandoned here cleans up now (its threads, the kept heap)
        check_cancelled(cancelled)
        result = _result(req, outputs.get("pruned"), outputs.get("dense"), None if tiled else truth)
        result.truth_digest = None if tiled else truth_digest(truth)
        result.first_runs = first
        pool = any((seg.info.post_workers or 0) > 0 for seg in outputs.values())  # their CPU is not ours
        result.others = None if pool else others_share(before, machine.cpu_snapshot())  # while the models ran
    except BaseException:
        for f in made:
            shutil.rmtree(f, ignore_errors=True)
        raise
    result.scratch = made
    result.sparsity = layer_sparsity(spec)
    if not tiled:
        result.features = {role: nucleus_features(seg.labels, rgb, req.pixel_size) for role, seg in outputs.items()}
    else:
        for role, seg in outputs.items():
            yield Progress(total, total, f"{seg.info.model}: overview levels for the viewer")
            result.pyramids[role] = label_pyramid(seg.labels)
    return result


def label_pyramid(labels, smallest: int = 1024, rows: int = 1024) -> list:
    """``[labels, labels[::2, ::2], labels[::4, ::4], ...]`` down to about ``smallest`` px a side, each
    level read once from the one above in blocks of ``rows`` rows (levels are numpy arrays: a quarter,
    a sixteenth... of the full size)."""
    levels = [labels]
    while max(levels[-1].shape) // 2 >= smallest:
        src = levels[-1]
        h, w = src.shape
        dst = np.empty(((h + 1) // 2, (w + 1) // 2), np.int32)
        for r in range(0, h, 2 * rows):
            block = np.asarray(src[r : r + 2 * rows])
            dst[r // 2 : r // 2 + (block.shape[0] + 1) // 2] = block[::2, ::2]
        levels.append(dst)
    return levels


def nucleus_features(labels: np.ndarray, rgb: np.ndarray | None = None,
                     pixel_size: float | None = None, previous: tuple[np.ndarray, dict] | None = None
                     ) -> dict[str, list]:
    """Per-nucleus measurements as columns (``index`` = nucleus id), for a labels layer's features; with
    a pixel size (µm per pixel), also the area in µm² and the perimeter in µm.

    ``previous``: labels of the same image and their columns (same ``rgb`` and pixel size): a nucleus whose
    pixels are exactly those of a previous one keeps that one's row (its id changed); only the others are
    measured. The columns equal a measurement of every nucleus."""
    from napari_prunuclei.io.measure import MEASUREMENT_FIELDS, measurements

    labels = np.asarray(labels)
    reused: dict[int, int] = {}  # new id -> row of the previous columns
    if previous is not None and previous[0].shape == labels.shape:
        reused = _same_nuclei(previous[0], labels, previous[1]["index"])
        if reused:
            labels = np.where(np.isin(labels, list(reused), invert=True), labels, 0)
    rows = measurements(labels, rgb)
    cols = {k: [r[k] for r in rows] for k in MEASUREMENT_FIELDS}
    cols["index"] = cols.pop("id")
    if reused:  # the previous rows of the unchanged nuclei (their new ids), merged in by id
        old = previous[1]
        merged = {k: v + [old[k][i] for i in reused.values()] for k, v in cols.items()}
        merged["index"] = cols["index"] + list(reused)
        order = np.argsort(merged["index"], kind="stable")
        cols = {k: [v[i] for i in order] for k, v in merged.items()}
    if pixel_size:
        cols["area_um2"] = [a * pixel_size**2 for a in cols["area"]]
        cols["perimeter_um"] = [p * pixel_size for p in cols["perimeter"]]
    return cols


def _same_nuclei(old: np.ndarray, new: np.ndarray, old_ids: list) -> dict[int, int]:
    """New id -> row in ``old_ids`` for each nucleus of ``new`` whose pixels are exactly those of one of
    ``old`` (intersection = both areas)."""
    from napari_prunuclei.nuclei.metrics import overlap_matrix

    inter, area_o, area_n, _, _ = overlap_matrix(old, new)
    sub = inter[1:, 1:].tocoo()
    same = (sub.data == area_o[1:][sub.row]) & (sub.data == area_n[1:][sub.col])
    ids_o, ids_n = (np.unique(a) for a in (old, new))
    ids_o, ids_n = (ids[ids > 0] for ids in (ids_o, ids_n))
    row_of = {int(i): k for k, i in enumerate(old_ids)}
    return {int(ids_n[j]): row_of[int(ids_o[i])] for i, j in zip(sub.row[same], sub.col[same], strict=True)
            if int(ids_o[i]) in row_of}


def mean_area(result: ComparisonResult, role: str) -> tuple[float, str] | None:
    """The mean nucleus area of one model of a run and its unit (µm² with a pixel size, else px)."""
    cols = result.features.get(role)
    if not cols or not cols.get("area"):
        return None
    px = result.request.pixel_size
    mean = float(np.mean(cols["area"]))
    return (mean * px**2, "µm²") if px else (mean, "px")


def truth_mean_area(result: ComparisonResult) -> tuple[float, str] | None:
    """The ground truth's mean nucleus area and its unit, as :func:`mean_area` gives a model's (None: no ground
    truth scored, or an empty one)."""
    n = result.numbers
    if not n.vs_truth or n.truth_mean_area_px is None:
        return None
    px = result.request.pixel_size
    return (n.truth_mean_area_px * px**2, "µm²") if px else (n.truth_mean_area_px, "px")


def truth_digest(truth: np.ndarray | None) -> str | None:
    """A digest of a ground truth's ids, shape and type (None without one)."""
    if truth is None:
        return None
    import hashlib

    a = np.ascontiguousarray(truth)
    h = hashlib.blake2b(f"{a.shape} {a.dtype.str}".encode(), digest_size=16)
    h.update(a.view(np.uint8).ravel())
    return h.hexdigest()


def _result(req: CompareRequest, pruned: Segmentation | None, dense: Segmentation | None,
            truth=None, known: dict[str, Agreement] | None = None) -> ComparisonResult:
    dis = None
    if pruned is not None and dense is not None and not pruned.tiled:
        dis = disagreement(dense.labels, pruned.labels)
    nums = compute_numbers(pruned, dense, truth, dis, known)
    return ComparisonResult(req, pruned, dense, nums, None if dis is None else dis.image,
                            events=None if dis is None else dis.events)


def rerun_watershed(result: ComparisonResult, params: WatershedParams, truth: np.ndarray | None = None,
                    rgb: np.ndarray | None = None) -> ComparisonResult:
    """New thresholds for the chosen model: only its watershed again, on the kept maps, and only what
    depends on its labels again (its numbers, A against B, the disagreement map); B's labels, features and
    score against the same ground truth are kept. The run's own thresholds again, against the truth it was
    scored with, give that run back as it was (its seconds too: a pathologist read "watershed timed again"
    after Restore as if the thresholds were still edited). Not for slides."""
    origin = result.ran or result
    digest = truth_digest(truth)
    # on the models' grid, as ``params`` are (a run's info holds them on the image's: min size scaled by its pixel size)
    ran_with = origin.request.segment.params or own_thresholds(origin.request.spec)
    if params == ran_with and digest == origin.truth_digest:
        return origin
    chosen = rewatershed(result.chosen, params)
    pruned, dense = (chosen, result.dense) if result.pruned is not None else (None, chosen)
    req = replace(result.request, segment=replace(result.request.segment, params=params))
    known = None  # B against the truth: unchanged when the truth is the one the shown numbers used
    if pruned is not None and dense is not None and digest is not None and digest == result.truth_digest:
        known = {k: v for k, v in result.numbers.vs_truth.items() if k == dense.info.model}
    new = _result(req, pruned, dense, truth, known)
    new.truth_digest = digest
    new.truth_name = result.truth_name if digest is not None else None
    new.sparsity = result.sparsity
    new.others = result.others  # the networks' seconds are the run's (the watershed's is timed again, alone)
    new.rewatershed = True
    new.ran = origin
    new.first_runs = list(origin.first_runs)  # the networks' seconds are still the run's, warm-up and all
    new.features = dict(result.features)
    if result.features:
        role = "pruned" if result.pruned is not None else "dense"
        before = result.features.get(role)
        new.features[role] = nucleus_features(chosen.labels, rgb, result.request.pixel_size,
                                              None if before is None or rgb is None else (result.chosen.labels, before))
    return new


def compute_numbers(pruned: Segmentation | None, dense: Segmentation | None, truth: np.ndarray | None = None,
                    dis=None, known: dict[str, Agreement] | None = None) -> Numbers:
    """Nucleus counts; agreement with dense and disagreement events per kind (both models run); agreement of
    each model with ground truth (when given; not for slides). ``known``: scores against this very truth
    already computed, by model (kept, not computed again)."""
    runs = [s for s in (pruned, dense) if s is not None]
    nums = Numbers(nuclei={s.info.model: s.n_nuclei for s in runs}, tiled=runs[0].tiled)
    if nums.tiled:
        return nums
    if pruned is not None and dense is not None:
        nums.vs_dense = agreement_scores(dense.labels, pruned.labels)
        nums.disagreement = (dis or disagreement(dense.labels, pruned.labels)).counts
    if truth is not None:
        known = known or {}
        nums.vs_truth = {s.info.model: known.get(s.info.model) or agreement_scores(truth, s.labels) for s in runs}
        n_ref = next(iter(nums.vs_truth.values())).n_reference  # (counted once by the scores: no sort again here)
        nums.truth_mean_area_px = float(np.count_nonzero(truth)) / n_ref if n_ref else None
    return nums


