import csv
import json

import numpy as np
import pytest

pytestmark = pytest.mark.gui

from napari.layers import Image, Labels  # noqa: E402

from napari_prunuclei.gui.widget import ALONE, PruneCompareWidget  # noqa: E402
from napari_prunuclei.runtime.pairs import ModelSpec, load_pair  # noqa: E402
from napari_prunuclei.runtime.pipeline import segment  # noqa: E402
from napari_prunuclei.runtime.request import Tiling  # noqa: E402
from napari_prunuclei.study import session_models as compute_models  # noqa: E402

IMG = "synthetic H&E"
GT = "synthetic H&E · ground truth"


def _wait(qtbot, w, timeout=60_000):
    qtbot.waitUntil(lambda: not w.busy, timeout=timeout)


def _run(qtbot, w, timeout=60_000):
    worker = w.start_run()
    assert worker is not None, w.status.value
    _wait(qtbot, w, timeout)
    return worker


def _made(viewer) -> set[str]:
    """Names of the layers the plugin made (everything but the user's image and ground truth)."""
    return {layer.name for layer in viewer.layers} - {IMG, GT}


def _roles(w) -> set[tuple[str, str]]:
    return set(w.state.owned())


MAPS = {(m, o) for m in ("dense", "pruned") for o in ("semantic", "distance", "instances")}
COMPARE = MAPS | {("pruned", "disagreement")}
VIEWS = {("view", "dense image"), ("view", "pruned image"), ("view", "disagreement")}


def test_run_creates_layers_by_role_with_metadata(qtbot, viewer_widget):
    viewer, w = viewer_widget
    w.scheme.value = "network-wide"
    w.cr.value = "20"
    _run(qtbot, w)
    assert w.status.value.startswith("done"), w.status.value
    assert _roles(w) == COMPARE
    for (model, output), layer in w.state.owned().items():
        assert isinstance(layer, Labels if output in ("instances", "disagreement") else Image)
        if output != "disagreement":
            meta = layer.metadata["prunuclei"]
            assert set(meta) >= {"model", "scheme", "cr", "fine_tuned", "semantic", "distance", "watershed",
                                 "version", "seconds", "image"}
            assert len(meta["semantic"]["sha256"]) == 64
            assert meta["cr"] == (20 if model == "pruned" else 1)
    assert "A · CR20 network-wide · instances" in viewer.layers and "B · dense · instances" in viewer.layers
    assert "vs dense: AJI" in w.numbers_text
    # the per-layer sparsity chart is drawn for the chosen model
    assert len(w.charts.ax_sparsity.lines) == 2
    assert "network-wide CR20" in w.charts.ax_sparsity.get_title()
    assert w.charts.pixmap() is not None and not w.charts.pixmap().isNull()


@pytest.mark.slow
def test_seven_mixed_runs_leave_exactly_the_current_layers(qtbot, viewer_widget):
    """Two schemes, a CR change, dense only, compare off, side by side on and off, a threshold change."""
    viewer, w = viewer_widget
    rgb = viewer.layers[IMG].data
    dense_alone = segment(rgb, load_pair(), device="cpu")

    def dense_count():
        return int(w.state.owned()[("dense", "instances")].data.max())

    # 1. network-wide CR20 beside dense
    w.scheme.value, w.cr.value = "network-wide", "20"
    _run(qtbot, w)
    assert _roles(w) == COMPARE and len(_made(viewer)) == 7
    assert dense_count() == dense_alone.n_nuclei
    # 2. another CR: the same roles, renamed; nothing of CR20 left
    w.cr.value = "8"
    _run(qtbot, w)
    assert _roles(w) == COMPARE and len(_made(viewer)) == 7
    assert not any("CR20" in n for n in _made(viewer))
    assert dense_count() == dense_alone.n_nuclei  # the dense reference does not move with the pruned model
    # 3. layer-wise CR4, side by side on: the dense cell's two views join
    w.scheme.value, w.cr.value = "layer-wise", "4"
    w.side_by_side.value = True
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)  # the toggle shows over turns
    _run(qtbot, w)
    assert _roles(w) == COMPARE | VIEWS and len(_made(viewer)) == 10
    assert viewer.canvas.grid.enabled and not viewer.layers[IMG].visible
    assert not any("network-wide" in n for n in _made(viewer))
    assert dense_count() == dense_alone.n_nuclei
    # 4. dense only: three dense layers; no disagreement, no views, no grid
    w.scheme.value = "dense"
    _run(qtbot, w)
    assert _roles(w) == {("dense", o) for o in ("semantic", "distance", "instances")}
    assert len(_made(viewer)) == 3 and not viewer.canvas.grid.enabled and viewer.layers[IMG].visible
    assert w.numbers_text.startswith(f"nuclei: dense {dense_alone.n_nuclei}")
    # 5. network-wide CR20 without dense
    w.scheme.value, w.cr.value = "network-wide", "20"
    w.reference.value = ALONE
    _run(qtbot, w)
    assert _roles(w) == {("pruned", o) for o in ("semantic", "distance", "instances")}
    assert len(_made(viewer)) == 3
    # 6. with dense again, side by side still on
    w.reference.value = "dense"
    _run(qtbot, w)
    assert _roles(w) == COMPARE | VIEWS and len(_made(viewer)) == 10 and viewer.canvas.grid.enabled
    # 7. a threshold change: only the pruned model's watershed, in a worker; dense keeps its own
    pruned_before = w.state.owned()[("pruned", "instances")].data.copy()
    w.min_size.value = 400
    _wait(qtbot, w)
    assert _roles(w) == COMPARE | VIEWS and len(_made(viewer)) == 10
    assert w.result.pruned.info.watershed.min_size == 400
    assert w.result.dense.info.watershed == load_pair().params
    assert int(w.state.owned()[("pruned", "instances")].data.max()) < int(pruned_before.max())
    assert dense_count() == dense_alone.n_nuclei
    # side by side off: the views go, the grid is given back
    w.side_by_side.value = False
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)  # the toggle shows over turns
    assert _roles(w) == COMPARE and len(_made(viewer)) == 7 and not viewer.canvas.grid.enabled
    assert viewer.layers[IMG].visible


