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

from napari_prunuclei.base.constants import (
    DEFAULT_CRS,
    DISAGREEMENT_COLORS,
    DISAGREEMENT_KINDS,
    PRUNED_SCHEMES,
    SCHEME_LABELS,
    ZARR_PIXELS,
)
from napari_prunuclei.base.progress import CancelFn, Job, Progress, check_cancelled
from napari_prunuclei.nuclei.agreement import Agreement, agreement_scores, disagreement
from napari_prunuclei.nuclei.watershed import WatershedParams
from napari_prunuclei.runtime.pairs import ModelSpec, load_pair
from napari_prunuclei.runtime.pipeline import iter_segment, rewatershed
from napari_prunuclei.runtime.request import Segmentation, SegmentRequest
from napari_prunuclei.runtime.tiles import tile_grid

__all__ = ["CompareRequest", "Numbers", "ComparisonResult", "ImageSweepRow", "run", "rerun_watershed",
           "compute_numbers", "format_numbers", "numbers_table", "numbers_html", "mean_area",
           "disagreement_features", "sweep_image", "layer_sparsity", "Scratch", "model_note", "run_warning",
           "label_pyramid", "zoo_models", "run_provenance", "write_report"]


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
        from napari_prunuclei.runtime.stitch import label_store

        if self.root is None or not self.root.is_dir():
            self.root = Path(tempfile.mkdtemp(prefix="prunuclei_"))
        folder = Path(tempfile.mkdtemp(dir=self.root, suffix=".zarr"))
        return label_store(folder / "labels", shape, chunk), folder

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

    Raises :class:`~napari_prunuclei.base.progress.Cancelled` when ``cancelled()``; a
    cancelled run's scratch stores are removed.
    """
    seg_req = req.segment
    spec = req.spec
    ref = req.reference_spec
    # roles: "pruned" is model A when it is compared with a reference, "dense" the reference B (dense
    # unless another model is named); a model alone takes "dense" if it is dense, else "pruned"
    jobs: list[tuple[str, object, WatershedParams | None]] = []
    if ref is not None or not spec.is_dense:
        jobs.append(("pruned", load_pair(spec), seg_req.params))
    if ref is not None:
        jobs.append(("dense", load_pair(ref), None))  # the reference: always its own thresholds
    elif spec.is_dense:
        jobs.append(("dense", load_pair(), seg_req.params))
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
            spec = pair.spec  # this model's request: the run's settings whole, its own model and thresholds
            model_req = replace(seg_req, scheme=spec.scheme, cr=spec.cr, fine_tuned=spec.fine_tuned, params=params)
            job = iter_segment(rgb, model_req, pair=pair, out=out, cancelled=cancelled,
                               name=f"layer '{req.image_name}'")
            try:
                while True:
                    try:
                        p = next(job)
                    except StopIteration as stop:
                        outputs[role] = stop.value
                        break
                    yield Progress(k * per_model + p.done, total, p.message)
            finally:
                job.close()  # a run abandoned here cleans up now (its threads, the kept heap)
        check_cancelled(cancelled)
        result = _result(req, outputs.get("pruned"), outputs.get("dense"), None if tiled else truth)
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
                     pixel_size: float | None = None) -> dict[str, list]:
    """Per-nucleus measurements as columns (``index`` = nucleus id), for a labels layer's features; with
    a pixel size (µm per pixel), also the area in µm² and the perimeter in µm."""
    from napari_prunuclei.io.measure import MEASUREMENT_FIELDS, measurements

    rows = measurements(labels, rgb)
    cols = {k: [r[k] for r in rows] for k in MEASUREMENT_FIELDS}
    cols["index"] = cols.pop("id")
    if pixel_size:
        cols["area_um2"] = [a * pixel_size**2 for a in cols["area"]]
        cols["perimeter_um"] = [p * pixel_size for p in cols["perimeter"]]
    return cols


def mean_area(result: ComparisonResult, role: str) -> tuple[float, str] | None:
    """The mean nucleus area of one model of a run and its unit (µm² with a pixel size, else px)."""
    cols = result.features.get(role)
    if not cols or not cols.get("area"):
        return None
    px = result.request.pixel_size
    mean = float(np.mean(cols["area"]))
    return (mean * px**2, "µm²") if px else (mean, "px")


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
        new.features["pruned" if result.pruned is not None else "dense"] = nucleus_features(
            chosen.labels, rgb, result.request.pixel_size)
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
        a, b = result.pruned.info.model, result.dense.info.model
        lines.append(f"{a} vs {b}: AJI {v.aji:.3f}  PQ {v.pq:.3f}  Dice {v.dice:.3f}")
        c = n.disagreement
        lines.append(f"disagreement: missed {c['missed']} (red), extra {c['extra']} (blue), "
                     f"split/merged {c['split/merged']} (yellow)")
    for label, v in n.vs_truth.items():
        lines.append(f"{label} vs ground truth: AJI {v.aji:.3f}  PQ {v.pq:.3f}  Dice {v.dice:.3f}")
    for role in ("pruned", "dense"):
        m = mean_area(result, role)
        seg = getattr(result, role)
        if m is not None and seg is not None:
            lines.append(f"{seg.info.model}: mean nucleus area {m[0]:.1f} {m[1]}")
    if result.request.region is not None:
        r0, r1, c0, c1 = result.request.region
        lines.append(f"region: rows {r0}-{r1}, columns {c0}-{c1} of the image")
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
        tp, td = _end_to_end(result.pruned), _end_to_end(result.dense)
        lines.append(f"speed, this run: {result.pruned.info.model} {tp:.2f} s, {result.dense.info.model} "
                     f"{td:.2f} s end to end ({tp / max(td, 1e-9):.2f}x the time)")
    if n.tiled:
        lines.append("slide: ran tile by tile; pixel-wise comparison and maps are kept for images up to 2048x2048")
    return "\n".join(lines)


def _pct_pruned(seg: Segmentation) -> float:
    i = seg.info
    nz = i.semantic["nonzero"] + i.distance["nonzero"]
    tot = (i.semantic.get("dense_prunable", i.semantic["prunable"])
           + i.distance.get("dense_prunable", i.distance["prunable"]))  # channel models: against dense's
    return 100 * (1 - nz / tot)


def _end_to_end(seg: Segmentation) -> float:
    t = seg.info.seconds
    return t["semantic"] + t["distance"] + t["watershed"]


def numbers_table(result: ComparisonResult) -> tuple[list[str], list[list[str]]]:
    """The numbers as a table: a header and one row per model (A, then its reference B)."""
    n = result.numbers
    area_unit = "µm²" if result.request.pixel_size else "px"
    header = ["model", "nuclei", f"mean area ({area_unit})", "AJI vs B", "PQ vs B", "Dice vs B"]
    if n.vs_truth:
        header += ["AJI vs truth", "PQ vs truth"]
    header += ["% pruned", "seconds", "time vs B"]
    both = result.pruned is not None and result.dense is not None
    rows = []
    for role, tag in (("pruned", "A"), ("dense", "B")):
        seg = getattr(result, role)
        if seg is None:
            continue
        tag = tag if result.pruned is not None and result.dense is not None else ""
        m = mean_area(result, role)
        row = [f"{tag}: {seg.info.model}" if tag else seg.info.model, str(seg.n_nuclei),
               "" if m is None else f"{m[0]:.1f}"]
        v = n.vs_dense if role == "pruned" else None
        row += ["" if v is None else f"{x:.3f}" for x in ((v.aji, v.pq, v.dice) if v else (0, 0, 0))]
        if n.vs_truth:
            t = n.vs_truth.get(seg.info.model)
            row += ["", ""] if t is None else [f"{t.aji:.3f}", f"{t.pq:.3f}"]
        ratio = f"{_end_to_end(seg) / max(_end_to_end(result.dense), 1e-9):.2f}×" if both and role == "pruned" else ""
        row += [f"{_pct_pruned(seg):.1f}", f"{_end_to_end(seg):.2f}", ratio]
        rows.append(row)
    return header, rows


def numbers_html(result: ComparisonResult) -> str:
    """The dock's numbers: the table, then the disagreement counts (in their colours), thresholds, notes."""
    from html import escape

    header, rows = numbers_table(result)
    # shown with a column per model and a row per metric: the dock is narrower than it is tall
    right = 'style="padding: 1px 8px; text-align: right"'
    out = ['<table border="0" cellspacing="0">',
           "<tr><th></th>" + "".join(f"<th {right}>{escape(r[0])}</th>" for r in rows) + "</tr>"]
    for k, h in enumerate(header[1:], 1):
        if all(not r[k] for r in rows):
            continue
        out.append(f'<tr><td style="padding: 1px 8px 1px 0">{escape(h)}</td>'
                   + "".join(f"<td {right}>{escape(r[k])}</td>" for r in rows) + "</tr>")
    out.append("</table>")
    n = result.numbers
    if n.disagreement is not None:
        c = n.disagreement
        a, b = result.pruned.info.model, result.dense.info.model
        out.append(f"<p>disagreement of A with B: "
                   f'<span style="color:{DISAGREEMENT_COLORS[1]}">■</span> missed by A {c["missed"]} · '
                   f'<span style="color:{DISAGREEMENT_COLORS[2]}">■</span> extra in A {c["extra"]} · '
                   f'<span style="color:{DISAGREEMENT_COLORS[3]}">■</span> split/merged {c["split/merged"]}'
                   f"<br><small>A = {escape(a)}, B = {escape(b)}</small></p>")
    small = []
    for s in (result.pruned, result.dense):
        if s is not None:
            ws = ", ".join(f"{k} {v:g}" for k, v in s.info.watershed.as_dict().items())
            small.append(f"{escape(s.info.model)} thresholds: {ws}")
    if result.request.region is not None:
        r0, r1, c0, c1 = result.request.region
        small.append(f"region: rows {r0}-{r1}, columns {c0}-{c1} of the image")
    if n.tiled:
        small.append("slide: ran tile by tile; pixel-wise comparison and maps are kept for images up to "
                     "2048x2048 (or tick 'visible region only')")
    if result.request.pixel_size:
        small.append(f"pixel size {result.request.pixel_size:g} µm")
    out.append("<p><small>" + "<br>".join(small) + "</small></p>")
    return "\n".join(out)


