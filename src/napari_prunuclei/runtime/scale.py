"""Resolution: the models see tissue at the pixel size they were trained on, whatever the scanner's.

The zoo was trained on MoNuSeg at 40x (:data:`~napari_prunuclei.base.constants.MODEL_PIXEL_SIZE_UM`
micrometres per pixel). An image of another pixel size is resampled, tile by tile, to the models' grid
for both branches, and the two maps come back to the image's grid, where the watershed runs with its
minimum size scaled to the same area in µm²: labels are always on the input's grid, and tiles, halos and
stitching are the same as for an image at the models' size. An unknown pixel size means the image is
taken at the models' size (and the result says so). StarDist, Cellpose and InstanSeg do the same with a
scale, a diameter or a pixel size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from napari_prunuclei.base.constants import MODEL_PIXEL_SIZE_UM
from napari_prunuclei.nuclei.watershed import WatershedParams

__all__ = ["RESCALE_TOLERANCE", "MAX_PIXEL_SIZE_UM", "Scale", "check_pixel_size"]

#: pixel sizes within this relative distance of the models' are taken as they are (no resampling)
RESCALE_TOLERANCE = 0.05


#: the coarsest pixel size segmented (5x): a nucleus is then 3-5 px across, and the image is resampled 8 times
#: finer for the models; a coarser one (a slide's thumbnail, a misread tag) would be resampled tens of times,
#: beyond any machine's memory
MAX_PIXEL_SIZE_UM = 2.0


def check_pixel_size(value: float | None, what: str = "pixel size") -> float | None:
    """``value`` (µm per pixel) if it is a plausible pixel size to segment nuclei at, None for None; else
    ValueError."""
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.01 <= value <= MAX_PIXEL_SIZE_UM):
        raise ValueError(f"{what} must be 0.01 to {MAX_PIXEL_SIZE_UM:g} micrometres per pixel (40x is about 0.25, "
                         f"20x 0.5, 5x 2; coarser images do not show nuclei at a size the models can segment), "
                         f"got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Scale:
    """The input's pixel size against the models'. ``factor``: model-grid pixels per input pixel (2 for a 20x
    image and a 40x model); 1 when the input's size is unknown or within :data:`RESCALE_TOLERANCE`."""

    input_um: float | None = None
    model_um: float = MODEL_PIXEL_SIZE_UM

    @property
    def factor(self) -> float:
        if self.input_um is None:
            return 1.0
        f = self.input_um / self.model_um
        return 1.0 if abs(f - 1.0) <= RESCALE_TOLERANCE else f

    @property
    def active(self) -> bool:
        return self.factor != 1.0

    def params(self, params: WatershedParams) -> WatershedParams:
        """The thresholds on the input's grid: the minimum size is the same area in µm² as on the models'."""
        if not self.active:
            return params
        return replace(params, min_size=max(1, round(params.min_size / self.factor**2)))

    def as_dict(self) -> dict:
        return {"pixel_size_um": self.input_um, "model_pixel_size_um": self.model_um, "factor": self.factor,
                "resampled": self.active,
                "note": None if self.input_um is not None else
                f"pixel size unknown: taken at the models' {self.model_um:g} µm/px"}

    def to_model(self, crops: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 crops on the models' grid (anti-aliased when shrinking)."""
        from skimage.transform import resize

        n, h, w = crops.shape[:3]
        shape = (max(1, round(h * self.factor)), max(1, round(w * self.factor)))
        out = np.empty((n, *shape, 3), np.uint8)
        for i in range(n):
            r = resize(crops[i], shape, order=1, anti_aliasing=self.factor < 1, preserve_range=True)
            out[i] = np.clip(np.rint(r), 0, 255)
        return out

    def to_input(self, maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """N x h x w float32 maps back on the input's grid (N x H x W)."""
        from skimage.transform import resize

        return np.stack([resize(m, shape, order=1, anti_aliasing=self.factor > 1, preserve_range=True)
                         .astype(np.float32) for m in maps])

    def predict(self, predict_pair, semantic, distance, crops: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """``predict_pair`` on the crops resampled to the models' grid, the maps brought back to the crops'."""
        if not self.active:
            return predict_pair(semantic, distance, crops, **kwargs)
        probs, dists = predict_pair(semantic, distance, self.to_model(crops), **kwargs)
        shape = crops.shape[1:3]
        return self.to_input(probs, shape), self.to_input(dists, shape)
