"""The legend's warning of a layer over the run's image, and the run's layers kept on that image (gui/legend.py)."""

from napari_prunuclei.nuclei.synthetic import synthetic_tissue

IMG = "synthetic H&E"
GT = "synthetic H&E · ground truth"


def _run(qtbot, w):
    assert w.start_run() is not None, w.status.value
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)


def _on_image(w) -> bool:
    image = w.state.image_layer()
    scale, origin = tuple(image.scale[-2:]), tuple(image.translate[-2:])
    return all(tuple(layer.scale[-2:]) == scale and tuple(layer.translate[-2:]) == origin
               for layer in w.state.owned().values())


def test_the_runs_layers_follow_their_image_when_it_is_moved_or_rescaled(qtbot, viewer_widget):
    """Pathologist, session 37: an image moved after a run left its results behind, drawn over another tile."""
    viewer, w = viewer_widget
    viewer.layers[GT].visible = True
    w.pixel_size.value = 0.25  # (with a pixel size, side by side on and off stopped the ground truth following)
    w.scheme.value, w.cr.value = "network-wide", "20"
    _run(qtbot, w)
    assert _on_image(w) and tuple(viewer.layers[IMG].scale) == (0.25, 0.25)
    viewer.layers[IMG].translate = (0, 700)
    qtbot.waitUntil(lambda: not w.busy, timeout=10_000)
    assert _on_image(w) and tuple(viewer.layers[GT].translate) == (0, 700)  # the ground truth too
    viewer.layers[IMG].scale = (0.5, 0.5)
    qtbot.waitUntil(lambda: not w.busy, timeout=10_000)
    assert _on_image(w) and tuple(viewer.layers[GT].scale) == (0.5, 0.5)
    viewer.layers[IMG].scale = (0.25, 0.25)
    qtbot.waitUntil(lambda: not w.busy, timeout=10_000)
    w.side_by_side.value = True  # the ground truth still follows after side by side (pathologist, session 37)
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    w.side_by_side.value = False
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    viewer.layers[IMG].translate = (300, 0)
    qtbot.waitUntil(lambda: not w.busy, timeout=10_000)
    assert _on_image(w) and tuple(viewer.layers[GT].translate) == (300, 0)


def test_only_a_layer_over_part_of_the_runs_image_is_said_to_cover_it(qtbot, viewer_widget):
    """Pathologist, session 37: a tile moved beside the run's image, over none of it, was said to cover it."""
    viewer, w = viewer_widget
    w.scheme.value = "dense"
    _run(qtbot, w)
    size = viewer.layers[IMG].data.shape[0]
    other = viewer.add_image(synthetic_tissue(64, seed=3)[0], name="small tile", rgb=True)
    assert w.covering_layers() == ["small tile"] and "covers part of the run" in w.legend.value
    other.translate = (0, size + 10)  # beside it
    assert w.covering_layers() == [] and "covers" not in w.legend.value
    other.translate = (size - 32, size - 32)  # over its corner
    assert w.covering_layers() == ["small tile"] and "covers part of the run" in w.legend.value
    other.translate = (size - 1, 0)  # one row of pixels over it
    assert w.covering_layers() == ["small tile"]


def test_the_runs_note_of_a_covering_layer_goes_when_nothing_covers_it(qtbot, viewer_widget):
    """Pathologist, session 37: the status kept "... is shown over ...: hide it" after the tile was moved beside
    the run's image, while the legend had dropped its warning."""
    viewer, w = viewer_widget
    w.scheme.value = "dense"
    size = viewer.layers[IMG].data.shape[0]
    other = viewer.add_image(synthetic_tissue(size, seed=3)[0], name="whole tile", rgb=True)
    w.image.value = viewer.layers[IMG]
    w.truth.value = viewer.layers[GT]
    _run(qtbot, w)
    assert "covers all of the run" in w.legend.value
    assert "Note: 'whole tile' is shown over 'synthetic H&E'" in w.status.value
    other.translate = (0, size + 10)
    assert "Note:" not in w.status.value and w.status.value.startswith("done")


def test_a_side_by_side_view_moved_by_hand_is_put_back_under_its_results(qtbot, viewer_widget):
    """Pathologist, session 37: in side by side, the right cell's view moved with the transform tool left A's
    nuclei over the wrong tissue, with "done" still in the status."""
    viewer, w = viewer_widget
    w.scheme.value, w.cr.value = "network-wide", "20"
    _run(qtbot, w)
    w.side_by_side.value = True
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    view = w.state.owned()[("view", "pruned image")]
    view.translate = (40, 60)
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    view = w.state.owned()[("view", "pruned image")]
    assert tuple(view.translate[-2:]) == tuple(viewer.layers[IMG].translate[-2:])
    assert "turn side by side off first" in w.status.value


