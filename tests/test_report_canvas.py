"""The report's picture: the image's own resolution (twice its width side by side), not mostly black."""

import imageio.v3 as iio
import numpy as np
import pytest

from napari_prunuclei.base.progress import drive
from napari_prunuclei.nuclei.synthetic import synthetic_tissue
from napari_prunuclei.runtime.request import SegmentRequest
from napari_prunuclei.study.report_canvas import canvas_caption, write_canvas
from napari_prunuclei.study.session import CompareRequest, run


@pytest.fixture(scope="module")
def tile():
    rgb = synthetic_tissue(150, seed=2)[0][:, :130]  # not square: rows and columns stay apart
    return rgb, drive(run(rgb, CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"))))


@pytest.mark.parametrize("side_by_side", [False, True])
def test_the_canvas_has_the_images_size_and_shows_it(tmp_path, tile, side_by_side):
    rgb, r = tile
    png = iio.imread(write_canvas(tmp_path / "canvas.png", rgb, r, side_by_side))
    assert png.shape == (150, 130 * (2 if side_by_side else 1), 3)
    assert (png.max(axis=2) < 30).mean() < 0.1 and png.mean() > 80  # not mostly black
    cells = [png] if not side_by_side else [png[:, :130], png[:, 130:]]
    for cell in cells:
        assert not np.array_equal(cell, rgb)  # outlines drawn on the image
        assert (cell == rgb).all(axis=2).mean() > 0.5  # ... and the image under them
    if side_by_side:  # B's nuclei left, A's right
        assert not np.array_equal(cells[0], cells[1])
        assert "left B (dense) in green, right A (network-wide CR20) in cyan" in canvas_caption(r, True)


def test_a_hidden_layer_is_left_out(tmp_path, tile):
    rgb, r = tile
    hidden = {("pruned", "instances"): False, ("pruned", "disagreement"): False}
    png = iio.imread(write_canvas(tmp_path / "canvas.png", rgb, r, False, hidden))
    assert not np.array_equal(png, rgb)  # B's outlines, as on the canvas
    hidden[("dense", "instances")] = False
    png = iio.imread(write_canvas(tmp_path / "canvas.png", rgb, r, False, hidden))
    assert np.array_equal(png, rgb)
