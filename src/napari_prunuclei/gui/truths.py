"""Ground-truth label layers on their image's grid: which image a labels layer is named for, and its scale,
offset and units made the image's (µm where the image has a pixel size), so the outlines lie on the nuclei.
A layer the plugin placed carries the grid it was given (:data:`GRID_KEY` in its metadata): it follows its
image's grid while nobody moves it, and a grid the user chose (any other) is never changed."""

from __future__ import annotations

import re

#: metadata key of a labels layer the plugin put on an image's grid: its (scale, translate) as put
GRID_KEY = "prunuclei_grid"


def _stem(name: str) -> str:
    return re.sub(r" \[\d+\]$", "", str(name))


def named_for(truth_name: str, image_name: str) -> bool:
    """Whether a labels layer's name is an image's: the same name (napari numbers a second layer of one name
    ``NAME [1]``) or the image's name and more (``NAME · ground truth``, ``NAME_labels``, ``NAME-mask``)."""
    t, i = _stem(truth_name), _stem(image_name)
    return t == i or any(t.startswith(i + sep) for sep in (" ", "_", "-", "."))


def spatial_shape(layer) -> tuple[int, ...]:
    """A layer's shape without an RGB(A) axis (the first level of a multiscale one)."""
    data = layer.data[0] if layer.multiscale else layer.data
    shape = tuple(int(n) for n in data.shape)
    return shape[:-1] if getattr(layer, "rgb", False) else shape


def grid(layer) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A layer's (scale, translate)."""
    return tuple(float(v) for v in layer.scale), tuple(float(v) for v in layer.translate)


def on_grid_of(truth, image) -> bool:
    """Draw the labels layer ``truth`` on ``image``'s grid (scale, offset and units of every axis) when the two
    have the same spatial shape; returns whether anything changed. The grid put is kept in its metadata."""
    if spatial_shape(truth) != spatial_shape(image):
        return False
    if grid(truth) == grid(image) and tuple(map(str, truth.units)) == tuple(map(str, image.units)):
        truth.metadata[GRID_KEY] = [list(v) for v in grid(truth)]
        return False
    truth.scale, truth.translate, truth.units = image.scale, image.translate, image.units
    truth.metadata[GRID_KEY] = [list(v) for v in grid(truth)]
    return True


def _placed_by_user(truth) -> bool:
    """Whether a labels layer sits on a grid neither napari's default nor the one the plugin last put it on."""
    put = truth.metadata.get(GRID_KEY)
    scale, translate = grid(truth)
    if put is not None:
        return (tuple(float(v) for v in put[0]), tuple(float(v) for v in put[1])) != (scale, translate)
    return any(v != 1.0 for v in scale) or any(v != 0.0 for v in translate)


def image_of(truth, images: list):
    """The one image a labels layer is named for (or whose name its metadata gives), of its spatial shape: an
    exact name first, then the longest name it starts with; None when that leaves no image or two."""
    own = [image for image in images if spatial_shape(image) == spatial_shape(truth)
           and (named_for(truth.name, image.name) or truth.metadata.get("image") == image.name)]
    exact = [image for image in own if _stem(image.name) == _stem(truth.name)
             or truth.metadata.get("image") == image.name]
    if exact:
        own = exact
    longest = max((len(_stem(image.name)) for image in own), default=0)
    own = [image for image in own if len(_stem(image.name)) == longest]
    return own[0] if len(own) == 1 else None


def align_new_truths(truths: list, images: list) -> list:
    """Labels layers on napari's default grid (scale 1, no offset: opened as files, e.g. a PNG without a pixel
    size), or on the grid the plugin last put them on, drawn on the grid of the one image they are named for
    (:func:`image_of`); a layer the user placed is left alone. Returns those moved."""
    moved = []
    for truth in truths:
        image = None if _placed_by_user(truth) else image_of(truth, images)
        if image is not None and on_grid_of(truth, image):
            moved.append(truth)
    return moved
