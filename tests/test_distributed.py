"""Tiles of one image spread over a dask cluster: the local labels, resume at the tile, a worker dying."""

import json
import os
import signal

import numpy as np
import pytest
import tifffile

from napari_prunuclei.nuclei.synthetic import synthetic_tile
from napari_prunuclei.runtime.distributed import MANIFEST, segment_tiles_on_dask, tile_file
from napari_prunuclei.runtime.pairs import load_pair
from napari_prunuclei.runtime.pipeline import segment
from napari_prunuclei.runtime.request import SegmentRequest, Tiling
from napari_prunuclei.runtime.tiles import tile_grid

TILING = Tiling("tiled", 96, 32)  # 320 x 320: 4 x 4 tiles, seams in both directions


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    """A 320 x 320 tiled TIFF and its labels from ``segment(..., tiling="tiled")`` on one machine."""
    row = np.concatenate([synthetic_tile(160, seed=s)[0] for s in (21, 22)], axis=1)
    rgb = np.concatenate([row, row[::-1, ::-1]], axis=0)
    path = tmp_path_factory.mktemp("slide") / "big.tif"
    tifffile.imwrite(path, rgb, tile=(64, 64))
    ref = segment(rgb, load_pair(), device="cpu", tiling=TILING, post_workers=0)
    assert ref.info.n_tiles == 16 and ref.n_nuclei > 20
    return path, ref


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded workers in this process (no worker process to start)."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cl:
        yield cl


@pytest.fixture(scope="module")
def client(cluster):
    import distributed

    with distributed.Client(cluster) as c:
        yield c


class Stop(Exception):
    """Interrupts a run from its progress callback."""


def stop_after_5(p):
    if p.done == 5:
        raise Stop


REQUEST = SegmentRequest(device="cpu", tiling=TILING)


def test_tiles_on_dask_give_the_local_labels(slide, client, tmp_path, monkeypatch):
    import tempfile

    path, ref = slide
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the private scratch folder goes
    seen = []
    res = segment_tiles_on_dask(path, client, REQUEST, progress=seen.append)
    np.testing.assert_array_equal(res.labels, ref.labels)
    assert res.n_nuclei == ref.n_nuclei and res.info.mode == "tiled" and res.info.n_tiles == 16
    assert res.info.watershed == ref.info.watershed  # the pair's own thresholds, as locally
    assert res.info.throughput["cluster"] == {"computed": 16, "reused": 0, "resubmitted": 0, "workers": 2}
    assert {"read", "semantic", "distance", "watershed", "stitch", "total"} <= set(res.info.seconds)
    assert [p.done for p in seen[:16]] == list(range(1, 17)) and seen[-1].total == 16
    assert list(tmp_path.iterdir()) == []  # the private scratch folder is gone


def test_an_interrupted_run_resumes_at_the_tile(slide, client, tmp_path):
    import zarr

    path, ref = slide
    scratch = tmp_path / "tiles"
    with pytest.raises(Stop):
        segment_tiles_on_dask(path, client, REQUEST, scratch=scratch, progress=stop_after_5)
    grid = tile_grid((320, 320), TILING.tile, TILING.halo)
    assert all(tile_file(scratch, i, grid[i]).is_file() for i in range(5))  # kept for the next run
    out = zarr.open_array(str(tmp_path / "l.zarr"), mode="w", shape=(320, 320), chunks=(96, 96), dtype="int32",
                          fill_value=0)
    res = segment_tiles_on_dask(path, client, REQUEST, out=out, scratch=scratch)
    counts = res.info.throughput["cluster"]
    assert counts["reused"] >= 5 and counts["computed"] == 16 - counts["reused"]  # finished tiles not run again
    np.testing.assert_array_equal(out[:], ref.labels)
    assert not scratch.exists()  # removed on success


def test_tiles_of_another_run_are_refused_or_discarded(slide, client, tmp_path, monkeypatch):
    import napari_prunuclei.runtime.distributed as dist

    path, ref = slide
    wanted = {}
    real = dist._prepare_scratch
    monkeypatch.setattr(dist, "_prepare_scratch", lambda f, want, d: (wanted.update(want), real(f, want, d))[1])
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no prunuclei tiles"):
        segment_tiles_on_dask(path, client, REQUEST, scratch=other)
    assert (other / "notes.txt").read_text() == "mine"
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / MANIFEST).write_text(json.dumps({"image": str(path), "tile": 128}))
    (stale / "tile_000000_r0_c0.npz").write_bytes(b"from another tiling")
    with pytest.raises(ValueError, match="another image or settings"):
        segment_tiles_on_dask(path, client, REQUEST, scratch=stale)
    res = segment_tiles_on_dask(path, client, REQUEST, scratch=stale, discard_stale=True)
    assert res.info.throughput["cluster"]["reused"] == 0
    np.testing.assert_array_equal(res.labels, ref.labels)
    # the kept tiles name the weight files that made them: a rebuilt zoo's run does not reuse them
    from napari_prunuclei.runtime.pairs import load_pair, results_record

    pair = load_pair(REQUEST.spec)
    assert wanted["results"] == results_record(pair.spec, pair.params)


@pytest.mark.slow
def test_a_worker_dying_mid_run_changes_nothing(slide, tmp_path):
    import distributed

    path, ref = slide
    killed = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        pids = c.run(os.getpid)

        def kill_a_busy_worker(p):
            if not killed:  # after the first tile is stitched: a worker holding tiles dies
                busy = [w for w, keys in c.processing().items() if keys]
                os.kill(pids[(busy or sorted(pids))[0]], signal.SIGKILL)
                killed.append(bool(busy))

        res = segment_tiles_on_dask(path, c, REQUEST, scratch=tmp_path / "tiles", progress=kill_a_busy_worker)
    assert killed == [True]
    np.testing.assert_array_equal(res.labels, ref.labels)
    counts = res.info.throughput["cluster"]
    assert counts["computed"] + counts["reused"] == 16


