"""How the plugin's layers look (gui/styles.py)."""

import numpy as np

from napari_prunuclei.base.constants import MODEL_COLORS
from napari_prunuclei.gui.styles import CONTOUR, cr_first, instance_style


def test_the_cr_comes_first_so_napari_never_elides_it():
    assert cr_first("network-wide CR20") == "CR20 network-wide"
    assert cr_first("channel layer-wise CR4 (one-shot)") == "CR4 channel layer-wise (one-shot)"
    assert cr_first("dense") == "dense"


def test_nuclei_are_outlines_in_the_models_colour_by_default_and_fills_on_request():
    out = instance_style("pruned", fill=False)
    assert out["contour"] == CONTOUR["instances"] and out["opacity"] == 1.0
    from napari.utils.colormaps.standardize_color import transform_color

    assert np.allclose(out["colormap"].map(7)[:3], transform_color(MODEL_COLORS["pruned"][0])[0][:3])
    filled = instance_style("pruned", fill=True)
    assert filled["contour"] == 0 and filled["opacity"] < 1
