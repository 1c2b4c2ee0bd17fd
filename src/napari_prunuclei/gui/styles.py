"""How the plugin's layers look: one colour per model, outlines or fills, the truth and disagreement colours,
names that keep the CR readable."""

from __future__ import annotations

import numpy as np

from napari_prunuclei.base.constants import DISAGREEMENT_COLORS, MODEL_COLORS, TRUTH_COLOR

__all__ = ["CONTOUR", "cr_first", "instance_colormap", "instance_style", "truth_colormap", "disagreement_colormap"]

#: outline widths (data px): nuclei thin, disagreement marks thick (a ring, never a red disc like an erythrocyte)
CONTOUR = {"instances": 2, "disagreement": 4}


def cr_first(model: str) -> str:
    """``network-wide CR20`` -> ``CR20 network-wide``: the CR survives napari's shortening of long names."""
    import re

    m = re.fullmatch(r"(.+?) (CR[0-9.]+)(.*)", model)
    return f"{m.group(2)} {m.group(1)}{m.group(3)}" if m else model


def instance_colormap(model: str, fill: bool):
    """One colour per model: outlines in the model's colour; fills cycle through its shades."""
    from napari.utils.colormaps import CyclicLabelColormap, DirectLabelColormap
    from napari.utils.colormaps.standardize_color import transform_color

    colors = MODEL_COLORS[model]
    if not fill:
        return DirectLabelColormap(color_dict={0: "transparent", None: colors[0]})
    return CyclicLabelColormap(colors=np.vstack([[0, 0, 0, 0], transform_color(list(colors))]))


def instance_style(model: str, fill: bool) -> dict:
    """How a model's nuclei are drawn: outlines (default) or fills."""
    return {"colormap": instance_colormap(model, fill), "contour": 0 if fill else CONTOUR["instances"],
            "opacity": 0.45 if fill else 1.0}


def truth_colormap():
    """The ground truth: outlines in one colour."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: TRUTH_COLOR, 0: "transparent"})


def disagreement_colormap():
    """The disagreement marks: one colour per kind."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict=DISAGREEMENT_COLORS)
