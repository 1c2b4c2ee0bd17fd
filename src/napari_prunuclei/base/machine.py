"""A short description of the machine a measurement ran on (reports and benchmarks)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

__all__ = ["cpu_name", "available_cores", "memory_bytes", "cpu_snapshot", "others_share"]


def available_cores() -> int:
    """Cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where it is missing)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def memory_bytes() -> int | None:
    """Physical memory of this machine (None where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_snapshot(stat: str | os.PathLike = "/proc/stat") -> tuple[float, float, float] | None:
    """(wall seconds, CPU seconds every process on the machine has run, this process's CPU seconds) now, for
    :func:`others_share`; None where the machine's CPU time cannot be read (not Linux)."""
    try:
        fields = Path(stat).read_text().splitlines()[0].split()
        ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    if len(ticks) < 5 or fields[0] != "cpu":  # not the machine's line of /proc/stat
        return None
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    return time.perf_counter(), busy / hz, time.process_time()


def others_share(before: tuple[float, float, float] | None, after: tuple[float, float, float] | None,
                 cores: int | None = None) -> float | None:
    """The share of the machine's CPU (0: none, 1: every core all the time) that processes other than this one
    used between two :func:`cpu_snapshot`; None where either is unknown."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    others = (after[1] - before[1]) - (after[2] - before[2])
    return min(1.0, max(0.0, others / ((after[0] - before[0]) * (cores or os.cpu_count() or 1))))
