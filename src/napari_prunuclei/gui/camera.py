"""The user's view (zoom and pan) kept when side by side changes the canvas's layout; a run's layers kept
directly above the image they were computed on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["View", "camera_of", "cell_size", "fit", "view_of", "restore_view", "stack_above"]


def camera_of(viewer):
    """napari 0.9's ``viewer.scene.camera`` (``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _cells(viewer) -> tuple[int, int]:
    grid = viewer.canvas.grid
    if not grid.enabled:
        return (1, 1)
    rows, cols = grid.actual_shape(list(viewer.layers))
    return (max(int(rows), 1), max(int(cols), 1))


def cell_size(viewer) -> np.ndarray:
    """The canvas pixels (height, width) one grid cell shows: the whole canvas outside side by side."""
    return np.asarray(viewer.canvas.size, float) / np.asarray(_cells(viewer), float)


@dataclass(frozen=True)
class View:
    """Where the camera looked: its centre and zoom, the layout's cells (rows, columns), and whether the
    whole of the image was in view (then the new layout shows the whole image again)."""

    center: tuple
    zoom: float
    cells: tuple[int, int]
    whole: bool


def view_of(viewer, image_layer) -> View:
    """The camera now, and whether ``image_layer``'s extent lay inside one cell's field of view."""
    camera = camera_of(viewer)
    cells = _cells(viewer)
    whole = True
    if image_layer is not None and camera.zoom > 0:
        half = cell_size(viewer) / float(camera.zoom) / 2
        center = np.asarray(camera.center, float)[-2:]
        lo, hi = np.asarray(image_layer.extent.world, float)[:, -2:]
        pad = np.abs(np.asarray(image_layer.scale[-2:], float))  # a pixel's leeway
        whole = bool(np.all(center - half <= lo + pad) and np.all(center + half >= hi - pad))
    return View(tuple(camera.center), float(camera.zoom), cells, whole)


def fit(viewer, layers=None) -> None:
    """Fit ``layers`` (those still in the viewer; none given or left: every layer) to one cell of the canvas.
    napari's own fit counts every layer, hidden ones too: a second tile open at another pixel size, hidden while
    side by side is on, would shrink the run's views to a corner."""
    mine = [layer for layer in layers or () if layer in viewer.layers]
    viewer.reset_view(layers=mine or None)


def restore_view(viewer, before: View, layers=None) -> None:
    """After the layout changed (or was set again): the same view in the same layout; in a new one, the whole
    image fitted (``layers``: what is fitted, see :func:`fit`) if it was all in view before, else the same centre
    with the zoom scaled so the field seen across stays seen (one cell of two shows what the whole canvas
    showed)."""
    camera = camera_of(viewer)
    cells = _cells(viewer)
    if cells == before.cells:
        camera.center, camera.zoom = before.center, before.zoom
    elif before.whole:
        fit(viewer, layers)
    else:
        camera.center = before.center
        camera.zoom = before.zoom * before.cells[1] / cells[1]


def stack_above(layers, mine: list, image) -> None:
    """Move ``mine`` (layers of ``layers``, kept in their order) to lie directly above ``image``: a run's results
    over the image they were computed on, another image the user put above that image staying above them (side
    by side had moved them to the top of the list). Nothing moves when they lie there already."""
    if image is None or not mine:
        return
    have = sorted(layers.index(layer) for layer in mine)
    at = layers.index(image) + 1
    if have != list(range(at, at + len(have))):
        layers.move_multiple(have, at)  # (napari: the index before the move, as list.insert)
