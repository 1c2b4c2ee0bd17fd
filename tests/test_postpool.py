import os

import numpy as np
import pytest

from napari_prunuclei.nuclei.watershed import WatershedParams
from napari_prunuclei.runtime.postpool import PostPool, available_cores, resolve_workers
from napari_prunuclei.runtime.readahead import read_ahead
from napari_prunuclei.runtime.tiles import tile_grid
from reference_tiled import random_maps


def test_worker_count_defaults_to_the_cores():  # on an accelerator; a CPU run reserves torch's
    assert resolve_workers(None) == available_cores() >= 1
    assert resolve_workers(0) == 0 and resolve_workers(3) == 3
    with pytest.raises(ValueError):
        resolve_workers(-1)


def test_pool_hands_tiles_back_in_order_and_bounds_its_slots():
    grid = tile_grid((400, 400), 128, 32)
    prob, dist = random_maps((400, 400))
    with PostPool(WatershedParams(), 192 * 192, 2, slots=2) as pool:
        order = []
        for t in grid:
            while pool.full:
                order.append(pool.next().tile)
            pool.submit(t, prob[t.a0 : t.a1, t.b0 : t.b1], dist[t.a0 : t.a1, t.b0 : t.b1])
            assert len(pool) <= 2
        while len(pool):
            order.append(pool.next().tile)
    assert order == grid and pool.seconds > 0


def test_worker_errors_reach_the_caller():
    grid = tile_grid((100, 100), 64, 8)
    broken = WatershedParams()
    object.__setattr__(broken, "min_size", "twenty")  # fails in the worker, not here
    t = grid[0]
    maps = np.ones((2, t.a1 - t.a0, t.b1 - t.b0), np.float32)  # markers: the size rule is reached
    with PostPool(broken, 100 * 100, 1, slots=1) as pool:
        pool.submit(t, maps[0], maps[1])
        with pytest.raises(TypeError):
            pool.next()
        with pytest.raises(ValueError, match="shape"):
            pool.submit(t, maps[0], maps[1, :5])


def test_read_ahead_keeps_order_and_raises_where_the_producer_failed():
    assert list(read_ahead(range(20), depth=3)) == list(range(20))

    def failing():
        yield 1
        raise OSError("unreadable tile")

    it = read_ahead(failing())
    assert next(it) == 1
    with pytest.raises(OSError, match="unreadable"):
        next(it)
    early = read_ahead(iter(range(1000)), depth=2)
    assert next(early) == 0
    early.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_one_thread_feeds_while_another_takes_and_stop_releases_a_waiting_feeder(workers):
    """The accelerator's loop: a feeding thread waits for room, this one takes the tiles in order; the
    blocks match those of the single-threaded loop; stop() makes a waiting feeder give up."""
    import threading

    from napari_prunuclei.runtime.postpool import PoolStopped

    grid = tile_grid((400, 400), 96, 32)
    prob, dist = random_maps((400, 400), seed=2)
    params = WatershedParams()

    def crops(t):
        return prob[t.a0 : t.a1, t.b0 : t.b1], dist[t.a0 : t.a1, t.b0 : t.b1]

    with PostPool(params, 160 * 160, 0, slots=1) as pool:
        want = []
        for t in grid:
            pool.submit(t, *crops(t))
            part = pool.next()
            want.append((part.k, part.block.copy(), part.rows.copy()))
    with PostPool(params, 160 * 160, workers, slots=2) as pool:
        errors = []

        def feed():
            try:
                for t in grid:
                    pool.submit(t, *crops(t), wait=True)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        feeder = threading.Thread(target=feed)
        feeder.start()
        got = []
        while len(got) < len(grid):
            if len(pool):
                part = pool.next()
                got.append((part.k, part.block.copy(), part.rows.copy()))
                assert len(pool) <= 2
        feeder.join()
        assert not errors
        for (k, block, rows), (k2, block2, rows2) in zip(got, want):
            assert k == k2
            np.testing.assert_array_equal(block, block2)
            np.testing.assert_array_equal(rows, rows2)
        # nobody takes tiles now: a feeder waits for room until stop()
        feeder = threading.Thread(target=feed)
        feeder.start()
        feeder.join(0.5)
        assert feeder.is_alive()
        pool.stop()
        feeder.join(5)
        assert not feeder.is_alive() and isinstance(errors[0], PoolStopped)


def test_a_dead_runs_shared_memory_is_freed_by_the_next_run(tmp_path):
    import subprocess

    from napari_prunuclei.runtime.postpool import remove_dead_segments

    dead = subprocess.Popen(["true"])
    dead.wait()
    for name in (f"prunuclei_{dead.pid}_ab12", f"prunuclei_{os.getpid()}_cd34", "prunuclei_notapid_x", "other_1_ab"):
        (tmp_path / name).write_bytes(b"x")
    assert remove_dead_segments(str(tmp_path)) == [f"prunuclei_{dead.pid}_ab12"]
    assert sorted(q.name for q in tmp_path.iterdir()) == sorted(
        [f"prunuclei_{os.getpid()}_cd34", "prunuclei_notapid_x", "other_1_ab"])


def test_workers_exit_when_the_process_that_started_them_is_killed(tmp_path):
    """SIGKILL of the run's process: its watershed workers go within about a second, not minutes later."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "run.py"
    script.write_text(
        "import os, sys\n"
        "from napari_prunuclei.runtime.postpool import _pool\n"
        "pool = _pool(1)\n"
        "print(pool.submit(os.getpid).result(), flush=True)\n"
        "import time; time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"worker {worker} still alive 10 s after its parent was killed")
