"""The ``prunuclei`` command line: train, evaluate, score, segment, prune, models, sweep."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one branch on a data folder")
    p.add_argument("--branch", choices=["semantic", "distance"], required=True)
    p.add_argument("--data", type=Path, required=True, help="dataset folder (images/, labels/, split.json)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<branch>)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-val", type=int, default=4, help="train images held back for tuning")
    p.add_argument("--norm", choices=["batch", "none"], default="batch")
    p.add_argument("--base-filters", type=int, default=16)
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.set_defaults(func=_cmd_train)


def _cmd_train(a: argparse.Namespace) -> int:
    from .models.unet import UNetConfig
    from .training import TrainConfig, train

    cfg = TrainConfig(
        branch=a.branch, steps=a.steps, batch=a.batch, crop=a.crop, lr=a.lr, seed=a.seed,
        n_val=a.n_val, ckpt_every=a.ckpt_every, precision=a.precision, threads=a.threads,
        model=UNetConfig(norm=a.norm, base_filters=a.base_filters).to_dict(),
    )
    out = a.out or Path("runs") / a.branch
    path = train(cfg, a.data, out, resume=a.resume, device=a.device)
    print(f"weights: {path}")
    return 0


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheme", default="dense", help="dense, layerwise or networkwide")
    p.add_argument("--cr", type=float, default=1, help="compression ratio (pruned schemes)")
    p.add_argument("--one-shot", action="store_true", help="the not-fine-tuned (one-shot pruned) variant")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--fg-threshold", type=float, default=None)
    p.add_argument("--marker-threshold", type=float, default=None)
    p.add_argument("--min-size", type=int, default=None)


def _watershed(a: argparse.Namespace):
    from dataclasses import replace

    from .models.zoo import default_watershed

    params = default_watershed(a.scheme, a.cr, not a.one_shot)
    over = {k: v for k, v in (("fg_threshold", a.fg_threshold), ("marker_threshold", a.marker_threshold),
                              ("min_size", a.min_size)) if v is not None}
    return replace(params, **over)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="segment a data split and report Dice, AJI, PQ, F1, distance MSE")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    _model_args(p)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .data import NucleiDataset
    from .evaluation import evaluate, format_table, write_json

    names = NucleiDataset(a.data).names(a.split)[: a.limit]
    with tqdm(total=len(names), desc="evaluate", unit="image") as bar:
        res = evaluate(a.data, a.split, a.scheme, a.cr, fine_tuned=not a.one_shot, params=_watershed(a),
                       device=a.device, precision=a.precision, names=names,
                       progress=lambda d, t: bar.update(d - bar.n))
    variant = "dense" if res["config"]["scheme"] == "dense" else (
        f"{res['config']['scheme']} CR{a.cr:g} {'one-shot' if a.one_shot else 'fine-tuned'}")
    print(format_table(res, f"{a.data} [{a.split}] {variant}"))
    if a.json:
        write_json(a.json, res)
        print(f"wrote {a.json}")
    return 0


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score instance label images against ground truth")
    p.add_argument("truth", type=Path, help="ground-truth label file or folder")
    p.add_argument("pred", type=Path, help="predicted label file or folder (matched by file name)")
    p.add_argument("--json", type=Path, default=None)
    p.set_defaults(func=_cmd_score)


def _cmd_score(a: argparse.Namespace) -> int:
    from .evaluation import format_table, score_files, write_json

    res = score_files(a.truth, a.pred)
    print(format_table(res))
    if a.json:
        write_json(a.json, res)
    return 0


def _add_segment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment H&E images or slides; write labels (and maps) per image",
                       fromfile_prefix_chars="@")
    p.add_argument("images", type=Path, nargs="+",
                   help="image files (PNG, JPEG, TIFF/SVS) or folders of them; @FILE reads a list")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    _model_args(p)
    p.add_argument("--tile", type=int, default=1024, help="tile side for large images (px)")
    p.add_argument("--halo", type=int, default=128, help="context around each tile (px)")
    p.add_argument("--tiled", action="store_true",
                   help="tile also images small enough to run whole (default: only above 2048x2048)")
    p.add_argument("--workers", type=int, default=1, help="dask worker processes (1 thread each)")
    p.add_argument("--scheduler", default=None, help="address of a running dask.distributed scheduler")
    p.add_argument("--threads", type=int, default=0, help="torch threads per worker (0: default)")
    p.add_argument("--post-workers", type=int, default=0,
                   help="threads running the watershed of finished tiles while the next tiles' branches run")
    p.add_argument("--overwrite", action="store_true", help="redo images already finished in --out")
    p.set_defaults(func=_cmd_segment)


def _image_paths(items: list[Path]) -> list[Path]:
    exts = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".svs"}
    paths = []
    for p in items:
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.suffix.lower() in exts)
        else:
            paths.append(p)
    return paths


def _cmd_segment(a: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .batch import SegmentOptions, segment_files

    a.out.mkdir(parents=True, exist_ok=True)
    opts = SegmentOptions(scheme=a.scheme, cr=a.cr, fine_tuned=not a.one_shot, device=a.device,
                          precision=a.precision, params=asdict(_watershed(a)), tile=a.tile, halo=a.halo,
                          threads=a.threads, force_tiled=a.tiled, post_workers=a.post_workers)
    paths = _image_paths(a.images)
    for info in segment_files(paths, a.out, opts, workers=a.workers, scheduler=a.scheduler,
                              resume=not a.overwrite):
        print(f"{info['image']}: {info['n_nuclei']} nuclei ({info['mode']}, {info['wall_seconds']:.1f} s) "
              f"-> {a.out / Path(info['image']).stem}_labels.tif")
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the shipped models (the zoo)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_models)


def _cmd_models(a: argparse.Namespace) -> int:
    import json

    from .models.zoo import registry

    reg = registry()
    if a.json:
        print(json.dumps(reg, indent=1))
        return 0
    print(f"watershed defaults: {reg.get('watershed')}")
    print(f"{'branch':<9} {'scheme':<12} {'CR':>5} {'tuned':>6} {'steps':>6}  {'sha256':<14} file")
    for e in reg["models"]:
        print(f"{e['branch']:<9} {e['scheme']:<12} {e['cr']:>5g} {str(e.get('fine_tuned', True)):>6} "
              f"{e.get('steps', 0):>6}  {e['sha256'][:12]:<14} {e['file']}")
    return 0


def _add_ship(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ship-dense", help="copy trained dense weights into the package and tune the watershed")
    p.add_argument("--semantic", type=Path, required=True)
    p.add_argument("--distance", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="data folder; tuning uses held-back train images")
    p.add_argument("--n-val", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="fp32")
    p.add_argument("--grid-json", type=Path, default=None, help="write the tuning grid here")
    p.set_defaults(func=_cmd_ship)


def _cmd_ship(a: argparse.Namespace) -> int:
    from .models.release import ship_dense

    best, grid = ship_dense(a.semantic, a.distance, a.data, n_val=a.n_val, device=a.device,
                            precision=a.precision, grid_json=a.grid_json)
    print(f"watershed defaults tuned on held-back train images: {best}")
    return 0


def _add_prune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="prune a dense branch and fine-tune it with the mask fixed")
    p.add_argument("--branch", choices=["semantic", "distance"], required=True)
    p.add_argument("--scheme", choices=["layerwise", "networkwide"], required=True)
    p.add_argument("--cr", type=float, nargs="+", required=True,
                   help="compression ratio(s); several are pruned gradually, in ascending order, in one run")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/prune/<branch>-<scheme>)")
    p.add_argument("--finetune-steps", type=int, default=150, help="fixed-mask fine-tuning steps per CR")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--no-bn-recalibration", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--start", type=Path, default=None,
                   help="continue from this pruned (sparse) branch file instead of the dense weights")
    p.add_argument("--distill", type=float, default=0.0,
                   help="weight of distillation from the dense branch's outputs (0: off)")
    p.add_argument("--register", action="store_true", help="copy the results into the package zoo")
    p.set_defaults(func=_cmd_prune)


def _cmd_prune(a: argparse.Namespace) -> int:
    from .finetune import gradual_prune
    from .models.zoo import load_model

    out = a.out or Path("runs") / "prune" / f"{a.branch}-{a.scheme}"
    dense = load_model(a.branch)
    start, extra = None, None
    if a.start is not None:
        import json

        from .models.sparse import load_sparse
        from .models.weights import sha256_file

        start, _, meta = load_sparse(a.start)
        if meta.get("branch") != a.branch:
            raise SystemExit(f"--start {a.start} is a {meta.get('branch')} branch, not {a.branch}")
        # provenance: what the starting file itself was (its own fine-tune, and what it continued)
        keep = ("cr", "finetune_steps", "lr", "distill", "start")
        extra = {"start": {k: json.loads(meta[k]) for k in keep if k in meta}
                 | {"scheme": meta.get("scheme"), "sha256": sha256_file(a.start)}}
    files = gradual_prune(dense, a.branch, a.scheme, a.cr, a.data, out,
                          steps_per_cr=a.finetune_steps, lr=a.lr, batch=a.batch, threads=a.threads,
                          device=a.device, recalibrate=not a.no_bn_recalibration, start=start,
                          teacher=dense if a.distill > 0 else None, distill=a.distill, extra_metadata=extra)
    for f in files:
        print(f"pruned: {f}")
    if a.register:
        from .models.release import ship_sparse

        for f in files:
            print(f"registered: {ship_sparse(f)['id']}")
    return 0


def _add_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune-watershed", help="tune a pruned pair's own watershed thresholds on held-back "
                                              "train images (never test) and record them in the zoo")
    p.add_argument("--data", type=Path, required=True, help="the training data folder (MoNuSeg layout)")
    p.add_argument("--scheme", choices=["layerwise", "networkwide"], nargs="+", required=True)
    p.add_argument("--cr", type=float, nargs="+", required=True)
    p.add_argument("--n-val", type=int, default=4)
    p.add_argument("--fg", type=float, nargs="+", default=[0.5, 0.6])
    p.add_argument("--marker", type=float, nargs="+", default=[0.3, 0.4, 0.5])
    p.add_argument("--min-size", type=int, nargs="+", default=[10])
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, default=None, help="write every grid here")
    p.set_defaults(func=_cmd_tune)


def _cmd_tune(a: argparse.Namespace) -> int:
    from .evaluation import predict_dataset, tune_watershed, validation_names, write_json
    from .models.zoo import find_entry, load_model, register

    names = validation_names(a.data, a.n_val)
    out = {"validation_images": names, "models": {}}
    for scheme in a.scheme:
        for cr in a.cr:
            if find_entry("semantic", scheme, cr) is None or find_entry("distance", scheme, cr) is None:
                print(f"{scheme} CR{cr:g}: not in the zoo, skipped")
                continue
            preds = predict_dataset(a.data, names, load_model("semantic", scheme, cr),
                                    load_model("distance", scheme, cr), device=a.device)
            best, grid = tune_watershed(preds, tuple(a.fg), tuple(a.marker), tuple(a.min_size))
            register(model_watershed=(scheme, cr, best.as_dict()))
            out["models"][f"{scheme}-cr{cr:g}"] = {"best": best.as_dict(), "grid": grid}
            print(f"{scheme} CR{cr:g}: {best.as_dict()} (held-back AJI {max(g['aji'] for g in grid):.4f})")
    if a.json:
        write_json(a.json, out)
    return 0


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="the paper's experiment: both schemes, every CR, one-shot and fine-tuned")
    p.add_argument("--data", type=Path, required=True, help="folder holding monuseg2018/ and gbm40/")
    p.add_argument("--out", type=Path, default=Path("docs") / "pruning", help="tables, CSV/JSON and plots")
    p.add_argument("--report", type=Path, default=Path("docs") / "pruning.md")
    p.add_argument("--cr", type=float, nargs="+", default=[2, 4, 5, 8, 10, 16, 20, 32, 50, 100])
    p.add_argument("--datasets", nargs="+", default=["monuseg", "gbm40"], choices=["monuseg", "gbm40"])
    p.add_argument("--variants", nargs="+", default=["one-shot", "fine-tuned"], choices=["one-shot", "fine-tuned"])
    p.add_argument("--limit", type=int, default=None, help="only the first N images of each data set")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--workers", type=int, default=2, help="processes (one torch thread each)")
    p.add_argument("--update-registry", action="store_true",
                   help="store the MoNuSeg test metrics of every fine-tuned zoo model in the registry")
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(a: argparse.Namespace) -> int:
    import platform

    from tqdm import tqdm

    from .models.zoo import default_watershed
    from .pruning_report import write_report
    from .sweep import run_sweep, write_outputs

    with tqdm(desc="sweep", unit="model") as bar:
        def progress(done: int, total: int, msg: str) -> None:
            bar.total = total
            bar.update(done - bar.n)
            bar.set_postfix_str(msg)

        rows = run_sweep(a.data, crs=tuple(a.cr), variants=tuple(a.variants), datasets=tuple(a.datasets),
                         device=a.device, precision=a.precision, limit=a.limit, progress=progress,
                         workers=a.workers)
    sparsity = _sparsity_rows()
    files = write_outputs(rows, a.out, sparsity)
    protocols = _finetune_protocols()
    meta = {"machine": f"{_cpu_name()} ({platform.machine()}), {_threads()} torch threads",
            "precision": a.precision, "watershed": default_watershed().as_dict(), "finetune": _finetune_note(protocols),
            "protocols": protocols, "watershed_models": registry_watersheds()}
    files.append(write_report(rows, a.report, "prunuclei sweep " + " ".join(sys.argv[2:]), meta))
    if a.update_registry:
        _update_registry(rows)
    for f in files:
        print(f"wrote {f}")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def registry_watersheds() -> dict:
    """The zoo's per-pair watershed thresholds (``{"scheme-crN": params}``)."""
    from .models.zoo import registry

    return registry().get("watershed_models", {})


