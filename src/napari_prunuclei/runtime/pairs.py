"""Model pairs: which model (:class:`ModelSpec`), both loaded branches with their own thresholds
(:class:`ModelPair`), loaded once and cached (:func:`load_pair`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from napari_prunuclei.base.constants import SCHEME_LABELS
from napari_prunuclei.nuclei.watershed import WatershedParams

__all__ = ["ModelSpec", "ModelPair", "load_pair", "pair_from_models", "results_record", "pair_weights"]


@dataclass(frozen=True)
class ModelSpec:
    """Which model pair: ``scheme`` (dense, layerwise, networkwide), ``cr``, fine-tuned or one-shot."""

    scheme: str = "dense"
    cr: float = 1.0
    fine_tuned: bool = True

    def __post_init__(self) -> None:
        from napari_prunuclei.models.zoo import normalize_scheme

        scheme = normalize_scheme(self.scheme)
        object.__setattr__(self, "scheme", scheme)
        if scheme == "dense":
            object.__setattr__(self, "cr", 1.0)
            object.__setattr__(self, "fine_tuned", True)
        else:
            if not float(self.cr) >= 1:
                raise ValueError(f"compression ratio must be >= 1, got {self.cr}")
            object.__setattr__(self, "cr", float(self.cr))
            object.__setattr__(self, "fine_tuned", bool(self.fine_tuned))

    @property
    def is_dense(self) -> bool:
        return self.scheme == "dense"

    @property
    def label(self) -> str:
        """``dense``, ``network-wide CR20``, ``layer-wise CR7 one-shot``."""
        if self.is_dense:
            return "dense"
        return f"{SCHEME_LABELS[self.scheme]} CR{self.cr:g}" + ("" if self.fine_tuned else " one-shot")


@dataclass(frozen=True, eq=False)
class ModelPair:
    """Both branches of one model, and the pair's own watershed thresholds.

    Pairs from :func:`load_pair` are shared (cached): do not modify their modules; use
    :func:`napari_prunuclei.models.zoo.load_model` for a copy to train or prune.
    """

    spec: ModelSpec
    semantic: Any
    distance: Any
    params: WatershedParams

    @property
    def label(self) -> str:
        return self.spec.label

    def models_info(self) -> dict[str, dict]:
        """Zoo records (id, file, sha256, ...) and weight sparsity of both branches."""
        cache = self.__dict__.get("_info")
        if cache is None:
            from napari_prunuclei.models.zoo import model_info
            from napari_prunuclei.pruning.channels import prunable_count
            from napari_prunuclei.pruning.magnitude import prunable_parameters

            cache = {}
            for branch, model in (("semantic", self.semantic), ("distance", self.distance)):
                params = prunable_parameters(model)
                total = sum(p.numel() for p in params.values())
                nonzero = sum(int((p != 0).sum()) for p in params.values())
                # a channel-pruned network is smaller: count against the dense network's weights
                cfg = getattr(model, "config", None)
                dense_total = prunable_count(replace(cfg, channels=None)) if getattr(cfg, "channels", None) else total
                cache[branch] = {**model_info(model), "prunable": total, "nonzero": nonzero,
                                 "dense_prunable": dense_total, "sparsity": 1 - nonzero / max(dense_total, 1)}
            self.__dict__["_info"] = cache
        return {k: dict(v) for k, v in cache.items()}


def _registry_stamp(weights_dir: str) -> tuple:
    p = Path(weights_dir) / "registry.json"
    try:
        st = p.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return (0, 0)


@lru_cache(maxsize=8)
def _cached_pair(spec: ModelSpec, weights_dir: str, stamp: tuple) -> ModelPair:
    from napari_prunuclei.models.zoo import default_watershed
    from napari_prunuclei.pruning.oneshot import load_model

    wd = Path(weights_dir)
    sem = load_model("semantic", spec.scheme, spec.cr, fine_tuned=spec.fine_tuned, weights_dir=wd)
    dst = load_model("distance", spec.scheme, spec.cr, fine_tuned=spec.fine_tuned, weights_dir=wd)
    return ModelPair(spec, sem, dst, default_watershed(spec.scheme, spec.cr, spec.fine_tuned, weights_dir=wd))


def load_pair(scheme: str | ModelSpec = "dense", cr: float = 1, fine_tuned: bool = True, *,
              weights_dir: str | Path | None = None) -> ModelPair:
    """Both branches of a zoo model (hash-checked) and its own watershed thresholds. A (scheme, CR) the
    zoo has no file for is made by one-shot pruning and its spec says ``fine_tuned=False``. Cached:
    loading the same pair again costs nothing."""
    from napari_prunuclei.models.zoo import WEIGHTS_DIR, find_entry

    spec = scheme if isinstance(scheme, ModelSpec) else ModelSpec(scheme, cr, fine_tuned)
    wd = str(weights_dir or WEIGHTS_DIR)
    if spec.fine_tuned and not spec.is_dense and find_entry("semantic", spec.scheme, spec.cr, True, Path(wd)) is None:
        spec = replace(spec, fine_tuned=False)  # not in the zoo: made by one-shot pruning, and named so
    return _cached_pair(spec, wd, _registry_stamp(wd))


def pair_from_models(semantic, distance, params: WatershedParams | None = None,
                     spec: ModelSpec | None = None) -> ModelPair:
    """A pair of modules not (or not yet) in the zoo, e.g. just trained; spec from their zoo records."""
    if spec is None:
        zi = getattr(semantic, "zoo_info", {}) or {}
        spec = ModelSpec(zi.get("scheme", "dense"), zi.get("cr", 1), zi.get("fine_tuned", True))
    return ModelPair(spec, semantic, distance, params or WatershedParams())


def results_record(spec: ModelSpec, params: WatershedParams | None = None, *,
                   weights_dir: str | Path | None = None) -> dict:
    """What makes a pair's results, beyond its name: both branches' weight files (sha256, from the registry;
    a one-shot pair: the dense files it is pruned from), the thresholds in use (``params`` None: the pair's
    own) and the watershed's rule. Saved results whose record differs were made by other weights or rules
    (e.g. a zoo rebuilt by a later protocol) and are not this pair's. Reads the registry only."""
    from napari_prunuclei.models.zoo import WEIGHTS_DIR, find_entry
    from napari_prunuclei.nuclei.watershed import WATERSHED_RULE

    wd = Path(weights_dir or WEIGHTS_DIR)
    fine_tuned = spec.fine_tuned and (spec.is_dense or find_entry("semantic", spec.scheme, spec.cr, True, wd)
                                      is not None)
    files = {}
    for branch in ("semantic", "distance"):
        e = (find_entry(branch, spec.scheme, spec.cr, True, wd) if fine_tuned
             else find_entry(branch, "dense", 1, True, wd))
        files[branch] = e.get("sha256") if e else None
    if params is None:
        from napari_prunuclei.models.zoo import default_watershed

        params = default_watershed(spec.scheme, spec.cr, fine_tuned, weights_dir=wd)
    from napari_prunuclei import __version__

    made_by = "zoo file" if fine_tuned else f"one-shot pruning of the dense files (napari-prunuclei {__version__})"
    return {"weights": files, "made_by": made_by,
            "thresholds": params.as_dict(), "watershed_rule": WATERSHED_RULE}


def pair_weights(pair: ModelPair) -> dict[str, str | None]:
    """The sha256 of the weight files a loaded pair runs, by branch (a one-shot pair: the dense files it was
    pruned from; None: a module not from the zoo)."""
    return {b: (getattr(getattr(pair, b), "zoo_info", None) or {}).get("sha256") for b in ("semantic", "distance")}
