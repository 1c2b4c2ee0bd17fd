"""The ``prunuclei`` command line: train, evaluate, score, segment, prune, models, sweep."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from napari_prunuclei.base.constants import (
    CHANNEL_SCHEMES,
    DEFAULT_CRS,
    HALO,
    MAX_BATCH,
    MAX_TILE,
    MIN_TILE,
    PRUNED_SCHEMES,
    TILE,
    UNSTRUCTURED_SCHEMES,
)

__all__ = ["main"]


def _count(lo: int, hi: int | None = None, what: str = "a count"):
    """An argparse type: a whole number from ``lo`` to ``hi`` (an option error, exit 2, otherwise)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{what} must be {lo} to {hi}, got {v}" if hi is not None
                                             else f"{what} must be >= {lo}, got {v}")
        return v
    return parse


def _cores() -> int:
    from napari_prunuclei.base.machine import available_cores

    return available_cores()


def _cr(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"CR must be a number, got {text!r}") from None
    if not math.isfinite(v) or v < 1:
        raise argparse.ArgumentTypeError(f"CR must be a finite number >= 1, got {text}")
    return v


def _device(text: str) -> str:
    from napari_prunuclei.models.devices import resolve_device

    if text != "auto":
        try:
            resolve_device(text)
        except (ValueError, RuntimeError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return text


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
    from napari_prunuclei.models.unet import UNetConfig
    from napari_prunuclei.training.train import TrainConfig, train

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
    p.add_argument("--scheme", default="dense",
                   help="dense, layerwise, networkwide (unstructured: sparse, same speed) or channel-layerwise, "
                        "channel-networkwide (structured: smaller, faster networks)")
    p.add_argument("--cr", type=_cr, default=1, help="compression ratio (pruned schemes)")
    p.add_argument("--one-shot", action="store_true", help="the not-fine-tuned (one-shot pruned) variant")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--fg-threshold", type=float, default=None)
    p.add_argument("--marker-threshold", type=float, default=None)
    p.add_argument("--min-size", type=int, default=None)


def _pair(a: argparse.Namespace):
    from napari_prunuclei.runtime.pairs import load_pair

    return load_pair(a.scheme, a.cr, not a.one_shot)


def _watershed(a: argparse.Namespace, pair):
    """The pair's own thresholds, with those given on the command line; None when none were given."""
    from dataclasses import replace

    over = {k: v for k, v in (("fg_threshold", a.fg_threshold), ("marker_threshold", a.marker_threshold),
                              ("min_size", a.min_size)) if v is not None}
    return replace(pair.params, **over) if over else None


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="segment a data split and report Dice, AJI, PQ, F1, distance MSE")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=_count(1, what="--limit"), default=None, help="only the first N images of the split")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    _model_args(p)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_prunuclei.base.progress import tqdm_callback
    from napari_prunuclei.io.dataset import NucleiDataset
    from napari_prunuclei.study.evaluation import evaluate, format_table, write_json

    names = NucleiDataset(a.data).names(a.split)[: a.limit]
    pair = _pair(a)
    with tqdm(total=len(names), desc="evaluate", unit="image") as bar:
        res = evaluate(a.data, a.split, pair, params=_watershed(a, pair), device=a.device, precision=a.precision,
                       names=names, progress=tqdm_callback(bar))
    print(format_table(res, f"{a.data} [{a.split}] {pair.label}" + ("" if pair.spec.is_dense else " fine-tuned"
                                                                   if pair.spec.fine_tuned else "")))
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
    from napari_prunuclei.study.evaluation import format_table, score_files, write_json

    res = score_files(a.truth, a.pred)
    print(format_table(res))
    for side, names in res["unmatched"].items():
        if names:
            where = a.truth if side == "truth_only" else a.pred
            print(f"prunuclei score: warning: {len(names)} label image(s) only in {where}, not scored: "
                  f"{', '.join(names[:10])}{' ...' if len(names) > 10 else ''}", file=sys.stderr)
    if a.json:
        write_json(a.json, res)
    return 0