def _finetune_protocols() -> dict[str, str]:
    """How each zoo pair was fine-tuned at its own CR (``{"scheme-crN": text}``, from the files)."""
    from .models.release import stages_at_cr
    from .models.weights import read_metadata
    from .models.zoo import WEIGHTS_DIR, registry, watershed_key

    texts: dict[str, set] = {}
    for e in registry()["models"]:
        if e["scheme"] == "dense" or e.get("format") != "sparse":
            continue
        stages = stages_at_cr(read_metadata(WEIGHTS_DIR / e["file"]))
        text = " then ".join(f"{steps} steps (lr {lr:g}" + (f", distillation weight {d:g})" if d else ")")
                             for steps, lr, d in stages)
        texts.setdefault(watershed_key(e["scheme"], e["cr"]), set()).add(text)
    return {k: " / ".join(sorted(v)) for k, v in texts.items()}


def _finetune_note(protocols: dict[str, str]) -> str:
    """The protocols of :func:`_finetune_protocols`, grouped by scheme and protocol."""
    if not protocols:
        return "no fine-tuned models in the zoo"
    groups: dict[tuple, list] = {}
    for key, text in protocols.items():
        scheme, cr = key.rsplit("-cr", 1)
        groups.setdefault((scheme, text), []).append(float(cr))
    parts = [f"{scheme} CR {', '.join(f'{c:g}' for c in sorted(crs))}: {text} at that CR"
             for (scheme, text), crs in sorted(groups.items(), key=lambda kv: (kv[0][0], min(kv[1])))]
    return "; ".join(parts) + (" (gradual: each CR starts from a lower CR's fine-tuned model; see "
                               "scripts/build_zoo.sh and scripts/refine_zoo.sh)")


def _sparsity_rows() -> list[dict]:
    from .models.zoo import load_model
    from .pruning import sparsity_report

    rows = []
    for branch in ("semantic", "distance"):
        for r in sparsity_report(load_model(branch, "networkwide", 20)):
            rows.append({"branch": branch, **r})
    return rows


def _update_registry(rows: list[dict]) -> None:
    from .models.zoo import register, registry

    for e in registry()["models"]:
        match = [r for r in rows if r["dataset"] == "monuseg" and r["scheme"] == e["scheme"]
                 and r["cr"] == float(e["cr"]) and (r["variant"] == "fine-tuned" or e["scheme"] == "dense")]
        if match:
            r = match[0]
            keys = ("aji", "pq", "dice", "semantic_dice", "distance_aji", "distance_mse")
            e["metrics"] = {"data": "monuseg2018 test", **{k: round(r[k], 6) for k in keys}}
            register(e)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prunuclei", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_evaluate, _add_score, _add_segment, _add_models, _add_ship, _add_prune, _add_tune,
                _add_sweep):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"prunuclei {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
