import numpy as np
import pytest

from napari_prunuclei.io import ImageError, as_rgb_uint8, read_image, read_labels, write_labels


def test_rgb_checks():
    ok = np.zeros((64, 80, 3), np.uint8)
    assert as_rgb_uint8(ok).shape == (64, 80, 3)
    assert as_rgb_uint8(np.zeros((64, 64, 4), np.uint8)).shape == (64, 64, 3)
    with pytest.raises(ImageError, match="grayscale"):
        as_rgb_uint8(np.zeros((64, 64), np.uint8))
    with pytest.raises(ImageError, match="uint16"):
        as_rgb_uint8(np.zeros((64, 64, 3), np.uint16))
    with pytest.raises(ImageError, match="at least"):
        as_rgb_uint8(np.zeros((30, 30, 3), np.uint8))
    with pytest.raises(ImageError, match="shape"):
        as_rgb_uint8(np.zeros((64, 64, 2), np.uint8))


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError, match="cannot read image"):
        read_image(bad)
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "none.png")


@pytest.mark.parametrize("ext", [".tif", ".png"])
def test_label_round_trip(tmp_path, ext):
    lab = np.zeros((70, 70), np.int32)
    lab[5:10, 5:10] = 1
    lab[20:30, 20:30] = 300
    p = write_labels(tmp_path / f"l{ext}", lab)
    assert np.array_equal(read_labels(p), lab)


def test_unwritable_export_leaves_nothing(tmp_path):
    with pytest.raises(OSError, match="does not exist"):
        write_labels(tmp_path / "missing" / "l.tif", np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError, match="unsupported"):
        write_labels(tmp_path / "l.bmp", np.zeros((4, 4), np.int32))
    assert list(tmp_path.iterdir()) == []
