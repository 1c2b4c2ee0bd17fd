"""A comparison's seconds: how they were taken, in words and as column names, and when other work made them
noisy."""

from __future__ import annotations

from napari_prunuclei.base.machine import BUSY_SHARE
from napari_prunuclei.runtime.request import Segmentation
from napari_prunuclei.study.session import ComparisonResult

__all__ = ["end_to_end", "how_timed", "noisy_header", "time_columns"]


def how_timed(result: ComparisonResult) -> str:
    """How the seconds were taken, in words, with what makes them noisy (numbers.csv's header says it)."""
    t = result.timing
    if t is not None:
        return t.how
    how = "one run each"
    if result.rewatershed:
        how += f"; after the threshold edit, {result.chosen.info.model}'s watershed timed again alone"
    if result.others is not None and result.others > BUSY_SHARE:
        how += f"; other work used {result.others:.0%} of the CPUs meanwhile"
    return how


def time_columns(result: ComparisonResult) -> tuple[str, dict[str, float]]:
    """How the time was taken ("one run", "median of 3": column names that stay the same; what makes the seconds
    noisy is in :func:`how_timed`) and each role's seconds end to end."""
    t = result.timing
    if t is None:
        return "one run", {role: end_to_end(s) for role in ("pruned", "dense")
                           if (s := getattr(result, role)) is not None}
    return f"median of {t.repeat}", {role: t.median(role) for role in t.seconds}


def end_to_end(seg: Segmentation) -> float:
    """A run's seconds end to end: the total ``segment()`` measured (reading, scaling and glue included, as the
    exported files record it), else the sum of its three steps."""
    t = seg.info.seconds
    total = t.get("total")
    return float(total) if total is not None else t["semantic"] + t["distance"] + t["watershed"]


def noisy_header(result: ComparisonResult, header: list[str]) -> list[str]:
    """``header`` with its seconds' columns flagged where other work made them noisy, for a table read alone (the
    dock's, report.md's: a pathologist found the flag gone after 'time A vs B', session 39); numbers.csv keeps
    the plain names, its ``# time`` line says it."""
    busy = result.timing.busy if result.timing is not None else (result.others or 0) > BUSY_SHARE
    return [h + (", noisy: other work ran" if busy and h.startswith(("seconds", "time vs B")) else "") for h in header]
