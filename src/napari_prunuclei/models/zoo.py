"""The model zoo shipped in the package: a registry of weight files with their hashes.

``models/weights/registry.json`` lists every shipped file: branch, scheme, CR,
whether it was fine-tuned, file name, sha256, training steps and metrics, and
holds the watershed defaults tuned on held-back training images. Any scheme/CR
not in the registry is made on the fly by one-shot pruning of the dense weights
(:mod:`napari_prunuclei.pruning.oneshot`) and labelled ``fine_tuned: False``.
"""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from pathlib import Path

from napari_prunuclei.io.atomic import atomic_write
from napari_prunuclei.models.unet import UNet
from napari_prunuclei.models.weights import WeightsError, load_branch
from napari_prunuclei.nuclei.watershed import WatershedParams

__all__ = [
    "WEIGHTS_DIR",
    "normalize_scheme",
    "registry",
    "find_entry",
    "load_registered",
    "model_pixel_size",
    "clear_cache",
    "model_info",
    "default_watershed",
    "register",
    "zoo_crs",
]

WEIGHTS_DIR = Path(os.environ.get("PRUNUCLEI_WEIGHTS", Path(__file__).parent / "weights"))
_ALIASES = {
    "dense": "dense",
    "layerwise": "layerwise", "layer-wise": "layerwise", "layer_wise": "layerwise",
    "networkwide": "networkwide", "network-wide": "networkwide", "network_wide": "networkwide",
    "global": "networkwide",
    "channel-layerwise": "channel-layerwise", "channel_layerwise": "channel-layerwise",
    "channel-layer-wise": "channel-layerwise",
    "channel-networkwide": "channel-networkwide", "channel_networkwide": "channel-networkwide",
    "channel-network-wide": "channel-networkwide",
}


def normalize_scheme(scheme: str) -> str:
    """``layer-wise`` -> ``layerwise``, ``network-wide`` -> ``networkwide``; checks the name."""
    key = str(scheme).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown scheme {scheme!r}: use dense, layerwise, networkwide, channel-layerwise "
                         "or channel-networkwide")
    return _ALIASES[key]


def _registry_path(weights_dir: Path | None = None) -> Path:
    return Path(weights_dir or WEIGHTS_DIR) / "registry.json"


def registry(weights_dir: Path | None = None) -> dict:
    """The parsed registry (``{"watershed": {...}, "models": [...]}``)."""
    p = _registry_path(weights_dir)
    if not p.is_file():
        raise WeightsError(f"model registry missing: {p}. The package was installed without its weights.")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f"model registry {p} is corrupt: {e}") from None


def zoo_crs(weights_dir: Path | None = None) -> list[float]:
    """The compression ratios with shipped fine-tuned models (both branches, any scheme)."""
    return sorted({e["cr"] for e in registry(weights_dir)["models"] if e["scheme"] != "dense"})


def find_entry(branch: str, scheme: str, cr: float, fine_tuned: bool = True,
               weights_dir: Path | None = None) -> dict | None:
    scheme = normalize_scheme(scheme)
    if scheme == "dense":
        cr, fine_tuned = 1, True
    for e in registry(weights_dir)["models"]:
        if (e["branch"] == branch and e["scheme"] == scheme and float(e["cr"]) == float(cr)
                and bool(e.get("fine_tuned", True)) == bool(fine_tuned)):
            return e
    return None


def _load_entry(entry: dict, weights_dir: Path | None = None) -> UNet:
    missing = [k for k in ("id", "file", "sha256") if not entry.get(k)]
    if missing:
        raise WeightsError(f"registry entry {entry.get('id', '?')!r} in {_registry_path(weights_dir)} lacks "
                           f"{', '.join(missing)}: the registry is corrupt")
    path = Path(weights_dir or WEIGHTS_DIR) / entry["file"]
    if entry.get("format", "dense") == "sparse":
        from napari_prunuclei.models.sparse import load_sparse

        model, _, _ = load_sparse(path, sha256=entry["sha256"])
    else:
        model = load_branch(path, sha256=entry["sha256"])
    model.zoo_info = {k: entry[k] for k in ("id", "branch", "scheme", "cr", "fine_tuned", "sha256", "file",
                                            "achieved_cr", "macs_ratio", "steps") if k in entry}
    model.zoo_info.setdefault("fine_tuned", True)
    return model


