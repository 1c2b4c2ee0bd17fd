"""Ground-truth label layers on their image's grid: which image a labels layer is named for, and its scale,
offset and units made the image's (µm where the image has a pixel size), so the outlines lie on the nuclei."""

from __future__ import annotations

import re


def named_for(truth_name: str, image_name: str) -> bool:
    """Whether a labels layer's name is an image's: the same name (napari numbers a second layer of one name
    ``NAME [1]``) or the image's name and more (``NAME · ground truth``, ``NAME_labels``, ``NAME-mask``)."""

    def stem(name: str) -> str:
        return re.sub(r" \[\d+\]$", "", str(name))

    t, i = stem(truth_name), stem(image_name)
    return t == i or any(t.startswith(i + sep) for sep in (" ", "_", "-", "."))


def on_grid_of(truth, image) -> bool:
    """Draw the labels layer ``truth`` on ``image``'s grid when the two have the same shape (rows, columns);
    returns whether anything changed."""
    data = image.data[0] if image.multiscale else image.data
    tdata = truth.data[0] if truth.multiscale else truth.data
    if tuple(tdata.shape[:2]) != tuple(data.shape[:2]):
        return False
    if tuple(truth.scale[-2:]) == tuple(image.scale[-2:]) and tuple(truth.translate[-2:]) == tuple(
            image.translate[-2:]):
        return False
    truth.scale = (*truth.scale[:-2], *image.scale[-2:])
    truth.translate = (*truth.translate[:-2], *image.translate[-2:])
    truth.units = (*truth.units[:-2], *image.units[-2:])
    return True


def align_new_truths(truths: list, images: list) -> list:
    """Labels layers still on napari's default grid (scale 1, no offset: opened as files, e.g. a PNG without a
    pixel size) put on the grid of the one image they are named for, when that image has a scale or offset of
    its own; a layer named for two images, or placed by the user, is left alone. Returns those moved."""
    moved = []
    for truth in truths:
        if any(float(v) != 1.0 for v in truth.scale[-2:]) or any(float(v) != 0.0 for v in truth.translate[-2:]):
            continue
        own = [image for image in images if named_for(truth.name, image.name)
               or truth.metadata.get("image") == image.name]
        if len(own) == 1 and on_grid_of(truth, own[0]):
            moved.append(truth)
    return moved
