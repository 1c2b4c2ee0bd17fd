"""The report's picture of a run, composed from its data at the image's resolution (1 image pixel = 1 PNG
pixel), drawn as the canvas draws it: each model's nuclei outlined in its colour, the disagreement as thick
rings on top; side by side, B's cell left of A's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_prunuclei.base.constants import DISAGREEMENT_COLORS, DISAGREEMENT_KINDS, MODEL_COLORS, TRUTH_COLOR
from napari_prunuclei.study.session import ComparisonResult

__all__ = ["canvas_rgb", "write_canvas", "canvas_caption"]

def _rgb(hex_colors) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in hex_colors], np.float32)


def _rings(labels: np.ndarray, width: int) -> np.ndarray:
    """The inner boundary of each object of ``labels``, ``width`` px thick (as napari draws a contour)."""
    from scipy import ndimage as ndi
    from skimage.segmentation import find_boundaries

    lab = np.asarray(labels)
    edge = find_boundaries(lab, mode="inner") & (lab > 0)
    if width > 1:
        edge = ndi.binary_dilation(edge, iterations=width - 1) & (lab > 0)
    return edge


def _cell(rgb: np.ndarray, models: list[tuple[np.ndarray, str]], dis: np.ndarray | None,
          truth: np.ndarray | None = None) -> np.ndarray:
    """One cell as on the canvas: the image, the ground truth's thin white outlines (when shown), each model's
    nuclei outlined in its colour (in order), the disagreement on top as thick rings in its kinds' colours."""
    out = np.asarray(rgb[..., :3], np.float32).copy()
    if truth is not None and np.shape(truth) == out.shape[:2]:
        out[_rings(truth, 1)] = _rgb([TRUTH_COLOR])[0]
    for labels, colour in models:
        out[_rings(labels, 2)] = _rgb([colour])[0]
    if dis is not None:
        colours = np.zeros((len(DISAGREEMENT_KINDS) + 1, 3), np.float32)
        colours[1:] = _rgb([DISAGREEMENT_COLORS[k] for k in sorted(DISAGREEMENT_KINDS)])
        kind = np.asarray(dis)
        ring = _rings(kind, 4)
        out[ring] = colours[kind[ring]]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def canvas_rgb(rgb: np.ndarray, result: ComparisonResult, side_by_side: bool = False,
               visible: dict[tuple[str, str], bool] | None = None, truth: np.ndarray | None = None) -> np.ndarray:
    """The run as an RGB picture the size of ``rgb`` (the run's image or region), or twice its width side by
    side (B left, A right, as on the canvas). ``visible``: the plugin's layers shown, by role (a layer the
    user hid is left out; all shown by default). ``truth``: the ground truth shown on the canvas (its labels,
    on the picture's grid), outlined in white in every cell."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)

    def shown(role) -> bool:
        return visible is None or visible.get(role, True)

    both = result.pruned is not None and result.dense is not None
    dis = result.disagreement if result.disagreement is not None and shown(("pruned", "disagreement")) else None
    a = [(result.pruned.labels, MODEL_COLORS["pruned"][0])] if result.pruned is not None and shown(
        ("pruned", "instances")) else []
    b = [(result.dense.labels, MODEL_COLORS["dense"][0])] if result.dense is not None and shown(
        ("dense", "instances")) else []
    if both and side_by_side:
        left_dis = dis if dis is not None and shown(("view", "disagreement")) else None
        return np.concatenate([_cell(rgb, b, left_dis, truth), _cell(rgb, a, dis, truth)], axis=1)
    return _cell(rgb, b + a, dis, truth)


def canvas_caption(result: ComparisonResult, side_by_side: bool = False, truth: bool = False) -> str:
    """What the picture shows, for the report (``truth``: the ground truth's outlines drawn too)."""
    text = _caption(result, side_by_side)
    return text + ("; the ground truth's nuclei outlined thin in white" if truth else "")


def _caption(result: ComparisonResult, side_by_side: bool) -> str:
    both = result.pruned is not None and result.dense is not None
    if not both:
        return f"the image at its own resolution (1 px per image pixel), {result.chosen.info.model}'s nuclei outlined"
    a, b = result.pruned.info.model, result.dense.info.model
    cells = (f"left B ({b}) in green, right A ({a}) in cyan, each with its nuclei outlined" if side_by_side
             else f"B's ({b}) nuclei outlined in green, A's ({a}) in cyan")
    return (f"the image at its own resolution (1 px per image pixel): {cells}; disagreement of A with B as thick "
            "rings: red missed by A, blue extra in A, yellow split by A, orange merged by A")


def write_canvas(path: str | Path, rgb: np.ndarray, result: ComparisonResult, side_by_side: bool = False,
                 visible: dict[tuple[str, str], bool] | None = None, truth: np.ndarray | None = None) -> Path:
    """:func:`canvas_rgb` as a PNG at ``path``."""
    import imageio.v3 as iio

    path = Path(path)
    iio.imwrite(path, canvas_rgb(rgb, result, side_by_side, visible, truth), extension=".png")
    return path
