"""Keeping freed memory during a run (glibc), and giving it back after."""

from __future__ import annotations

import os
import resource
import threading

import numpy as np
import pytest

from napari_prunuclei import heap
from napari_prunuclei.heap import heap_is_kept, keep_freed_memory

glibc = pytest.mark.skipif(heap._glibc() is None, reason="glibc's allocator (with its default settings) only")

_MB = 1 << 20


def _faults_of_allocations(n: int = 4, size: int = 64 * _MB) -> int:
    """Page faults taken by ``n`` arrays of ``size`` bytes, each written and freed, after a first one."""
    a = np.ones(size, np.uint8)
    del a
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        a = np.ones(size, np.uint8)
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@glibc
def test_freed_memory_serves_the_next_allocation_only_while_kept():
    outside = _faults_of_allocations()
    with keep_freed_memory():
        inside = _faults_of_allocations()
    assert outside >= 4 * 16  # 64 MB fresh from the system each time: at least 16 huge pages each
    assert inside * 4 < outside


@glibc
def test_the_memory_is_returned_when_the_run_leaves():
    with keep_freed_memory():
        a = np.ones(256 * _MB, np.uint8)
        del a
        kept = _rss()
    after = _rss()
    assert kept - after > 200 * _MB


@glibc
def test_nested_and_concurrent_runs_count():
    assert not heap_is_kept()
    entered, leave = threading.Event(), threading.Event()

    def other_run():
        with keep_freed_memory():
            entered.set()
            leave.wait(10)

    t = threading.Thread(target=other_run)
    t.start()
    entered.wait(10)
    with keep_freed_memory():
        with keep_freed_memory():
            assert heap_is_kept()
        assert heap_is_kept()
    assert heap_is_kept()  # the other run is still inside
    leave.set()
    t.join()
    assert not heap_is_kept()


@pytest.mark.parametrize("var", ["MALLOC_MMAP_MAX_", "GLIBC_TUNABLES", "PRUNUCLEI_KEEP_HEAP"])
def test_the_users_own_allocator_settings_stand(monkeypatch, var):
    monkeypatch.setenv(var, "0")
    monkeypatch.setattr(heap, "_libc", None)  # looked up again, with the setting
    with keep_freed_memory():
        assert not heap_is_kept()
    monkeypatch.undo()
    heap._libc = None


def test_a_run_leaves_the_allocator_as_it_found_it():
    from napari_prunuclei.pipeline import Tiling, iter_segment, load_pair, segment
    from napari_prunuclei.progress import Cancelled
    from napari_prunuclei.synthetic import synthetic_tile

    pair, tiled = load_pair(), Tiling("tiled", 128, 32)
    image = synthetic_tile(256, seed=0)[0]
    segment(image, pair, device="cpu")
    assert not heap_is_kept()
    with pytest.raises(Cancelled):
        segment(image, pair, device="cpu", tiling=tiled, cancelled=lambda: True)
    assert not heap_is_kept()
    job = iter_segment(image, pair, device="cpu", tiling=tiled)
    next(job)
    assert heap_is_kept() or heap._glibc() is None
    job.close()  # a front end that stops listening
    assert not heap_is_kept()