def test_threshold_edits_are_debounced_and_run_in_a_worker(qtbot, viewer_widget):
    viewer, w = viewer_widget
    w.scheme.value = "dense"
    _run(qtbot, w)
    prob = w.result.dense.probability
    before = w.result.dense.n_nuclei
    started = []
    real = w._start
    w._start = lambda *a, **k: started.append(1) or real(*a, **k)
    for v in (25, 50, 100, 2000):  # typing: one re-run after the last edit
        w.min_size.value = v
    assert w.result.dense.n_nuclei == before  # nothing ran on the GUI thread
    _wait(qtbot, w)
    assert len(started) == 1
    assert w.result.dense.probability is prob  # cached branch output reused
    assert w.result.dense.n_nuclei < before
    assert viewer.layers["dense · instances"].data.max() == w.result.dense.n_nuclei


@pytest.mark.parametrize("queued", [True, False], ids=["edit-queued", "edit-debouncing"])
def test_an_edit_during_a_rewatershed_is_applied_after_it_and_the_box_keeps_it(qtbot, viewer_widget, monkeypatch,
                                                                                 queued):
    """The latest edit wins: a second edit made while the first one's watershed runs is applied when that is
    done (whether its debounce ended during the run or after it), and the box never goes back to an older value."""
    import threading

    from napari_prunuclei.gui.tooltips import DEBOUNCE_MS
    from napari_prunuclei.study import session

    viewer, w = viewer_widget
    w.scheme.value = "dense"
    _run(qtbot, w)
    gate, real = threading.Event(), session.rerun_watershed
    monkeypatch.setattr(session, "rerun_watershed", lambda *a, **k: gate.wait(30) and real(*a, **k))
    seen = []
    w.min_size.changed.connect(seen.append)
    w.min_size.value = 60
    qtbot.waitUntil(lambda: w.worker is not None, timeout=10_000)  # the first edit's watershed runs (held)
    w.min_size.value = 25  # the second edit, while it runs
    if queued:
        qtbot.wait(2 * DEBOUNCE_MS)  # its debounce ends during the run: queued behind it
    gate.set()
    _wait(qtbot, w)
    assert seen == [60, 25]  # never back to 60 (nor to the model's own value)
    assert w.min_size.value == 25
    assert w.result.request.segment.params.min_size == 25  # the numbers are the latest edit's


def test_one_shot_other_cr_is_marked(qtbot, viewer_widget):
    viewer, w = viewer_widget
    w.scheme.value = "layer-wise"
    w.cr.value = "other"
    w.cr_other.value = 3
    w.reference.value = ALONE
    _run(qtbot, w)
    meta = viewer.layers["CR3 layer-wise one-shot · instances"].metadata["prunuclei"]
    assert meta["fine_tuned"] is False


def test_cancel_stops_a_run(qtbot, viewer_widget):
    viewer, w = viewer_widget
    w.scheme.value = "network-wide"
    worker = w.start_run()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        w.cancel()
    assert w.status.value == "cancelled"
    assert w.result is None
    assert _made(viewer) == set()


@pytest.mark.parametrize(
    "data, message",
    [
        (np.zeros((128, 128), np.uint8), "grayscale"),
        (np.zeros((128, 128, 3), np.uint16), "uint16"),
        (np.zeros((30, 30, 3), np.uint8), "at least"),
    ],
)
def test_wrong_images_give_a_clear_message(viewer_widget, data, message):
    viewer, w = viewer_widget
    layer = viewer.add_image(data, name="bad", rgb=data.ndim == 3)
    w.image.value = layer
    assert w.start_run() is None
    assert message in w.status.value


def test_no_image_layer(make_napari_viewer):
    viewer = make_napari_viewer()
    w = PruneCompareWidget(viewer)
    assert w.start_run() is None
    assert "no image layer" in w.status.value


def test_labels_layer_as_image_is_refused(viewer_widget, monkeypatch):
    from types import SimpleNamespace

    viewer, w = viewer_widget
    # the combo box offers image layers only; a labels layer can still arrive programmatically
    monkeypatch.setattr(w, "image", SimpleNamespace(value=viewer.layers[GT]))
    assert w.start_run() is None
    assert "Labels layer" in w.status.value


def test_side_by_side_and_ground_truth_numbers(qtbot, viewer_widget):
    viewer, w = viewer_widget
    w.truth.value = viewer.layers[GT]
    _run(qtbot, w)
    assert "vs ground truth" in w.numbers_text
    w.state.owned()[("dense", "semantic")].visible = True  # hidden layers take no cell
    viewer.layers[GT].visible = True  # the sample's ground truth opens hidden
    w.side_by_side.value = True
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)  # the toggle shows over turns
    # napari grid mode, one camera: dense (on a view of the image) left, pruned (on another view) right
    assert viewer.canvas.grid.enabled
    layers = list(viewer.layers)
    cell = {layer.name: viewer.canvas.grid.position(i, layers) for i, layer in enumerate(layers)}
    owned = {role: layer.name for role, layer in w.state.owned().items()}
    left, right = cell[owned[("dense", "instances")]], cell[owned[("pruned", "instances")]]
    assert left == (0, 0) and right == (0, 1)
    assert cell[owned[("view", "dense image")]] == left and cell[owned[("view", "pruned image")]] == right
    assert cell[IMG] == (-1, -1) and cell[GT] == (-1, -1)  # hidden: no cell of their own
    assert cell[owned[("dense", "semantic")]] == left
    assert cell[owned[("view", "disagreement")]] == left and cell[owned[("pruned", "disagreement")]] == right
    # the ground truth (hidden: no cell of its own) is drawn in both cells, as thin white outlines, in the legend
    views = w.state.owned()
    assert cell[owned[("view", "dense truth")]] == left and cell[owned[("view", "pruned truth")]] == right
    for role in (("view", "dense truth"), ("view", "pruned truth")):
        assert views[role].visible and views[role].contour == 1 and views[role].data is viewer.layers[GT].data
    assert any("ground truth" in text for _, text in w.state.legend_items())
    # a re-run keeps the arrangement and the views current
    _run(qtbot, w)
    assert viewer.canvas.grid.enabled and ("view", "dense image") in w.state.owned()
    w.side_by_side.value = False
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)  # the toggle shows over turns
    assert not viewer.canvas.grid.enabled and viewer.layers[IMG].visible
    assert ("view", "dense image") not in w.state.owned()
    assert "synthetic H&E · left: dense" not in viewer.layers
    assert viewer.layers[GT].visible and ("view", "dense truth") not in w.state.owned()


