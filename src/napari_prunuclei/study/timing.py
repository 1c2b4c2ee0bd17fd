"""End-to-end time of model pairs on one image, interleaved so that a busy machine slows all alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from napari_prunuclei.base import machine
from napari_prunuclei.base.constants import UNSTRUCTURED_SCHEMES
from napari_prunuclei.base.machine import BUSY_SHARE, others_share
from napari_prunuclei.base.progress import CancelFn, Job, Progress, check_cancelled, drive
from napari_prunuclei.runtime.pairs import ModelPair
from napari_prunuclei.runtime.pipeline import iter_segment, segment

__all__ = ["benchmark_tile", "time_segment", "Timing", "iter_time_interleaved", "time_pair", "SAME_SHAPE_NOTE"]

#: said beside a ratio of two models that run at the dense network's shape (unstructured pruning keeps every
#: convolution dense-shaped, its zeros included)
SAME_SHAPE_NOTE = "same network shape as dense: no speed-up expected on CPU"


@dataclass(frozen=True)
class Timing:
    """Timed runs per label (seconds, warm-ups excluded), in rounds that run every label once, after one
    warm-up each; ``order``: the labels of the timed runs as they ran; ``names``: label -> what it timed."""

    seconds: dict[str, list[float]]
    order: list[str]
    names: dict[str, str] = field(default_factory=dict)
    note: str = ""
    #: the share of the machine's CPU other processes used during the timed runs (None: unknown)
    others: float | None = None

    @property
    def repeat(self) -> int:
        return min((len(v) for v in self.seconds.values()), default=0)

    def median(self, label: str) -> float:
        return statistics.median(self.seconds[label])

    def ratio(self, a: str, b: str) -> float:
        """Median of ``a`` over median of ``b`` (how many times ``b``'s time ``a`` takes)."""
        return self.median(a) / max(self.median(b), 1e-12)

    @property
    def busy(self) -> bool:
        """Other work used more than a fifth of the machine while this was timed: the ratio may be off."""
        return self.others is not None and self.others > BUSY_SHARE

    @property
    def how(self) -> str:
        """How the times were taken, in words; with a warning when other work kept the machine busy."""
        how = f"median of {self.repeat} interleaved runs after a warm-up"
        if self.busy:
            how += (f", while other work used {self.others:.0%} of this machine's CPU (interleaving evens out "
                    "steady load, not bursts; time again when the machine is idle)")
        return how


def iter_time_interleaved(calls: dict[str, Callable[[], object]], repeat: int = 3, cancelled: CancelFn | None = None,
                          clock: Callable[[], float] = time.perf_counter,
                          names: dict[str, str] | None = None,
                          snapshot: Callable[[], tuple | None] | None = None) -> Job[Timing]:
    """Time each call: one warm-up each (not timed), then ``repeat`` rounds of every call once, in turn
    (A, B, A, B, ...), so that a machine busy with something else slows all alike; yields Progress (naming
    each call by ``names``, else by its key). The Timing records how much of the machine other work used
    meanwhile (``snapshot``: default :func:`~napari_prunuclei.base.machine.cpu_snapshot`)."""
    snapshot = snapshot or machine.cpu_snapshot  # looked up at each call (tests make the machine quiet)
    labels = list(calls)
    names = names or {}
    total = len(labels) * (repeat + 1)
    done = 0
    for label in labels:  # each Progress names the call about to run (the status shows it while it runs)
        check_cancelled(cancelled)
        yield Progress(done, total, f"timing: warm-up of {names.get(label, label)}...")
        calls[label]()
        done += 1
    seconds: dict[str, list[float]] = {k: [] for k in labels}
    order: list[str] = []
    before = snapshot()
    for r in range(max(1, repeat)):
        for label in labels:
            check_cancelled(cancelled)
            yield Progress(done, total, f"timing: {names.get(label, label)}, run {r + 1} of {repeat}...")
            t = clock()
            calls[label]()
            seconds[label].append(clock() - t)
            order.append(label)
            done += 1
    others = others_share(before, snapshot())
    yield Progress(done, total, "timing: done")
    return Timing(seconds, order, others=others)


def time_pair(rgb: np.ndarray, requests: list[tuple[str, ModelPair, object]], repeat: int = 3,
              cancelled: CancelFn | None = None) -> Job[Timing]:
    """A's and B's networks and watershed (end to end) on ``rgb``, each with its own request
    (:func:`~napari_prunuclei.study.session.model_requests`), interleaved after a warm-up each; labels are the
    roles. Unstructured models and dense alone: the note says no speed-up is expected on CPU."""

    def call(pair, req):
        return lambda: drive(iter_segment(rgb, req, pair=pair, cancelled=cancelled))

    calls = {role: call(pair, req) for role, pair, req in requests}
    names = {role: pair.spec.label for role, pair, _ in requests}
    timing = yield from iter_time_interleaved(calls, repeat, cancelled, names=names)
    schemes = {pair.spec.scheme for _, pair, _ in requests}
    note = SAME_SHAPE_NOTE if schemes <= {"dense", *UNSTRUCTURED_SCHEMES} and schemes != {"dense"} else ""
    return replace(timing, names={role: pair.spec.label for role, pair, _ in requests}, note=note)


def benchmark_tile(data=None) -> np.ndarray:
    """The 1000x1000 tile timings use: the first test image of a MoNuSeg-layout folder ``data``, or a
    synthetic tile without it."""
    if data:
        from napari_prunuclei.io.dataset import NucleiDataset

        ds = NucleiDataset(data)
        rgb, _ = ds.load(ds.names("test")[0])
    else:
        from napari_prunuclei.nuclei.synthetic import synthetic_tile

        rgb, _ = synthetic_tile(1000, seed=0)
    return np.ascontiguousarray(rgb[:1000, :1000])


def time_segment(pairs: dict[str, ModelPair], rgb: np.ndarray, *, repeat: int = 3, device: str = "cpu",
                 precision: str = "auto") -> dict[str, dict]:
    """Per label: median seconds of :func:`~napari_prunuclei.runtime.pipeline.segment` on ``rgb`` (end to end,
    both branches, watershed) over ``repeat`` rounds after a warm-up; each round runs every pair once."""
    runs: dict[str, list[tuple[float, float, float, int]]] = {k: [] for k in pairs}
    for pair in pairs.values():  # warm-up: weights prepared, caches filled
        segment(rgb, pair, device=device, precision=precision)
    for _ in range(max(1, repeat)):
        for label, pair in pairs.items():
            t = time.perf_counter()
            r = segment(rgb, pair, device=device, precision=precision)
            total = time.perf_counter() - t
            runs[label].append((r.info.seconds["semantic"] + r.info.seconds["distance"],
                                r.info.seconds["watershed"], total, r.n_nuclei))
    return {label: {"branches_s": statistics.median(r[0] for r in rs),
                    "watershed_s": statistics.median(r[1] for r in rs),
                    "total_s": statistics.median(r[2] for r in rs), "n_nuclei": rs[-1][3]}
            for label, rs in runs.items()}
