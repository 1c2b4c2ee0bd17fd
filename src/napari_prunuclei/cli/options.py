"""Option types and the options every model command shares (scheme, CR, device, thresholds), checked as
they are parsed: a bad value is an option error (exit 2) naming the option."""

from __future__ import annotations

import argparse


def count_type(lo: int, hi: int | None = None, what: str = "a count"):
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


def machine_cores() -> int:
    from napari_prunuclei.base.machine import available_cores

    return available_cores()


def cr_type(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"CR must be a number, got {text!r}") from None
    if not math.isfinite(v) or v < 1:
        raise argparse.ArgumentTypeError(f"CR must be a finite number >= 1, got {text}")
    return v


def device_type(text: str) -> str:
    from napari_prunuclei.models.devices import resolve_device

    if text != "auto":
        try:
            resolve_device(text)
        except (ValueError, RuntimeError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return text


def model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheme", default="dense",
                   help="dense, layerwise, networkwide (unstructured: sparse, same speed) or channel-layerwise, "
                        "channel-networkwide (structured: smaller, faster networks)")
    p.add_argument("--cr", type=cr_type, default=1, help="compression ratio (pruned schemes)")
    p.add_argument("--one-shot", action="store_true", help="the not-fine-tuned (one-shot pruned) variant")
    p.add_argument("--device", type=device_type, default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--fg-threshold", type=float, default=None)
    p.add_argument("--marker-threshold", type=float, default=None)
    p.add_argument("--min-size", type=int, default=None)


def pixel_size_type(text: str) -> float:
    """An argparse type: micrometres per pixel (checked as :func:`~napari_prunuclei.runtime.scale.check_pixel_size`)."""
    from napari_prunuclei.runtime.scale import check_pixel_size

    try:
        return check_pixel_size(float(text), "--pixel-size")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e) if "micrometres" in str(e) else f"--pixel-size: not a number: "
                                         f"{text!r}") from None


def pixel_size_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pixel-size", type=pixel_size_type, default=None, metavar="UM",
                   help="micrometres per pixel of the images (default: read from each file's metadata, TIFF "
                        "resolution tags, OME PhysicalSizeX or SVS MPP; unknown: taken at the models' 0.25 µm/px, "
                        "40x); images of another size are resampled to the models' for both branches, the labels "
                        "come back on the image's grid")


def pair_of(a: argparse.Namespace):
    from napari_prunuclei.runtime.pairs import load_pair

    return load_pair(a.scheme, a.cr, not a.one_shot)


def watershed_of(a: argparse.Namespace, pair):
    """The pair's own thresholds, with those given on the command line; None when none were given."""
    from dataclasses import replace

    over = {k: v for k, v in (("fg_threshold", a.fg_threshold), ("marker_threshold", a.marker_threshold),
                              ("min_size", a.min_size)) if v is not None}
    return replace(pair.params, **over) if over else None
