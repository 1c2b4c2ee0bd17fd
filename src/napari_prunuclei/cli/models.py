"""`prunuclei train`, `models`, `ship-dense`, `prune` and `tune-watershed`: making and listing the zoo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_prunuclei.base.constants import (
    PRUNED_SCHEMES,
)


def add_train(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=cmd_train)


def cmd_train(a: argparse.Namespace) -> int:
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


def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the shipped models (the zoo)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown", action="store_true",
                   help="one row per pair: held-back, MoNuSeg test and GBM40 AJI with the drop against dense "
                        "(the model card's table)")
    p.add_argument("--into", type=Path, default=None, metavar="MARKDOWN",
                   help="with --markdown: replace the table of the same header in this file (the model card) "
                        "instead of printing it")
    p.add_argument("--store-metrics", type=Path, default=None, metavar="SWEEP_JSON",
                   help="store the metrics of a `prunuclei sweep` output (its sweep.json: MoNuSeg test and GBM40 "
                        "rows) in the registry entries of the same pairs, then list")
    p.set_defaults(func=cmd_models)


def cmd_models(a: argparse.Namespace) -> int:
    import json

    from napari_prunuclei.models.zoo import registry

    if a.store_metrics is not None:
        from napari_prunuclei.study.release import update_registry_metrics
        from napari_prunuclei.study.sweep_rows import check_made_by, read_sweep_rows

        # only rows made by the weight files that ship now: another zoo's figures never reach this registry
        rows = check_made_by(read_sweep_rows(a.store_metrics), a.store_metrics)
        n = update_registry_metrics(rows)
        print(f"stored the metrics of {a.store_metrics} in {n} registry entries")
    reg = registry()
    if a.json:
        print(json.dumps(reg, indent=1))
        return 0
    if a.markdown:
        table = pairs_markdown(reg["models"])
        if a.into is None:
            print(table)
            return 0
        from napari_prunuclei.io.atomic import atomic_write

        try:
            text = replace_table(a.into.read_text(encoding="utf-8"), table)
        except (OSError, UnicodeError, ValueError) as e:
            raise SystemExit(f"prunuclei models --into {a.into}: {e}") from None
        atomic_write(a.into, lambda t: t.write_text(text, encoding="utf-8"))
        print(f"{a.into}: the zoo table replaced ({len(table.splitlines()) - 2} rows)")
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


def pairs_markdown(models: list[dict]) -> str:
    """The zoo's pairs (one row each, named by the semantic entry) as a markdown table: the pair's MACs ratio
    (both branches), held-back AJI and the sweep's MoNuSeg test and GBM40 AJI, each with its drop against dense."""
    sem = [e for e in models if e["branch"] == "semantic"]
    dense = next((e for e in sem if e["scheme"] == "dense"), {})

    def cell(e: dict, key: str) -> str:
        m, d = (e.get(key) or {}).get("aji"), (dense.get(key) or {}).get("aji")
        if m is None:
            return ""
        return f"{m:.3f}" + ("" if e is dense or not d else f" ({100 * (m - d) / d:+.1f} %)")

    lines = ["| scheme | CR | MACs ÷ | steps per branch at its CR | AJI held-back (4 train images) | "
             "AJI MoNuSeg test (14) | AJI GBM40 (40) |", "|---|---:|---:|---:|---:|---:|---:|"]
    from napari_prunuclei.study.release import pair_ratio

    dist = {(e["scheme"], float(e["cr"]), e.get("fine_tuned", True)): e for e in models if e["branch"] == "distance"}
    for e in sem:
        other = dist.get((e["scheme"], float(e["cr"]), e.get("fine_tuned", True)), {})
        macs = (f"{pair_ratio(e.get('macs_ratio'), other.get('macs_ratio')):.2f}"  # the pair's: both branches
                if e["scheme"] != "dense" else "")
        lines.append(f"| {e['scheme']} | {e['cr']:g} | {macs} | {e.get('steps', '')} | "
                     f"{cell(e, 'metrics_held_back')} | {cell(e, 'metrics')} | {cell(e, 'metrics_gbm40')} |")
    return "\n".join(lines)


def replace_table(text: str, table: str) -> str:
    """``text`` with its one markdown table headed like ``table`` (its first line) replaced by ``table``;
    ValueError when there is none or more than one."""
    lines = text.split("\n")
    header = table.split("\n", 1)[0]
    starts = [i for i, line in enumerate(lines) if line.strip() == header]
    if len(starts) != 1:
        raise ValueError(f"{'no' if not starts else len(starts)} tables headed {header[:40]!r}...: nothing replaced")
    end = starts[0]
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join([*lines[:starts[0]], *table.split("\n"), *lines[end:]])


def add_ship(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ship-dense", help="copy trained dense weights into the package and tune the watershed")
    p.add_argument("--semantic", type=Path, required=True)
    p.add_argument("--distance", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="data folder; tuning uses held-back train images")
    p.add_argument("--n-val", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="fp32")
    p.add_argument("--grid-json", type=Path, default=None, help="write the tuning grid here")
    p.set_defaults(func=cmd_ship)


def cmd_ship(a: argparse.Namespace) -> int:
    from napari_prunuclei.study.release import ship_dense

    best, grid = ship_dense(a.semantic, a.distance, a.data, n_val=a.n_val, device=a.device,
                            precision=a.precision, grid_json=a.grid_json)
    print(f"watershed defaults tuned on held-back train images: {best}")
    return 0


def add_prune(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=cmd_prune)


def cmd_prune_channels(a: argparse.Namespace) -> int:
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


def cmd_prune(a: argparse.Namespace) -> int:
    if a.scheme.startswith("channel-"):
        return cmd_prune_channels(a)
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


def add_tune(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=cmd_tune)


def cmd_tune(a: argparse.Namespace) -> int:
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
