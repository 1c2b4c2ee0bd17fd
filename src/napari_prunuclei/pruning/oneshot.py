"""Any (scheme, CR): the registry's fine-tuned file where there is one, else one-shot pruning of the dense
weights at load time (not fine-tuned, labelled so)."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

from napari_prunuclei.models import zoo
from napari_prunuclei.models.unet import UNet
from napari_prunuclei.models.zoo import load_registered, normalize_scheme

__all__ = ["load_model", "one_shot"]


@lru_cache(maxsize=16)
def _one_shot(branch: str, scheme: str, cr: float, weights_dir: str) -> UNet:
    dense = load_registered(branch, "dense", 1.0, weights_dir=Path(weights_dir))
    if scheme.startswith("channel-"):
        from napari_prunuclei.pruning.channels import channel_prune, macs

        model, plan = channel_prune(dense, scheme, cr)
        note = (f"one-shot channel pruning of the dense weights at load time (not fine-tuned, BatchNorm not "
                f"re-estimated: expect a collapse; achieved CR {plan.achieved_cr:.2f})")
        extra = {"achieved_cr": plan.achieved_cr, "macs_ratio": macs(dense.config) / macs(model.config)}
    else:
        from napari_prunuclei.pruning.magnitude import prune

        model, _ = prune(dense, scheme, cr)
        note = "one-shot magnitude pruning of the dense weights at load time (not fine-tuned)"
        extra = {}
    model.zoo_info = {
        "id": f"{branch}-{scheme}-cr{cr:g}-oneshot", "branch": branch, "scheme": scheme, "cr": cr,
        "fine_tuned": False, "sha256": dense.zoo_info["sha256"], "file": None, "note": note, **extra,
    }
    return model


def one_shot(branch: str, scheme: str, cr: float, *, weights_dir: Path | None = None) -> UNet:
    """One branch pruned at load time from the registry's dense file (a fresh copy, eval mode). (The package's
    weights folder is looked up at each call, never bound at import: a copy would outlive a change of it.)"""
    m = _one_shot(branch, normalize_scheme(scheme), float(cr), str(weights_dir or zoo.WEIGHTS_DIR))
    out = copy.deepcopy(m)
    out.zoo_info = dict(m.zoo_info)
    return out.eval()


def load_model(branch: str, scheme: str = "dense", cr: float = 1, *, fine_tuned: bool = True,
               weights_dir: Path | None = None) -> UNet:
    """The torch module of one branch (``semantic`` or ``distance``) in eval mode.

    A (scheme, CR) present in the zoo loads its fine-tuned file (hash checked); any other, or
    ``fine_tuned=False``, is made by one-shot magnitude pruning of the dense weights. The returned module
    is a fresh copy, safe to modify. ``model.zoo_info`` says which it is.
    """
    model = load_registered(branch, scheme, cr, fine_tuned=fine_tuned, weights_dir=weights_dir)
    if model is not None:
        return model
    return one_shot(branch, scheme, cr, weights_dir=weights_dir)