@lru_cache(maxsize=32)
def _cached(branch: str, scheme: str, cr: float, fine_tuned: bool, weights_dir: str) -> UNet | None:
    wd = Path(weights_dir)
    if branch not in ("semantic", "distance"):
        raise ValueError(f"branch must be semantic or distance, got {branch!r}")
    entry = find_entry(branch, scheme, cr, fine_tuned, wd)
    if entry is None and scheme == "dense":
        raise WeightsError(f"no dense {branch} model in the registry {_registry_path(wd)}")
    return None if entry is None else _load_entry(entry, wd)


def load_registered(branch: str, scheme: str = "dense", cr: float = 1, *, fine_tuned: bool = True,
                    weights_dir: Path | None = None) -> UNet | None:
    """The torch module (a fresh copy, eval mode) of one branch's file in the registry (hash checked), or None
    when the registry has no such (scheme, CR, fine-tuned) entry. One-shot models for the others:
    :func:`napari_prunuclei.pruning.oneshot.load_model`."""
    scheme = normalize_scheme(scheme)
    cr = 1.0 if scheme == "dense" else float(cr)
    if scheme != "dense" and cr < 1:
        raise ValueError(f"compression ratio must be >= 1, got {cr}")
    m = _cached(branch, scheme, cr, bool(fine_tuned), str(weights_dir or WEIGHTS_DIR))
    if m is None:
        return None
    out = copy.deepcopy(m)
    out.zoo_info = dict(m.zoo_info)
    return out.eval()


def model_info(model: UNet) -> dict:
    """What :func:`load_model` recorded about a module (empty for others)."""
    return dict(getattr(model, "zoo_info", {}))


def model_pixel_size(weights_dir: Path | None = None) -> float:
    """Micrometres per pixel of the images the zoo was trained on (the registry's ``pixel_size_um``)."""
    from napari_prunuclei.base.constants import MODEL_PIXEL_SIZE_UM

    try:
        return float(registry(weights_dir).get("pixel_size_um") or MODEL_PIXEL_SIZE_UM)
    except WeightsError:
        return MODEL_PIXEL_SIZE_UM


def watershed_key(scheme: str, cr: float) -> str:
    """Registry key of a pruned model pair's own watershed thresholds."""
    return f"{normalize_scheme(scheme)}-cr{float(cr):g}"


def default_watershed(scheme: str = "dense", cr: float = 1, fine_tuned: bool = True,
                      weights_dir: Path | None = None) -> WatershedParams:
    """Watershed thresholds for a model pair, tuned on held-back training images (never test).

    A fine-tuned zoo pair may have its own (``prunuclei tune-watershed``); every other
    model, and the dense one, uses the model card's.
    """
    try:
        reg = registry(weights_dir)
    except WeightsError:
        return WatershedParams()
    ws = reg.get("watershed")
    if fine_tuned and normalize_scheme(scheme) != "dense":
        ws = reg.get("watershed_models", {}).get(watershed_key(scheme, cr), ws)
    return WatershedParams(**ws) if ws else WatershedParams()


def register(entry: dict | None = None, *, watershed: dict | None = None, model_watershed: tuple | None = None,
             weights_dir: Path | None = None) -> None:
    """Add or replace a registry entry (keyed by ``id``) and/or set the watershed defaults.

    ``model_watershed``: ``(scheme, cr, params dict)`` sets a pruned pair's own thresholds.
    """
    import fcntl

    p = _registry_path(weights_dir)
    with open(p.with_suffix(".lock"), "w") as lock:  # several pruning runs may register at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        reg = registry(weights_dir) if p.is_file() else {"format": 1, "watershed": None, "models": []}
        if entry is not None:
            reg["models"] = [e for e in reg["models"] if e["id"] != entry["id"]] + [entry]
            reg["models"].sort(key=lambda e: (e["branch"], e["scheme"] != "dense", e["scheme"], e["cr"],
                                              not e.get("fine_tuned", True)))
        if watershed is not None:
            reg["watershed"] = watershed
        if model_watershed is not None:
            scheme, cr, params = model_watershed
            reg.setdefault("watershed_models", {})[watershed_key(scheme, cr)] = params
        atomic_write(p, lambda t: t.write_text(json.dumps(reg, indent=1) + "\n"))
    clear_cache()


def clear_cache() -> None:
    """Forget the loaded files (after the registry changed)."""
    _cached.cache_clear()
