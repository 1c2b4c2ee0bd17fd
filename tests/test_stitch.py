"""Seam-only stitching and worker-process post-processing give the old serial result, label for label."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_prunuclei.nuclei.watershed import WatershedParams, watershed_instances
from napari_prunuclei.runtime.postpool import PostPool
from napari_prunuclei.runtime.stitch import Stitcher, private_block
from napari_prunuclei.runtime.tiles import kept_nuclei, stitch_tile, tile_grid
from reference_tiled import random_maps, stitch_reference, tiled_reference, watershed_reference


class ChunkedArray:
    """A non-numpy array (like zarr): the stitcher writes it through its band of rows; counts writes."""

    def __init__(self, shape):
        self.a = np.zeros(shape, np.int32)
        self.shape, self.writes = shape, 0

    def __getitem__(self, key):
        return self.a[key]

    def __setitem__(self, key, value):
        self.writes += 1
        self.a[key] = value


def run_new(prob, dist, grid, params, workers, out):
    shape = (grid[-1].r1, grid[-1].c1)
    stitcher = Stitcher(out, grid, grid[0].r1 - grid[0].r0, None if out is not None else shape)
    crop_pixels = max((t.a1 - t.a0) * (t.b1 - t.b0) for t in grid)
    with PostPool(params, crop_pixels, workers, slots=3) as pool:
        for t in grid:
            while pool.full:
                stitcher.add(pool.next())
            pool.submit(t, prob[t.a0 : t.a1, t.b0 : t.b1], dist[t.a0 : t.a1, t.b0 : t.b1])
        while len(pool):
            stitcher.add(pool.next())
    return stitcher.close()


@pytest.mark.parametrize(("shape", "tile", "halo"), [((700, 610), 128, 64), ((520, 530), 100, 32),
                                                     ((300, 260), 64, 80)])
def test_seam_stitching_equals_the_pixel_rule(shape, tile, halo):
    prob, dist = random_maps(shape, seed=shape[0])
    params = WatershedParams(0.5, 0.4, 20)
    grid = tile_grid(shape, tile, halo)
    ref = tiled_reference(lambda t: (prob[t.a0 : t.a1, t.b0 : t.b1], dist[t.a0 : t.a1, t.b0 : t.b1]), grid,
                          shape, params)
    assert ref.max() > 20
    direct = run_new(prob, dist, grid, params, 0, np.zeros(shape, np.int32))
    np.testing.assert_array_equal(direct, ref)
    column_major = np.zeros(shape, np.int32, order="F")  # no flat view: the 2-D path
    assert run_new(prob, dist, grid, params, 0, column_major) is column_major
    np.testing.assert_array_equal(column_major, ref)
    made = run_new(prob, dist, grid, params, 0, None)  # no out: made at the first tile
    assert isinstance(made, np.ndarray) and made.dtype == np.int32
    np.testing.assert_array_equal(made, ref)
    chunked = ChunkedArray(shape)
    run_new(prob, dist, grid, params, 0, chunked)
    np.testing.assert_array_equal(chunked.a, ref)
    assert chunked.writes <= len(range(0, shape[0], tile))  # whole rows of tiles, each written once


def test_seam_stitching_is_exact_with_ties_in_the_maps():
    """Maps of few distinct values (like bf16 outputs): the watershed's order among equal values decides
    some pixels, so the tile must run on exactly the old crop, whole. (The reference runs the project's
    watershed per tile: among marker pixels of equal value, skimage's order depends on every marker of
    the image, so flooding only the several-marker components may break such ties differently from
    one flooding of the whole foreground; see ``postprocess.watershed_instances``.)"""
    shape = (420, 400)
    prob, dist = random_maps(shape, seed=11)
    prob, dist = (np.round(prob * 16) / 16).astype(np.float32), (np.round(dist * 16) / 16).astype(np.float32)
    params = WatershedParams()
    grid = tile_grid(shape, 128, 64)
    ref = tiled_reference(lambda t: (prob[t.a0 : t.a1, t.b0 : t.b1], dist[t.a0 : t.a1, t.b0 : t.b1]), grid,
                          shape, params, watershed_fn=watershed_instances)
    np.testing.assert_array_equal(run_new(prob, dist, grid, params, 0, np.zeros(shape, np.int32)), ref)


def test_worker_processes_give_the_same_labels():
    shape = (600, 500)
    prob, dist = random_maps(shape, seed=7)
    params = WatershedParams(0.5, 0.4, 20)
    grid = tile_grid(shape, 128, 64)
    serial = run_new(prob, dist, grid, params, 0, np.zeros(shape, np.int32))
    parallel = run_new(prob, dist, grid, params, 2, np.zeros(shape, np.int32))
    np.testing.assert_array_equal(parallel, serial)


@pytest.mark.parametrize("params", [WatershedParams(), WatershedParams(0.3, 0.6, 0), WatershedParams(0.6, 0.3, 80)])
def test_watershed_equals_the_reference(params):
    prob, dist = random_maps((300, 280), seed=3)
    np.testing.assert_array_equal(watershed_instances(prob, dist, params), watershed_reference(prob, dist, params))


def test_kept_nuclei_and_stitch_tile_equal_the_scipy_centroid_rule():
    prob, dist = random_maps((260, 260), seed=5)
    local = watershed_instances(prob, dist)
    for t in tile_grid((260, 260), 96, 40):
        sub = watershed_instances(prob[t.a0 : t.a1, t.b0 : t.b1], dist[t.a0 : t.a1, t.b0 : t.b1])
        a, b = np.zeros((260, 260), np.int32), np.zeros((260, 260), np.int32)
        a[:] = b[:] = 7 * (local % 3 == 0) * (local > 0)  # some pixels already claimed
        assert stitch_tile(a, sub, t, 10) == stitch_reference(b, sub, t, 10)
        np.testing.assert_array_equal(a, b)
        kept, k = kept_nuclei(sub, t)
        n = int(sub.max())
        if n:
            c = np.asarray(ndi.center_of_mass(np.ones_like(sub), sub, np.arange(1, n + 1))).reshape(-1, 2)
            inside = ((c[:, 0] + t.a0 >= t.r0) & (c[:, 0] + t.a0 < t.r1) & (c[:, 1] + t.b0 >= t.c0)
                      & (c[:, 1] + t.b0 < t.c1))
            assert k == inside.sum()


def test_private_block_is_reached_by_no_earlier_tile():
    grid = tile_grid((700, 610), 128, 64)
    reach = np.zeros((700, 610), int)
    for t in grid:
        p0, p1, q0, q1 = private_block(t)
        assert (reach[p0:p1, q0:q1] == 0).all()
        reach[t.a0 : t.a1, t.b0 : t.b1] = 1


def test_stitcher_refuses_tiles_out_of_order():
    grid = tile_grid((200, 200), 100, 10)
    prob, dist = random_maps((200, 200))
    stitcher = Stitcher(np.zeros((200, 200), np.int32), grid, 100)
    with PostPool(WatershedParams(), 120 * 120, 0, 1) as pool:
        t = grid[1]
        pool.submit(t, prob[t.a0 : t.a1, t.b0 : t.b1], dist[t.a0 : t.a1, t.b0 : t.b1])
        with pytest.raises(ValueError, match="order"):
            stitcher.add(pool.next())


def test_split_tile_reads_only_the_frame_and_finds_every_seam_pixel():
    """The seam pixels, band by band, are exactly the kept pixels outside the private block."""
    from napari_prunuclei.runtime.stitch import private_block, split_tile

    prob, dist = random_maps((400, 380), seed=9)
    for t in tile_grid((400, 380), 128, 48):
        local = watershed_instances(prob[t.a0 : t.a1, t.b0 : t.b1], dist[t.a0 : t.a1, t.b0 : t.b1])
        kept, k = kept_nuclei(local, t)
        rows, cols, ids = split_tile(kept, k, t)
        p0, p1, q0, q1 = private_block(t)
        outside = kept > 0
        outside[p0 - t.a0 : p1 - t.a0, q0 - t.b0 : q1 - t.b0] = False
        r, c = np.nonzero(outside)
        want = sorted(zip((r + t.a0).tolist(), (c + t.b0).tolist(), kept[r, c].tolist()))
        assert sorted(zip(rows.tolist(), cols.tolist(), ids.tolist())) == want
        assert rows.dtype == cols.dtype == ids.dtype == np.int32


def test_rows_written_by_the_writer_thread_fail_loudly_and_stop_on_abort():
    """Band rows go to the store in a thread: a failed write reaches the caller, and after abort()
    nothing more is written (a cancelled run leaves its store alone)."""
    import threading

    shape = (520, 300)
    prob, dist = random_maps(shape, seed=4)
    grid = tile_grid(shape, 100, 32)

    class FailingOnce(ChunkedArray):  # the second write fails, later ones would succeed (slowly)
        calls: list[int] = []

        def __setitem__(self, key, value):
            self.calls.append(key.start)
            threading.Event().wait(0.05)
            if len(self.calls) == 2:
                raise OSError("disk full")
            super().__setitem__(key, value)

    failing = FailingOnce(shape)
    with pytest.raises(OSError, match="disk full"):
        run_new(prob, dist, grid, WatershedParams(), 0, failing)
    threading.Event().wait(0.3)
    assert failing.calls == [0, 100]  # no row after the failed one was written

    class Slow(ChunkedArray):
        def __setitem__(self, key, value):
            threading.Event().wait(0.2)
            super().__setitem__(key, value)

    out = Slow(shape)
    stitcher = Stitcher(out, grid, 100)
    with PostPool(WatershedParams(), 164 * 164, 0, 1) as pool:
        for t in grid[:12]:  # four rows of tiles: three rows handed to the writer
            pool.submit(t, prob[t.a0 : t.a1, t.b0 : t.b1], dist[t.a0 : t.a1, t.b0 : t.b1])
            stitcher.add(pool.next())
    stitcher.abort()
    written = out.writes
    threading.Event().wait(0.5)
    assert out.writes == written <= 3
    assert not any(th.name.startswith("prunuclei-label-writer") for th in threading.enumerate())


def test_bands_are_reused_only_where_the_store_copies_them(tmp_path):
    """A finished band goes to the writer without a copy: reused (zeroed) for a zarr store on disk, never
    for an array that may keep what it is given (an in-memory store without compression does)."""
    import zarr

    shape = (700, 610)
    prob, dist = random_maps(shape, seed=7)
    params = WatershedParams(0.5, 0.4, 20)
    grid = tile_grid(shape, 128, 64)
    ref = run_new(prob, dist, grid, params, 0, np.zeros(shape, np.int32))

    class Keeping:  # keeps the very arrays written into it
        def __init__(self):
            self.shape, self.parts = shape, []

        def __setitem__(self, key, value):
            self.parts.append((key, value))

        def assembled(self):
            a = np.zeros(shape, np.int32)
            for key, value in self.parts:
                a[key] = value
            return a

    keeping = Keeping()
    run_new(prob, dist, grid, params, 0, keeping)
    np.testing.assert_array_equal(keeping.assembled(), ref)
    memory = zarr.create_array(store={}, shape=shape, chunks=(128, 128), dtype="int32", compressors=None)
    run_new(prob, dist, grid, params, 0, memory)
    np.testing.assert_array_equal(memory[:], ref)

    on_disk = zarr.create_array(str(tmp_path / "l.zarr"), shape=shape, chunks=(128, 128), dtype="int32")
    stitcher = Stitcher(on_disk, grid, 128)
    seen: list[np.ndarray] = []  # every band the stitcher worked in (kept alive: identities stay distinct)
    with PostPool(params, 256 * 256, 0, 1) as pool:
        for t in grid:
            pool.submit(t, prob[t.a0 : t.a1, t.b0 : t.b1], dist[t.a0 : t.a1, t.b0 : t.b1])
            stitcher.add(pool.next())
            if not any(b is stitcher.canvas for b in seen):
                seen.append(stitcher.canvas)
    stitcher.close()
    np.testing.assert_array_equal(on_disk[:], ref)
    assert len(range(0, shape[0], 128)) == 6 and len(seen) <= 3  # six rows of tiles, at most three bands
    with pytest.raises(RuntimeError, match="aborted"):
        stitcher.close()  # once closed (or aborted), nothing more is written
