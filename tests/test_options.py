"""Options and inputs a user can get wrong: refused at once (exit 2) with a message naming them."""

import json

import numpy as np
import pytest
import tifffile

from napari_prunuclei.cli.main import main
from napari_prunuclei.io.dataset import DataError, NucleiDataset
from napari_prunuclei.runtime.batch import local_workers
from napari_prunuclei.runtime.request import SegmentRequest, Tiling


def _run(args: list[str]) -> int:
    """The exit status of ``prunuclei ARGS`` (argparse exits on an option error)."""
    try:
        return main(args)
    except SystemExit as e:
        return int(e.code)


@pytest.mark.parametrize("args,why", [
    (["--cr", "inf"], "finite"),
    (["--cr", "nan"], "finite"),
    (["--cr", "0.5"], ">= 1"),
    (["--device", "cuda"], "not available"),
    (["--threads", "-1"], "--threads"),
    (["--workers", "0"], "--workers"),
    (["--post-workers", "2000"], "--post-workers"),
    (["--batch", "100000"], "--batch"),
    (["--tile", "16"], "--tile"),
    (["--tile", "64", "--halo", "2000"], "halo"),
])
def test_bad_segment_options_are_option_errors(tmp_path, capsys, args, why):
    assert _run(["segment", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), *args]) == 2
    assert why in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_request_refuses_what_the_cli_refuses():
    for kw in (dict(cr=float("inf")), dict(batch=10**5), dict(post_workers=10**4)):
        with pytest.raises(ValueError):
            SegmentRequest(**kw)
    with pytest.raises(ValueError, match="halo"):
        Tiling("tiled", 64, 2000)


def test_local_dask_workers_are_capped_by_cores_and_memory():
    n, note = local_workers(64)
    assert 1 <= n < 64 and "--workers 64: starting" in note
    assert local_workers(1) == (1, None)


def test_limit_must_be_positive(tmp_path, capsys):
    assert _run(["evaluate", "--data", str(tmp_path), "--limit", "-1"]) == 2
    assert "--limit" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "a/b", ""])
def test_split_names_never_leave_the_data_folder(tmp_path, name):
    for sub in ("images", "labels"):
        (tmp_path / sub).mkdir()
    (tmp_path / "split.json").write_text(json.dumps({"test": ["ok", name]}))
    with pytest.raises(DataError, match="not an image name"):
        NucleiDataset(tmp_path)


def _folders_and_a_nucleus(tmp_path, a: str, b: str):
    (tmp_path / a).mkdir()
    (tmp_path / b).mkdir()
    lab = np.zeros((64, 64), np.uint16)
    lab[5:20, 5:20] = 1
    return tmp_path / a, tmp_path / b, lab


def test_score_pairs_segment_outputs_with_their_truth(tmp_path, capsys):
    truth, seg, lab = _folders_and_a_nucleus(tmp_path, "truth", "seg")
    tifffile.imwrite(truth / "X.tif", lab)
    tifffile.imwrite(seg / "X_labels.tif", lab)
    tifffile.imwrite(seg / "X_probability.tif", lab.astype(np.float32))
    assert main(["score", str(truth), str(seg)]) == 0
    assert "X" in capsys.readouterr().out


def test_score_refuses_label_images_too_large_to_hold(tmp_path, capsys):
    import napari_prunuclei.study.evaluation as ev

    lab = np.zeros((300, 300), np.uint32)
    tifffile.imwrite(tmp_path / "t.tif", lab)
    tifffile.imwrite(tmp_path / "p.tif", lab)
    old, ev.SCORE_MAX_PIXELS = ev.SCORE_MAX_PIXELS, 256 * 256
    try:
        assert main(["score", str(tmp_path / "t.tif"), str(tmp_path / "p.tif")]) == 2
    finally:
        ev.SCORE_MAX_PIXELS = old
    assert "score it in parts" in capsys.readouterr().err


def test_score_warns_of_unmatched_names_and_refuses_two_files_of_one_name(tmp_path, capsys):
    truth, pred, lab = _folders_and_a_nucleus(tmp_path, "t", "p")
    for f in (truth / "a.tif", truth / "b.tif", pred / "a.tif", pred / "c.tif"):
        tifffile.imwrite(f, lab)
    assert main(["score", str(truth), str(pred)]) == 0
    err = capsys.readouterr().err
    assert "only in" in err and "b" in err and "c" in err
    tifffile.imwrite(pred / "a.tiff", np.zeros_like(lab))
    assert main(["score", str(truth), str(pred)]) == 2
    assert "two label images named 'a'" in capsys.readouterr().err
