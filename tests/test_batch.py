import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_prunuclei.cli.main import main
from napari_prunuclei.io.guards import ImageError
from napari_prunuclei.io.images import open_image
from napari_prunuclei.nuclei.synthetic import synthetic_tile
from napari_prunuclei.runtime.batch import info_path, segment_file, segment_files
from napari_prunuclei.runtime.request import SegmentRequest, Tiling


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    d = tmp_path_factory.mktemp("slides")
    for i in range(3):
        rgb, _ = synthetic_tile(192, seed=10 + i)
        tifffile.imwrite(d / f"s{i}.tif", rgb, tile=(64, 64))
    return d


def _labels(out, stem):
    return tifffile.imread(out / f"{stem}_labels.tif")


def test_serial_batch_resumes(slides, tmp_path):
    opts = SegmentRequest(device="cpu")
    paths = sorted(slides.glob("*.tif"))
    done = segment_files(paths, tmp_path, opts, progress=False).finished
    assert [d["image"] for d in done] == [str(p) for p in paths]
    stamp = info_path(paths[0], tmp_path).stat().st_mtime_ns
    again = segment_files(paths, tmp_path, opts, progress=False)
    assert again.finished == [] and again.skipped == 3  # all finished: skipped
    assert info_path(paths[0], tmp_path).stat().st_mtime_ns == stamp
    info = json.loads(info_path(paths[1], tmp_path).read_text())
    assert info["n_nuclei"] == int(_labels(tmp_path, "s1").max()) > 5


