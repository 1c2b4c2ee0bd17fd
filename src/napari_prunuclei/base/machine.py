"""A short description of the machine a measurement ran on (reports and benchmarks)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

__all__ = ["cpu_name", "available_cores", "memory_bytes", "cpu_snapshot", "others_share", "BUSY_SHARE"]

#: above this share of a timing's CPUs used by other work meanwhile, the timing says so
BUSY_SHARE = 0.2


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


def cpu_snapshot(stat: str | os.PathLike = "/proc/stat",
                 cpus: set[int] | None = None) -> tuple[float, float, float, int] | None:
    """(wall seconds, CPU seconds every process has run on the CPUs this process may use, this process's CPU
    seconds (all its threads), how many CPUs those are) now, for :func:`others_share`; None where the machine's
    CPU time cannot be read (not Linux). ``cpus``: default, this process's affinity."""
    if cpus is None:
        try:
            cpus = set(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return None
    try:
        lines = Path(stat).read_text().splitlines()
        hz = os.sysconf("SC_CLK_TCK")
        busy, n = 0, 0
        for line in lines:
            fields = line.split()
            if not fields or not fields[0].startswith("cpu") or not fields[0][3:].isdigit():
                continue  # the machine's total line ("cpu") and the rest of the file
            if int(fields[0][3:]) in cpus:
                ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
                if len(ticks) < 5:
                    return None
                busy += sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait (steal: the host's other work)
                n += 1
    except (OSError, ValueError, AttributeError):
        return None
    if n == 0:
        return None
    return time.perf_counter(), busy / hz, time.process_time(), n


def others_share(before: tuple[float, float, float, int] | None,
                 after: tuple[float, float, float, int] | None) -> float | None:
    """The share of this process's CPUs (0: none, 1: all of them all the time) that other processes (its own
    children included) used between two :func:`cpu_snapshot`; None where either is unknown."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    others = (after[1] - before[1]) - (after[2] - before[2])
    return min(1.0, max(0.0, others / ((after[0] - before[0]) * after[3])))
