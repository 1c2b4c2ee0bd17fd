"""Resolution-aware inference: images of another pixel size are seen by the models at theirs."""

import json

import numpy as np
import pytest
import tifffile

from napari_prunuclei import segment
from napari_prunuclei.cli.main import main
from napari_prunuclei.nuclei.synthetic import synthetic_tile
from napari_prunuclei.runtime.request import SegmentRequest, Tiling
from napari_prunuclei.runtime.scale import Scale, check_pixel_size


def _pair_of_scales(seed=4):
    """A synthetic 40x tile and the same tissue halved (20x)."""
    from skimage.transform import resize

    rgb, _ = synthetic_tile(384, seed=seed)
    half = np.clip(np.rint(resize(rgb, (192, 192), order=1, anti_aliasing=True, preserve_range=True)), 0, 255)
    return rgb, half.astype(np.uint8)


def test_scale_factor_and_thresholds():
    assert Scale(None).factor == 1.0 and not Scale(None).active and "unknown" in Scale(None).as_dict()["note"]
    assert Scale(0.26).factor == 1.0  # within 5 %: taken as it is
    s = Scale(0.5)
    assert s.factor == 2.0 and s.active
    from napari_prunuclei.nuclei.watershed import WatershedParams

    assert s.params(WatershedParams(0.5, 0.4, 20)).min_size == 5  # the same area in µm²
    for bad in (0.0, -1, float("nan"), float("inf"), 500, 2.01, 20):  # 20 µm: resampled 80x, killed for memory
        with pytest.raises(ValueError, match="micrometres per pixel"):
            check_pixel_size(bad)
    with pytest.raises(ValueError):
        SegmentRequest(pixel_size=0)


def test_a_20x_image_gives_labels_on_its_grid_close_to_the_40x_run_and_unknown_is_unchanged():
    from skimage.transform import resize

    from napari_prunuclei.nuclei.metrics import aji

    rgb, half = _pair_of_scales()
    native = segment(rgb, device="cpu").labels
    ref = resize(native, half.shape[:2], order=0, preserve_range=True, anti_aliasing=False).astype(np.int32)
    seen = segment(half, device="cpu", pixel_size=0.5)
    assert seen.labels.shape == half.shape[:2] and seen.probability.shape == half.shape[:2]
    assert seen.info.resolution["factor"] == 2.0 and seen.info.resolution["resampled"]
    as_40x = segment(half, device="cpu").labels
    assert aji(ref, seen.labels) > aji(ref, as_40x) and aji(ref, seen.labels) > 0.6
    # the pixel size unknown or at the models': the labels of before, bit for bit
    np.testing.assert_array_equal(segment(rgb, device="cpu", pixel_size=0.25).labels, native)


def test_tiled_equals_whole_at_another_pixel_size():
    from napari_prunuclei.nuclei.metrics import aji

    _, half = _pair_of_scales(seed=5)
    whole = segment(half, device="cpu", pixel_size=0.5).labels
    tiled = segment(half, device="cpu", pixel_size=0.5, tiling=Tiling("tiled", 96, 32), post_workers=0).labels
    assert tiled.shape == whole.shape
    assert aji(whole, tiled) > 0.9  # the tiled tolerance: nuclei cut by a seam are decided per tile


def test_the_cli_reads_the_pixel_size_from_the_file_and_records_it(tmp_path):
    _, half = _pair_of_scales()
    tifffile.imwrite(tmp_path / "h.tif", half, photometric="rgb", resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    assert main(["segment", str(tmp_path / "h.tif"), "-o", str(tmp_path / "o"), "--device", "cpu"]) == 0
    info = json.loads((tmp_path / "o" / "h_info.json").read_text())
    assert info["resolution"]["pixel_size_um"] == pytest.approx(0.5) and info["request"]["pixel_size"] is None
    # given on the command line, it wins over the file's
    assert main(["segment", str(tmp_path / "h.tif"), "-o", str(tmp_path / "o2"), "--device", "cpu",
                 "--pixel-size", "0.25"]) == 0
    info = json.loads((tmp_path / "o2" / "h_info.json").read_text())
    assert info["resolution"]["factor"] == 1.0 and not info["resolution"]["resampled"]


def test_a_bad_pixel_size_is_an_option_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["segment", "x.tif", "-o", str(tmp_path / "o"), "--pixel-size", "-1"])
    assert e.value.code == 2 and "--pixel-size" in capsys.readouterr().err


def test_a_threshold_edit_at_another_pixel_size_records_its_own_min_size():
    """The report said '48 px of this image (= 10 px at the models' 40x)' after an edit to 40 (stale record)."""
    from napari_prunuclei.nuclei.watershed import WatershedParams
    from napari_prunuclei.runtime.pipeline import rewatershed
    from napari_prunuclei.study.session_report import thresholds_text

    rgb, _ = synthetic_tile(256, seed=3)
    seg = segment(rgb, SegmentRequest(device="cpu", pixel_size=0.5))
    edited = rewatershed(seg, WatershedParams(0.5, 0.5, 40))
    assert edited.info.resolution["min_size_at_models_px"] == 40
    assert "(= 40 px at the models' 40x)" in thresholds_text(edited.info)
