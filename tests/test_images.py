import numpy as np
import pytest

from napari_prunuclei.io.guards import ImageError
from napari_prunuclei.io.images import as_rgb_uint8, read_image
from napari_prunuclei.io.labels import read_labels, write_labels


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


def test_limits_are_sane():
    from napari_prunuclei.io import guards as pio

    assert 0 < pio.MAX_DECODED_BYTES <= 8 * 2**30
    assert pio.MAX_SIDE >= 200_000  # the largest 40x slides
    assert pio.MAX_EXPANSION >= 1032 and pio.MAX_EXPANSION_LZW >= pio.MAX_EXPANSION


def test_pillow_modes(tmp_path):
    from PIL import Image

    from napari_prunuclei.io.images import png_bit_depth

    rgb = np.random.default_rng(0).integers(0, 255, (70, 70, 3), dtype=np.uint8)
    # palette images: RGB for read_image, the palette indices for read_labels
    idx = (np.arange(70 * 70).reshape(70, 70) % 5).astype(np.uint8)
    pal = Image.fromarray(idx, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255] + [0] * 753)
    pal.save(tmp_path / "p.png")
    assert png_bit_depth(tmp_path / "p.png") == (8, 3)
    assert read_image(tmp_path / "p.png")[0, 1].tolist() == [255, 0, 0]
    assert np.array_equal(read_labels(tmp_path / "p.png"), idx)
    # CMYK JPEG comes out RGB (not CMYK taken for RGBA)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert np.abs(read_image(tmp_path / "c.jpg").astype(int) - rgb).mean() < 25
    # a TIFF named .png is not handed to another decoder
    import tifffile

    tifffile.imwrite(tmp_path / "t.png", rgb)
    with pytest.raises(ImageError, match="cannot read image .*t.png"):
        read_image(tmp_path / "t.png")


def test_labels_tiff_checked_before_reading(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 70, 70), np.uint16), photometric="minisblack")
    with pytest.raises(ImageError, match="2-D"):
        read_labels(tmp_path / "stack.tif")
    blank = np.zeros((2048, 2048), np.uint16)  # blank labels compress far: still read
    tifffile.imwrite(tmp_path / "blank.tif", blank, compression="lzw")
    assert read_labels(tmp_path / "blank.tif").max() == 0


def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path):
    import errno

    from napari_prunuclei.io.atomic import atomic_write

    def full(t):
        t.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=r"cannot write .*out\.tif: No space left on device"):
        atomic_write(tmp_path / "out.tif", full)
    assert list(tmp_path.iterdir()) == []


def test_a_broken_header_says_it_once_in_our_words(tmp_path, caplog):
    """tifffile's own log line ("invalid offset to first page") used to reach the console beside our message."""
    import logging

    import pytest

    from napari_prunuclei.io.guards import ImageError
    from napari_prunuclei.io.images import read_image

    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + (10**6).to_bytes(4, "little") + b"\x00" * 36)
    with caplog.at_level(logging.DEBUG), pytest.raises(ImageError, match="bad.tif"):
        read_image(bad)
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]
