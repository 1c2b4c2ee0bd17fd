"""Ground-truth label layers on their image's grid (gui/truths.py)."""

import numpy as np
import pytest
from napari.components import ViewerModel

from napari_prunuclei.gui.truths import GRID_KEY, align_new_truths, image_of, named_for, on_grid_of


@pytest.mark.parametrize("truth, image, belongs", [
    ("TCGA-18 [1]", "TCGA-18", True), ("TCGA-18_labels", "TCGA-18", True), ("TCGA-18 · ground truth", "TCGA-18", True),
    ("TCGA-18", "TCGA-18 [2]", True), ("TCGA-180", "TCGA-18", False), ("other", "TCGA-18", False),
])
def test_a_labels_layer_is_named_for_an_image_by_its_name_not_a_longer_one(truth, image, belongs):
    assert named_for(truth, image) is belongs


def _viewer(scale=(0.25, 0.25)):
    v = ViewerModel()
    image = v.add_image(np.zeros((60, 80, 3), np.uint8), name="tile", rgb=True, scale=scale, units=("um", "um"))
    return v, image


def _labels(v, name, shape=(60, 80), **kw):
    return v.add_labels(np.zeros(shape, np.int32), name=name, **kw)


def test_labels_opened_beside_a_um_image_are_drawn_on_its_grid():
    """Pathologist pass: a ground-truth PNG opened as a file sat at scale 1 beside a 0.25 µm image (4x off)."""
    v, image = _viewer()
    truth = _labels(v, "tile [1]")
    assert align_new_truths([truth], [image]) == [truth]
    assert tuple(truth.scale) == (0.25, 0.25) and tuple(str(u) for u in truth.units) == ("micrometer",) * 2
    assert truth.metadata[GRID_KEY] == [[0.25, 0.25], [0.0, 0.0]]


def test_labels_the_plugin_placed_follow_their_images_grid_and_those_the_user_placed_stay():
    """Reviewer: a labels layer aligned once stayed on the old grid when the image's pixel size changed; one the
    user put back at scale 1 by hand was moved again at every layer event."""
    v, image = _viewer()
    follows, moved_by_user = _labels(v, "tile [1]"), _labels(v, "tile_labels")
    align_new_truths([follows, moved_by_user], [image])
    moved_by_user.scale = (1, 1)  # the user's choice now
    image.scale = (0.5, 0.5)
    assert align_new_truths([follows, moved_by_user], [image]) == [follows]
    assert tuple(follows.scale) == (0.5, 0.5) and tuple(moved_by_user.scale) == (1, 1)
    image.units = ("nm", "nm")  # units changed alone (the plugin sets the scale first, then the units)
    assert align_new_truths([follows], [image]) == [follows] and str(follows.units[-1]) == "nanometer"
    placed = _labels(v, "tile_a", scale=(2, 2))  # placed before the plugin saw it
    assert align_new_truths([placed], [image]) == [] and tuple(placed.scale) == (2, 2)


def test_only_an_image_of_the_labels_shape_is_theirs_and_an_exact_name_wins():
    """Reviewer: 'tile_crop_labels' (60x80) beside 'tile' (600x800) and 'tile_crop' (60x80) was left alone."""
    v = ViewerModel()
    big = v.add_image(np.zeros((600, 800)), name="tile", scale=(0.5, 0.5))
    crop = v.add_image(np.zeros((60, 80)), name="tile_crop", scale=(0.25, 0.25))
    labels = _labels(v, "tile_crop_labels")
    assert image_of(labels, [big, crop]) is crop
    same = v.add_image(np.zeros((60, 80)), name="tile_crop_labels")  # an image of that very name
    assert image_of(labels, [big, crop, same]) is same
    twin_a, twin_b = v.add_image(np.zeros((60, 80)), name="twin"), v.add_image(np.zeros((60, 80)), name="twin")
    assert twin_b.name == "twin [1]" and image_of(_labels(v, "twin_gt"), [twin_a, twin_b]) is None  # not clear


def test_labels_of_another_spatial_shape_are_left_alone():
    """Reviewer: (H, W, K) stacked masks beside an RGB (H, W, 3) image got scale (1, 0.25, 0.25)."""
    v, image = _viewer()
    stacked = _labels(v, "tile [1]", shape=(60, 80, 3))
    other = _labels(v, "tile_b", shape=(61, 80))
    unnamed = _labels(v, "nuclei")
    assert align_new_truths([stacked, other, unnamed], [image]) == []
    assert all(tuple(layer.scale) == (1,) * layer.ndim for layer in (stacked, other, unnamed))


def test_metadata_naming_the_image_is_enough_and_a_second_alignment_changes_nothing():
    v, image = _viewer(scale=(0.5, 0.5))
    image.translate = (10, 20)
    truth = _labels(v, "nuclei", metadata={"image": "tile"})
    assert align_new_truths([truth], [image]) == [truth]
    assert tuple(truth.translate) == (10, 20) and not on_grid_of(truth, image)
