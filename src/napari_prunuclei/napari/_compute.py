"""What the widget runs, without Qt: a comparison request, the run as a job, the numbers.

The widget builds a :class:`CompareRequest`, hands :func:`run` (a job generator of the
one progress protocol) to a napari ``thread_worker``, and gives the returned
:class:`ComparisonResult` to the comparison state (``_state.py``), which owns the layers.
Every model goes through :func:`napari_prunuclei.pipeline.iter_segment`; the dense
reference always runs with the dense model's own thresholds.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..compare import Agreement, agreement_scores, disagreement
from ..constants import DISAGREEMENT_KINDS, PRUNED_SCHEMES, SCHEME_LABELS, ZARR_PIXELS
from ..pipeline import ModelSpec, Segmentation, SegmentRequest, iter_segment, load_pair, rewatershed
from ..postprocess import WatershedParams
from ..progress import CancelFn, Job, Progress, check_cancelled
from ..tiled import tile_grid

__all__ = ["CompareRequest", "Numbers", "ComparisonResult", "ImageSweepRow", "run", "rerun_watershed",
           "compute_numbers", "format_numbers", "sweep_image", "layer_sparsity", "Scratch", "model_note", "run_warning",
           "label_pyramid"]


@dataclass(frozen=True)
class CompareRequest:
    """A run of the widget: the chosen model (``segment``) on one image layer, with or without dense."""

    image_name: str
    segment: SegmentRequest = field(default_factory=SegmentRequest)
    compare_dense: bool = True

    @property
    def spec(self) -> ModelSpec:
        return self.segment.spec


@dataclass
class Numbers:
    """The numbers shown beside the picture."""

    nuclei: dict[str, int]
    vs_dense: Agreement | None = None
    disagreement: dict[str, int] | None = None
    vs_truth: dict[str, Agreement] = field(default_factory=dict)
    tiled: bool = False


@dataclass
class ComparisonResult:
    """One run: the pruned model's and the dense model's segmentations (either may be None), the
    disagreement image, the numbers, and the chosen model's per-layer sparsity."""

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
        import zarr

        if self.root is None or not self.root.is_dir():
            self.root = Path(tempfile.mkdtemp(prefix="prunuclei_"))
        folder = Path(tempfile.mkdtemp(dir=self.root, suffix=".zarr"))
        arr = zarr.open_array(str(folder / "labels"), mode="w", shape=shape, chunks=(chunk, chunk), dtype="int32",
                              fill_value=0)
        return arr, folder

    def cleanup(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def _steps(shape, req: SegmentRequest) -> int:
    n = len(tile_grid(tuple(shape[:2]), req.tiling.tile, req.tiling.halo))
    return n if req.tiling.is_tiled(shape) else n + 1


def run(rgb, req: CompareRequest, cancelled: CancelFn | None = None, truth: np.ndarray | None = None,
        scratch: Scratch | None = None) -> Job[ComparisonResult]:
    """The chosen model (and the dense one, if asked) on one image; yields Progress.

    Raises :class:`~napari_prunuclei.progress.Cancelled` when ``cancelled()``; a
    cancelled run's scratch stores are removed.
    """
    seg_req = req.segment
    spec = req.spec
    jobs: list[tuple[str, object, WatershedParams | None]] = []
    if not spec.is_dense:
        jobs.append(("pruned", load_pair(spec), seg_req.params))
    if spec.is_dense or req.compare_dense:
        dense_params = seg_req.params if spec.is_dense else None  # dense: always its own, unless it is the choice
        jobs.append(("dense", load_pair(), dense_params))
    per_model = _steps(rgb.shape, seg_req)
    total = per_model * len(jobs)
    tiled = seg_req.tiling.is_tiled(rgb.shape)
    outputs: dict[str, Segmentation] = {}
    made: list[Path] = []
    try:
        for k, (role, pair, params) in enumerate(jobs):
            check_cancelled(cancelled)
            out = None
            if tiled and scratch is not None and rgb.shape[0] * rgb.shape[1] > ZARR_PIXELS:
                out, folder = scratch.labels(tuple(rgb.shape[:2]), seg_req.tiling.tile)
                made.append(folder)
            job = iter_segment(rgb, pair, params, device=seg_req.device, precision=seg_req.precision,
                               tiling=seg_req.tiling, out=out, post_workers=seg_req.post_workers,
                               cancelled=cancelled, name=f"layer '{req.image_name}'")
            while True:
                try:
                    p = next(job)
                except StopIteration as stop:
                    outputs[role] = stop.value
                    break
                yield Progress(k * per_model + p.done, total, p.message)
        check_cancelled(cancelled)
        result = _result(req, outputs.get("pruned"), outputs.get("dense"), None if tiled else truth)
    except BaseException:
        for f in made:
            shutil.rmtree(f, ignore_errors=True)
        raise
    result.scratch = made
    result.sparsity = layer_sparsity(spec)
    if not tiled:
        result.features = {role: nucleus_features(seg.labels, rgb) for role, seg in outputs.items()}
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


def nucleus_features(labels: np.ndarray, rgb: np.ndarray | None = None) -> dict[str, list]:
    """Per-nucleus measurements as columns (``index`` = nucleus id), for a labels layer's features."""
    from ..export import MEASUREMENT_FIELDS, measurements

    rows = measurements(labels, rgb)
    cols = {k: [r[k] for r in rows] for k in MEASUREMENT_FIELDS}
    cols["index"] = cols.pop("id")
    return cols


def _result(req: CompareRequest, pruned: Segmentation | None, dense: Segmentation | None,
            truth=None) -> ComparisonResult:
    dis = None
    if pruned is not None and dense is not None and not pruned.tiled:
        dis = disagreement(dense.labels, pruned.labels)
    nums = compute_numbers(pruned, dense, truth, dis)
    return ComparisonResult(req, pruned, dense, nums, None if dis is None else dis.image)


def rerun_watershed(result: ComparisonResult, params: WatershedParams, truth: np.ndarray | None = None,
                    rgb: np.ndarray | None = None) -> ComparisonResult:
    """New thresholds for the chosen model: only its watershed again, on the kept maps, and the
    comparison again (the dense reference keeps its own thresholds). Not for slides."""
    chosen = rewatershed(result.chosen, params)
    pruned, dense = (chosen, result.dense) if result.pruned is not None else (None, chosen)
    req = replace(result.request, segment=replace(result.request.segment, params=params))
    new = _result(req, pruned, dense, truth)
    new.sparsity = result.sparsity
    new.features = dict(result.features)
    if result.features:
        new.features["pruned" if result.pruned is not None else "dense"] = nucleus_features(chosen.labels, rgb)
    return new


def compute_numbers(pruned: Segmentation | None, dense: Segmentation | None, truth: np.ndarray | None = None,
                    dis=None) -> Numbers:
    """Nucleus counts; agreement with dense and disagreement counts (both models run); agreement of
    each model with ground truth (when given; not for slides)."""
    runs = [s for s in (pruned, dense) if s is not None]
    nums = Numbers(nuclei={s.info.model: s.n_nuclei for s in runs}, tiled=runs[0].tiled)
    if nums.tiled:
        return nums
    if pruned is not None and dense is not None:
        nums.vs_dense = agreement_scores(dense.labels, pruned.labels)
        nums.disagreement = (dis or disagreement(dense.labels, pruned.labels)).counts
    if truth is not None:
        nums.vs_truth = {s.info.model: agreement_scores(truth, s.labels) for s in runs}
    return nums


def format_numbers(result: ComparisonResult) -> str:
    """The text shown beside the picture."""
    n = result.numbers
    lines = ["nuclei: " + ", ".join(f"{k} {v}" for k, v in n.nuclei.items())]
    if n.vs_dense is not None:
        v = n.vs_dense
        lines.append(f"{result.pruned.info.model} vs dense: AJI {v.aji:.3f}  PQ {v.pq:.3f}  Dice {v.dice:.3f}")
        c = n.disagreement
        lines.append(f"disagreement: missed {c['missed']} (red), extra {c['extra']} (blue), "
                     f"split/merged {c['split/merged']} (yellow)")
    for label, v in n.vs_truth.items():
        lines.append(f"{label} vs ground truth: AJI {v.aji:.3f}  PQ {v.pq:.3f}  Dice {v.dice:.3f}")
    for s in (result.pruned, result.dense):
        if s is None:
            continue
        i = s.info
        nz = i.semantic["nonzero"] + i.distance["nonzero"]
        tot = (i.semantic.get("dense_prunable", i.semantic["prunable"])
               + i.distance.get("dense_prunable", i.distance["prunable"]))
        t = i.seconds
        tiles = f" over {i.n_tiles} tiles" if s.tiled else ""
        ws = ", ".join(f"{k} {v:g}" for k, v in i.watershed.as_dict().items())
        lines.append(f"{i.model}: {nz:,} of {tot:,} weights ({100 * (1 - nz / tot):.1f} % pruned); "
                     f"branches {t['semantic'] + t['distance']:.2f} s, watershed {t['watershed']:.2f} s{tiles}; "
                     f"thresholds {ws}")
    if result.pruned is not None and result.dense is not None:
        tp, td = (sum(s.info.seconds[k] for k in ("semantic", "distance", "watershed"))
                  for s in (result.pruned, result.dense))
        lines.append(f"speed, this run: {result.pruned.info.model} {tp:.2f} s, dense {td:.2f} s "
                     f"({td / max(tp, 1e-9):.2f}x faster)" if tp < td else
                     f"speed, this run: {result.pruned.info.model} {tp:.2f} s, dense {td:.2f} s "
                     f"({tp / max(td, 1e-9):.2f}x the dense time)")
    if n.tiled:
        lines.append("slide: ran tile by tile; pixel-wise comparison and maps are kept for images up to 2048x2048")
    return "\n".join(lines)


def layer_metadata(seg: Segmentation, image_name: str) -> dict:
    """What a result layer records: the run's info (models, sha256, thresholds, timings...) and its image."""
    return {"prunuclei": {**seg.info.as_dict(), "image": image_name}}


def disagreement_metadata(result: ComparisonResult) -> dict:
    return {"prunuclei": {"kinds": DISAGREEMENT_KINDS, "counts": result.numbers.disagreement,
                          "image": result.request.image_name}}


@dataclass
class ImageSweepRow:
    """One model of the widget's CR sweep on one image: agreement with dense (and ground truth)."""

    scheme: str
    cr: float
    fine_tuned: bool
    vs_dense: Agreement
    vs_truth: Agreement | None = None


def sweep_image(rgb: np.ndarray, crs: list[float], device: str, truth: np.ndarray | None = None,
                cancelled: CancelFn | None = None, schemes: tuple[str, ...] = PRUNED_SCHEMES,
                precision: str = "auto") -> Job[list[ImageSweepRow]]:
    """Every scheme x CR on one image (fine-tuned where the zoo has it, else one-shot), each pair with its
    own thresholds and dense with dense's, as ``prunuclei sweep`` does. Yields Progress."""
    from ..models.zoo import find_entry
    from ..pipeline import segment

    total = 1 + len(schemes) * len(crs)
    dense = segment(rgb, load_pair(), device=device, precision=precision, tiling="whole", cancelled=cancelled)
    yield Progress(1, total, "dense done")
    rows = []
    for i, (scheme, cr) in enumerate([(s, c) for s in schemes for c in crs]):
        check_cancelled(cancelled)
        ft = find_entry("semantic", scheme, cr) is not None
        seg = segment(rgb, load_pair(scheme, cr, ft), device=device, precision=precision, tiling="whole",
                      cancelled=cancelled)
        rows.append(ImageSweepRow(scheme, float(cr), ft, agreement_scores(dense.labels, seg.labels),
                                  None if truth is None else agreement_scores(truth, seg.labels)))
        yield Progress(i + 2, total, f"{SCHEME_LABELS[scheme]} CR{cr:g} done")
    return rows


def model_note(spec: ModelSpec) -> tuple[str, bool]:
    """What is known of a model's accuracy before it runs (the registry's MoNuSeg test metrics), and
    whether the user should be warned (unmeasured one-shot models, pairs known to collapse)."""
    from ..models.zoo import find_entry

    try:
        dense = (find_entry("semantic", "dense", 1) or {}).get("metrics") or {}
        entry = None if spec.is_dense else find_entry("semantic", spec.scheme, spec.cr, spec.fine_tuned)
    except Exception:  # noqa: BLE001 - no registry: nothing known
        return "accuracy unknown (no model registry)", True
    if spec.is_dense:
        return (f"dense: MoNuSeg test AJI {dense['aji']:.3f}" if "aji" in dense else "dense"), False
    if entry is None or not spec.fine_tuned:
        return ("one-shot pruning (not fine-tuned): accuracy not measured; one-shot models often find few "
                "or no nuclei"), True
    m = entry.get("metrics") or {}
    if "aji" not in m or "aji" not in dense:
        return "fine-tuned; accuracy not measured", True
    drop = (dense["aji"] - m["aji"]) / dense["aji"]
    text = f"MoNuSeg test AJI {m['aji']:.3f} ({-100 * drop:+.1f} % vs dense {dense['aji']:.3f})"
    if m["aji"] < 0.3:
        return text + ": this pair collapses, it finds few or no nuclei", True
    return text, drop > 0.1


def run_warning(result: ComparisonResult) -> str | None:
    """A warning when the chosen pruned model found nothing, or far fewer nuclei than dense."""
    if result.pruned is None:
        return None
    n = result.pruned.n_nuclei
    label = result.pruned.info.model
    if result.dense is not None:
        d = result.dense.n_nuclei
        if d > 0 and n < 0.1 * d:
            return f"{label} found {n} nuclei, dense {d}: this model has collapsed at this CR; read its map with care"
        return None
    return f"{label} found no nuclei" if n == 0 else None


def layer_sparsity(spec: ModelSpec) -> dict[str, list[dict]]:
    """Per-layer sparsity of both branches of one model."""
    from ..pruning import sparsity_report

    pair = load_pair(spec)
    return {"semantic": sparsity_report(pair.semantic), "distance": sparsity_report(pair.distance)}
