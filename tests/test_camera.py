"""The user's view kept across the canvas's layouts (gui/camera.py)."""

import numpy as np
import pytest
from napari.components import ViewerModel

from napari_prunuclei.gui.camera import fit, restore_view, stack_above, view_of


def _viewer():
    v = ViewerModel()
    image = v.add_image(np.zeros((100, 200)), name="tile")
    v.add_image(np.zeros((100, 200)), name="view")
    return v, image


def _side_by_side(v, on: bool) -> None:
    grid = v.canvas.grid
    grid.stride, grid.shape, grid.enabled = -1, (1, -1), on


def test_a_zoomed_view_keeps_its_centre_and_its_field_across_the_two_cells():
    v, image = _viewer()
    v.camera.center, v.camera.zoom = (40.0, 60.0), 10.0
    before = view_of(v, image)
    assert not before.whole and before.cells == (1, 1)
    _side_by_side(v, True)
    v.reset_view()  # what napari's grid change does
    restore_view(v, before)
    assert np.allclose(v.camera.center[-2:], (40, 60)) and v.camera.zoom == pytest.approx(5.0)
    back = view_of(v, image)
    _side_by_side(v, False)
    restore_view(v, back)
    assert v.camera.zoom == pytest.approx(10.0)


def test_a_whole_image_in_view_is_fitted_again_and_an_unchanged_layout_keeps_the_camera():
    v, image = _viewer()
    v.reset_view()
    before = view_of(v, image)
    assert before.whole
    _side_by_side(v, True)
    v.camera.zoom = 50.0
    restore_view(v, before)
    fitted = v.camera.zoom
    v.reset_view()
    assert fitted == pytest.approx(v.camera.zoom)
    v.camera.center, v.camera.zoom = (10.0, 10.0), 3.0
    same = view_of(v, image)
    v.camera.zoom = 1.0
    restore_view(v, same)
    assert v.camera.zoom == 3.0 and np.allclose(v.camera.center[-2:], (10, 10))


def test_a_hidden_tile_at_another_pixel_size_does_not_shrink_the_fitted_views():
    """Pathologist, session 35: side by side with a second tile open at 1 µm/px (hidden) showed the run's
    0.25 µm/px views at an eighth of the cell."""
    v = ViewerModel()
    tile = v.add_image(np.zeros((1000, 1000)), name="tile", scale=(0.25, 0.25))
    v.add_image(np.zeros((1000, 1000)), name="other", scale=(1, 1), visible=False)
    views = [v.add_image(np.zeros((1000, 1000)), name=f"view {i}", scale=(0.25, 0.25)) for i in range(2)]
    tile.visible = False
    _side_by_side(v, True)
    v.reset_view()  # napari's own fit: the hidden tile's 1000 µm count
    everything = v.camera.zoom
    before = view_of(v, views[0])
    assert before.whole
    _side_by_side(v, False)
    restore_view(v, before, [*views, tile])  # one cell now: the run's 250 µm fill the canvas
    alone = v.camera.zoom
    v.reset_view(layers=[tile])
    assert alone == pytest.approx(v.camera.zoom) and alone > 4 * everything
    _side_by_side(v, True)
    fit(v, [*views, tile])
    assert v.camera.zoom == pytest.approx(4 * everything)
    assert np.allclose(v.camera.center[-2:], (124.875, 124.875))
    fit(v, [])  # nothing of the run left: napari's own fit
    assert v.camera.zoom == pytest.approx(everything)


@pytest.mark.parametrize("order,after", [
    ("A B r1 r2", "A r1 r2 B"),  # side by side put them on top: back under the image the user put above
    ("r1 r2 A B", "A r1 r2 B"),
    ("A r1 r2 B", "A r1 r2 B"),  # where they belong: nothing moves
    ("B A r1 C r2", "B A r1 r2 C"),
])
def test_a_runs_layers_lie_directly_above_their_image(order, after):
    """Pathologist, session 34: after side by side was turned off, tile A's results lay above tile B's image."""
    viewer = ViewerModel()
    for name in order.split():
        viewer.add_image(np.zeros((4, 4)), name=name)
    stack_above(viewer.layers, [viewer.layers["r1"], viewer.layers["r2"]], viewer.layers["A"])
    assert " ".join(layer.name for layer in viewer.layers) == after
