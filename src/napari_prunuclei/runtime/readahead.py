"""Running an iterator ahead of its consumer in a thread, with a bounded queue.

The reading stage of a tiled run: the next tiles are read (and decompressed) from a lazy
slide while the networks work on the current ones; at most ``depth`` items wait, so memory
stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["read_ahead", "Background"]

T = TypeVar("T")
_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield what ``items`` yields, produced by a thread that keeps up to ``depth`` items ready.

    An exception in the producer is raised here, at the item where it happened. Closing the
    returned generator early stops the producer after its current item.
    """
    q: queue.Queue = queue.Queue(max(1, depth))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(_Failed(e))
        finally:  # a generator is closed in the thread that runs it (its own cleanup runs here)
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="prunuclei-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class Background(threading.Thread):
    """Runs ``fn()`` in a daemon thread and keeps what it raised in :attr:`error` (None: it did not)."""

    def __init__(self, fn, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = fn
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as e:  # noqa: BLE001 - handed to whoever joins
            self.error = e
