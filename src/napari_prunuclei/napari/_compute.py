"""What the widget runs, without Qt: requests, the run as a generator, and layer specs.

The widget builds a :class:`RunRequest`, hands :func:`run` to a napari
``thread_worker`` and turns the yielded :class:`Progress` into a progress bar;
the returned :class:`RunResult` becomes layers through :func:`layer_specs`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from .. import __version__, tiled
from ..compare import DISAGREEMENT_KINDS, agreement_scores, disagreement
from ..inference import predict_branch, resolve_precision
from ..io import as_rgb_uint8, check_lazy_rgb
from ..models.zoo import load_model, model_info, normalize_scheme
from ..postprocess import WatershedParams, watershed_instances
from ..pruning import prunable_parameters

#: tile side of the slide path
TILE = 1024
#: slides above this many pixels keep their labels in a zarr store on disk, not in memory
ZARR_PIXELS = 8192 * 8192

SCHEME_LABELS = {"dense": "dense", "layerwise": "layer-wise", "networkwide": "network-wide"}
DISAGREEMENT_COLORS = {0: "transparent", 1: "#ff3030", 2: "#30a0ff", 3: "#ffd000", None: "transparent"}


@dataclass(frozen=True)
class RunRequest:
    image_name: str
    scheme: str = "networkwide"
    cr: float = 20
    fine_tuned: bool = True
    device: str = "cpu"
    precision: str = "auto"
    params: WatershedParams = field(default_factory=WatershedParams)
    compare_dense: bool = True

    def model_label(self) -> str:
        s = normalize_scheme(self.scheme)
        if s == "dense":
            return "dense"
        return f"{SCHEME_LABELS[s]} CR{self.cr:g}" + ("" if self.fine_tuned else " one-shot")


@dataclass
class Progress:
    done: int
    total: int
    message: str


@dataclass
class ModelOutput:
    """One model's outputs; on a slide (tiled mode) the maps are None and labels may be a zarr array."""

    label: str
    probability: np.ndarray | None
    distance: np.ndarray | None
    labels: np.ndarray
    info: dict

    @property
    def tiled(self) -> bool:
        return self.probability is None


@dataclass
class RunResult:
    request: RunRequest
    pruned: ModelOutput
    dense: ModelOutput | None
    numbers: dict
    disagreement: np.ndarray | None = None
    sparsity: dict | None = None


def model_summary(model) -> dict:
    """Non-zero and total prunable weights, sparsity, and the zoo record."""
    params = prunable_parameters(model)
    total = sum(p.numel() for p in params.values())
    nz = sum(int((p != 0).sum()) for p in params.values())
    return {"prunable": total, "nonzero": nz, "sparsity": 1 - nz / total, **model_info(model)}


def is_slide(shape) -> bool:
    """Whether an image of ``shape`` goes through the tiled (slide) path."""
    return int(shape[0]) * int(shape[1]) > tiled.WHOLE_MAX_PIXELS


def _run_model(rgb, req: RunRequest, scheme: str, cr: float, fine_tuned: bool, step, cancelled):
    sem = load_model("semantic", scheme, cr, fine_tuned=fine_tuned)
    dst = load_model("distance", scheme, cr, fine_tuned=fine_tuned)
    times = {}
    info = {"semantic": model_summary(sem), "distance": model_summary(dst), "seconds": times}
    if is_slide(rgb.shape):
        h, w = rgb.shape[:2]
        out = None
        if h * w > ZARR_PIXELS:
            import tempfile

            import zarr

            out = zarr.open_array(tempfile.mkdtemp(prefix="prunuclei_") + "/labels.zarr", mode="w", shape=(h, w),
                                  chunks=(1024, 1024), dtype="int32", fill_value=0)
        gen = tiled.iter_segment_tiled(rgb, (sem, dst), req.params, tile=TILE, device=req.device,
                                       precision=req.precision, out=out, cancelled=cancelled, timings=times)
        while True:
            try:
                done, total = next(gen)
            except StopIteration as stop:
                labels = stop.value
                break
            yield step(f"tile {done}/{total}")
        return None, None, labels, info
    outs = {}
    for key, model in (("semantic", sem), ("distance", dst)):
        t = time.perf_counter()
        outs[key] = predict_branch(model, rgb, device=req.device, precision=req.precision, cancelled=cancelled)
        times[key] = time.perf_counter() - t
        yield step(f"{key} branch done")
    t = time.perf_counter()
    labels = watershed_instances(outs["semantic"], outs["distance"], req.params)
    times["watershed"] = time.perf_counter() - t
    yield step("watershed done")
    return outs["semantic"], outs["distance"], labels, info


def run(rgb: np.ndarray, req: RunRequest, cancelled=lambda: False, truth: np.ndarray | None = None):
    """Generator: yields :class:`Progress`, returns a :class:`RunResult` (None when cancelled).

    Images above :data:`tiled.WHOLE_MAX_PIXELS` (``rgb`` may then be a lazy array) go
    tile by tile with stitched instances; progress counts tiles, and only instance
    labels are kept (no maps, no pixel-wise comparison).
    """
    try:
        return (yield from _run(rgb, req, cancelled, truth))
    except InterruptedError:
        return None