def _add_segment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment H&E images or slides; write labels (and maps) per image")
    p.add_argument("images", nargs="+",
                   help="image files (PNG, JPEG, TIFF/SVS) or folders of them; @FILE reads a list (one path a "
                        "line, blank lines and # comments skipped, paths relative to the current folder; a list may "
                        "name other @lists)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    _model_args(p)
    p.add_argument("--tile", type=_count(MIN_TILE, MAX_TILE, "--tile"), default=TILE,
                   help="tile side for large images (px)")
    p.add_argument("--halo", type=_count(0, MAX_TILE, "--halo"), default=HALO,
                   help="context around each tile (px, at most the tile)")
    p.add_argument("--tiled", action="store_true",
                   help="tile also images small enough to run whole (default: only above 2048x2048)")
    p.add_argument("--workers", type=_count(1, what="--workers"), default=1,
                   help="dask worker processes (1 thread each): small images run one per worker; an image large "
                        "enough to be tiled has its tiles spread over all workers, stitched here, resumable at the "
                        "tile after an interruption (finished tiles kept in OUT/.prunuclei-<name>.tiles)")
    p.add_argument("--scheduler", default=None,
                   help="address of a running dask.distributed scheduler, used as --workers is; the images and "
                        "OUT must be on a file system every worker sees")
    p.add_argument("--per-file", action="store_true",
                   help="with --workers or --scheduler: run every image whole in one worker, never spread its tiles")
    p.add_argument("--threads", type=_count(0, _cores(), "--threads"), default=0,
                   help="torch threads per worker (0: default)")
    p.add_argument("--post-workers", type=_count(0, _cores(), "--post-workers"), default=None,
                   help="processes running the watershed of finished tiles while the next tiles' branches run "
                        "(default: one per available core on a GPU run; on a CPU run the cores torch leaves, "
                        "none when it uses them all; 0: in the main process)")
    p.add_argument("--batch", type=_count(0, MAX_BATCH, "--batch"), default=0,
                   help="tiles per network call (0: 8 on CUDA, else 1)")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (CUDA; pays a warm-up)")
    p.add_argument("--overwrite", action="store_true",
                   help="redo the given images; when --out holds another model's results, all of them (every "
                        "image's, not only the given ones) are removed first, so one folder never mixes models")
    p.set_defaults(func=_cmd_segment)


def _cmd_segment(a: argparse.Namespace) -> int:
    from napari_prunuclei.runtime.batch import segment_files
    from napari_prunuclei.runtime.request import SegmentRequest, Tiling

    pair = _pair(a)
    request = SegmentRequest(scheme=a.scheme, cr=a.cr, fine_tuned=not a.one_shot, params=_watershed(a, pair),
                             device=a.device, precision=a.precision,
                             tiling=Tiling("tiled" if a.tiled else "auto", a.tile, a.halo),
                             post_workers=a.post_workers, batch=a.batch, compile=a.compile)
    from napari_prunuclei.io.inputs import expand_inputs

    paths = expand_inputs(a.images)
    if not paths:
        raise ValueError("no images given (the lists named are empty)")
    done = segment_files(paths, a.out, request, workers=a.workers, scheduler=a.scheduler,
                         resume=not a.overwrite, threads=a.threads, per_file=a.per_file)
    if done.skipped:
        print(f"{done.skipped} image(s) already finished in {a.out} with this model: skipped (--overwrite redoes "
              "them)", file=sys.stderr)
    for info in done.finished:
        rate = info.get("throughput", {}).get("mp_per_s")
        print(f"{info['image']}: {info['n_nuclei']} nuclei ({info['mode']}, {info['wall_seconds']:.1f} s"
              + (f", {rate:.2f} MP/s" if rate else "") + f") -> {a.out / Path(info['image']).stem}_labels.tif")
    for path, why in done.failed:
        print(f"prunuclei segment: {path}: failed, nothing written: {why}", file=sys.stderr)
    if done.failed:
        print(f"prunuclei segment: {len(done.failed)} of {len(paths)} image(s) failed; "
              f"{len(done.finished)} finished, {done.skipped} skipped (finished before)", file=sys.stderr)
        return 1
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the shipped models (the zoo)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--store-metrics", type=Path, default=None, metavar="SWEEP_JSON",
                   help="store the metrics of a `prunuclei sweep` output (its sweep.json: MoNuSeg test and GBM40 "
                        "rows) in the registry entries of the same pairs, then list")
    p.set_defaults(func=_cmd_models)