def test_zoom_and_pan_are_kept_when_side_by_side_turns_on_and_off(qtbot, viewer_widget):
    """Zoomed in on a place, side by side shows that place in both cells (the field seen across stays seen), and
    turning it off gives the view back; a whole tile in view stays whole in the new layout."""
    viewer, w = viewer_widget
    _run(qtbot, w)
    camera = viewer.camera
    camera.center, camera.zoom = (120.0, 90.0), 8.0
    w.side_by_side.value = True
    _wait(qtbot, w)
    assert viewer.canvas.grid.enabled
    assert np.allclose(camera.center[-2:], (120, 90)) and camera.zoom == pytest.approx(4.0)
    _run(qtbot, w)  # a re-run in side by side: the view as it was
    assert np.allclose(camera.center[-2:], (120, 90)) and camera.zoom == pytest.approx(4.0)
    w.side_by_side.value = False
    _wait(qtbot, w)
    assert np.allclose(camera.center[-2:], (120, 90)) and camera.zoom == pytest.approx(8.0)
    viewer.reset_view()  # the whole tile in view
    w.side_by_side.value = True
    _wait(qtbot, w)
    size = np.asarray(viewer.canvas.size, float) / (1, 2)  # one cell
    half = size / camera.zoom / 2
    lo, hi = viewer.layers[IMG].extent.world[:, -2:]
    center = np.asarray(camera.center[-2:])
    assert np.all(center - half <= lo + 1) and np.all(center + half >= hi - 1)


def test_export_writes_in_a_worker_and_refuses_bad_paths(qtbot, viewer_widget, tmp_path):
    viewer, w = viewer_widget
    _run(qtbot, w)
    w.export_path.value = tmp_path / "out.csv"
    assert w.export() is not None
    _wait(qtbot, w)
    assert w.status.value.startswith("exported"), w.status.value
    # the model named (the export box says "model A of the run shown"; the controls may name another: session 38)
    assert f"nuclei of {w.result.pruned.info.model} (the run shown) to" in w.status.value
    text = (tmp_path / "out.csv").read_text()
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    assert len(rows) == w.result.pruned.n_nuclei and all(float(r["mean_hematoxylin"]) > 0 for r in rows)
    assert "# model: network-wide CR20" in text and "# image: synthetic H&E" in text  # provenance
    assert w.export() is None and "exists" in w.status.value  # no silent overwrite
    w.overwrite.value = True
    w.export_what.value = "model B of the run shown"
    assert w.export() is not None
    _wait(qtbot, w)
    assert "# model: dense" in (tmp_path / "out.csv").read_text()
    w.export_what.value = "disagreement"
    w.export_path.value = tmp_path / "dis.geojson"
    assert w.export() is not None
    _wait(qtbot, w)
    doc = json.loads((tmp_path / "dis.geojson").read_text())
    assert doc["properties"]["counts"] == w.result.numbers.disagreement
    for side, seg in (("A", w.result.pruned), ("B", w.result.dense)):  # each model's record (reviewer)
        assert doc["properties"][side]["semantic"]["sha256"] == seg.info.semantic["sha256"]
        assert doc["properties"][side]["watershed"] == seg.info.watershed.as_dict()
    events = w.result.events
    assert events and len(doc["features"]) == len(events)
    assert f"exported {len(events)} disagreement events" in w.status.value
    assert [f["properties"]["kind"] for f in doc["features"]] == [e.kind for e in events]
    assert [f["properties"]["a_ids"] for f in doc["features"]] == [list(e.a_ids) for e in events]
    w.export_what.value = "model A of the run shown"
    w.export_path.value = tmp_path / "missing" / "out.tif"
    assert w.export() is None
    assert "nothing written" in w.status.value
    w.export_path.value = tmp_path / "nuclei"  # no extension
    assert w.export() is None
    assert "extension" in w.status.value
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dis.geojson", "out.csv"]


