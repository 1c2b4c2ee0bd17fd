import json

import numpy as np
import pytest
import tifffile

from napari_prunuclei.batch import info_path, segment_files
from napari_prunuclei.cli import main
from napari_prunuclei.io import ImageError, open_image
from napari_prunuclei.pipeline import SegmentRequest, Tiling
from napari_prunuclei.synthetic import synthetic_tile


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
    done = segment_files(paths, tmp_path, opts, progress=False)
    assert [d["image"] for d in done] == [str(p) for p in paths]
    stamp = info_path(paths[0], tmp_path).stat().st_mtime_ns
    assert segment_files(paths, tmp_path, opts, progress=False) == []  # all finished: skipped
    assert info_path(paths[0], tmp_path).stat().st_mtime_ns == stamp
    info = json.loads(info_path(paths[1], tmp_path).read_text())
    assert info["n_nuclei"] == int(_labels(tmp_path, "s1").max()) > 5


def test_dask_cluster_gives_the_serial_labels(slides, tmp_path):
    distributed = pytest.importorskip("distributed")
    paths = sorted(slides.glob("*.tif"))
    opts = SegmentRequest(device="cpu", tiling=Tiling("tiled", 128, 32))
    segment_files(paths, tmp_path / "serial", opts, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        done = segment_files(paths, tmp_path / "dask", opts, scheduler=cluster.scheduler_address, progress=False)
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

    from napari_prunuclei.batch import segment_file

    path = slides / "s1.tif"
    req = SegmentRequest(device="cpu", tiling=Tiling("tiled", 64, 32))
    segment_file(path, tmp_path / "alone", req)
    with ThreadPoolExecutor(2) as ex:
        infos = list(ex.map(lambda _: segment_file(path, tmp_path / "both", req), range(2)))
    np.testing.assert_array_equal(_labels(tmp_path / "both", "s1"), _labels(tmp_path / "alone", "s1"))
    assert infos[0]["n_nuclei"] == infos[1]["n_nuclei"] == int(_labels(tmp_path / "alone", "s1").max())
    assert sorted(q.name for q in (tmp_path / "both").iterdir()) == ["s1_info.json", "s1_labels.tif"]