def run_provenance(result: ComparisonResult) -> dict:
    """What an export or report of a run records beyond the model's info: region, pixel size, reference."""
    out: dict = {}
    if result.request.region is not None:
        out["region"] = {"rows": list(result.request.region[:2]), "columns": list(result.request.region[2:]),
                         "note": "CSV centroids and GeoJSON coordinates are in the image's frame; a label "
                                 "image holds the region only"}
    out["pixel_size_um"] = result.request.pixel_size
    if result.dense is not None and result.pruned is not None:
        out["reference"] = result.dense.info.model
    return out


def write_report(folder: Path, result: ComparisonResult, sweep_rows: list | None = None,
                 screenshot: str | None = None, charts: str | None = None) -> Path:
    """``report.md`` (numbers table, disagreement, parameters, model ids and sha256, pixel size, the
    sweep), ``numbers.csv`` and, with a sweep, ``sweep.csv`` in ``folder``; returns report.md's path."""
    import csv
    import datetime

    from napari_prunuclei import __version__

    folder = Path(folder)
    header, rows = numbers_table(result)
    with open(folder / "numbers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    req = result.request
    lines = [f"# napari-prunuclei report: {req.image_name}", "",
             f"Written {datetime.datetime.now().isoformat(timespec='seconds')} by napari-prunuclei {__version__}.",
             "", "## Numbers", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    n = result.numbers
    if n.disagreement is not None:
        c = n.disagreement
        lines += ["", f"Disagreement of A ({result.pruned.info.model}) with B ({result.dense.info.model}): "
                      f"missed by A {c['missed']} (red), extra in A {c['extra']} (blue), "
                      f"split/merged {c['split/merged']} (yellow)."]
    lines += ["", "## Parameters and models", "",
              f"- image: {req.image_name}" + ("" if req.region is None else
                                              f", region rows {req.region[0]}-{req.region[1]}, "
                                              f"columns {req.region[2]}-{req.region[3]}"),
              f"- pixel size: {req.pixel_size:g} µm" if req.pixel_size else "- pixel size: unknown (areas in px)",
              f"- device: {req.segment.device}, precision {req.segment.precision}"]
    for s in (result.pruned, result.dense):
        if s is None:
            continue
        i = s.info
        ws = ", ".join(f"{k} {v:g}" for k, v in i.watershed.as_dict().items())
        lines += [f"- **{i.model}** ({'fine-tuned' if i.fine_tuned else 'one-shot'}): thresholds {ws}; "
                  f"{_pct_pruned(s):.1f} % of weights pruned; mode {'tiled' if s.tiled else 'whole'}",
                  f"  - semantic: `{i.semantic.get('id')}` sha256 `{i.semantic.get('sha256')}`",
                  f"  - distance: `{i.distance.get('id')}` sha256 `{i.distance.get('sha256')}`"]
    for tag, spec in (("A", req.spec), ("B", req.reference_spec)):
        if spec is not None:
            note, _ = model_note(spec)
            lines.append(f"- known accuracy of {tag} ({spec.label}): {note}")
    if sweep_rows:
        with open(folder / "sweep.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["scheme", "cr", "fine_tuned", "aji_vs_dense", "pq_vs_dense", "dice_vs_dense",
                        "aji_vs_truth"])
            for row in sweep_rows:
                w.writerow([row.scheme, f"{row.cr:g}", row.fine_tuned, f"{row.vs_dense.aji:.4f}",
                            f"{row.vs_dense.pq:.4f}", f"{row.vs_dense.dice:.4f}",
                            "" if row.vs_truth is None else f"{row.vs_truth.aji:.4f}"])
        lines += ["", f"## CR sweep on this image ({len(sweep_rows)} models): [sweep.csv](sweep.csv)"]
    if screenshot:
        lines += ["", "## Canvas", "", f"![canvas]({screenshot})"]
    if charts:
        lines += ["", "## Charts", "", f"![charts]({charts})"]
    md = folder / "report.md"
    md.write_text("\n".join(lines) + "\n")
    return md
def layer_metadata(seg: Segmentation, image_name: str) -> dict:
    """What a result layer records: the run's info (models, sha256, thresholds, timings...) and its image."""
    return {"prunuclei": {**seg.info.as_dict(), "image": image_name}}


def disagreement_metadata(result: ComparisonResult) -> dict:
    return {"prunuclei": {"kinds": DISAGREEMENT_KINDS, "counts": result.numbers.disagreement,
                          "image": result.request.image_name, "model": result.pruned.info.model,
                          "reference": result.dense.info.model}}


def disagreement_features(result: ComparisonResult) -> dict[str, list]:
    """What hovering over the disagreement layer says: each kind named with the two models."""
    a, b = result.pruned.info.model, result.dense.info.model
    return {"index": [0, 1, 2, 3],
            "disagreement": ["agree", f"missed by {a} (found by {b})", f"extra in {a} (not in {b})",
                             f"split/merged ({a} vs {b})"]}


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
    from napari_prunuclei.models.zoo import find_entry
    from napari_prunuclei.runtime.pipeline import segment

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
        return ("dense: " + " · ".join(parts)) if parts else "dense", False
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
    if not parts:
        return "fine-tuned; accuracy not measured", True
    text = " · ".join(parts)
    if collapsed:
        return text + ": this pair collapses, it finds few or no nuclei", True
    return text, warn


def run_warning(result: ComparisonResult) -> str | None:
    """A warning when the chosen pruned model found nothing, or far fewer nuclei than dense."""
    if result.pruned is None:
        return None
    n = result.pruned.n_nuclei
    label = result.pruned.info.model
    if result.dense is not None:
        d = result.dense.n_nuclei
        ref = result.dense.info.model
        if d > 0 and n < 0.1 * d:
            return f"{label} found {n} nuclei, {ref} {d}: this model has collapsed at this CR; read its map with care"
        return None
    return f"{label} found no nuclei" if n == 0 else None


def layer_sparsity(spec: ModelSpec) -> dict[str, list[dict]]:
    """Per-layer sparsity of both branches of one model."""
    from napari_prunuclei.pruning.magnitude import sparsity_report

    pair = load_pair(spec)
    return {"semantic": sparsity_report(pair.semantic), "distance": sparsity_report(pair.distance)}