def test_a_chosen_ground_truth_is_drawn_as_the_legend_says_before_any_run(qtbot, viewer_widget):
    """Session 37's candidate: a ground truth opened and chosen before a run showed in napari's fills while the
    legend named another image's truth as thin outlines; it is outlined at once and named as not yet run."""
    viewer, w = viewer_widget
    second = viewer.add_image(synthetic_tissue(256, seed=5)[0], name="second tile", rgb=True)
    w.image.value = second
    own = viewer.add_labels(viewer.layers[GT].data[:256, :256].copy(), name="second tile [1]")
    assert w.truth.value is own  # named for the image: chosen at once
    assert own.contour == 1 and own.opacity == 0.9  # outlines, not napari's fills
    assert "second tile [1]&#x27;: nuclei (thin outlines; chosen, not yet run)" in w.legend.value
    viewer.layers[GT].visible = True
    w.image.value = viewer.layers[IMG]  # the first tile chosen, under the second (pathologist, session 39: its
    legend = w.legend.value.replace("&#x27;", "'")  # truth was named as the outlines seen, the second's)
    assert "(thin outlines; chosen, not yet run; under 'second tile', 'second tile [1]', which you see instead)" \
        in legend
    w.image.value = second
    viewer.layers[GT].visible = False
    own.contour = 3  # restyled by the user: kept when chosen again
    w.truth.value = None
    assert "second tile [1]" not in w.legend.value
    w.truth.value = own
    assert own.contour == 3
    w.scheme.value = "dense"
    _run(qtbot, w)  # the run's truth now: named as such, once
    assert w.legend.value.count("second tile [1]") == 1 and "not yet run" not in w.legend.value
    assert w.covering_layers() == []  # the chosen ground truth over the image is not a layer covering it
    # pathologist, session 38: a ground truth opened for another open image showed in fills until that image was
    # chosen; and, that image chosen, its truth (under the run's image) was named in the legend of the run's canvas
    third = viewer.add_image(synthetic_tissue(128, seed=6)[0], name="third tile", rgb=True)
    its = viewer.add_labels(viewer.layers[GT].data[:128, :128].copy(), name="third tile [1]")
    assert w.image.value is second and its.contour == 1  # outlined when opened, its image not chosen
    w.image.value = third
    assert w.truth.value is its and "not yet run" not in w.legend.value  # the canvas shows the run's image,
    assert "'third tile', 'third tile [1]'" in w.legend.value.replace("&#x27;", "'")  # which they cover
    w.image.value = second
    assert "not yet run" not in w.legend.value and w.legend.value.count("second tile [1]") == 1


def test_the_chosen_truths_line_holds_with_the_viewer_napari_hands_a_dock(qtbot, make_napari_viewer):
    """Reviewer, session 38: a dock gets napari's proxy of the viewer, whose every layer lookup is a new proxy, so
    comparing the chosen image with the run's by identity never held: the "chosen, not yet run" line never came
    after a run, and a ground truth chosen for another image was not said to cover the run's image."""
    from napari.utils._proxies import PublicOnlyProxy

    from napari_prunuclei.gui.samples import synthetic_sample
    from napari_prunuclei.gui.widget import PruneCompareWidget

    viewer = make_napari_viewer()
    for data, meta, kind in synthetic_sample():
        getattr(viewer, f"add_{kind}")(data, **meta)
    w = PruneCompareWidget(PublicOnlyProxy(viewer))
    viewer.window.add_dock_widget(w)
    w.image.value = next(layer for layer in w.image.choices if layer.name == IMG)
    w.scheme.value = "dense"
    _run(qtbot, w)
    assert w.on_runs_image()
    second = viewer.add_labels(viewer.layers[GT].data.copy(), name="another annotation")
    w.truth.value = next(t for t in w.truth.choices if t is not None and t.name == "another annotation")
    assert second.contour == 1 and "another annotation&#x27;: nuclei (thin outlines; chosen, not yet run)" in \
        w.legend.value
    assert w.covering_layers() == []  # chosen for the run's image: drawn over it on purpose


def test_the_runs_image_hidden_is_said_and_its_own_second_truth_covers_nothing(qtbot, viewer_widget):
    """Pathologist, session 38: with the run's image hidden its results lay over another tile's tissue and
    nothing said so; a second ground truth opened for the run's image (outlines) was said to cover it."""
    viewer, w = viewer_widget
    w.scheme.value = "dense"
    _run(qtbot, w)
    again = viewer.add_labels(viewer.layers[GT].data.copy(), name=f"{IMG} [2]")  # named for the run's image
    assert again.contour == 1 and w.covering_layers() == [] and "cover" not in w.legend.value
    viewer.layers[IMG].visible = False
    assert w.run_image_hidden() and "is hidden: its results lie over other layers" in w.legend.value
    _run(qtbot, w)  # a run onto a hidden image says so when it is done
    assert "is hidden: the results lie over other layers" in w.status.value
    tile = viewer.add_image(viewer.layers[IMG].data.copy(), name="tile opened since", rgb=True)  # over the results
    assert ("is hidden and &#x27;tile opened since&#x27; lie(s) over its results: show it and hide them"
            in w.legend.value)  # (it read "its results lie over other layers": pathologist, session 39)
    viewer.layers.remove(tile)
    viewer.layers[IMG].visible = True
    assert "hidden" not in w.legend.value and "is hidden" not in w.status.value  # taken back when shown
