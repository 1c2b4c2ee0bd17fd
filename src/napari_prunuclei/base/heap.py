"""Keeping the memory a run frees for its next tile (glibc's allocator), then giving it back.

Each forward pass on a CPU allocates and frees hundreds of megabytes of activations. glibc
serves blocks that large with ``mmap`` and returns them with ``munmap``, so every pass faults
its memory in again, page by page (240,000-300,000 faults per 1280 x 1280 tile here:
``bench/bench_heap.py``), and on this project's virtual machine new memory is dear to touch.
PyTorch's CPU tuning guide advises another allocator for that reason;
:func:`keep_freed_memory` gets the effect from glibc itself (``mallopt``): while any run is
inside it, large blocks come from the heap and freed memory stays in the process; when the last
run leaves, the free memory is returned (``malloc_trim``) and the thresholds are set where glibc's
own adjustment settles for a program that frees large blocks (mmap above 32 MiB, trim above
64 MiB). Setting them ends glibc's dynamic adjustment for the process: they stay there.

Limits: the setting is the process's, so while a run is inside, other threads' large blocks are
kept too (returned when the last run leaves). In a thread other than the main one, glibc serves
blocks over 64 MiB with ``mmap`` whatever the setting (its thread heaps are at most that large):
a run in a worker thread (the widget's) keeps only the smaller blocks. Nothing is changed where
the C library is not glibc, where another allocator is preloaded (``LD_PRELOAD``), or when the
user set glibc's own ``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TOP_PAD_`` or ``GLIBC_TUNABLES`` (their choice stands), or ``PRUNUCLEI_KEEP_HEAP=0``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["keep_freed_memory", "heap_is_kept"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_DEFAULT_MMAP_MAX = 65536  # glibc's default
# where glibc's dynamic thresholds end up once a program has freed a block of 32 MiB (its largest)
_SETTLED_MMAP_THRESHOLD, _SETTLED_TRIM_THRESHOLD = 32 << 20, 64 << 20
_KEEP_TRIM_THRESHOLD = 2**31 - 1  # the largest a C int holds: freed memory is not trimmed
_USER_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
                  "GLIBC_TUNABLES")

_lock = threading.Lock()
_depth = 0
_libc = None


def _glibc():
    """glibc's ``mallopt``/``malloc_trim``, or None (another C library, or the user chose settings)."""
    global _libc
    if _libc is None:
        _libc = False
        if (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
                and os.environ.get("PRUNUCLEI_KEEP_HEAP", "1") != "0"
                and not any(k in os.environ for k in _USER_SETTINGS)
                and "malloc" not in os.environ.get("LD_PRELOAD", "")):  # jemalloc, tcmalloc, mimalloc
            try:
                lib = ctypes.CDLL(None)
                lib.mallopt.argtypes, lib.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                lib.malloc_trim.argtypes, lib.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
                _libc = lib
            except (OSError, AttributeError):
                _libc = False
    return _libc or None


def heap_is_kept() -> bool:
    """Whether freed memory is being kept now (some run is inside :func:`keep_freed_memory`)."""
    return _depth > 0 and _glibc() is not None


@contextmanager
def keep_freed_memory() -> Iterator[None]:
    """While inside (nested and concurrent uses count), large blocks come from the heap and freed
    memory stays in the process; the last to leave gives the free memory back and sets the
    thresholds where glibc's own adjustment settles (see the module's docstring)."""
    global _depth
    lib = _glibc()
    if lib is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            lib.mallopt(_M_MMAP_MAX, 0)
            lib.mallopt(_M_TRIM_THRESHOLD, _KEEP_TRIM_THRESHOLD)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                lib.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                lib.mallopt(_M_MMAP_THRESHOLD, _SETTLED_MMAP_THRESHOLD)
                lib.mallopt(_M_TRIM_THRESHOLD, _SETTLED_TRIM_THRESHOLD)
                lib.malloc_trim(0)
