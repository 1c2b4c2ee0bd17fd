"""The comparison state without Qt: napari's ViewerModel, results from the widget's own job."""

import numpy as np
import pytest
from napari.components import ViewerModel

from napari_prunuclei.base.progress import drive
from napari_prunuclei.gui.state import ComparisonState
from napari_prunuclei.nuclei.synthetic import synthetic_tissue
from napari_prunuclei.runtime.request import SegmentRequest
from napari_prunuclei.study.session import CompareRequest, run


@pytest.fixture(scope="module")
def results():
    rgb, _ = synthetic_tissue(160, seed=2)
    out = {}
    for key, req in {"cr20": CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu")),
                     "cr4": CompareRequest("img", SegmentRequest("layerwise", 4, device="cpu")),
                     "dense": CompareRequest("img", SegmentRequest(device="cpu")),
                     "alone": CompareRequest("img", SegmentRequest("networkwide", 8, device="cpu"),
                                             compare_dense=False)}.items():
        out[key] = drive(run(rgb, req))
    return rgb, out


def test_any_sequence_leaves_exactly_the_current_runs_layers(results):
    rgb, r = results
    viewer = ViewerModel()
    image = viewer.add_image(rgb, name="img", rgb=True)
    truth = viewer.add_labels(np.zeros(rgb.shape[:2], np.int32), name="truth")
    state = ComparisonState(viewer)

    def roles():
        return set(state.owned())

    maps = {(m, o) for m in ("dense", "pruned") for o in ("semantic", "distance", "instances")}
    state.apply(r["cr20"])
    assert roles() == maps | {("pruned", "disagreement")} and len(viewer.layers) == 9
    first = state.owned()[("dense", "instances")]
    state.apply(r["cr4"])  # the same roles: updated in place, renamed
    assert state.owned()[("dense", "instances")] is first
    assert any("CR4 layer-wise" in layer.name for layer in viewer.layers)
    assert not any("CR20" in layer.name for layer in viewer.layers)
    state.apply(r["cr4"], side_by_side=True)
    assert {("view", "dense image"), ("view", "pruned image"), ("view", "disagreement")} <= roles()
    assert viewer.canvas.grid.enabled and viewer.canvas.grid.stride == -5 and not image.visible
    layers = list(viewer.layers)
    cells = {role: viewer.canvas.grid.position(layers.index(lay), layers) for role, lay in state.owned().items()
             if lay.visible}
    assert cells[("dense", "instances")] == (0, 0) and cells[("pruned", "instances")] == (0, 1)
    state.apply(r["dense"])  # dense only: no pruned layers, no views, the grid and the image given back
    assert roles() == {("dense", o) for o in ("semantic", "distance", "instances")}
    assert not viewer.canvas.grid.enabled and image.visible
    state.apply(r["alone"])  # a pruned model without dense
    assert roles() == {("pruned", o) for o in ("semantic", "distance", "instances")}
    state.clear()
    assert list(viewer.layers) == [image, truth]  # nothing the plugin made, the user's layers kept


def test_a_layer_the_user_deleted_comes_back_and_the_users_visibility_is_kept(results):
    rgb, r = results
    viewer = ViewerModel()
    viewer.add_image(rgb, name="img", rgb=True)
    state = ComparisonState(viewer)
    state.apply(r["cr20"])
    viewer.layers.remove(state.layers[("pruned", "instances")])
    state.owned()[("dense", "semantic")].visible = True
    state.apply(r["cr20"], side_by_side=True)  # roles change: the layers are made anew, in order
    assert ("pruned", "instances") in state.owned()
    assert state.owned()[("dense", "semantic")].visible


def test_the_comparison_is_visible_in_one_view(results):
    """Issue 22 item 3: the disagreement above both models' nuclei (it lay under dense's fills), outlines in one
    colour per model named in the legend, the legend follows the visible layers."""
    rgb, r = results
    viewer = ViewerModel()
    viewer.add_image(rgb, name="img", rgb=True)
    state = ComparisonState(viewer)
    state.apply(r["cr20"])
    layers, owned = list(viewer.layers), state.owned()
    mark = layers.index(owned[("pruned", "disagreement")])
    assert mark == len(layers) - 1  # on top of everything
    assert mark > layers.index(owned[("dense", "instances")]) and mark > layers.index(owned[("pruned", "instances")])
    a, b = owned[("pruned", "instances")], owned[("dense", "instances")]
    assert a.contour > 0 and b.contour > 0 and owned[("pruned", "disagreement")].contour > a.contour
    assert a.colormap.color_dict[None].tolist() != b.colormap.color_dict[None].tolist()
    legend = [text for _, text in state.legend_items()]
    assert legend[0].startswith("A · network-wide CR20") and legend[1].startswith("B · dense")
    counts = r["cr20"].numbers.disagreement
    assert any("thick ring" in t for t in legend) == any(counts.values())  # (a zoo's pair may agree on this tile)
    assert [k for k in ("missed", "extra", "split", "merged") if any(f", {k}:" in t for t in legend)] == [
        k for k in ("missed", "extra", "split", "merged") if counts[k]]  # only kinds this run has
    owned[("pruned", "disagreement")].visible = False  # the legend shows what is visible
    assert not any("thick ring" in t for _, t in state.legend_items())
    b.visible = False
    assert [t for _, t in state.legend_items()] == [legend[0]]
    state.set_fill(True)
    assert a.contour == 0 and "fills" in state.legend_items()[0][1]
    b.visible = True  # in one view B's nuclei stay outlines under A's fills (pathologist: A's hid B's)
    assert b.contour > 0 and [t for _, t in state.legend_items()][1] == "B · dense: nuclei (outlines, under A's fills)"
    owned[("pruned", "semantic")].visible = True  # reviewer: a map the user showed was not in the legend
    assert any(t.startswith("A · network-wide CR20: semantic map") for _, t in state.legend_items())
    assert not any("distance map" in t for _, t in state.legend_items())
    state.set_side_by_side(True)  # each cell its own model: both filled
    assert state.owned()[("dense", "instances")].contour == 0 and state.filled("dense")
    state.set_side_by_side(False)
    assert state.owned()[("dense", "instances")].contour > 0