def test_cr_sweep_in_the_dock(qtbot, viewer_widget):
    viewer, w = viewer_widget
    from napari_prunuclei.study import session_models

    viewer.layers[IMG].data = viewer.layers[IMG].data[:128, :128]
    w.truth.value = None
    _run(qtbot, w)
    judged = session_models.verdict(w.result)
    titles, show = [], w.charts.show_sweep

    def shown(rows, where="this image", **kw):
        titles.append(where)
        return show(rows, where=where, **kw)

    w.charts.show_sweep = shown
    import napari_prunuclei.gui.chart_window as chart_window

    def broken(*_):
        raise RuntimeError("no display")

    real, chart_window.open_chart_window = chart_window.open_chart_window, broken
    try:  # an error opening it is said, never raised into Qt (napari aborted: pathologist, session 39)
        w.chart_window_btn.clicked()
    finally:
        chart_window.open_chart_window = real
    assert w.status.value.startswith("error: the charts' window could not open: RuntimeError: no display")
    w.chart_window_btn.clicked()  # the charts larger, in a window of their own, before the sweep (session 39)
    window = w.chart_window
    assert window.isVisible() and window.parent() is w.native and not window.ax_sweep.lines
    worker = w.start_sweep()
    assert worker is not None
    _wait(qtbot, w, timeout=240_000)
    assert len(window.ax_sweep.lines) == len(w.charts.ax_sweep.lines) >= 2  # it followed the dock's chart
    # the run's verdict is kept (a pathologist, session 36: "CR sweep done" replaced it)
    n = len(w.sweep_rows)
    assert judged and w.status.value == f"CR sweep done: {n} pairs on the chart. The run shown: {judged}"
    # drawn as the pairs come (a pathologist, session 36: the chart was empty for the whole sweep)
    assert [t.rsplit(", running: ", 1)[1] for t in titles[:-1]] == [f"{k} of {n} pairs" for k in range(1, n + 1)]
    assert ", running" not in titles[-1]
    # every registered scheme and zoo CR, unstructured and channel, with seconds for the time axis
    assert {(r.scheme, r.cr) for r in w.sweep_rows} == set(session_models.zoo_pairs())
    assert {r.scheme for r in w.sweep_rows} >= {"layerwise", "networkwide", "channel-layerwise", "channel-networkwide"}
    assert all(r.seconds > 0 and r.dense_seconds > 0 for r in w.sweep_rows)
    assert all(0 <= r.vs_dense.aji <= 1 for r in w.sweep_rows)
    assert len(w.charts.ax_sweep.lines) >= 2


def test_plugin_is_in_napari_menu(qtbot, make_napari_viewer):
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-prunuclei")
    assert [w.display_name for w in manifest.contributions.widgets] == ["Pruned vs dense nuclei"]
    viewer = make_napari_viewer()
    dock, shell = viewer.window.add_plugin_dock_widget("napari-prunuclei", "Pruned vs dense nuclei")
    qtbot.waitUntil(lambda: shell.widget is not None, timeout=60_000)  # its code imported in a thread first
    assert isinstance(shell.widget, PruneCompareWidget) and shell.error is None
    viewer.open_sample("napari-prunuclei", "synthetic")
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Labels"]


def test_slide_runs_tile_by_tile_exports_and_cleans_up(qtbot, viewer_widget, monkeypatch, tmp_path):
    """A "slide" (the 512 px sample under a small tiling policy) with labels in an on-disk zarr store:
    run, choose ground truth, export GeoJSON and CSV with hematoxylin, cancel mid-slide, close."""
    from napari_prunuclei.study import session as _compute

    viewer, w = viewer_widget
    w.tiling = Tiling(tile=128, halo=64, whole_max_pixels=200 * 200)  # 16 tiles per model
    monkeypatch.setattr(_compute, "ZARR_PIXELS", 100 * 100)  # labels go to a scratch zarr store
    _run(qtbot, w)
    assert w.status.value.startswith("done"), w.status.value
    assert w.progress.max == 32 and w.progress.value == 32  # tiles done/total, pruned and dense
    # slides keep no maps; the tissue mask of the chosen model's run is a layer (hidden at first)
    assert _roles(w) == {("pruned", "instances"), ("dense", "instances"), ("tissue", "mask")}
    mask = w.state.owned()[("tissue", "mask")]
    assert not mask.visible and tuple(mask.scale) == (16, 16) and mask.data.shape == (32, 32) and mask.data.all()
    assert "over 16 tiles" in w.numbers_text
    scratch = w.scratch.root
    assert scratch is not None and len(list(scratch.iterdir())) == 2
    w.truth.value = viewer.layers[GT]  # no exception: counts only on a slide
    assert "error" not in w.status.value
    for name in ("n.geojson", "n.csv"):
        w.export_path.value = tmp_path / name
        assert w.export() is not None
        _wait(qtbot, w)
        assert w.status.value.startswith("exported"), w.status.value
    doc = json.loads((tmp_path / "n.geojson").read_text())
    assert len(doc["features"]) == w.result.pruned.n_nuclei > 0
    lines = [line for line in (tmp_path / "n.csv").read_text().splitlines() if not line.startswith("#")]
    assert all(float(r["mean_hematoxylin"]) > 0 for r in csv.DictReader(lines))
    assert doc["properties"]["mode"] == "tiled"  # provenance: how the slide ran
    assert w.start_sweep() is None and "crop" in w.status.value
    # a second run replaces the first one's scratch stores
    _run(qtbot, w)
    assert len(list(scratch.iterdir())) == 2
    # cancel after the first tiles: the run stops mid-slide, its stores are removed
    w.start_run()
    qtbot.waitUntil(lambda: w.progress.value >= 2, timeout=60_000)
    w.cancel()
    _wait(qtbot, w)
    assert w.status.value == "cancelled: nothing shown changed", w.status.value  # (a pathologist: and the results?)
    assert w.progress.value < 32
    assert len(list(scratch.iterdir())) == 2
    w.clear()
    assert not scratch.exists() and _made(viewer) == set()


