"""An earlier sweep's rows (its sweep.json) read back and checked, so that a report or a timing built from them
never fails half-way or prints nan: every problem is one line naming the file and the row."""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["read_sweep_rows", "check_made_by", "SweepRowsError"]

#: the measures every row carries (means over its images)
MEASURES = ("semantic_dice", "semantic_aji", "distance_aji", "distance_mse", "aji", "pq", "dice")
DATASETS = ("monuseg", "gbm40")


class SweepRowsError(ValueError):
    """A sweep.json that cannot be used; the message names the file (and the row)."""


def _number(v) -> bool:
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def _problem(r) -> str | None:
    if not isinstance(r, dict):
        return f"not an object but {type(r).__name__}"
    for key in ("dataset", "scheme", "variant"):
        if not isinstance(r.get(key), str):
            return f"'{key}' missing or not text"
    if r["dataset"] not in DATASETS:
        return f"unknown data set {r['dataset']!r} (one of {', '.join(DATASETS)})"
    if not (_number(r.get("cr")) and r["cr"] >= 1):
        return f"'cr' missing or not a number >= 1: {r.get('cr')!r}"
    if not (isinstance(r.get("n_images"), int) and not isinstance(r["n_images"], bool) and r["n_images"] >= 1):
        return f"'n_images' missing or not a whole number >= 1: {r.get('n_images')!r}"
    for key in MEASURES:
        if not _number(r.get(key)):
            return f"'{key}' missing or not a finite number: {r.get(key)!r}"
    per, images = r.get("per_image"), r.get("images")
    if per is not None or images is not None:
        if not (isinstance(images, list) and isinstance(per, dict)):
            return "'images' and 'per_image' must come together, a list and an object"
        for key, values in per.items():
            if not (isinstance(values, list) and len(values) == len(images) and all(map(_number, values))):
                return f"per_image '{key}' is not {len(images)} finite numbers"
    return None


def read_sweep_rows(path: str | Path) -> list[dict]:
    """The rows of ``path`` (a sweep.json written by ``prunuclei sweep``), each checked; SweepRowsError else."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO would block the read, a folder fail obscurely
        raise SweepRowsError(f"{path}: not a sweep.json file (a folder, a FIFO or a device)")
    try:
        rows = json.loads(path.read_bytes().decode("utf-8-sig"))
    except OSError as e:
        raise SweepRowsError(f"{path}: cannot read it: {e.strerror or e}") from None
    except (ValueError, RecursionError) as e:
        raise SweepRowsError(f"{path}: not JSON ({str(e)[:200]})") from None
    if not isinstance(rows, list):
        raise SweepRowsError(f"{path}: not a sweep.json (a list of rows), but a JSON {type(rows).__name__}")
    for i, r in enumerate(rows):
        why = _problem(r)
        if why:
            raise SweepRowsError(f"{path}: row {i + 1}: {why}")
    return rows


def check_made_by(rows: list[dict], path: str | Path) -> list[dict]:
    """``rows`` (read from ``path``) if every one was made by the weight files, thresholds and watershed rule
    that ship now (its ``made_by`` record); SweepRowsError naming the first that was not (a sweep of an
    earlier zoo, or one that did not record them), so its figures are never reported or stored as this zoo's."""
    from napari_prunuclei.io.outfolder import describe_differences, printable
    from napari_prunuclei.runtime.pairs import ModelSpec, results_record

    for i, r in enumerate(rows):
        made = r.get("made_by")
        what = printable(f"{r['dataset']} {r['scheme']} CR{r['cr']:g} {r['variant']}")
        try:
            now = results_record(ModelSpec(r["scheme"], r["cr"], r["variant"] != "one-shot"))
        except ValueError as e:  # a scheme this package does not know
            raise SweepRowsError(f"{path}: row {i + 1} ({what}): {e}") from None
        if r["variant"] == "fine-tuned" and now["made_by"] != "zoo file":
            raise SweepRowsError(f"{path}: row {i + 1} ({what}) says fine-tuned, but no fine-tuned pair ships at "
                                 f"this CR: run the sweep again without --rows or --include")
        if made != now:
            why = ("by a sweep that did not record its weight files" if not isinstance(made, dict) else
                   f"by other weight files or rules than those that ship now ({describe_differences(made, now)})")
            raise SweepRowsError(f"{path}: row {i + 1} ({what}) was made {why}: run the sweep again without "
                                 "--rows or --include")
    return rows