def _cmd_models(a: argparse.Namespace) -> int:
    import json

    from napari_prunuclei.models.zoo import registry

    if a.store_metrics is not None:
        from napari_prunuclei.study.release import update_registry_metrics

        rows = json.loads(Path(a.store_metrics).read_text())
        n = update_registry_metrics(rows)
        print(f"stored the metrics of {a.store_metrics} in {n} registry entries")
    reg = registry()
    if a.json:
        print(json.dumps(reg, indent=1))
        return 0
    print(f"watershed defaults: {reg.get('watershed')}")
    print(f"{'branch':<9} {'scheme':<20} {'CR':>5} {'achieved':>8} {'MACs÷':>6} {'tuned':>6} {'steps':>6}  "
          f"{'sha256':<14} {'AJI MoNuSeg':>11} {'AJI GBM40':>9}  file")
    for e in reg["models"]:
        ach = f"{e['achieved_cr']:.2f}" if "achieved_cr" in e else ""
        macs = f"{e['macs_ratio']:.2f}" if "macs_ratio" in e else ""
        aji = [f"{(e.get(k) or {}).get('aji', float('nan')):.3f}" for k in ("metrics", "metrics_gbm40")]
        print(f"{e['branch']:<9} {e['scheme']:<20} {e['cr']:>5g} {ach:>8} {macs:>6} "
              f"{str(e.get('fine_tuned', True)):>6} {e.get('steps', 0):>6}  {e['sha256'][:12]:<14} "
              f"{aji[0]:>11} {aji[1]:>9}  {e['file']}")
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
    from napari_prunuclei.study.release import ship_dense

    best, grid = ship_dense(a.semantic, a.distance, a.data, n_val=a.n_val, device=a.device,
                            precision=a.precision, grid_json=a.grid_json)
    print(f"watershed defaults tuned on held-back train images: {best}")
    return 0