def _run(rgb: np.ndarray, req: RunRequest, cancelled, truth: np.ndarray | None):
    slide = is_slide(rgb.shape)
    if slide:
        rgb = check_lazy_rgb(rgb, f"layer '{req.image_name}'")
    else:
        rgb = as_rgb_uint8(np.asarray(rgb), name=f"layer '{req.image_name}'")
    scheme = normalize_scheme(req.scheme)
    jobs = [(req.model_label(), scheme, req.cr, req.fine_tuned)]
    if req.compare_dense and scheme != "dense":
        jobs.append(("dense", "dense", 1, True))
    n_tiles = len(tiled.tile_grid(rgb.shape[:2], TILE)) if slide else 3
    total = n_tiles * len(jobs)
    count = [0]

    def step(msg: str) -> Progress:
        count[0] += 1
        return Progress(count[0], total, f"{label}: {msg}")

    outputs = []
    for label, s, cr, ft in jobs:
        if cancelled():
            raise InterruptedError("cancelled")
        prob, dist, labels, info = yield from _run_model(rgb, req, s, cr, ft, step, cancelled)
        outputs.append(ModelOutput(label, prob, dist, labels, info))
    pruned = outputs[0]
    dense = outputs[1] if len(outputs) > 1 else None
    result = _result(req, pruned, dense, None if slide else truth)
    result.sparsity = layer_sparsity(scheme, req.cr, req.fine_tuned)
    return result


def _result(req: RunRequest, pruned: ModelOutput, dense: ModelOutput | None, truth=None) -> RunResult:
    if pruned.tiled:  # a slide: counts only, no pixel-wise comparison over the whole slide
        nums = {"nuclei": {o.label: tiled.max_label(o.labels) for o in (pruned, dense) if o is not None}, "tiled": True}
        return RunResult(req, pruned, dense, nums, None)
    d = disagreement(dense.labels, pruned.labels) if dense is not None else None
    return RunResult(req, pruned, dense, compute_numbers(pruned, dense, truth, d),
                     None if d is None else d.image)


def rewatershed(result: RunResult, params: WatershedParams, truth: np.ndarray | None = None) -> RunResult:
    """Re-run only the watershed on the cached branch outputs (not for slides: no maps are kept)."""
    if result.pruned.tiled:
        raise ValueError("this slide ran tile by tile without keeping the maps: press Run to apply new thresholds")
    outs = []
    for o in (result.pruned, result.dense):
        if o is None:
            outs.append(None)
            continue
        t = time.perf_counter()
        labels = watershed_instances(o.probability, o.distance, params)
        info = {**o.info, "seconds": {**o.info["seconds"], "watershed": time.perf_counter() - t}}
        outs.append(replace(o, labels=labels, info=info))
    return _result(replace(result.request, params=params), outs[0], outs[1], truth)


def compute_numbers(pruned: ModelOutput, dense: ModelOutput | None, truth: np.ndarray | None = None,
                    dis=None) -> dict:
    nums: dict = {"nuclei": {pruned.label: int(pruned.labels.max())}}
    if dense is not None:
        nums["nuclei"]["dense"] = int(dense.labels.max())
        nums["vs_dense"] = agreement_scores(dense.labels, pruned.labels)
        nums["disagreement"] = (dis or disagreement(dense.labels, pruned.labels)).counts
    if truth is not None:
        nums["vs_truth"] = {o.label: agreement_scores(truth, o.labels) for o in (pruned, dense) if o is not None}
    return nums


def layer_metadata(o: ModelOutput, req: RunRequest) -> dict:
    sem, dst = o.info["semantic"], o.info["distance"]
    return {
        "prunuclei": {
            "model": o.label,
            "model_id": {"semantic": sem.get("id"), "distance": dst.get("id")},
            "scheme": sem.get("scheme"), "cr": sem.get("cr"), "fine_tuned": sem.get("fine_tuned"),
            "sha256": {"semantic": sem.get("sha256"), "distance": dst.get("sha256")},
            "sparsity": {"semantic": sem["sparsity"], "distance": dst["sparsity"]},
            "watershed": req.params.as_dict(), "precision": resolve_precision(req.precision, _dev(req.device)),
            "device": req.device, "version": __version__, "seconds": o.info["seconds"],
            "image": req.image_name,
        }
    }


def _dev(device: str):
    import torch

    return torch.device(device)


