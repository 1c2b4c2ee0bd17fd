import numpy as np
import pytest

from napari_prunuclei.base.progress import Cancelled
from napari_prunuclei.nuclei.metrics import match_instances
from napari_prunuclei.nuclei.synthetic import synthetic_tile
from napari_prunuclei.runtime.pairs import load_pair
from napari_prunuclei.runtime.pipeline import segment
from napari_prunuclei.runtime.request import Tiling
from napari_prunuclei.runtime.tiles import tile_grid


def segment_tiled(rgb, pair, tile=1024, halo=128, **kwargs):
    return segment(rgb, pair, tiling=Tiling("tiled", tile, halo), **kwargs).labels


@pytest.fixture(scope="module")
def big_image():
    tiles = [[synthetic_tile(500, seed=4 * r + c)[0] for c in range(4)] for r in range(4)]
    return np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)


def test_tile_grid_partitions_the_image():
    grid = tile_grid((1000, 700), tile=256, halo=32)
    cover = np.zeros((1000, 700), int)
    for t in grid:
        cover[t.r0 : t.r1, t.c0 : t.c1] += 1
        assert t.a0 == max(t.r0 - 32, 0) and t.b1 == min(t.c1 + 32, 700)
    assert (cover == 1).all()
    with pytest.raises(ValueError):
        tile_grid((100, 100), tile=16)


def test_tiled_matches_whole_image_on_2000px(big_image):
    """Tiled (512 px cores, 128 px halo: 16 tiles, 24 seams) against one whole-image run."""
    assert big_image.shape == (2000, 2000, 3)
    pair = load_pair()
    whole = segment(big_image, pair, device="cpu", tiling="whole").labels
    done = []
    tiled = segment_tiled(big_image, pair, tile=512, halo=128, device="cpu", progress=done.append)
    assert (done[-1].done, done[-1].total) == (16, 16)
    pairs, _, n_whole, n_tiled = match_instances(whole, tiled)
    assert n_whole > 500
    assert len(pairs) >= 0.99 * n_whole, (len(pairs), n_whole, n_tiled)
    assert abs(n_tiled - n_whole) <= 0.01 * n_whole
    # ids are unique per nucleus: no nucleus is split into two ids by a seam
    assert len(np.unique(tiled)) - 1 == n_tiled


def test_tiled_writes_into_a_chunked_array_and_cancels(tmp_path):
    import zarr

    rgb, _ = synthetic_tile(300, seed=1)
    pair = load_pair()
    out = zarr.open_array(str(tmp_path / "l.zarr"), mode="w", shape=(300, 300), chunks=(128, 128),
                          dtype="int32", fill_value=0)
    segment_tiled(rgb, pair, tile=128, halo=64, device="cpu", out=out)
    ref = segment_tiled(rgb, pair, tile=128, halo=64, device="cpu")
    np.testing.assert_array_equal(out[:], ref)
    with pytest.raises(Cancelled):
        segment_tiled(rgb, pair, tile=128, device="cpu", cancelled=lambda: True)
    with pytest.raises(ValueError, match="shape"):
        segment_tiled(rgb, pair, out=np.zeros((5, 5), np.int32))


def test_stages_give_the_labels_of_the_old_serial_path():
    """Read-ahead, networks, worker processes and seam-only stitching against the frozen pre-issue-14
    loop (per tile: both branches, the old watershed, the old pixel-by-pixel stitching)."""
    from napari_prunuclei.models.inference import predict_branch
    from reference_tiled import tiled_reference

    rgb = np.concatenate([synthetic_tile(300, seed=s)[0] for s in range(2)], axis=1)[:, :520]
    rgb = np.concatenate([rgb, rgb[::-1, ::-1]], axis=0)[:440]
    pair = load_pair()
    grid = tile_grid(rgb.shape[:2], 160, 64)

    def maps_of(t):
        crop = rgb[t.a0 : t.a1, t.b0 : t.b1]
        return (predict_branch(pair.semantic, crop, device="cpu"), predict_branch(pair.distance, crop, device="cpu"))

    ref = tiled_reference(maps_of, grid, rgb.shape[:2], pair.params)
    assert ref.max() > 100
    for workers in (0, 2):
        res = segment(rgb, pair, device="cpu", tiling=Tiling("tiled", 160, 64), post_workers=workers)
        np.testing.assert_array_equal(res.labels, ref)
        assert res.info.n_nuclei == ref.max() and res.info.post_workers == workers
    tp = res.info.throughput
    assert res.info.n_tiles == len(grid) and res.info.seconds["watershed"] > 0
    assert set(tp["stages"]) >= {"read", "semantic", "distance", "watershed", "stitch", "networks"}
    assert tp["mp_per_s"] > 0 and 0 <= tp["hidden"] <= 1