def test_file_save_writer_finds_the_source_image(qtbot, viewer_widget, tmp_path):
    from napari_prunuclei.gui.writer import write_labels

    viewer, w = viewer_widget
    _run(qtbot, w)
    layer = w.state.owned()[("pruned", "instances")]
    write_labels(str(tmp_path / "n.csv"), layer.data, {"metadata": layer.metadata})
    with open(tmp_path / "n.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == int(layer.data.max()) > 0
    assert all(float(r["mean_hematoxylin"]) > 0 for r in rows)  # not NaN: the image was found


def test_model_choice_is_honest_before_and_after_a_run(qtbot, viewer_widget):
    viewer, w = viewer_widget
    w.scheme.value, w.cr.value = "network-wide", "20"
    assert "MoNuSeg test AJI" in w.model_note.value and "vs dense" in w.model_note.value
    w.cr.value = "100"
    w.scheme.value = "layer-wise"  # what the zoo knows of it, warned where it loses over 10 % or collapses
    note, warn = compute_models.model_note(ModelSpec("layerwise", 100))
    assert w.model_note.value.startswith("⚠") == warn and note in w.model_note.value
    w.cr.value = "other"
    assert not w.fine_tuned.value and not w.fine_tuned.enabled  # "other" is one-shot, and says so
    assert "one-shot" in w.model_note.value
    w.cr_other.value = 7
    _run(qtbot, w)
    assert w.result.pruned.info.model == "layer-wise CR7 one-shot" and w.result.pruned.info.fine_tuned is False
    if w.result.pruned.n_nuclei < 0.1 * w.result.dense.n_nuclei:
        assert w.status.value.startswith("warning") and "collapsed" in w.status.value
    w.cr.value = "20"
    assert w.fine_tuned.value and w.fine_tuned.enabled
    assert all(getattr(w, name).tooltip for name in ("scheme", "cr", "fg", "marker", "min_size", "export_btn"))
    assert all(box.line_edit.tooltip and box.choose_btn.tooltip for box in (w.export_path, w.report_path))


def test_instances_carry_measurements_and_disagreement_says_its_kind(qtbot, viewer_widget):
    viewer, w = viewer_widget
    _run(qtbot, w)
    layer = w.state.owned()[("pruned", "instances")]
    feats = layer.features
    assert len(feats) == w.result.pruned.n_nuclei
    assert {"area", "centroid_y", "eccentricity", "mean_hematoxylin"} <= set(feats.columns)
    assert sorted(feats["index"]) == list(range(1, w.result.pruned.n_nuclei + 1))
    dis = w.state.owned()[("pruned", "disagreement")]
    assert list(dis.features["disagreement"])[1] == "missed by network-wide CR20 (found by dense)"
    # no nucleus is painted in a disagreement colour (red, blue, yellow, orange)
    from napari.utils.colormaps.standardize_color import transform_color

    from napari_prunuclei.base.constants import DISAGREEMENT_COLORS

    kinds = transform_color([DISAGREEMENT_COLORS[k] for k in (1, 2, 3, 4)])[:, :3]
    dense = w.state.owned()[("dense", "instances")]
    assert layer.contour > 0 and dense.contour > 0  # outlines by default: the image stays visible
    a, b = (np.asarray(x.colormap.color_dict[None])[:3] for x in (layer, dense))  # one colour per model
    assert np.abs(a - b).sum() > 0.4
    assert np.abs(np.stack([a, b])[:, None, :] - kinds[None, :, :]).sum(-1).min() > 0.4
    w.fill_nuclei.value = True  # fills: each model in shades of its own colour
    nuclei = layer.colormap.colors[1:, :3]
    assert layer.contour == 0 and np.abs(nuclei[:, None, :] - kinds[None, :, :]).sum(-1).min() > 0.4
    # a threshold edit brings new measurements along
    w.min_size.value = 200
    _wait(qtbot, w)
    assert len(w.state.owned()[("pruned", "instances")].features) == w.result.pruned.n_nuclei


def test_legend_cell_titles_and_shortcuts(qtbot, viewer_widget):
    viewer, w = viewer_widget
    _run(qtbot, w)
    # the legend is beside the canvas, not over the nuclei (the dock's glyph warm-up may still draw a transparent
    # text for a second or two: it ends hidden)
    qtbot.waitUntil(lambda: not viewer.canvas.overlays.text.visible, timeout=30_000)
    assert "thick ring" in w.legend.value and "A · network-wide CR20: nuclei (outlines)" in w.legend.value
    w.side_by_side.value = True
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)  # the toggle shows over turns
    assert "left: B · dense  |  right: A · network-wide CR20" in viewer.canvas.overlays.text.text
    keys = {str(k): f for k, f in viewer.keymap.items()}
    keys["Ctrl+Shift+G"](viewer)  # the side-by-side shortcut toggles it off
    assert not w.side_by_side.value and not viewer.canvas.grid.enabled
    w.scheme.value = "dense"
    keys["Ctrl+Shift+R"](viewer)  # the run shortcut
    _wait(qtbot, w)
    assert w.result.pruned is None and not viewer.canvas.overlays.text.visible  # nothing to explain


def test_closing_the_viewer_removes_the_scratch_stores(qtbot, viewer_widget, monkeypatch):
    from napari_prunuclei.study import session as _compute

    viewer, w = viewer_widget
    w.tiling = Tiling(tile=256, halo=64, whole_max_pixels=200 * 200)
    monkeypatch.setattr(_compute, "ZARR_PIXELS", 100 * 100)
    _run(qtbot, w)
    scratch = w.scratch.root
    assert scratch is not None and scratch.exists()
    viewer.layers.clear()  # what napari's Viewer.close() does first
    assert not scratch.exists() and w.result is None


