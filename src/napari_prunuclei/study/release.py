"""Zoo build tooling: put trained weights into the package (copy, hash, register, tune the
watershed), read how each zoo file was fine-tuned, and store sweep metrics in the registry.

Above :mod:`napari_prunuclei.study.evaluation` (it tunes thresholds by evaluating); the model
layer (:mod:`napari_prunuclei.models`) never imports it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from napari_prunuclei.models import zoo
from napari_prunuclei.models.weights import load_branch, read_metadata, sha256_file
from napari_prunuclei.models.zoo import register, registry, watershed_key

__all__ = ["ship_dense", "ship_sparse", "stages_at_cr", "steps_at_cr", "finetune_protocols", "finetune_note",
           "shared_protocol", "protocol_text", "macs_ratio", "pair_ratio", "correct_macs_ratios",
           "registry_watersheds", "update_registry_metrics", "METRICS_KEYS"]


def ship_dense(semantic: Path, distance: Path, data_dir: Path, *, n_val: int = 4, device: str = "auto",
               precision: str = "fp32", grid_json: Path | None = None):
    """Copy both dense branch files into the package, register them, tune the watershed.

    The watershed thresholds are chosen by mean AJI on the ``n_val`` train images
    that training held back (never on test). Returns ``(best params, grid)``.
    """
    from napari_prunuclei.runtime.pairs import pair_from_models
    from napari_prunuclei.study.evaluation import predict_dataset, tune_watershed, validation_names, write_json

    zoo.WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)  # (looked up at each call: never a stale copy)
    models = []
    for branch, src in (("semantic", semantic), ("distance", distance)):
        meta = read_metadata(src)
        if meta.get("branch") != branch:
            raise ValueError(f"{src} was trained as branch {meta.get('branch')!r}, not {branch!r}")
        dst = zoo.WEIGHTS_DIR / f"{branch}_dense.safetensors"
        shutil.copyfile(src, dst)
        steps = int(json.loads(meta.get("steps", "0")))
        register({"id": f"{branch}-dense", "branch": branch, "scheme": "dense", "cr": 1, "fine_tuned": True,
                  "format": "dense", "file": dst.name, "sha256": sha256_file(dst), "steps": steps,
                  "train_config": json.loads(meta.get("train_config", "{}"))})
        models.append(load_branch(dst))
    names = validation_names(data_dir, n_val)
    preds = predict_dataset(data_dir, names, pair_from_models(*models), device=device, precision=precision)
    best, grid = tune_watershed(preds)
    register(watershed=best.as_dict())
    if grid_json:
        write_json(grid_json, {"validation_images": names, "best": best.as_dict(), "grid": grid})
    return best, grid


def stages_at_cr(meta: dict) -> list[tuple[int, float, float]]:
    """``(steps, lr, distill)`` of each fine-tuning stage a sparse file had at its own CR, oldest
    first: its own, after those of the files it continued at the same CR (``start`` metadata)."""
    cr = float(json.loads(meta["cr"]))
    stages = [(int(json.loads(meta.get("finetune_steps", "0"))), float(json.loads(meta.get("lr", "3e-4"))),
               float(json.loads(meta.get("distill", "0"))))]
    start = json.loads(meta["start"]) if "start" in meta else None
    while start is not None and float(start.get("cr", -1)) == cr:
        stages.insert(0, (int(start.get("finetune_steps", 0)), float(start.get("lr", 3e-4)),
                          float(start.get("distill", 0))))
        start = start.get("start")
    return stages


def steps_at_cr(meta: dict) -> int:
    """Fine-tuning steps a sparse file had at its own CR, continuations of the same CR included."""
    return sum(steps for steps, _, _ in stages_at_cr(meta))


def _ship(path: Path, fmt: str, steps: int, extra: dict, metrics: dict | None) -> dict:
    """Copy a fine-tuned branch file into the package and register it under its branch, scheme and CR."""
    meta = read_metadata(path)
    branch, scheme = meta["branch"], meta["scheme"]
    cr = float(json.loads(meta["cr"]))
    dst = zoo.WEIGHTS_DIR / f"{branch}_{scheme}_cr{cr:g}.safetensors"
    shutil.copyfile(path, dst)
    entry = {"id": f"{branch}-{scheme}-cr{cr:g}", "branch": branch, "scheme": scheme, "cr": cr, **extra,
             "fine_tuned": True, "format": fmt, "file": dst.name, "sha256": sha256_file(dst),
             "steps": steps, "metrics": metrics or {}}
    register(entry)
    return entry


def _finetune_record(meta: dict) -> dict:
    """The fine-tuning protocol a file was made by (``finetune`` in its registry entry), if it says."""
    return {"finetune": json.loads(meta["protocol"])} if "protocol" in meta else {}


def ship_sparse(path: Path, metrics: dict | None = None) -> dict:
    """Copy a fine-tuned sparse branch file into the package and register it; return the entry."""
    meta = read_metadata(path)
    return _ship(path, "sparse", steps_at_cr(meta), _finetune_record(meta), metrics)


def pair_ratio(semantic: float | None, distance: float | None) -> float:
    """The pair's ratio (the dense pair's MACs, or weights, over the pruned pair's) from its two branches'
    ratios (None: a dense-shaped branch, 1). The two dense branches are the same network (equal MACs and
    weights, tests/test_release.py), so the pair's ratio is the harmonic mean of the branches'."""
    s, d = float(semantic or 1.0), float(distance or 1.0)
    return round(2 / (1 / s + 1 / d), 4)


def macs_ratio(channels: list[int] | tuple[int, ...]) -> float:
    """The dense network's multiply-accumulates over those of the channel-pruned network with ``channels``."""
    from dataclasses import replace

    from napari_prunuclei.models.unet import UNetConfig
    from napari_prunuclei.pruning.channels import macs

    dense = UNetConfig()
    return round(macs(dense) / macs(replace(dense, channels=tuple(int(c) for c in channels))), 4)