def layer_specs(result: RunResult, image_name: str) -> list[tuple[str, np.ndarray, dict, str]]:
    """(name, data, kwargs, layer type) for every output layer, dense first."""
    specs = []
    for o in (result.dense, result.pruned):
        if o is None:
            continue
        meta = layer_metadata(o, result.request)
        base = f"{image_name} · {o.label}"
        if not o.tiled:
            specs.append((f"{base} · semantic", o.probability,
                          {"colormap": "inferno", "contrast_limits": (0, 1), "opacity": 0.6,
                           "blending": "additive", "metadata": meta, "visible": False}, "image"))
            specs.append((f"{base} · distance", o.distance,
                          {"colormap": "viridis", "contrast_limits": (0, 1), "opacity": 0.6,
                           "blending": "additive", "metadata": meta, "visible": False}, "image"))
        specs.append((f"{base} · instances", o.labels, {"opacity": 0.5, "metadata": meta}, "labels"))
    if result.disagreement is not None:
        specs.append((f"{image_name} · {result.pruned.label} · disagreement with dense", result.disagreement,
                      {"opacity": 0.8, "metadata": {"prunuclei": {
                          "kinds": DISAGREEMENT_KINDS, "counts": result.numbers["disagreement"]}}}, "labels"))
    return specs


def format_numbers(result: RunResult) -> str:
    """The text shown beside the picture."""
    n = result.numbers
    lines = ["nuclei: " + ", ".join(f"{k} {v}" for k, v in n["nuclei"].items())]
    if "vs_dense" in n:
        v = n["vs_dense"]
        lines.append(f"{result.pruned.label} vs dense: AJI {v['aji']:.3f}  PQ {v['pq']:.3f}  Dice {v['dice']:.3f}")
        c = n["disagreement"]
        lines.append(f"disagreement: missed {c['missed']} (red), extra {c['extra']} (blue), "
                     f"split/merged {c['split/merged']} (yellow)")
    for label, v in n.get("vs_truth", {}).items():
        lines.append(f"{label} vs ground truth: AJI {v['aji']:.3f}  PQ {v['pq']:.3f}  Dice {v['dice']:.3f}")
    for o in (result.pruned, result.dense):
        if o is None:
            continue
        s, d = o.info["semantic"], o.info["distance"]
        t = o.info["seconds"]
        branches = t["branches"] if o.tiled else t["semantic"] + t["distance"]
        tiles = f" over {t['tiles']} tiles" if o.tiled else ""
        lines.append(f"{o.label}: {s['nonzero'] + d['nonzero']:,} of {s['prunable'] + d['prunable']:,} weights "
                     f"({100 * (1 - (s['nonzero'] + d['nonzero']) / (s['prunable'] + d['prunable'])):.1f} % pruned); "
                     f"branches {branches:.2f} s, watershed {t['watershed']:.2f} s{tiles}")
    if n.get("tiled"):
        lines.append("slide: ran tile by tile; pixel-wise comparison and maps are kept for images up to 2048x2048")
    return "\n".join(lines)


def sweep_image(rgb: np.ndarray, crs: list[float], device: str, params: WatershedParams,
                truth: np.ndarray | None = None, cancelled=lambda: False,
                schemes: tuple[str, ...] = ("layerwise", "networkwide")):
    """Generator: every scheme x CR on one image (fine-tuned where the zoo has it, else one-shot).

    Yields :class:`Progress`; returns rows with AJI/PQ/Dice against dense (and ground truth).
    """
    from ..models.zoo import find_entry

    rgb = as_rgb_uint8(np.asarray(rgb))
    total = 1 + len(schemes) * len(crs)
    dense = _segment(rgb, "dense", 1, True, device, params)
    yield Progress(1, total, "dense done")
    rows = []
    for i, (scheme, cr) in enumerate([(s, c) for s in schemes for c in crs]):
        if cancelled():
            return None
        ft = find_entry("semantic", scheme, cr) is not None
        labels = _segment(rgb, scheme, cr, ft, device, params)
        row = {"scheme": scheme, "cr": cr, "fine_tuned": ft, **{
            f"{k}_vs_dense": v for k, v in agreement_scores(dense, labels).items() if k in ("aji", "pq", "dice")}}
        if truth is not None:
            row.update({f"{k}_vs_truth": v for k, v in agreement_scores(truth, labels).items()
                        if k in ("aji", "pq", "dice")})
        rows.append(row)
        yield Progress(i + 2, total, f"{SCHEME_LABELS[scheme]} CR{cr:g} done")
    return rows


def _segment(rgb, scheme, cr, fine_tuned, device, params) -> np.ndarray:
    sem = load_model("semantic", scheme, cr, fine_tuned=fine_tuned)
    dst = load_model("distance", scheme, cr, fine_tuned=fine_tuned)
    prob = predict_branch(sem, rgb, device=device)
    dist = predict_branch(dst, rgb, device=device)
    return watershed_instances(prob, dist, params)


def layer_sparsity(scheme: str, cr: float, fine_tuned: bool) -> dict[str, list[dict]]:
    """Per-layer sparsity of both branches of one model."""
    from ..pruning import sparsity_report

    return {b: sparsity_report(load_model(b, scheme, cr, fine_tuned=fine_tuned)) for b in ("semantic", "distance")}