def test_a_against_b_from_the_registry_and_the_report(qtbot, viewer_widget, tmp_path):
    """Layer-wise against network-wide at one CR (the paper's question), side by side, then a report."""
    viewer, w = viewer_widget
    w.truth.value = None  # (chosen with the image: named for it) the agreement of A and B alone
    assert "layer-wise CR20" in w.reference.choices and ALONE in w.reference.choices
    w.scheme.value, w.cr.value = "network-wide", "20"
    w.reference.value = "layer-wise CR20"
    w.side_by_side.value = True
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)  # the toggle shows over turns
    _run(qtbot, w)
    assert _roles(w) == COMPARE | VIEWS
    assert w.result.dense.info.model == "layer-wise CR20"
    assert w.result.dense.info.watershed == load_pair("layerwise", 20).params  # B keeps its own
    assert w.status.value.startswith("done: network-wide CR20 against layer-wise CR20: AJI"), w.status.value
    assert "network-wide CR20 vs layer-wise CR20: AJI" in w.numbers_text
    assert "B: layer-wise CR20" in w.numbers.value  # the table
    assert "left: B · layer-wise CR20  |  right: A · network-wide CR20" in viewer.canvas.overlays.text.text
    assert "A · CR20 network-wide · instances" in viewer.layers and "B · CR20 layer-wise · instances" in viewer.layers
    w.report_path.value = tmp_path / "report"
    md = _report(qtbot, w)
    assert w.progress.value == w.progress.max  # the bar ends full (it stopped at 2 of 3)
    assert md is not None and md.exists()
    judged = compute_models.verdict(w.result)  # the run's verdict stays in the status (pathologist, session 38)
    assert judged and w.status.value == f"report written to {md}. The run reported: {judged}"
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"report.md", "numbers.csv", "canvas.png", "charts.png"} <= names
    assert (tmp_path / "report" / "canvas.png").stat().st_size > 1000
    assert w.result.pruned.info.semantic["sha256"] in md.read_text()
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "report" / "charts.png").shape[:2] == (840, 600)  # (400 x 560 was small)

    png = iio.imread(tmp_path / "report" / "canvas.png")  # the image's resolution, both cells side by side
    h, wd = viewer.layers[IMG].data.shape[:2]
    assert png.shape[:2] == (h, 2 * wd) and (png[..., :3].max(axis=2) < 30).mean() < 0.2
    assert "left B (layer-wise CR20) in green, right A (network-wide CR20) in cyan" in md.read_text()


def test_time_a_vs_b_in_the_worker_cancel_and_dropped_with_its_run(qtbot, viewer_widget):
    viewer, w = viewer_widget
    assert w.start_timing() is None  # before a run: what is missing is a run (B, dense, is chosen: session 39)
    assert w.status.value == "error: timing compares the shown run's model A with its model B: press Run first"
    w.scheme.value, w.cr.value = "network-wide", "20"
    _run(qtbot, w)
    assert "seconds (one run)" in w.numbers.value and "one run each" in w.numbers_text
    worker = w.start_timing()  # cancelled after its first step: nothing kept
    assert worker is not None and not w.run_btn.enabled and not w.time_btn.enabled
    worker.yielded.connect(lambda p: w.cancel())
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    _wait(qtbot, w)
    assert w.status.value == "timing cancelled" and w.result.timing is None and w.time_btn.enabled
    shown = w.result
    _wait(qtbot, w)
    w.start_timing()
    _wait(qtbot, w, timeout=180_000)
    assert w.result is shown and shown.timing is not None and shown.timing.repeat == 3
    assert shown.timing.order == ["pruned", "dense"] * 3
    assert "median of 3 interleaved runs after a warm-up" in w.numbers.value
    assert "same network shape as dense: no speed-up expected on CPU" in w.numbers.value
    assert "seconds (median of 3)" in w.numbers.value and w.status.value.startswith("timed A vs B:")
    w.min_size.value = 60  # a new result (a threshold edit): the timing belonged to the run before
    _wait(qtbot, w)
    assert w.result is not shown and w.result.timing is None
    assert "seconds (one run)" in w.numbers.value and "watershed timed again alone" in w.numbers_text


def test_run_on_the_visible_region_of_a_slide(qtbot, viewer_widget, tmp_path):
    """A "slide" (the sample under a small tiling policy): zoomed in, "visible region only" gives the
    full comparison there (maps, disagreement, numbers, thresholds), placed on the slide; µm with a
    pixel size; the export is in the slide's frame."""
    viewer, w = viewer_widget
    w.tiling = Tiling(tile=128, halo=64, whole_max_pixels=200 * 200)
    w.region.value = True
    viewer.camera.center = (300, 200)
    viewer.camera.zoom = max(viewer.canvas.size) / 150
    w.pixel_size.value = 0.5
    w.truth.value = viewer.layers[GT]
    _run(qtbot, w)
    assert w.status.value.startswith("done"), w.status.value
    r0, r1, c0, c1 = w.result.request.region
    assert 200 < r0 < 300 < r1 < 400 and 100 < c0 < 200 < c1 < 300
    assert not w.result.tiled and _roles(w) == COMPARE  # whole mode on the region: maps and disagreement
    assert w.result.chosen.labels.shape == (r1 - r0, c1 - c0)
    # the run's pixel size went onto the image: the results lie on the region, in µm
    assert all(tuple(layer.translate) == (r0 * 0.5, c0 * 0.5) for layer in w.state.owned().values())
    assert w.result.numbers.vs_truth  # the ground truth, cut to the region
    feats = w.state.owned()[("pruned", "instances")].features
    assert np.allclose(feats["area_um2"], feats["area"] * 0.25)
    assert "µm²" in w.numbers_text and f"rows {r0}-{r1 - 1}" in w.numbers_text  # (its last row, session 39)
    w.min_size.value = 30  # thresholds on the region
    _wait(qtbot, w)
    # 30 px on the models' grid (0.25 µm/px) is 7.5 px at this 0.5 µm/px region: the same area in µm²
    assert w.result.request.region == (r0, r1, c0, c1) and w.result.pruned.info.watershed.min_size == 8
    assert w.result.pruned.n_nuclei > 0
    assert tuple(w.state.owned()[("pruned", "instances")].translate) == (r0 * 0.5, c0 * 0.5)
    w.export_path.value = tmp_path / "region.csv"
    assert w.export() is not None
    _wait(qtbot, w)
    assert w.status.value.startswith("exported"), w.status.value
    text = (tmp_path / "region.csv").read_text()
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    assert len(rows) == w.result.pruned.n_nuclei and "area_um2" in rows[0], text[:2000]
    assert all(r0 <= float(row["centroid_y"]) < r1 and c0 <= float(row["centroid_x"]) < c1 for row in rows)
    assert '# pixel_size_um: 0.5' in text and "# region:" in text
    viewer.camera.zoom = 0.01  # far out: the region would be the whole slide and more
    assert w.start_run() is None and "zoom in" in w.status.value


