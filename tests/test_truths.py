"""Ground-truth label layers on their image's grid (gui/truths.py)."""

import numpy as np
import pytest
from napari.components import ViewerModel

from napari_prunuclei.gui.truths import align_new_truths, named_for, on_grid_of


@pytest.mark.parametrize("truth, image, belongs", [
    ("TCGA-18 [1]", "TCGA-18", True), ("TCGA-18_labels", "TCGA-18", True), ("TCGA-18 · ground truth", "TCGA-18", True),
    ("TCGA-18", "TCGA-18 [2]", True), ("TCGA-180", "TCGA-18", False), ("other", "TCGA-18", False),
])
def test_a_labels_layer_is_named_for_an_image_by_its_name_not_a_longer_one(truth, image, belongs):
    assert named_for(truth, image) is belongs


def _viewer(scale=(0.25, 0.25)):
    v = ViewerModel()
    image = v.add_image(np.zeros((60, 80)), name="tile", scale=scale, units=("um", "um"))
    return v, image


def test_labels_opened_beside_a_um_image_are_drawn_on_its_grid():
    """Pathologist pass: a ground-truth PNG opened as a file sat at scale 1 beside a 0.25 µm image (4x off)."""
    v, image = _viewer()
    truth = v.add_labels(np.zeros((60, 80), np.int32), name="tile [1]")
    assert align_new_truths([truth], [image]) == [truth]
    assert tuple(truth.scale) == (0.25, 0.25) and tuple(str(u) for u in truth.units) == ("micrometer",) * 2


def test_labels_placed_by_the_user_of_another_shape_or_named_for_two_images_are_left_alone():
    v, image = _viewer()
    placed = v.add_labels(np.zeros((60, 80), np.int32), name="tile_a", scale=(2, 2))
    other = v.add_labels(np.zeros((61, 80), np.int32), name="tile_b")
    unnamed = v.add_labels(np.zeros((60, 80), np.int32), name="nuclei")
    twin = v.add_image(np.zeros((60, 80)), name="tile_a", scale=(0.5, 0.5))  # 'tile_a' names two images now
    both = v.add_labels(np.zeros((60, 80), np.int32), name="tile_a [1]")
    assert align_new_truths([placed, other, unnamed, both], [image, twin]) == []
    assert tuple(placed.scale) == (2, 2) and tuple(other.scale) == (1, 1) and tuple(unnamed.scale) == (1, 1)


def test_metadata_naming_the_image_is_enough_and_a_second_alignment_changes_nothing():
    v, image = _viewer(scale=(0.5, 0.5))
    image.translate = (10, 20)
    truth = v.add_labels(np.zeros((60, 80), np.int32), name="nuclei", metadata={"image": "tile"})
    assert align_new_truths([truth], [image]) == [truth]
    assert tuple(truth.translate) == (10, 20) and not on_grid_of(truth, image)