def _add_prune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="prune a dense branch and fine-tune it (unstructured: mask fixed; "
                                     "channel-*: a smaller network)")
    p.add_argument("--branch", choices=["semantic", "distance"], required=True)
    p.add_argument("--scheme", choices=list(PRUNED_SCHEMES), required=True)
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
    p.add_argument("--multiple", type=int, default=None,
                   help="channel schemes: channel counts are multiples of this (default 8)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="channel schemes: training precision (auto: bf16 where the device has it natively)")
    p.add_argument("--register", action="store_true", help="copy the results into the package zoo")
    p.set_defaults(func=_cmd_prune)


def _cmd_prune_channels(a: argparse.Namespace) -> int:
    from napari_prunuclei.models.devices import resolve_device
    from napari_prunuclei.models.inference import resolve_precision
    from napari_prunuclei.pruning.channels import DEFAULT_MULTIPLE
    from napari_prunuclei.pruning.oneshot import load_model
    from napari_prunuclei.training.channel_ladder import channel_ladder

    if a.start is not None:
        raise SystemExit("--start is for the unstructured schemes; a channel ladder always starts from dense")
    out = a.out or Path("runs") / "prune" / f"{a.branch}-{a.scheme}"
    precision = resolve_precision(a.precision, resolve_device(a.device))
    files = channel_ladder(load_model(a.branch), a.branch, a.scheme, a.cr, a.data, out,
                           steps=a.finetune_steps, lr=a.lr, distill=a.distill, batch=a.batch,
                           multiple=a.multiple or DEFAULT_MULTIPLE, device=a.device, threads=a.threads,
                           precision=precision)
    for f in files:
        print(f"pruned: {f}")
    if a.register:
        from napari_prunuclei.study.release import ship_channel

        for f in files:
            print(f"registered: {ship_channel(f)['id']}")
    return 0


def _cmd_prune(a: argparse.Namespace) -> int:
    if a.scheme.startswith("channel-"):
        return _cmd_prune_channels(a)
    from napari_prunuclei.pruning.oneshot import load_model
    from napari_prunuclei.training.finetune import gradual_prune

    out = a.out or Path("runs") / "prune" / f"{a.branch}-{a.scheme}"
    dense = load_model(a.branch)
    start, extra = None, None
    if a.start is not None:
        import json

        from napari_prunuclei.models.sparse import load_sparse
        from napari_prunuclei.models.weights import sha256_file

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
        from napari_prunuclei.study.release import ship_sparse

        for f in files:
            print(f"registered: {ship_sparse(f)['id']}")
    return 0


def _add_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune-watershed", help="tune a pruned pair's own watershed thresholds on held-back "
                                              "train images (never test) and record them in the zoo")
    p.add_argument("--data", type=Path, required=True, help="the training data folder (MoNuSeg layout)")
    p.add_argument("--scheme", choices=list(PRUNED_SCHEMES), nargs="+", required=True)
    p.add_argument("--cr", type=float, nargs="+", required=True)
    p.add_argument("--n-val", type=int, default=4)
    p.add_argument("--fg", type=float, nargs="+", default=[0.5, 0.6])
    p.add_argument("--marker", type=float, nargs="+", default=[0.3, 0.4, 0.5])
    p.add_argument("--min-size", type=int, nargs="+", default=[10])
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, default=None,
                   help="write every grid here (an existing file of the same held-back images is updated)")
    p.set_defaults(func=_cmd_tune)


