"""The paper's experiment: both schemes at every CR, one-shot and fine-tuned, per branch and combined.

For every (scheme, CR, variant) and every image of the chosen data sets:

- **semantic alone**: pruned semantic branch + dense distance branch; reported as the
  pixel Dice of the thresholded probability map, and instance AJI;
- **distance alone**: dense semantic branch + pruned distance branch; reported as
  instance AJI (the measure the <2 % rule uses for this branch) and distance-map MSE;
- **both pruned**: the final instance segmentation: AJI, PQ, Dice.

Dense branch outputs are computed once per image and reused.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from napari_prunuclei.base.constants import DEFAULT_CRS, PRUNED_SCHEMES, SCHEME_COLORS
from napari_prunuclei.base.progress import Progress, ProgressFn
from napari_prunuclei.io.atomic import atomic_write
from napari_prunuclei.io.dataset import NucleiDataset, distance_target
from napari_prunuclei.models.zoo import find_entry
from napari_prunuclei.nuclei.metrics import aji, dice, distance_mse, panoptic_quality
from napari_prunuclei.nuclei.watershed import watershed_instances
from napari_prunuclei.runtime.pairs import load_pair, results_record
from napari_prunuclei.runtime.pipeline import segment

__all__ = ["SweepRow", "run_sweep", "add_times", "summarize", "write_outputs", "sparsity_rows", "OUTPUT_NAMES"]

DATASETS = {"monuseg": ("monuseg2018", "test"), "gbm40": ("gbm40", "test")}
#: the names :func:`write_outputs` (and a report derived inside --out) give files in --out, as a regular expression
OUTPUT_NAMES = (r"sweep\.csv|sweep\.json|sweep_tables\.md|sweep_report\.md|(?:sweep|pareto)_[a-z0-9]+\.png"
                r"|sparsity_[a-z0-9_]+\.png")


def _load_images(data_root: Path, datasets: list[str], limit: int | None):
    images = {}
    for key in datasets:
        folder, split = DATASETS[key]
        ds = NucleiDataset(data_root / folder)
        items = []
        for name in ds.names(split)[:limit]:
            rgb, lab = ds.load(name)
            items.append((name, rgb, lab, distance_target(lab)))
        images[key] = items
    return images


@dataclass
class SweepRow:
    """Mean metrics of one (data set, scheme, CR, variant) over its images."""

    dataset: str
    scheme: str
    cr: float
    variant: str
    n_images: int
    semantic_dice: float
    semantic_aji: float
    distance_aji: float
    distance_mse: float
    aji: float
    pq: float
    dice: float
    #: with ``prunuclei sweep --time``: end-to-end seconds on one 1000x1000 tile, the ratio to
    #: dense measured in the same run, and the model's MACs ratio and achieved CR (channel schemes)
    seconds: float | None = None
    time_ratio: float | None = None
    macs_ratio: float | None = None
    achieved_cr: float | None = None
    #: the zoo model's fine-tuning steps (per CR, as recorded in the registry; with ``--time``)
    finetune_steps: int | None = None
    #: the images, in order, and each metric per image (for paired intervals: :mod:`.intervals`)
    images: list[str] | None = None
    per_image: dict[str, list[float]] | None = None
    #: what made the row's results (:func:`~napari_prunuclei.runtime.pairs.results_record`: the weight files'
    #: sha256, the thresholds, the watershed's rule), so rows read back (``--rows``) are known to be current
    made_by: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def rows_as_dicts(rows) -> list[dict]:
    return [r.as_dict() if isinstance(r, SweepRow) else r for r in rows]


def run_sweep(
    data_root: str | Path,
    schemes: tuple[str, ...] = PRUNED_SCHEMES,
    crs: tuple[float, ...] = DEFAULT_CRS,
    variants: tuple[str, ...] = ("one-shot", "fine-tuned"),
    datasets: tuple[str, ...] = ("monuseg", "gbm40"),
    *,
    device: str = "cpu",
    precision: str = "auto",
    limit: int | None = None,
    progress: ProgressFn | None = None,
    workers: int = 1,
    jobs: list[tuple[str, float, str]] | None = None,
) -> list[SweepRow]:
    """One row per (dataset, scheme, CR, variant) with the mean metrics over images.

    Every pair runs through :func:`~napari_prunuclei.runtime.pipeline.segment` with its own
    thresholds; the one-branch measures re-run only the watershed with the dense
    model's thresholds. ``workers`` > 1 splits the models over that many processes (one
    torch thread each), which keeps every core busy through the watershed and metrics.
    """
    if jobs is None:
        jobs = [("dense", 1.0, "dense")] + [(s, float(c), v) for s in schemes for c in crs for v in variants]
    if workers > 1:
        return _run_parallel(data_root, jobs, datasets, device, precision, limit, progress, workers)
    root = Path(data_root)
    images = _load_images(root, list(datasets), limit)
    dense = load_pair()
    dense_out = {key: [segment(rgb, dense, device=device, precision=precision, name=name)
                       for name, rgb, _, _ in items] for key, items in images.items()}
    rows = []
    for j, (scheme, cr, variant) in enumerate(jobs):
        if progress is not None:
            progress(Progress(j, len(jobs), f"{scheme} CR{cr:g} {variant}"))
        ft = variant != "one-shot"
        if variant == "fine-tuned" and scheme != "dense" and find_entry("semantic", scheme, cr) is None:
            continue  # not in the zoo: nothing fine-tuned to measure
        pair = dense if scheme == "dense" else load_pair(scheme, cr, ft)
        for key, items in images.items():
            acc: dict[str, list[float]] = {}
            for (name, rgb, lab, dtarget), dseg in zip(items, dense_out[key]):
                seg = dseg if scheme == "dense" else segment(rgb, pair, device=device, precision=precision, name=name)
                sem_alone = watershed_instances(seg.probability, dseg.distance, dense.params)
                dst_alone = watershed_instances(dseg.probability, seg.distance, dense.params)
                pq = panoptic_quality(lab, seg.labels)
                vals = {
                    "semantic_dice": dice(lab, seg.probability > dense.params.fg_threshold),
                    "semantic_aji": aji(lab, sem_alone),
                    "distance_aji": aji(lab, dst_alone),
                    "distance_mse": distance_mse(dtarget, seg.distance),
                    "aji": aji(lab, seg.labels), "pq": pq["pq"], "dice": dice(lab, seg.labels),
                }
                for k, v in vals.items():
                    acc.setdefault(k, []).append(v)
            means = {k: float(np.mean(v)) for k, v in acc.items()}
            rows.append(SweepRow(key, scheme, cr, variant, len(items), **means, images=[it[0] for it in items],
                                 per_image={k: [float(x) for x in v] for k, v in acc.items()},
                                 made_by=results_record(pair.spec)))
    if progress is not None:
        progress(Progress(len(jobs), len(jobs), "done"))
    return rows


def timing_machine(device: str = "cpu", precision: str = "auto") -> str:
    """The machine a timing runs on, as the reports name it: CPU, architecture, torch threads, precision."""
    import platform

    import torch

    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.models.inference import resolve_precision

    dev = torch.device(device)
    where = cpu_name() if dev.type == "cpu" else str(dev)
    return (f"{where} ({platform.machine()}), {torch.get_num_threads()} torch threads, "
            f"{resolve_precision(precision, dev)}")


def plot_link(out: str | Path | None, name: str, report: str | Path, default: str) -> str:
    """The link from the report ``report`` to the plot ``name`` that :func:`write_outputs` wrote into ``out``
    (None: the repository's layout, ``default``, relative to docs/)."""
    import os

    if out is None:
        return default
    return Path(os.path.relpath(Path(out).resolve() / name, Path(report).resolve().parent)).as_posix()


def provenance_lines(meta: dict) -> list[str]:
    """The reports' lines on where their rows and times came from when not from this command (``--rows``, and
    times measured by an earlier run, maybe on another CPU)."""
    lines = []
    if meta.get("rows_from"):
        lines += [f"The accuracy rows were evaluated by an earlier run of the sweep, whose rows are "
                  f"`{meta['rows_from']}`; this command took them from it (`--rows`) without evaluating again.", ""]
    if meta.get("times_from"):
        lines += [f"The times were not measured by this command: they were measured on {meta['times_from']}, not "
                  "necessarily the machine above (time ratios depend on the CPU).", ""]
    return lines


def times_from(rows: list[dict]) -> str | None:
    """Where the times of ``rows`` were measured, when one or more of them is timed: the machines they name, or
    None when none names one (rows of a sweep before the rows recorded it)."""
    timed = [r for r in rows if r.get("seconds") is not None]
    named = sorted({r["timed_on"] for r in timed if r.get("timed_on")})
    return "; ".join(named) if named else None


def add_times(rows: list, data_root: str | Path, *, repeat: int = 3, device: str = "cpu",
              precision: str = "auto", progress: ProgressFn | None = None) -> list[dict]:
    """Rows (dicts) with the end-to-end time of their pair on the first MoNuSeg test image
    (1000x1000), dense and every pair interleaved in one run (:func:`~napari_prunuclei.study.timing.time_segment`),
    and the share of this process's CPUs other work used meanwhile (``timed_others_cpu``)."""
    from napari_prunuclei.base.machine import cpu_snapshot, others_share
    from napari_prunuclei.study.release import pair_ratio
    from napari_prunuclei.study.timing import benchmark_tile, time_segment

    rows = rows_as_dicts(rows)
    rgb = benchmark_tile(Path(data_root) / "monuseg2018")
    keys = sorted({(r["scheme"], float(r["cr"]), r["variant"]) for r in rows if r["scheme"] != "dense"})
    pairs = {("dense", 1.0, "dense"): load_pair()}
    for scheme, cr, variant in keys:
        pairs[(scheme, cr, variant)] = load_pair(scheme, cr, variant != "one-shot")
    if progress is not None:
        progress(Progress(0, 1, f"timing {len(pairs)} pairs, {repeat} rounds"))
    before = cpu_snapshot()
    times = time_segment({str(k): p for k, p in pairs.items()}, rgb, repeat=repeat, device=device,
                         precision=precision)
    others = others_share(before, cpu_snapshot())  # other work on this process's CPUs while timing
    dense_s = times[str(("dense", 1.0, "dense"))]["total_s"]
    timed_on = timing_machine(device, precision)
    for r in rows:
        key = ("dense", 1.0, "dense") if r["scheme"] == "dense" else (r["scheme"], float(r["cr"]), r["variant"])
        zi = getattr(pairs[key].semantic, "zoo_info", {}) or {}
        zd = getattr(pairs[key].distance, "zoo_info", {}) or {}
        r["seconds"] = times[str(key)]["total_s"]
        r["branches_s"] = times[str(key)]["branches_s"]  # the two networks; the rest is watershed, I/O, glue
        r["time_ratio"] = r["seconds"] / dense_s
        r["timed_others_cpu"] = None if others is None else round(others, 3)
        r["timed_on"] = timed_on  # (a report written again from these rows on another CPU names this one)
        r["macs_ratio"] = pair_ratio(zi.get("macs_ratio"), zd.get("macs_ratio"))  # both branches
        r["achieved_cr"] = (pair_ratio(zi.get("achieved_cr"), zd.get("achieved_cr")) if zi.get("achieved_cr")
                            else None if r["scheme"] != "dense" else 1.0)  # both branches' weights
        r["finetune_steps"] = zi.get("steps") if r["variant"] == "fine-tuned" else None
    return rows


def _worker(args) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    data_root, jobs, datasets, device, precision, limit = args
    return run_sweep(data_root, datasets=datasets, device=device, precision=precision, limit=limit, jobs=jobs)


def _run_parallel(data_root, jobs, datasets, device, precision, limit, progress, workers) -> list[dict]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    chunks = [jobs[i::workers] for i in range(workers)]
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
        futures = [ex.submit(_worker, (str(data_root), c, tuple(datasets), device, precision, limit))
                   for c in chunks if c]
        for i, f in enumerate(as_completed(futures)):
            rows += f.result()
            if progress is not None:
                progress(Progress(i + 1, len(futures), f"worker {i + 1} of {len(futures)} done"))
    order = {j: i for i, j in enumerate(jobs)}
    ds_order = {d: i for i, d in enumerate(datasets)}
    rows.sort(key=lambda r: (ds_order[r.dataset], order[(r.scheme, r.cr, r.variant)]))
    return rows


METRICS = ("semantic_dice", "semantic_aji", "distance_aji", "distance_mse", "aji", "pq", "dice")
# metric used by the <2 % rule for each target, and whether lower is better
RULES = {"semantic": ("semantic_dice", False), "distance": ("distance_aji", False), "instances": ("aji", False)}


def relative_drop(value: float, dense: float, lower_is_better: bool = False) -> float:
    return (value - dense) / dense if lower_is_better else (dense - value) / dense


def summarize(rows: list[dict], dataset: str = "monuseg", variant: str = "fine-tuned", tol: float = 0.02) -> dict:
    """Per scheme and target: the largest CR whose relative drop from dense is under ``tol``
    (and at every smaller CR too)."""
    rows = rows_as_dicts(rows)
    dense = next(r for r in rows if r["dataset"] == dataset and r["scheme"] == "dense")
    out = {}
    for scheme in sorted({r["scheme"] for r in rows} - {"dense"}):
        sub = sorted((r for r in rows if r["dataset"] == dataset and r["scheme"] == scheme
                      and r["variant"] == variant), key=lambda r: r["cr"])
        out[scheme] = {}
        for target, (metric, lower) in RULES.items():
            best = None
            for r in sub:
                if relative_drop(r[metric], dense[metric], lower) < tol:
                    best = r["cr"]
                else:
                    break
            out[scheme][target] = best
    return out


def write_outputs(rows: list[dict], out_dir: str | Path, sparsity: list[dict] | None = None) -> list[Path]:
    """CSV, JSON, Markdown tables and PNG plots (metric against CR, both schemes per plot)."""
    rows = rows_as_dicts(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    def write_csv(tmp: Path) -> None:  # per-image values: in the JSON only
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k not in ("images", "per_image")],
                               extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    # every file whole or not at all (an interrupted sweep leaves the last one's files, never half of one)
    atomic_write(out / "sweep.csv", write_csv)
    files.append(out / "sweep.csv")
    atomic_write(out / "sweep.json", lambda t: t.write_text(json.dumps(rows, indent=1)))
    files.append(out / "sweep.json")
    md = []
    for ds in sorted({r["dataset"] for r in rows}):
        md.append(f"\n### {ds}\n")
        md.append("| scheme | CR | variant | " + " | ".join(METRICS) + " |")
        md.append("|---|---:|---|" + "---:|" * len(METRICS))
        for r in rows:
            if r["dataset"] == ds:
                md.append(f"| {r['scheme']} | {r['cr']:g} | {r['variant']} | "
                          + " | ".join(f"{r[m]:.4f}" for m in METRICS) + " |")
    atomic_write(out / "sweep_tables.md", lambda t: t.write_text("\n".join(md) + "\n"))
    files.append(out / "sweep_tables.md")
    for ds in sorted({r["dataset"] for r in rows}):
        dense = next(r for r in rows if r["dataset"] == ds and r["scheme"] == "dense")
        fig, axes = plt.subplots(1, 4, figsize=(18, 4), dpi=100)
        for ax, (metric, title) in zip(axes, (("semantic_dice", "semantic branch alone: Dice"),
                                              ("distance_aji", "distance branch alone: AJI"),
                                              ("distance_mse", "distance branch alone: MSE"),
                                              ("aji", "both pruned: instance AJI"))):
            ax.axhline(dense[metric], color="k", lw=1, ls=":", label="dense")
            for scheme in [s for s in PRUNED_SCHEMES if any(r["scheme"] == s for r in rows)]:
                color = SCHEME_COLORS[scheme]
                for variant, ls in (("fine-tuned", "-"), ("one-shot", "--")):
                    sub = sorted((r for r in rows if r["dataset"] == ds and r["scheme"] == scheme
                                  and r["variant"] == variant), key=lambda r: r["cr"])
                    if sub:
                        ax.plot([r["cr"] for r in sub], [r[metric] for r in sub], ls, color=color, marker="o",
                                ms=3, label=f"{scheme} {variant}")
            ax.set_xscale("log")
            ax.set_xlabel("compression ratio")
            ax.set_title(title, fontsize=10)
            if metric != "distance_mse":
                ax.set_ylim(bottom=max(0, min(ax.get_ylim()[0], dense[metric] - 0.15)))
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{ds}: metric against CR")
        fig.tight_layout()
        atomic_write(out / f"sweep_{ds}.png", fig.savefig)
        plt.close(fig)
        files.append(out / f"sweep_{ds}.png")
    if any(r.get("time_ratio") is not None for r in rows):
        files += _pareto_plots(rows, out, plt)
    if sparsity:
        fig, ax = plt.subplots(figsize=(10, 3.5), dpi=100)
        for branch, color in (("semantic", "tab:red"), ("distance", "tab:green")):
            sub = [r for r in sparsity if r["branch"] == branch]
            ax.plot(range(len(sub)), [r["sparsity"] for r in sub], "o-", color=color, label=branch)
            ax.set_xticks(range(len(sub)), [r["layer"].replace(".weight", "") for r in sub], rotation=70,
                          fontsize=7)
        ax.set_ylabel("sparsity")
        ax.set_title("network-wide pruning at CR 20: sparsity per layer")
        ax.legend()
        fig.tight_layout()
        atomic_write(out / "sparsity_networkwide_cr20.png", fig.savefig)
        plt.close(fig)
        files.append(out / "sparsity_networkwide_cr20.png")
    return files


def sparsity_rows(scheme: str = "networkwide", cr: float = 20) -> list[dict]:
    """Per-layer sparsity of both branches of one zoo pair (the report's sparsity plot)."""
    from napari_prunuclei.pruning.magnitude import sparsity_report

    pair = load_pair(scheme, cr)
    return [{"branch": b, **r} for b, m in (("semantic", pair.semantic), ("distance", pair.distance))
            for r in sparsity_report(m)]


def _pareto_plots(rows: list[dict], out: Path, plt) -> list[Path]:
    """Instance AJI against measured end-to-end time (ratio to dense), every scheme, one plot per data set."""
    files = []
    for ds in sorted({r["dataset"] for r in rows}):
        sub = [r for r in rows if r["dataset"] == ds and r.get("time_ratio") is not None]
        dense = next((r for r in sub if r["scheme"] == "dense"), None)
        if dense is None:
            continue
        fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100, layout="constrained")  # the legend beside the axes
        ax.axhline(dense["aji"], color="k", lw=1, ls=":")
        ax.axhline(dense["aji"] * 0.98, color="0.5", lw=1, ls="--", label="dense - 2 %")
        ax.plot([1.0], [dense["aji"]], "s", color="k", label="dense")
        for scheme in PRUNED_SCHEMES:
            for variant, marker in (("fine-tuned", "o"), ("one-shot", "x")):
                pts = sorted((r for r in sub if r["scheme"] == scheme and r["variant"] == variant),
                             key=lambda r: r["cr"])
                if not pts:
                    continue
                ax.plot([r["time_ratio"] for r in pts], [r["aji"] for r in pts], marker, ls="-" if
                        scheme.startswith("channel") else "none", color=SCHEME_COLORS[scheme], ms=5,
                        label=f"{scheme} {variant}")
                for r in pts:
                    ax.annotate(f"{r['cr']:g}", (r["time_ratio"], r["aji"]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("end-to-end time on a 1000x1000 tile / dense (same run)")
        ax.set_ylabel("instance AJI")
        ax.set_ylim(bottom=max(0, dense["aji"] - 0.25))
        ax.set_title(f"{ds}: accuracy against measured time (labels: CR)", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # (inside, it hid layer-wise CR100)
        atomic_write(out / f"pareto_{ds}.png", fig.savefig)
        plt.close(fig)
        files.append(out / f"pareto_{ds}.png")
    return files
