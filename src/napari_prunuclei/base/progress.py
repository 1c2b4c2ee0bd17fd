"""The one progress and cancel protocol of every long job (segmentation, export, sweep).

A long job is a generator that yields :class:`Progress` records and returns its
result; it checks ``cancelled()`` between steps and raises :class:`Cancelled`.
:func:`drive` runs such a generator with a callback; front ends adapt the
records once: :func:`tqdm_callback` for the command line, the widget's progress
bar for napari (``napari/_progress.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Progress", "Cancelled", "ProgressFn", "CancelFn", "Job", "check_cancelled", "drive", "tqdm_callback"]

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` steps of a job, and what was just done."""

    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


class Cancelled(Exception):
    """The caller cancelled the job (``cancelled()`` returned True); nothing was written."""


ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]
Job = Generator[Progress, None, T]


def check_cancelled(cancelled: CancelFn | None) -> None:
    """Raise :class:`Cancelled` when ``cancelled()`` says so."""
    if cancelled is not None and cancelled():
        raise Cancelled("cancelled")


def drive(job: Generator[Progress, None, Any], progress: ProgressFn | None = None) -> Any:
    """Run a job generator to its end, passing each record to ``progress``; return its value. If
    ``progress`` raises, the job is closed (its clean-up runs now, not when it is collected)."""
    try:
        while True:
            try:
                p = next(job)
            except StopIteration as stop:
                return stop.value
            if progress is not None:
                progress(p)
    finally:
        job.close()


def tqdm_callback(bar) -> ProgressFn:
    """A progress callback that moves a ``tqdm`` bar (total, position and message)."""

    def update(p: Progress) -> None:
        if bar.total != p.total:
            bar.total = p.total
        bar.update(p.done - bar.n)
        if p.message:
            bar.set_postfix_str(p.message, refresh=False)

    return update
