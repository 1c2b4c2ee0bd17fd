import numpy as np
import pytest

from napari_prunuclei.postpool import PostPool, available_cores, resolve_workers
from napari_prunuclei.postprocess import WatershedParams
from napari_prunuclei.readahead import read_ahead
from napari_prunuclei.tiled import tile_grid
from reference_tiled import random_maps


def test_worker_count_defaults_to_the_cores():
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