def correct_macs_ratios() -> int:
    """Every channel entry's ``macs_ratio`` computed from its channel counts against dense (the gradual ladder
    recorded it against the stage it was cut from: 1.86 for CR 4); returns the entries changed."""
    n = 0
    for e in registry()["models"]:
        if e.get("format") == "channels" and e.get("channels") and e.get("macs_ratio") != macs_ratio(e["channels"]):
            register({**e, "macs_ratio": macs_ratio(e["channels"])})
            n += 1
    return n


def ship_channel(path: Path, metrics: dict | None = None) -> dict:
    """Copy a channel-pruned branch file (a smaller dense network) into the package and register it (its MACs
    ratio from its channel counts against dense, not from the file's record)."""
    meta = read_metadata(path)
    extra = {"achieved_cr": round(float(json.loads(meta["achieved_cr"])), 4),
             "macs_ratio": macs_ratio(json.loads(meta["channels"])),
             "channels": json.loads(meta["channels"]), **_finetune_record(meta)}
    return _ship(path, "channels", int(json.loads(meta["finetune_steps"])), extra, metrics)


def channel_finetune_note() -> str:
    """How the zoo's channel-pruned files were fine-tuned: the zoo's one protocol where it is shared, else read
    from the files themselves."""
    shared = shared_protocol()
    if shared is not None:
        return (protocol_text(shared) + f"; channel counts in multiples of {shared.get('multiple', 8)}, "
                f"{shared.get('channel_head', '')}")
    texts = set()
    for e in registry()["models"]:
        if e.get("format") != "channels":
            continue
        m = read_metadata(zoo.WEIGHTS_DIR / e["file"])
        cfg = json.loads(m.get("train_config", "{}"))
        batch = cfg.get("batch", json.loads(m.get("batch", "8")))  # the ladder's defaults when not recorded
        crop = cfg.get("crop", json.loads(m.get("crop", "256")))
        texts.add(f"gradual ladder; at each CR: cut to multiples of {json.loads(m.get('multiple', '8'))}, "
                  f"BatchNorm re-estimated, {json.loads(m['finetune_steps'])} Adam steps of batch "
                  f"{batch} x {crop}² crops (lr {json.loads(m['lr']):g} cosine), "
                  f"distillation weight {json.loads(m['distill']):g} ({m.get('distill_target', 'dense outputs')})")
    return " / ".join(sorted(texts)) or "no channel-pruned models in the zoo"