def test_the_visible_region_in_side_by_side_is_what_one_cell_shows(viewer_widget):
    """Reviewer, session 36: with side by side on, "visible region only" took the whole canvas's field, twice
    what each of the two cells shows."""
    viewer, w = viewer_widget
    w.region.value = True
    image = viewer.layers[IMG]
    viewer.camera.center, viewer.camera.zoom = (256, 256), max(viewer.canvas.size) / 150
    alone = w._region(image)
    viewer.add_image(image.data, name="view", rgb=True)  # a second visible layer: two cells
    grid = viewer.canvas.grid
    grid.stride, grid.shape, grid.enabled = 1, (1, -1), True
    r0, r1, c0, c1 = w._region(image)
    a0, a1, b0, b1 = alone
    assert (r1 - r0) == pytest.approx((a1 - a0), abs=2) and (c1 - c0) == pytest.approx((b1 - b0) / 2, abs=2)
    grid.enabled = False


def test_gc_is_frozen_while_a_job_runs(qtbot, viewer_widget):
    """A full collection during a job scans only the job's objects (the 9000 x 9000 export stalls)."""
    import gc

    viewer, w = viewer_widget
    assert gc.get_freeze_count() == 0
    w.scheme.value = "dense"
    worker = w.start_run()
    assert gc.get_freeze_count() > 0
    assert w.start_run() is None and w.status.value.startswith("busy")  # one job at a time (shortcut)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    _wait(qtbot, w)
    assert gc.get_freeze_count() == 0


def test_pixel_size_follows_the_image_metadata(viewer_widget):
    viewer, w = viewer_widget
    layer = viewer.add_image(viewer.layers[IMG].data, name="scanned", rgb=True, metadata={"pixel_size_um": 0.2520})
    w.image.value = layer
    assert w.pixel_size.value == pytest.approx(0.252)
    w.image.value = viewer.layers[IMG]  # no pixel size in its metadata: unknown again
    assert w.pixel_size.value == 0
    # a file's size the box rounds (0.22709... shown 0.2271) is still the file's: not carried to the next image as
    # typed (pathologist, session 39: the OS-1 sample's size was put on a MoNuSeg tile chosen after it)
    fine = viewer.add_image(viewer.layers[IMG].data, name="os-1", rgb=True, metadata={"pixel_size_um": 0.2270972})
    w.image.value = fine
    assert w.pixel_size.value == pytest.approx(0.2271)
    w.image.value = viewer.layers[IMG]
    assert w.pixel_size.value == 0 and tuple(viewer.layers[IMG].scale) == (1, 1)
    # a pixel size an earlier run (or an earlier dock, closed since) put on the layer: the box says it again
    from napari_prunuclei.gui.shown import PUT_PIXEL_SIZE

    typed = viewer.add_image(viewer.layers[IMG].data, name="typed before", rgb=True, scale=(0.3, 0.3),
                             metadata={PUT_PIXEL_SIZE: 0.3})
    w.image.value = typed
    assert w.pixel_size.value == pytest.approx(0.3)


def test_a_structured_model_in_the_widget(qtbot, viewer_widget):
    """A channel-pruned zoo pair is a choice like the others: smaller networks, the speed against dense
    measured in the same run, the per-layer chart counting removed weights against the dense layers."""
    viewer, w = viewer_widget
    assert "channel layer-wise" in w.scheme.choices and "channel network-wide" in w.scheme.choices
    w.scheme.value = "channel layer-wise"
    w.cr.value = "4"
    w.reference.value = "dense"
    _run(qtbot, w)
    assert w.status.value.startswith("done"), w.status.value
    meta = w.state.owned()[("pruned", "instances")].metadata["prunuclei"]
    assert meta["scheme"] == "channel-layerwise" and meta["cr"] == 4 and meta["fine_tuned"]
    assert meta["semantic"]["prunable"] < meta["semantic"]["dense_prunable"] / 3  # a smaller network
    assert "B's time (one run each" in w.numbers_text and "time vs B" in w.numbers.value
    assert "same network shape" not in w.numbers_text  # a smaller network: a speed-up may be seen
    assert "channel layer-wise CR4" in w.charts.ax_sparsity.get_title()
    sparsity = w.charts.ax_sparsity.lines[0].get_ydata()
    assert min(sparsity) > 40  # every layer lost weights (percent of the dense layer)


def test_a_results_layers_are_made_with_the_canvas_held_then_painted(qtbot, viewer_widget):
    """Layers come over event-loop turns (STEPWISE); the canvas does not paint a half-made set, and paints again
    after."""
    from qtpy.QtWidgets import QOpenGLWidget

    viewer, w = viewer_widget
    held, real = [], w._hold_canvas

    def hold(on):
        held.append((on, len(w.state.layers)))
        return real(on)

    w._hold_canvas = hold
    w.scheme.value, w.cr.value = "network-wide", "20"
    _run(qtbot, w)
    assert held[0][0] is True and held[-1] == (False, 7) and len(held) == 2
    canvases = w.native.window().findChildren(QOpenGLWidget)
    assert canvases and all(c.updatesEnabled() for c in canvases)
    assert _roles(w) == COMPARE and not w._showing and w._steps is None