def _cmd_tune(a: argparse.Namespace) -> int:
    from napari_prunuclei.models.zoo import find_entry, register
    from napari_prunuclei.runtime.pairs import load_pair
    from napari_prunuclei.study.evaluation import predict_dataset, tune_watershed, validation_names, write_json

    names = validation_names(a.data, a.n_val)
    out = {"validation_images": names, "models": {}}
    if a.json and a.json.is_file():  # re-tuning some models keeps the other models' grids
        try:
            old = json.loads(a.json.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{a.json}: not a tune-watershed JSON ({e}); name another file") from e
        if not isinstance(old, dict) or old.get("validation_images") != names:
            raise ValueError(f"{a.json} holds grids tuned on other images; name another file")
        out["models"].update(old.get("models", {}))
    for scheme in a.scheme:
        for cr in a.cr:
            if find_entry("semantic", scheme, cr) is None or find_entry("distance", scheme, cr) is None:
                print(f"{scheme} CR{cr:g}: not in the zoo, skipped")
                continue
            preds = predict_dataset(a.data, names, load_pair(scheme, cr), device=a.device)
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
    p.add_argument("--cr", type=float, nargs="+", default=list(DEFAULT_CRS))
    p.add_argument("--schemes", nargs="+", default=list(UNSTRUCTURED_SCHEMES), choices=list(PRUNED_SCHEMES))
    p.add_argument("--datasets", nargs="+", default=["monuseg", "gbm40"], choices=["monuseg", "gbm40"])
    p.add_argument("--include", type=Path, default=None,
                   help="sweep.json of an earlier sweep: its fine-tuned rows are shown beside (and timed with --time)")
    p.add_argument("--time", action="store_true",
                   help="also time every pair end to end on one 1000x1000 tile, dense in the same run")
    p.add_argument("--time-repeat", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=["one-shot", "fine-tuned"], choices=["one-shot", "fine-tuned"])
    p.add_argument("--limit", type=_count(1, what="--limit"), default=None,
                   help="only the first N images of each data set")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--workers", type=int, default=2, help="processes (one torch thread each)")
    p.add_argument("--update-registry", action="store_true",
                   help="store the MoNuSeg test metrics of every fine-tuned zoo model in the registry")
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(a: argparse.Namespace) -> int:
    import platform

    from tqdm import tqdm

    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.base.progress import tqdm_callback
    from napari_prunuclei.models.inference import resolve_precision
    from napari_prunuclei.runtime.pairs import load_pair
    from napari_prunuclei.study.pruning_report import write_report
    from napari_prunuclei.study.release import (
        channel_finetune_note,
        finetune_note,
        finetune_protocols,
        registry_watersheds,
        update_registry_metrics,
    )
    from napari_prunuclei.study.sweep import run_sweep, sparsity_rows, write_outputs

    with tqdm(desc="sweep", unit="model") as bar:
        rows = run_sweep(a.data, schemes=tuple(a.schemes), crs=tuple(a.cr), variants=tuple(a.variants),
                         datasets=tuple(a.datasets), device=a.device, precision=a.precision, limit=a.limit,
                         progress=tqdm_callback(bar), workers=a.workers)
    rows = [r.as_dict() for r in rows]
    if a.include is not None:
        import json

        have = {(r["dataset"], r["scheme"], r["cr"], r["variant"]) for r in rows}
        rows += [r for r in json.loads(a.include.read_text())  # the earlier sweep's fine-tuned pairs
                 if (r["dataset"], r["scheme"], r["cr"], r["variant"]) not in have and r["dataset"] in a.datasets
                 and r["variant"] == "fine-tuned"]
    if a.time:
        from napari_prunuclei.study.sweep import add_times

        rows = add_times(rows, a.data, repeat=a.time_repeat, device=a.device, precision=a.precision)
    files = write_outputs(rows, a.out, None if set(a.schemes) <= set(CHANNEL_SCHEMES) else sparsity_rows())
    protocols = finetune_protocols()
    import torch

    meta = {"machine": f"{cpu_name()} ({platform.machine()}), {torch.get_num_threads()} torch threads",
            "precision": f"{a.precision} ({resolve_precision(a.precision, torch.device(a.device))} here)",
            "watershed": load_pair().params.as_dict(), "finetune": finetune_note(protocols),
            "protocols": protocols, "watershed_models": registry_watersheds()}
    command = "prunuclei sweep " + " ".join(sys.argv[2:])
    if set(a.schemes) & set(CHANNEL_SCHEMES):
        from napari_prunuclei.study.channel_report import write_channel_report

        meta["finetune"] = channel_finetune_note()
        if (a.out / "multiples.json").is_file():
            import json

            meta["multiples"] = json.loads((a.out / "multiples.json").read_text())
        files.append(write_channel_report(rows, a.report, command, meta))
    else:
        files.append(write_report(rows, a.report, command, meta))
    if a.update_registry:
        update_registry_metrics(rows)
    for f in files:
        print(f"wrote {f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prunuclei", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_evaluate, _add_score, _add_segment, _add_models, _add_ship, _add_prune, _add_tune,
                _add_sweep):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input (a file, a folder, an option) gives one line naming it and exit 2;
    anything unexpected gives one line and exit 3 (``PRUNUCLEI_DEBUG=1`` shows the traceback)."""
    import os
    import signal
    import threading

    parser = build_parser()
    args = parser.parse_args(argv)
    old = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM ends a run as Ctrl-C does: scratch removed
        old = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as e:
        term = isinstance(e, Terminated)
        print(f"prunuclei {args.command}: {'terminated' if term else 'interrupted'}", file=sys.stderr)
        return 143 if term else 130
    except (ValueError, OSError, RuntimeError, LookupError, MemoryError) as e:
        if os.environ.get("PRUNUCLEI_DEBUG"):
            raise
        print(f"prunuclei {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - no traceback reaches a user
        if os.environ.get("PRUNUCLEI_DEBUG"):
            raise
        print(f"prunuclei {args.command}: unexpected error: {type(e).__name__}: {_one_line(e)} "
              "(run with PRUNUCLEI_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is so that its clean-up runs as for Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    if isinstance(e, MemoryError):
        text = f"out of memory ({text})"
    return " ".join(text.split())[:1000]


if __name__ == "__main__":
    sys.exit(main())