def test_networks_in_their_own_thread_give_the_same_labels_cancel_and_fail_cleanly(monkeypatch):
    """The accelerator's path (networks one batch ahead in a thread), run here on the CPU: the labels
    of the serial path; Cancel stops it; a tile that cannot be read names itself; no thread is left."""
    import threading

    from napari_prunuclei.io.guards import ImageError
    from napari_prunuclei.models import inference
    from napari_prunuclei.runtime import tiled_engine as pipeline

    rgb = np.concatenate([synthetic_tile(300, seed=s)[0] for s in range(2)], axis=1)[:256, :512]
    pair = load_pair()
    tiling = Tiling("tiled", 128, 48)
    serial = segment(rgb, pair, device="cpu", tiling=tiling, post_workers=0).labels
    monkeypatch.setattr(pipeline, "networks_in_thread", lambda dev: True)
    def ours():
        return [th for th in threading.enumerate() if th.name.startswith("prunuclei-")]

    for workers, batch in ((0, 1), (2, 3)):
        res = segment(rgb, pair, device="cpu", tiling=tiling, post_workers=workers, batch=batch)
        np.testing.assert_array_equal(res.labels, serial)
    calls, batches, at_cancel = [], [], []
    real = inference.predict_pair

    def counted(*args, **kwargs):
        batches.append(1)
        return real(*args, **kwargs)

    def cancel() -> bool:
        if len(calls) > 2 and not at_cancel:
            at_cancel.append(len(batches))
        return bool(at_cancel)

    monkeypatch.setattr(inference, "predict_pair", counted)
    with pytest.raises(Cancelled):
        segment(rgb, pair, device="cpu", tiling=tiling, post_workers=2, cancelled=cancel,
                progress=lambda p: calls.append(p))
    assert len(batches) <= at_cancel[0] + 1  # the batch under way, no further one
    monkeypatch.setattr(inference, "predict_pair", real)

    class Broken:
        shape, dtype, ndim = rgb.shape, rgb.dtype, 3

        def __getitem__(self, key):
            if key[0].start and key[0].start > 50:
                raise ImageError("slide.tif: tile 7 is corrupt")
            return rgb[key]

    with pytest.raises(ImageError, match="slide.tif"):
        segment(Broken(), pair, device="cpu", tiling=tiling, post_workers=0)
    assert not ours()  # the networks' thread, the read-ahead and the label writer are gone


def test_cpu_runs_leave_the_cores_to_the_networks():
    from napari_prunuclei.runtime.postpool import available_cores, resolve_workers

    assert resolve_workers(None, reserved=available_cores()) == 0
    assert resolve_workers(None, reserved=1) == available_cores() - 1
    assert resolve_workers(3, reserved=available_cores()) == 3  # an explicit count is kept


@pytest.mark.parametrize(("size", "tile", "halo"), [(256, 128, 0), (100, 128, 32)])
def test_tiles_without_seams_no_halo_or_one_tile_for_the_image(size, tile, halo):
    """A tile whose private block is all of it (no halo, or the image within one tile) has no seam pixels."""
    rgb, _ = synthetic_tile(size, seed=6)
    res = segment(rgb, load_pair(), device="cpu", tiling=Tiling("tiled", tile, halo), post_workers=0)
    assert res.info.n_nuclei > 0 and res.labels.max() == res.info.n_nuclei
