"""Keeping freed memory during a run (glibc), and giving it back after."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from napari_prunuclei.base import heap
from napari_prunuclei.base.heap import heap_is_kept, keep_freed_memory

glibc = pytest.mark.skipif(heap._glibc() is None, reason="glibc's allocator (with its default settings) only")

_MB = 1 << 20


_PROBE = """
import os, resource, sys
import numpy as np
from napari_prunuclei.base.heap import keep_freed_memory

MB = 1 << 20

def faults(n=4, size=64 * MB):
    a = np.ones(size, np.uint8)
    del a
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        a = np.ones(size, np.uint8)
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

fresh = faults(size=8 * MB)  # glibc's own adjustment: after the first, 8 MB blocks come from the heap
outside = faults()
with keep_freed_memory():
    inside = faults()
    a = np.ones(256 * MB, np.uint8)
    del a
    kept = rss()
after = rss()
print(outside, inside, kept - after, fresh, faults(size=8 * MB))
"""


@pytest.fixture(scope="module")
def probe() -> tuple[int, ...]:
    """In a fresh process (this one's heap has holes from earlier runs, which large blocks reuse):
    page faults of 64 MB arrays made and freed outside and inside, the memory given back on leaving,
    and page faults of 8 MB arrays before any run and after it."""
    r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if k not in heap._USER_SETTINGS})
    assert r.returncode == 0, r.stderr[-2000:]
    return tuple(int(v) for v in r.stdout.split())


@glibc
def test_freed_memory_serves_the_next_allocation_only_while_kept(probe):
    outside, inside = probe[:2]
    assert outside >= 4 * 16  # 64 MB fresh from the system each time: at least 16 huge pages each
    assert inside * 4 < outside


@glibc
def test_the_memory_is_returned_when_the_run_leaves(probe):
    assert probe[2] > 200 * _MB


@glibc
def test_after_a_run_blocks_of_a_few_megabytes_still_come_from_the_heap(probe):
    """Setting a threshold ends glibc's dynamic adjustment: leaving must not freeze it low (every 8 MB
    block mapped and faulted afresh), but where the adjustment would have put it."""
    fresh, after = probe[3:5]
    assert after <= max(8, 2 * fresh)


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
    from napari_prunuclei.base.progress import Cancelled
    from napari_prunuclei.nuclei.synthetic import synthetic_tile
    from napari_prunuclei.runtime.pairs import load_pair
    from napari_prunuclei.runtime.pipeline import iter_segment, segment
    from napari_prunuclei.runtime.request import Tiling

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


def test_a_front_end_whose_progress_callback_fails_leaves_the_allocator_as_it_found_it():
    from napari_prunuclei.nuclei.synthetic import synthetic_tile
    from napari_prunuclei.runtime.pairs import load_pair
    from napari_prunuclei.runtime.pipeline import segment
    from napari_prunuclei.runtime.request import Tiling

    def fail(p):
        raise RuntimeError("the viewer went away")

    image = synthetic_tile(256, seed=0)[0]
    with pytest.raises(RuntimeError, match="went away"):
        segment(image, load_pair(), device="cpu", tiling=Tiling("tiled", 128, 32), progress=fail)
    assert not heap_is_kept()  # drive() closed the job: it did not wait for the collector
