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


@pytest.mark.parametrize("side_by_side", [False, True])
def test_a_shown_ground_truth_is_outlined_in_white_in_every_cell(tmp_path, tile, side_by_side):
    """Reviewer: the report's canvas.png left out the ground truth the canvas showed and the legend named."""
    rgb, r = tile
    truth = np.zeros(rgb.shape[:2], np.int32)
    truth[20:40, 30:50] = 1  # one square nucleus, away from nothing in particular
    hidden = {role: False for role in (("pruned", "instances"), ("dense", "instances"), ("pruned", "disagreement"),
                                       ("view", "disagreement"))}
    png = iio.imread(write_canvas(tmp_path / "c.png", rgb, r, side_by_side, hidden, truth))
    for k in range(2 if side_by_side else 1):
        cell = png[:, 130 * k: 130 * (k + 1)]
        assert (cell[20, 30:50] == 255).all() and (cell[39, 30:50] == 255).all()  # the square's edge, white
        assert np.array_equal(cell[25:35, 35:45], rgb[25:35, 35:45])  # its inside: the image
    assert "ground truth's nuclei outlined thin in white" in canvas_caption(r, side_by_side, truth=True)
