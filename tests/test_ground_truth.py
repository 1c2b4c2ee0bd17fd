"""The widget's ground-truth choice (gui/ground_truth.py): chosen with its image, never another image's."""

import pytest

from napari_prunuclei.nuclei.synthetic import synthetic_tissue

pytestmark = pytest.mark.gui

IMG = "synthetic H&E"
GT = "synthetic H&E · ground truth"


def test_a_ground_truth_named_for_the_image_is_chosen_when_opened_or_when_its_image_is(qtbot, viewer_widget):
    """Pathologist, session 35: a ground truth opened for the image in view was not chosen; and switching tile 2
    -> tile 1 -> tile 2 unchose each one's ground truth, the status telling to choose the other's again."""
    viewer, w = viewer_widget
    assert w.truth.value is viewer.layers[GT]  # named for the image: chosen with it
    shown = [w.truth.native.itemText(i) for i in range(w.truth.native.count())]
    assert "(no ground truth)" in shown and "-----" not in shown  # no ground truth is called so (it showed "-----")
    assert shown[0] == "(no ground truth)"  # first, the layers opened before the dock after it (session 37: last)

    second = viewer.add_image(synthetic_tissue(512, seed=99)[0], name="second tile", rgb=True)
    w.image.value = second
    assert w.truth.value is None and "'second tile' has none open" in w.status.value
    own = viewer.add_labels(viewer.layers[GT].data.copy(), name="second tile [1]")  # opened now: chosen
    assert w.truth.value is own and "ground truth 'second tile [1]' chosen" in w.status.value
    w.image.value = viewer.layers[IMG]
    assert w.truth.value is viewer.layers[GT] and "belongs to another image: unchosen" in w.status.value
    w.image.value = second
    assert w.truth.value is own
    w.truth.value = None  # unchosen by the user: a layer opened later for another image changes nothing
    viewer.add_labels(viewer.layers[GT].data.copy(), name="third tile")
    assert w.truth.value is None
    w.image.value = viewer.layers[IMG]
    w.image.value = second  # 'none', the user's choice for this image, kept when it is chosen again
    assert w.truth.value is None and "(none, as you chose for 'second tile')" in w.status.value


def test_a_ground_truth_follows_its_image_onto_the_typed_pixel_size(qtbot, viewer_widget):
    """Pathologist, session 35: tile 2 chosen after a run at 0.25 µm went onto the µm grid, its ground truth (opened
    before, at scale 1) stayed 4x too large until tile 2 was chosen a second time."""
    viewer, w = viewer_widget
    w.pixel_size.value = 0.25
    second = viewer.add_image(synthetic_tissue(512, seed=99)[0], name="second tile", rgb=True)
    own = viewer.add_labels(viewer.layers[GT].data.copy(), name="second tile [1]")
    assert tuple(own.scale) == (1, 1)
    w.image.value = second  # the typed pixel size goes onto the image: its ground truth with it
    assert w.truth.value is own and tuple(second.scale[-2:]) == (0.25, 0.25) == tuple(own.scale[-2:])
    second.scale = (0.5, 0.5)  # any later change of the image's grid too
    assert tuple(own.scale) == (0.5, 0.5)


def test_the_status_says_this_switch_not_the_last_ones_and_a_refusal_goes_with_its_cause(qtbot, viewer_widget):
    """Pathologist, session 35: after a few switches the status held five joined, contradicting notices; and
    'Run refuses it' stayed after the image's own ground truth was chosen again."""
    viewer, w = viewer_widget
    second = viewer.add_image(synthetic_tissue(512, seed=99)[0], name="second tile", rgb=True)
    own = viewer.add_labels(viewer.layers[GT].data.copy(), name="second tile [1]")
    for image in (second, viewer.layers[IMG], second):
        w.image.value = image
    assert w.status.value.count("chosen for") == 1 and w.status.value.count("belongs to another image") == 1
    w.truth.value = viewer.layers[GT]  # tile 1's, for tile 2: refused
    assert "Run refuses it" in w.status.value
    w.truth.value = own
    assert "Run refuses it" not in w.status.value and f"ground truth '{own.name}' chosen" in w.status.value


def test_no_ground_truth_is_its_own_item_whatever_the_layers_are_called(qtbot, viewer_widget):
    """Reviewer, session 36: items are matched by their text; a layer named as the empty choice took its item."""
    viewer, w = viewer_widget
    for name in ("none", "-----"):
        viewer.add_labels(viewer.layers[GT].data.copy(), name=name)
    w.truth.value = None
    assert w.truth.value is None and w.truth.native.currentText() == "(no ground truth)"
    w.truth.value = viewer.layers["none"]
    assert w.truth.value is viewer.layers["none"] and w.truth.native.currentText() == "none"