def test_the_status_says_done_once_the_last_layer_is_made_not_before(qtbot, viewer_widget):
    """Pathologist, session 34: the status said 'done' about 2 s before the last layer appeared."""
    viewer, w = viewer_widget
    said, real = [], w._step

    def step():
        said.append((len(w.state.layers), w.status.value))
        return real()

    w._step = step
    w.scheme.value, w.cr.value = "network-wide", "20"
    _run(qtbot, w)
    assert said and all(not text.startswith("done") for _, text in said), said
    assert any(text.startswith("drawing the layers of network-wide CR20") for _, text in said)
    assert w.status.value.startswith("done") and len(w.state.layers) == 7


def test_the_status_says_side_by_side_is_being_drawn_then_gives_back_what_it_said(qtbot, viewer_widget):
    """Pathologist, session 36: the canvas was black for about 4 s while side by side was drawn, and the status
    said nothing of it."""
    viewer, w = viewer_widget
    w.scheme.value, w.cr.value = "network-wide", "20"
    _run(qtbot, w)
    verdict = w.status.value
    said, real = [], w.state.show

    def show(*args):  # each step of the showing, as it is made
        for step in real(*args):
            said.append(w.status.value)
            yield step

    w.state.show = show
    w.side_by_side.value = True
    qtbot.waitUntil(lambda: not w._showing, timeout=30000)
    assert said and all(text == "drawing side by side..." for text in said), said
    assert w.status.value == verdict
    said.clear()
    w.side_by_side.value = False
    qtbot.waitUntil(lambda: not w._showing, timeout=30000)
    assert said and all(text == "drawing one view..." for text in said), said
    assert w.status.value == verdict


def test_what_is_said_while_layers_are_made_is_kept_and_a_clear_meanwhile_never_says_done(qtbot, viewer_widget):
    """Reviewer: a note added to the status while the layers were made (an image switched) kept 'drawing...' for
    good; layers abandoned half-way (the viewer emptied) still ended on 'done'."""
    from qtpy.QtCore import QTimer

    viewer, w = viewer_widget
    real, calls, action = w._step, [], []

    def step():  # (the step timer keeps the first callable it is given: one for the whole test)
        calls.append(w.status.value)
        if len(calls) == 2:
            action[0]()
        return real()

    w._step = step
    action.append(lambda: setattr(w.status, "value", w.status.value + " Note: said meanwhile."))
    _run(qtbot, w)
    assert w.status.value.startswith("done") and w.status.value.endswith("Note: said meanwhile."), w.status.value
    assert "drawing" not in w.status.value
    w.clear()  # the next run's layers made anew, over several turns
    calls.clear()
    action[0] = lambda: QTimer.singleShot(0, w.clear)  # between two turns of the showing
    assert w.start_run() is not None
    qtbot.waitUntil(lambda: len(calls) >= 2 and not w.busy and w.result is None, timeout=60_000)
    assert not w.status.value.startswith("done") and "results cleared" in w.status.value, w.status.value


def test_side_by_side_toggled_while_a_result_is_being_shown_ends_with_every_layer_shown(qtbot, viewer_widget):
    """A pathologist's session toggled side by side while the layers still came over event-loop turns: every
    layer ended hidden. Now the toggle finishes the showing first, and made-hidden layers keep the visibility
    they were to get."""
    from napari_prunuclei.gui import shown

    assert shown.STEPWISE
    viewer, w = viewer_widget
    w.scheme.value, w.cr.value = "network-wide", "20"
    assert w.start_run() is not None
    qtbot.waitUntil(lambda: w._steps is not None and len(w.state.layers) >= 2, timeout=60_000)
    w.side_by_side.value = True  # half-way through the showing
    _wait(qtbot, w)
    owned = w.state.owned()
    assert ("view", "dense image") in owned and not w._showing and w._steps is None
    assert owned[("pruned", "instances")].visible and owned[("dense", "instances")].visible
    assert owned[("pruned", "disagreement")].visible
    w.side_by_side.value = False
    _wait(qtbot, w)
    assert w.state.owned()[("pruned", "instances")].visible and not w.state._reveal


def test_the_ground_truth_is_drawn_apart_from_the_models_and_named_in_the_legend(qtbot, viewer_widget):
    """A reviewer: the ground truth's random colours read as disagreement rings, and the legend did not list it.
    Now it is drawn as thin white outlines once (a later restyle by the user is kept) and the legend names it
    while it is visible."""
    import numpy as np

    viewer, w = viewer_widget
    gt = viewer.layers[GT]
    w.truth.value = gt
    _run(qtbot, w)
    label = int(np.unique(np.asarray(gt.data))[1])
    assert gt.contour == 1 and np.allclose(gt.colormap.map(label)[:3], 1.0)
    gt.visible = True
    assert any("ground truth" in text for _, text in w.state.legend_items())
    assert "ground truth" in w.legend.value
    gt.visible = False
    assert not any("ground truth" in text for _, text in w.state.legend_items())
    gt.contour = 3  # the user's own choice survives the next run
    _run(qtbot, w)
    assert gt.contour == 3
    w.truth.value = None
    _run(qtbot, w)
    gt.visible = True
    assert not any("ground truth" in text for _, text in w.state.legend_items())



def _report(qtbot, w):
    """Write the report (in a worker) and wait for it: report.md's path."""
    assert w.write_report() is not None, w.status.value
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)
    assert w.last_report is not None, w.status.value
    return w.last_report


def test_the_cr_box_keeps_its_order_across_schemes(viewer_widget):
    """Pathologist, session 35: network-wide, channel network-wide, network-wide again read 2 4 8 16 32 other 5 10
    20 50 100."""
    viewer, w = viewer_widget
    first = list(w.cr.choices)
    for scheme in ("channel network-wide", "network-wide"):
        w.scheme.value = scheme
    w.scheme.value = "network-wide"
    assert list(w.cr.choices) == w._cr_choices("network-wide") and list(w.cr.choices)[-1] == "other"
    assert [float(c) for c in list(w.cr.choices)[:-1]] == sorted(float(c) for c in list(w.cr.choices)[:-1])
    assert first[-1] == "other"
