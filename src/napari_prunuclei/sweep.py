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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .data import NucleiDataset, distance_target
from .inference import predict_branch
from .metrics import aji, dice, distance_mse, panoptic_quality
from .models.zoo import default_watershed, find_entry, load_model
from .postprocess import watershed_instances

__all__ = ["run_sweep", "summarize", "write_outputs"]

DATASETS = {"monuseg": ("monuseg2018", "test"), "gbm40": ("gbm40", "test")}


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


def run_sweep(
    data_root: str | Path,
    schemes: tuple[str, ...] = ("layerwise", "networkwide"),
    crs: tuple[float, ...] = (2, 4, 5, 8, 10, 16, 20, 32, 50, 100),
    variants: tuple[str, ...] = ("one-shot", "fine-tuned"),
    datasets: tuple[str, ...] = ("monuseg", "gbm40"),
    *,
    device: str = "cpu",
    precision: str = "auto",
    limit: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    workers: int = 1,
    jobs: list[tuple[str, float, str]] | None = None,
) -> list[dict]:
    """One row per (dataset, scheme, CR, variant) with the mean metrics over images.

    ``workers`` > 1 splits the models over that many processes (one torch thread each),
    which keeps every core busy through the single-threaded watershed and metrics.
    """
    if jobs is None:
        jobs = [("dense", 1.0, "dense")] + [(s, float(c), v) for s in schemes for c in crs for v in variants]
    if workers > 1:
        return _run_parallel(data_root, jobs, datasets, device, precision, limit, progress, workers)
    root = Path(data_root)
    params = default_watershed()
    images = _load_images(root, list(datasets), limit)
    dense_sem, dense_dst = load_model("semantic"), load_model("distance")
    dense_out = {}
    for key, items in images.items():
        dense_out[key] = [
            (predict_branch(dense_sem, rgb, device=device, precision=precision),
             predict_branch(dense_dst, rgb, device=device, precision=precision))
            for _, rgb, _, _ in items
        ]
    rows = []
    for j, (scheme, cr, variant) in enumerate(jobs):
        if progress is not None:
            progress(j, len(jobs), f"{scheme} CR{cr:g} {variant}")
        ft = variant != "one-shot"
        if variant == "fine-tuned" and scheme != "dense" and find_entry("semantic", scheme, cr) is None:
            continue  # not in the zoo: nothing fine-tuned to measure
        sem = load_model("semantic", scheme, cr, fine_tuned=ft)
        dst = load_model("distance", scheme, cr, fine_tuned=ft)
        pair = default_watershed(scheme, cr, ft)  # a fine-tuned pair's own thresholds, if tuned
        for key, items in images.items():
            acc: dict[str, list[float]] = {}
            for (_name, rgb, lab, dtarget), (dprob, ddist) in zip(items, dense_out[key]):
                prob = dprob if scheme == "dense" else predict_branch(sem, rgb, device=device, precision=precision)
                dist = ddist if scheme == "dense" else predict_branch(dst, rgb, device=device, precision=precision)
                sem_alone = watershed_instances(prob, ddist, params)
                dst_alone = watershed_instances(dprob, dist, params)
                both = watershed_instances(prob, dist, pair)
                pq = panoptic_quality(lab, both)
                vals = {
                    "semantic_dice": dice(lab, prob > params.fg_threshold),
                    "semantic_aji": aji(lab, sem_alone),
                    "distance_aji": aji(lab, dst_alone),
                    "distance_mse": distance_mse(dtarget, dist),
                    "aji": aji(lab, both), "pq": pq["pq"], "dice": dice(lab, both),
                }
                for k, v in vals.items():
                    acc.setdefault(k, []).append(v)
            rows.append({"dataset": key, "scheme": scheme, "cr": cr, "variant": variant,
                         "n_images": len(items), **{k: float(np.mean(v)) for k, v in acc.items()}})
    if progress is not None:
        progress(len(jobs), len(jobs), "done")
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
                progress(i + 1, len(futures), f"worker {i + 1} of {len(futures)} done")
    order = {j: i for i, j in enumerate(jobs)}
    ds_order = {d: i for i, d in enumerate(datasets)}
    rows.sort(key=lambda r: (ds_order[r["dataset"]], order[(r["scheme"], r["cr"], r["variant"])]))
    return rows


METRICS = ("semantic_dice", "semantic_aji", "distance_aji", "distance_mse", "aji", "pq", "dice")
# metric used by the <2 % rule for each target, and whether lower is better
RULES = {"semantic": ("semantic_dice", False), "distance": ("distance_aji", False), "instances": ("aji", False)}


def relative_drop(value: float, dense: float, lower_is_better: bool = False) -> float:
    return (value - dense) / dense if lower_is_better else (dense - value) / dense


def summarize(rows: list[dict], dataset: str = "monuseg", variant: str = "fine-tuned", tol: float = 0.02) -> dict:
    """Per scheme and target: the largest CR whose relative drop from dense is under ``tol``
    (and at every smaller CR too)."""
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    with open(out / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    files.append(out / "sweep.csv")
    (out / "sweep.json").write_text(json.dumps(rows, indent=1))
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
    (out / "sweep_tables.md").write_text("\n".join(md) + "\n")
    files.append(out / "sweep_tables.md")
    for ds in sorted({r["dataset"] for r in rows}):
        dense = next(r for r in rows if r["dataset"] == ds and r["scheme"] == "dense")
        fig, axes = plt.subplots(1, 4, figsize=(18, 4), dpi=100)
        for ax, (metric, title) in zip(axes, (("semantic_dice", "semantic branch alone: Dice"),
                                              ("distance_aji", "distance branch alone: AJI"),
                                              ("distance_mse", "distance branch alone: MSE"),
                                              ("aji", "both pruned: instance AJI"))):
            ax.axhline(dense[metric], color="k", lw=1, ls=":", label="dense")
            for scheme, color in (("layerwise", "tab:orange"), ("networkwide", "tab:blue")):
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
        fig.savefig(out / f"sweep_{ds}.png")
        plt.close(fig)
        files.append(out / f"sweep_{ds}.png")
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
        fig.savefig(out / "sparsity_networkwide_cr20.png")
        plt.close(fig)
        files.append(out / "sparsity_networkwide_cr20.png")
    return files