def test_results_carry_the_image_scale_and_region_offset(results):
    """Issue 22 item 9: with a pixel size the layers carry it (µm), the results lie on the image."""
    rgb, r = results
    viewer = ViewerModel()
    viewer.add_image(rgb, name="img", rgb=True, scale=(0.5, 0.5), translate=(10, 20))
    state = ComparisonState(viewer)
    state.apply(r["cr20"])
    for layer in state.owned().values():
        assert tuple(layer.scale) == (0.5, 0.5) and tuple(layer.translate) == (10, 20)
    state.apply(r["cr20"], side_by_side=True)
    for layer in state.owned().values():
        assert tuple(layer.scale) == (0.5, 0.5)


def test_zoom_and_pan_kept_across_reruns_in_side_by_side(results):
    """Issue 22 defect 6: every re-run in side by side reset the camera."""
    rgb, r = results
    viewer = ViewerModel()
    viewer.add_image(rgb, name="img", rgb=True)
    state = ComparisonState(viewer)
    state.apply(r["cr20"], side_by_side=True)
    viewer.camera.center, viewer.camera.zoom = (40.0, 50.0), 7.0
    state.apply(r["cr4"])  # a re-run (or a threshold edit) while side by side stays on
    assert tuple(viewer.camera.center[-2:]) == (40.0, 50.0) and viewer.camera.zoom == 7.0


def test_side_by_side_draws_one_layer_a_paint_after_the_grid_is_set(results):
    """The side-by-side toggle stalled 212-349 ms in one paint: every cell's layer compiled and uploaded at once.
    The grid is set with only the image views showing; each other visible layer is revealed after a paint."""
    from napari_prunuclei.gui.state import PAINT

    rgb, r = results
    viewer = ViewerModel()
    viewer.add_image(rgb, name="img", rgb=True)
    state = ComparisonState(viewer)
    state.apply(r["cr20"])
    shown_before = []
    for step in state.show(r["cr20"], side_by_side=True):
        if step == PAINT:
            assert viewer.canvas.grid.enabled
            shown_before.append({role for role, lay in state.owned().items() if lay.visible})
    assert shown_before[0] == {("view", "dense image"), ("view", "pruned image")}
    grown = [len(b) - len(a) for a, b in zip(shown_before, shown_before[1:])]
    assert grown and all(g == 1 for g in grown)  # one more layer drawn between two paints
    final = {role for role, lay in state.owned().items() if lay.visible}
    assert len(final) == len(shown_before[-1]) + 1
    assert {("dense", "instances"), ("pruned", "instances"), ("pruned", "disagreement"),
            ("view", "disagreement")} <= final  # every layer the cells show is shown at the end
    assert not ({("dense", "semantic"), ("pruned", "distance")} & final)  # the hidden maps stay hidden


def test_side_by_side_off_gives_the_grid_back_before_the_image_is_shown(results):
    """Showing the image while the grid was on laid it out in a third cell first (a 150-200 ms stall)."""
    rgb, r = results
    viewer = ViewerModel()
    image = viewer.add_image(rgb, name="img", rgb=True)
    state = ComparisonState(viewer)
    state.apply(r["cr20"], side_by_side=True)
    assert not image.visible
    grid_when_shown = []
    image.events.visible.connect(lambda e: grid_when_shown.append(viewer.canvas.grid.enabled))
    state.apply(r["cr20"], side_by_side=False)
    assert image.visible and grid_when_shown == [False]


def test_a_first_run_in_side_by_side_keeps_the_users_zoom(results):
    """Reviewer: side by side ticked before the first run; the run reset the zoom the user had chosen."""
    rgb, r = results
    viewer = ViewerModel()
    viewer.add_image(rgb, name="img", rgb=True)
    viewer.camera.center, viewer.camera.zoom = (40.0, 50.0), 7.0
    state = ComparisonState(viewer)
    state.apply(r["cr20"], side_by_side=True)  # the first run: no layer of the plugin's before
    assert tuple(viewer.camera.center[-2:]) == (40.0, 50.0) and viewer.camera.zoom == 3.5  # one cell of two


def test_side_by_side_fits_the_runs_views_not_a_hidden_tile_at_another_pixel_size(results):
    """Pathologist, session 35: with a second tile open at 4x the pixel size, side by side showed the run's views
    at an eighth of a cell (napari's fit counted the hidden tile)."""
    rgb, r = results
    viewer = ViewerModel()
    image = viewer.add_image(rgb, name="img", rgb=True)
    viewer.add_image(np.zeros((160, 160, 3), np.uint8), name="other", rgb=True, scale=(4, 4))
    viewer.reset_view(layers=[image])
    state = ComparisonState(viewer)
    state.apply(r["cr20"], side_by_side=True)
    mine = list(state.owned().values())
    fitted = viewer.camera.zoom
    viewer.reset_view(layers=mine)
    assert fitted == pytest.approx(viewer.camera.zoom)
    viewer.reset_view()  # napari's own fit, the hidden 640 px tile counted
    assert fitted > 3 * viewer.camera.zoom