def test_dask_cluster_gives_the_serial_labels(slides, tmp_path):
    import distributed
    paths = sorted(slides.glob("*.tif"))
    opts = SegmentRequest(device="cpu", tiling=Tiling("tiled", 128, 32))
    segment_files(paths, tmp_path / "serial", opts, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        done = segment_files(paths, tmp_path / "dask", opts, scheduler=cluster.scheduler_address,
                             progress=False).finished
    assert len(done) == 3 and all(d["mode"] == "tiled" for d in done)
    for p in paths:
        np.testing.assert_array_equal(_labels(tmp_path / "dask", p.stem), _labels(tmp_path / "serial", p.stem))
    # the tiled label image is a tiled TIFF, readable region by region
    with tifffile.TiffFile(tmp_path / "dask" / "s0_labels.tif") as tf:
        assert tf.pages[0].is_tiled


def test_cli_segment_folder_tiled(slides, tmp_path, capsys):
    assert main(["segment", str(slides), "-o", str(tmp_path), "--device", "cpu", "--tiled", "--tile", "128"]) == 0
    assert capsys.readouterr().out.count("(tiled,") == 3
    for i in range(3):
        assert info_path(slides / f"s{i}.tif", tmp_path).is_file()
        assert _labels(tmp_path, f"s{i}").shape == (192, 192)


def test_open_image_is_lazy_and_checks(tmp_path, slides):
    arr = open_image(slides / "s0.tif")
    assert not isinstance(arr, np.ndarray) and arr.shape == (192, 192, 3)
    assert np.asarray(arr[10:20, 30:40]).shape == (10, 10, 3)
    tifffile.imwrite(tmp_path / "gray.tif", np.zeros((100, 100), np.uint8))
    with pytest.raises(ImageError, match="RGB"):
        open_image(tmp_path / "gray.tif")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(ImageError, match="cannot read"):
        open_image(tmp_path / "bad.tif")


def test_concurrent_tiled_runs_into_one_folder_do_not_share_a_scratch_store(slides, tmp_path):
    """Two tiled runs of one image into one folder at once (threads): both finish with the labels of a
    run alone, and no scratch store is left behind."""
    from concurrent.futures import ThreadPoolExecutor

    from napari_prunuclei.runtime.batch import segment_file

    path = slides / "s1.tif"
    req = SegmentRequest(device="cpu", tiling=Tiling("tiled", 64, 32))
    segment_file(path, tmp_path / "alone", req)
    with ThreadPoolExecutor(2) as ex:
        infos = list(ex.map(lambda _: segment_file(path, tmp_path / "both", req), range(2)))
    np.testing.assert_array_equal(_labels(tmp_path / "both", "s1"), _labels(tmp_path / "alone", "s1"))
    assert infos[0]["n_nuclei"] == infos[1]["n_nuclei"] == int(_labels(tmp_path / "alone", "s1").max())
    assert sorted(q.name for q in (tmp_path / "both").iterdir()) == ["s1_info.json", "s1_labels.tif", "s1_tissue.tif"]


@pytest.fixture
def with_bad(slides, tmp_path):
    """The three slides and, between them, a truncated PNG."""
    import shutil

    import imageio.v3 as iio

    d = tmp_path / "in"
    d.mkdir()
    for p in sorted(slides.glob("*.tif")):
        shutil.copy(p, d / p.name)
    rgb, _ = synthetic_tile(96, seed=3)
    iio.imwrite(d / "s1b.png", rgb)
    data = (d / "s1b.png").read_bytes()
    (d / "s1b.png").write_bytes(data[: len(data) // 2])
    return d


def test_one_bad_image_does_not_stop_a_batch(with_bad, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(with_bad), "-o", str(out), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "failed, nothing written" in x)
    assert line.count("s1b.png") == 1 and "1 of 4 image(s) failed" in err  # the file named once
    assert "Traceback" not in err
    assert "\x1b[" not in err  # piped (not a terminal): no per-image bar's cursor codes before the error lines
    assert sorted(q.name for q in out.glob("*_info.json")) == ["s0_info.json", "s1_info.json", "s2_info.json"]
    assert not list(out.glob("s1b*"))
    # a resume goes past the bad image again and does the rest only
    for f in out.glob("s2_*"):
        f.unlink()
    res = segment_files(sorted(with_bad.iterdir()), out, SegmentRequest(device="cpu"), progress=False)
    assert [Path(i["image"]).name for i in res.finished] == ["s2.tif"] and res.skipped == 2
    assert [Path(p).name for p, _ in res.failed] == ["s1b.png"]


def test_dask_batch_reports_a_bad_image_and_finishes_the_rest(with_bad, tmp_path):
    import distributed
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        res = segment_files(sorted(with_bad.iterdir()), tmp_path / "o", SegmentRequest(device="cpu"),
                            scheduler=cluster.scheduler_address, progress=False)
    assert len(res.finished) == 3 and [Path(p).name for p, _ in res.failed] == ["s1b.png"]


def test_same_name_twice_and_another_model_in_the_folder_are_refused(slides, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(slides / "s0.tif", other / "s0.tif")
    out = tmp_path / "out"
    assert main(["segment", str(slides / "s0.tif"), str(other / "s0.tif"), "-o", str(out)]) == 2
    assert "same name" in capsys.readouterr().err and not out.exists()
    assert main(["segment", str(slides / "s0.tif"), "-o", str(out), "--device", "cpu"]) == 0
    assert main(["segment", str(slides / "s1.tif"), "-o", str(out), "--device", "cpu", "--scheme", "networkwide",
                 "--cr", "20"]) == 2
    assert "another model" in capsys.readouterr().err
    assert not (out / "s1_info.json").exists()


def test_leftovers_of_a_killed_run_are_removed_on_resume(slides, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".prunuclei-s0.labels.abc123.zarr").mkdir()
    (out / ".prunuclei-tmp.s0_labels.tif.x1y2.tif").write_bytes(b"partial")
    (out / ".prunuclei-tmp..prunuclei-s0.pending.json.k9z1.json").write_text("{")  # a record's own temp file
    (out / ".unrelated").write_text("keep")
    segment_files([slides / "s0.tif"], out, SegmentRequest(device="cpu"), progress=False)
    assert sorted(q.name for q in out.iterdir() if q.name.startswith(".")) == [".prunuclei.lock", ".unrelated"]


def test_a_second_run_into_a_busy_folder_is_refused(slides, tmp_path, capsys):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".prunuclei.lock", "w") as held:  # another run is writing here
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["segment", str(slides / "s0.tif"), "-o", str(out), "--device", "cpu"]) == 2
    assert "another prunuclei run is writing into" in capsys.readouterr().err
    assert not (out / "s0_labels.tif").exists()


@pytest.mark.parametrize("compression", ["jpeg", "lzw"])
def test_compressed_tiled_tiffs_are_segmented(tmp_path, compression, capsys):
    rgb, _ = synthetic_tile(256, seed=8)
    tifffile.imwrite(tmp_path / "s.tif", rgb, tile=(128, 128), compression=compression, photometric="rgb")
    assert main(["segment", str(tmp_path / "s.tif"), "-o", str(tmp_path / "o"), "--device", "cpu"]) == 0
    assert _labels(tmp_path / "o", "s").max() > 5


def test_tiled_labels_are_a_pyramidal_ome_tiff_with_the_pixel_size(tmp_path, monkeypatch):
    import napari_prunuclei.runtime.batch as batch
    from napari_prunuclei.io.pixel_size import read_pixel_size

    monkeypatch.setattr(batch, "PYRAMID_SMALLEST", 64)
    rgb, _ = synthetic_tile(320, seed=12)
    tifffile.imwrite(tmp_path / "s.tif", rgb, photometric="rgb", resolution=(4e4, 4e4), resolutionunit="CENTIMETER")
    req = SegmentRequest(device="cpu", tiling=Tiling("tiled", 128, 32))
    info = segment_file(tmp_path / "s.tif", tmp_path / "o", req)
    assert info["mode"] == "tiled"
    with tifffile.TiffFile(tmp_path / "o" / "s_labels.tif") as tf:
        levels = tf.series[0].levels
        assert tf.is_ome and [lv.shape for lv in levels] == [(320, 320), (160, 160), (80, 80)]
        full = levels[0].asarray()
        np.testing.assert_array_equal(levels[1].asarray(), full[::2, ::2])  # ids kept, never blended
    assert read_pixel_size(tmp_path / "o" / "s_labels.tif") == pytest.approx(0.25)
    with tifffile.TiffFile(tmp_path / "o" / "s_labels.tif") as tf:  # plain TIFF tags too, for readers without OME
        x, unit = tf.pages[0].tags["XResolution"].value, tf.pages[0].tags["ResolutionUnit"].value
        assert 1e4 * x[1] / x[0] == pytest.approx(0.25) and int(unit) == 3
    assert full.max() == info["n_nuclei"]
    # the tissue mask beside the labels: 1 pixel per 16 x 16, its pixel size 16 x the slide's; listed as an output
    mask = tifffile.imread(tmp_path / "o" / "s_tissue.tif")
    assert mask.shape == (20, 20) and mask.mean() > 200 and "s_tissue.tif" in info["outputs"]
    assert read_pixel_size(tmp_path / "o" / "s_tissue.tif") == pytest.approx(4.0)
    assert 0.9 < info["tissue"]["tissue_fraction"] <= 1 and info["tissue"]["mp_per_s_tissue"] > 0


def test_whole_image_outputs_carry_the_pixel_size_so_they_reopen_on_their_image(tmp_path):
    """Hostile pass: label, probability and distance TIFFs of a whole-image run had no resolution tags: a plain
    reopen beside their image (which has them) was drawn at another scale."""
    from napari_prunuclei.io.pixel_size import read_pixel_size

    rgb, _ = synthetic_tile(160, seed=4)
    tifffile.imwrite(tmp_path / "w.tif", rgb, photometric="rgb", resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    info = segment_file(tmp_path / "w.tif", tmp_path / "o", SegmentRequest(device="cpu"))
    assert info["mode"] != "tiled"
    for key in ("labels", "probability", "distance"):
        assert read_pixel_size(tmp_path / "o" / f"w_{key}.tif") == pytest.approx(0.5), key
    tifffile.imwrite(tmp_path / "u.tif", rgb, photometric="rgb")  # no pixel size: none invented
    segment_file(tmp_path / "u.tif", tmp_path / "o", SegmentRequest(device="cpu"))
    assert read_pixel_size(tmp_path / "o" / "u_labels.tif") is None


KILL_AT_INFO = """
import os, sys
import napari_prunuclei.io.atomic as atomic
import napari_prunuclei.runtime.batch as batch
from napari_prunuclei.runtime.request import SegmentRequest
real = atomic.atomic_write
def write(path, fn):
    if str(path).endswith("_info.json"):
        os._exit(9)  # killed after the outputs, before the info: what kill -9 leaves
    return real(path, fn)
atomic.atomic_write = write
batch.segment_file(sys.argv[1], sys.argv[2], SegmentRequest(device="cpu"))
"""


def test_a_run_killed_before_its_info_leaves_files_the_next_run_knows_as_its_own(tmp_path):
    """Hostile pass: kill -9 between the labels and the info JSON left X_labels.tif that every later run refused
    as a user's file. The run now records what it wrote; an unchanged file so recorded is replaced."""
    import subprocess
    import sys

    rgb, _ = synthetic_tile(128, seed=3)
    tifffile.imwrite(tmp_path / "k.tif", rgb, photometric="rgb")
    out = tmp_path / "o"
    out.mkdir()
    (out / ".hidden").write_text("mine")
    (out / "notes.txt").write_text("mine")
    r = subprocess.run([sys.executable, "-c", KILL_AT_INFO, str(tmp_path / "k.tif"), str(out)], timeout=300)
    assert r.returncode == 9 and (out / "k_labels.tif").is_file() and not (out / "k_info.json").exists()
    info = segment_file(tmp_path / "k.tif", out, SegmentRequest(device="cpu"))  # no refusal
    assert info["n_nuclei"] > 0 and (out / "k_info.json").is_file()
    assert (out / ".hidden").read_text() == "mine" and (out / "notes.txt").read_text() == "mine"
    assert not [q.name for q in out.iterdir() if q.name.endswith(".pending.json")]
    # a file the user changed since the kill is theirs again: refused
    r = subprocess.run([sys.executable, "-c", KILL_AT_INFO, str(tmp_path / "k.tif"), str(tmp_path / "p")],
                       timeout=300)
    assert r.returncode == 9
    (tmp_path / "p" / "k_labels.tif").write_bytes(b"the user's own labels")
    with pytest.raises(ValueError, match="no prunuclei run made it"):
        segment_file(tmp_path / "k.tif", tmp_path / "p", SegmentRequest(device="cpu"))
    assert (tmp_path / "p" / "k_labels.tif").read_bytes() == b"the user's own labels"


def test_a_users_info_json_is_not_overwritten(tmp_path):
    """Hostile pass: X_info.json of the user's was replaced without --overwrite."""
    rgb, _ = synthetic_tile(96, seed=3)
    tifffile.imwrite(tmp_path / "base.tif", rgb, photometric="rgb")
    out = tmp_path / "o"
    out.mkdir()
    (out / "base_info.json").write_text("my notes\n")
    with pytest.raises(ValueError, match="not the info file of a prunuclei run"):
        segment_file(tmp_path / "base.tif", out, SegmentRequest(device="cpu"))
    assert (out / "base_info.json").read_text() == "my notes\n" and not (out / "base_labels.tif").exists()


def test_a_file_declaring_a_huge_pixel_size_fails_alone_with_a_message_not_the_machine(tmp_path):
    """Hostile pass: a 256 px TIFF whose description says MPP = 20 was resampled 80x (20480² px) and the
    process was killed for memory, taking the rest of the batch with it."""
    rgb, _ = synthetic_tile(96, seed=3)
    tifffile.imwrite(tmp_path / "a_coarse.tif", rgb, photometric="rgb", description="Aperio Image |MPP = 20")
    tifffile.imwrite(tmp_path / "b_fine.tif", rgb, photometric="rgb")
    res = segment_files(sorted(tmp_path.glob("*.tif")), tmp_path / "o", SegmentRequest(device="cpu"))
    assert [Path(p).name for p, _ in res.failed] == ["a_coarse.tif"] and len(res.finished) == 1
    reason = res.failed[0][1]
    assert "20 µm per pixel" in reason and "--pixel-size" in reason and "a_coarse.tif" in reason


KILL_AFTER_RENAME = """
import os, sys
import napari_prunuclei.runtime.batch as batch
from napari_prunuclei.runtime.request import SegmentRequest
real = batch.record_pending
def record(path, out, written, about_to_write=None):
    if about_to_write is None:
        os._exit(9)  # killed after the labels were renamed into place, before they were stamped
    return real(path, out, written, about_to_write)
batch.record_pending = record
batch.segment_file(sys.argv[1], sys.argv[2], SegmentRequest(device="cpu"))
"""


def test_a_run_killed_between_renaming_its_labels_and_recording_them_still_knows_them(tmp_path):
    """Hostile re-check: the record was written after the labels' rename; a kill in between left labels the next
    run refused as a user's. The record now names each output before it is written."""
    import subprocess
    import sys

    rgb, _ = synthetic_tile(128, seed=3)
    tifffile.imwrite(tmp_path / "k.tif", rgb, photometric="rgb")
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-c", KILL_AFTER_RENAME, str(tmp_path / "k.tif"), str(out)], timeout=300)
    assert r.returncode == 9 and (out / "k_labels.tif").is_file() and not (out / "k_info.json").exists()
    info = segment_file(tmp_path / "k.tif", out, SegmentRequest(device="cpu"))
    assert info["n_nuclei"] > 0 and not [q for q in out.iterdir() if q.name.endswith(".pending.json")]


def test_results_of_other_weights_under_the_same_name_are_not_resumed_into(slides, tmp_path, monkeypatch, capsys):
    """A folder made by the same scheme and CR but other weight files (a rebuilt zoo) is another model's: a
    resume neither skips its images as finished nor mixes new results in; the message says what differs."""
    import napari_prunuclei.runtime.batch as batch

    out = tmp_path / "out"
    assert main(["segment", str(slides / "s0.tif"), "-o", str(out), "--device", "cpu"]) == 0
    info = json.loads(info_path(slides / "s0.tif", out).read_text())
    assert len(info["model"]["results"]["weights"]["semantic"]) == 64  # the sha256 of the file that ran
    real = batch.results_record
    monkeypatch.setattr(batch, "results_record", lambda spec, params: {
        **real(spec, params), "weights": {"semantic": "0" * 64, "distance": "1" * 64}})
    capsys.readouterr()
    assert main(["segment", str(slides / "s0.tif"), str(slides / "s1.tif"), "-o", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    sha = info["model"]["results"]["weights"]["semantic"][:12]
    assert f"differing from this run in weights: {sha}/" in err and "000000000000/111111111111 now" in err
    assert "Traceback" not in err
    assert not (out / "s1_info.json").exists() and json.loads(info_path(slides / "s0.tif", out).read_text()) == info


def test_a_folder_of_an_earlier_version_without_weight_records_is_refused_by_name(slides, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(slides / "s0.tif"), "-o", str(out), "--device", "cpu"]) == 0
    for p in (out / "prunuclei_run.json", info_path(slides / "s0.tif", out)):  # as an earlier version wrote them
        d = json.loads(p.read_text())
        d.pop("results", None), d.pop("model", None)
        p.write_text(json.dumps(d))
    capsys.readouterr()
    assert main(["segment", str(slides / "s0.tif"), "-o", str(out), "--device", "cpu"]) == 2
    assert "earlier version that did not record its weight files" in capsys.readouterr().err
    assert main(["segment", str(slides / "s0.tif"), "-o", str(out), "--device", "cpu", "--overwrite"]) == 0
    assert "results" in json.loads((out / "prunuclei_run.json").read_text())


def test_an_image_whose_loaded_pair_is_not_the_folders_fails_alone_and_writes_nothing(slides, tmp_path):
    """The zoo's files may be replaced while a batch runs (a zoo shipped meanwhile): an image whose freshly
    loaded pair is not the one the folder's record names fails, nothing of it written; the others go on."""
    from napari_prunuclei.io.outfolder import model_record
    from napari_prunuclei.runtime.pairs import results_record

    req = SegmentRequest(device="cpu")
    record = model_record(req, results_record(req.spec, req.params))
    other = {**record, "results": {**record["results"], "weights": {"semantic": "0" * 64, "distance": "1" * 64}}}
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="s0.tif: the zoo.s files or thresholds changed while this run went on"):
        segment_file(slides / "s0.tif", out, req, expect=other)
    assert not list(out.glob("s0_*"))
    info = segment_file(slides / "s0.tif", out, req, expect=record)
    assert info["model"] == record