def registry_watersheds() -> dict:
    """The zoo's per-pair watershed thresholds (``{"scheme-crN": params}``)."""
    return registry().get("watershed_models", {})


def finetune_protocols() -> dict[str, str]:
    """How each zoo pair was fine-tuned at its own CR (``{"scheme-crN": text}``, from the files)."""
    texts: dict[str, set] = {}
    for e in registry()["models"]:
        if e["scheme"] == "dense" or e.get("format") != "sparse":
            continue
        stages = stages_at_cr(read_metadata(zoo.WEIGHTS_DIR / e["file"]))
        text = " then ".join(f"{steps} steps (lr {lr:g}" + (f", distillation weight {d:g})" if d else ")")
                             for steps, lr, d in stages)
        texts.setdefault(watershed_key(e["scheme"], e["cr"]), set()).add(text)
    return {k: " / ".join(sorted(v)) for k, v in texts.items()}


def shared_protocol(models: list[dict] | None = None) -> dict | None:
    """The one ``finetune`` record every fine-tuned pruned zoo entry carries (issue 21), or None when some
    entry has none or two records differ."""
    models = registry()["models"] if models is None else models
    recs = [e.get("finetune") for e in models if e["scheme"] != "dense" and e.get("fine_tuned", True)]
    if not recs or any(r is None for r in recs):
        return None
    return recs[0] if len({json.dumps(r, sort_keys=True) for r in recs}) == 1 else None


def protocol_text(rec: dict) -> str:
    """A ``finetune`` record in words, for the reports."""
    return (f"protocol v{rec['version']}, one for every scheme and CR: {rec['ladder']} ladder, "
            f"{rec['steps']} Adam steps per branch per stage, batch {rec['batch']} x {rec['crop']}² crops, "
            f"lr {rec['lr']:g} cosine to {rec['lr_min']:g} after {rec['warmup']} warm-up steps, distillation weight "
            f"{rec['distill']:g} ({rec['distill_target']}), BatchNorm {rec['batchnorm']}, seed {rec['seed']}, "
            f"{rec['precision']}; data: {rec['data']} (scripts/build_zoo.py)")


def finetune_note(protocols: dict[str, str]) -> str:
    """The zoo's one protocol in words where every pruned entry shares it; else the protocols of
    :func:`finetune_protocols`, grouped by scheme and protocol."""
    shared = shared_protocol()
    if shared is not None:
        return protocol_text(shared)
    if not protocols:
        return "no fine-tuned models in the zoo"
    groups: dict[tuple, list] = {}
    for key, text in protocols.items():
        scheme, cr = key.rsplit("-cr", 1)
        groups.setdefault((scheme, text), []).append(float(cr))
    parts = [f"{scheme} CR {', '.join(f'{c:g}' for c in sorted(crs))}: {text} at that CR"
             for (scheme, text), crs in sorted(groups.items(), key=lambda kv: (kv[0][0], min(kv[1])))]
    return "; ".join(parts) + " (several protocols: the zoo is being rebuilt by scripts/build_zoo.py)"


#: where each data set's sweep metrics go in a registry entry
METRICS_KEYS = {"monuseg": ("metrics", "monuseg2018 test"), "gbm40": ("metrics_gbm40", "gbm40")}


def update_registry_metrics(rows: list) -> int:
    """Store the sweep's metrics of each zoo pair in its registry entries: MoNuSeg test in ``metrics``,
    GBM40 in ``metrics_gbm40`` (rows as written by ``prunuclei sweep``: sweep.json). Returns the
    number of entries updated."""
    n = 0
    for e in registry()["models"]:
        changed = False
        for dataset, (key, name) in METRICS_KEYS.items():
            match = [r for r in rows if r["dataset"] == dataset and r["scheme"] == e["scheme"]
                     and float(r["cr"]) == float(e["cr"])
                     and (r["variant"] == "fine-tuned" or e["scheme"] == "dense")]
            if match:
                r = match[0]
                keys = ("aji", "pq", "dice", "semantic_dice", "distance_aji", "distance_mse")
                e[key] = {"data": name, **{k: round(r[k], 6) for k in keys}}
                changed = True
        if changed:
            register(e)
            n += 1
    return n