def test_cli_workers_spread_a_large_image_with_the_serial_labels(slide, tmp_path, capsys):
    from napari_prunuclei.cli.main import main

    path, ref = slide
    opts = ["--device", "cpu", "--tiled", "--tile", "96", "--halo", "32"]
    assert main(["segment", str(path), "-o", str(tmp_path / "serial"), *opts, "--post-workers", "0"]) == 0
    assert main(["segment", str(path), "-o", str(tmp_path / "dask"), *opts, "--workers", "2"]) == 0
    serial = tifffile.imread(tmp_path / "serial" / "big_labels.tif")
    spread = tifffile.imread(tmp_path / "dask" / "big_labels.tif")
    np.testing.assert_array_equal(spread, serial)
    np.testing.assert_array_equal(spread, ref.labels)
    info = json.loads((tmp_path / "dask" / "big_info.json").read_text())
    assert info["n_nuclei"] == ref.n_nuclei and info["throughput"]["cluster"]["computed"] == 16
    names = sorted(q.name for q in (tmp_path / "dask").iterdir())
    assert names == sorted(q.name for q in (tmp_path / "serial").iterdir())  # no tiles folder left behind


def test_a_batch_on_a_cluster_resumes_an_interrupted_image_at_the_tile(slide, cluster, client, tmp_path):
    from napari_prunuclei.runtime.batch import segment_files, tiles_path

    path, ref = slide
    out = tmp_path / "out"
    out.mkdir()
    (out / ".prunuclei-big.labels.x1.zarr").mkdir()  # what the interrupted run left besides its tiles
    with pytest.raises(Stop):
        segment_tiles_on_dask(path, client, REQUEST, scratch=tiles_path(path, out), progress=stop_after_5)
    res = segment_files([path], out, REQUEST, scheduler=cluster.scheduler_address, progress=False)
    assert res.finished[0]["throughput"]["cluster"]["reused"] >= 5
    np.testing.assert_array_equal(tifffile.imread(out / "big_labels.tif"), ref.labels)
    assert sorted(q.name for q in out.iterdir()) == [".prunuclei.lock", "big_info.json", "big_labels.tif",
                                                     "big_tissue.tif", "prunuclei_run.json"]


def test_overwrite_drops_the_finished_tiles(tmp_path):
    from napari_prunuclei.io.outfolder import remove_leftovers, tiles_path

    tiles_path(tmp_path / "big.tif", tmp_path).mkdir()
    remove_leftovers(tmp_path, {"big"})
    assert (tmp_path / ".prunuclei-big.tiles").is_dir()  # resume: kept
    remove_leftovers(tmp_path, {"big"}, keep_tiles=False)  # --overwrite: start afresh
    assert list(tmp_path.iterdir()) == []


def test_bad_images_on_a_cluster_fail_with_a_reason_and_leave_nothing(slide, cluster, tmp_path):
    """A truncated slide spread over the cluster and a TIFF with no pages run as a task: both are
    reported by name, the others finish, no tiles folder is left to resume."""
    from napari_prunuclei.runtime.batch import segment_files

    path, ref = slide
    data = path.read_bytes()
    trunc = tmp_path / "trunc.tif"
    trunc.write_bytes(data[: len(data) // 3])
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"II*\x00" + b"\xff" * 60)
    out = tmp_path / "out"
    res = segment_files([path, trunc, empty], out, REQUEST, scheduler=cluster.scheduler_address, progress=False)
    failed = dict(res.failed)
    assert len(res.finished) == 1 and set(failed) == {str(trunc), str(empty)}
    assert "trunc.tif" in failed[str(trunc)] and "corrupt" in failed[str(trunc)]
    assert "empty.tif" in failed[str(empty)] and "Error" not in failed[str(empty)].split(":")[0]
    np.testing.assert_array_equal(tifffile.imread(out / "big_labels.tif"), ref.labels)
    assert not any(q.name.endswith(".tiles") for q in out.iterdir())


def test_a_worker_loading_other_weight_files_reports_it_and_computes_nothing(slide, tmp_path):
    """Workers of another install (a --scheduler cluster) would load their own zoo: a tile whose worker's files
    are not the client's is refused with the file named, nothing written (code review, session 32)."""
    from napari_prunuclei.nuclei.watershed import WatershedParams
    from napari_prunuclei.runtime.distributed import TileJob, run_tile

    path, _ = slide
    st = path.stat()
    t = tile_grid((320, 320), TILING.tile, TILING.halo)[0]
    job = TileJob(str(path), (st.st_mtime_ns, st.st_size), REQUEST.spec, WatershedParams(), "cpu", "fp32", 1,
                  str(tmp_path), weights={"semantic": "0" * 64, "distance": "1" * 64})
    meta = run_tile(job, 0, t)
    assert "loads other weight files than this run's" in meta["error"] and str(path) in meta["error"]
    assert not list(tmp_path.iterdir())
    pair = load_pair(REQUEST.spec)
    ok = TileJob(*[getattr(job, f) for f in ("path", "stamp", "spec", "params", "device", "precision", "threads",
                                            "scratch")], weights={b: getattr(pair, b).zoo_info["sha256"]
                                                                 for b in ("semantic", "distance")})
    assert "error" not in run_tile(ok, 0, t) and tile_file(str(tmp_path), 0, t).is_file()
