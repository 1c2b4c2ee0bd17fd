"""The request and result types: the tiling policy (:class:`Tiling`), :class:`SegmentRequest` (the one
request of every front end), :class:`SegmentInfo` and :class:`Segmentation`, per-stage throughput."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from napari_prunuclei import __version__
from napari_prunuclei.base.constants import HALO, MAX_BATCH, MAX_TILE, MIN_TILE, TILE, WHOLE_MAX_PIXELS
from napari_prunuclei.nuclei.watershed import WatershedParams
from napari_prunuclei.runtime.pairs import ModelPair, ModelSpec, load_pair
from napari_prunuclei.runtime.scale import check_pixel_size

__all__ = ["Tiling", "as_tiling", "SegmentRequest", "SegmentInfo", "Segmentation", "throughput"]


@dataclass(frozen=True)
class Tiling:
    """The tiling policy: ``mode`` auto (tiled above ``whole_max_pixels``), whole or tiled."""

    mode: str = "auto"
    tile: int = TILE
    halo: int = HALO
    whole_max_pixels: int = WHOLE_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "whole", "tiled"):
            raise ValueError(f"tiling must be auto, whole or tiled, got {self.mode!r}")
        if not MIN_TILE <= self.tile <= MAX_TILE or self.halo < 0:
            raise ValueError(f"tile must be {MIN_TILE} to {MAX_TILE} px and halo >= 0, got {self.tile}, {self.halo}")
        if self.halo > self.tile:
            raise ValueError(f"halo ({self.halo} px) must not exceed the tile ({self.tile} px): every tile would "
                             f"compute {((self.tile + 2 * self.halo) / self.tile) ** 2:.0f}x its own area")

    def is_tiled(self, shape) -> bool:
        """Whether an image of ``shape`` goes tile by tile (per-tile watershed, stitched)."""
        if self.mode != "auto":
            return self.mode == "tiled"
        return int(shape[0]) * int(shape[1]) > self.whole_max_pixels


def as_tiling(tiling: str | Tiling) -> Tiling:
    return tiling if isinstance(tiling, Tiling) else Tiling(mode=tiling)


@dataclass(frozen=True)
class SegmentRequest:
    """Everything a run needs besides the image: the model, thresholds, device and tiling.

    ``params`` None: the pair's own thresholds. The one request type of every front end.
    """

    scheme: str = "dense"
    cr: float = 1.0
    fine_tuned: bool = True
    params: WatershedParams | None = None
    device: str = "auto"
    precision: str = "auto"
    tiling: Tiling = field(default_factory=Tiling)
    post_workers: int | None = None
    batch: int = 0
    compile: bool = False
    pixel_size: float | None = None  # µm per pixel of the input; None: read from the file where one is read, else
    #                                  taken at the models' size (napari_prunuclei.runtime.scale)
    tissue_mask: bool = True  # tiled runs: tiles whose core shows no tissue skip the networks (runtime.tissue)

    def __post_init__(self) -> None:
        import math

        from napari_prunuclei.base.machine import available_cores

        if not (isinstance(self.cr, (int, float)) and math.isfinite(self.cr) and self.cr >= 1):
            raise ValueError(f"cr must be a finite number >= 1, got {self.cr!r}")
        if not 0 <= self.batch <= MAX_BATCH:
            raise ValueError(f"batch must be 0 (automatic) to {MAX_BATCH} tiles per network call, got {self.batch}")
        check_pixel_size(self.pixel_size)
        cores = available_cores()
        if self.post_workers is not None and not 0 <= self.post_workers <= cores:
            raise ValueError(f"post_workers must be 0 to {cores} (the cores this process may use), "
                             f"got {self.post_workers}")

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.scheme, self.cr, self.fine_tuned)

    def pair(self) -> ModelPair:
        return load_pair(self.spec)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["params"] = None if self.params is None else self.params.as_dict()
        return d


@dataclass
class SegmentInfo:
    """What ran and how: the models (ids, sha256, sparsity), thresholds, device, tiling, timings.

    ``seconds``: per stage (``read``, ``semantic``, ``distance``, ``watershed`` summed over
    tiles and workers, ``stitch``, ``wait`` for post-processing, ``total`` wall); ``throughput``:
    the same per megapixel (:func:`throughput`), the overlap achieved and, on CUDA, the GPU's
    busy share.
    """

    model: str
    scheme: str
    cr: float
    fine_tuned: bool
    semantic: dict
    distance: dict
    watershed: WatershedParams
    device: str
    precision: str
    mode: str
    tile: int
    halo: int
    n_tiles: int
    seconds: dict[str, float] = field(default_factory=dict)
    n_nuclei: int = 0
    post_workers: int = 0
    batch: int = 1
    throughput: dict[str, Any] = field(default_factory=dict)
    resolution: dict[str, Any] = field(default_factory=dict)  # the input's and the models' pixel size, the factor
    tissue: dict[str, Any] = field(default_factory=dict)  # tiled runs: tiles looked at, tiles skipped as glass
    version: str = __version__

    def as_dict(self) -> dict:
        d = asdict(self)
        d["watershed"] = self.watershed.as_dict()
        return d


@dataclass
class Segmentation:
    """Outputs of :func:`segment`: instance labels, and (whole mode) the two branch maps."""

    labels: Any
    probability: np.ndarray | None
    distance: np.ndarray | None
    info: SegmentInfo
    #: tiled runs with the tissue mask: where the tissue is, one pixel per MASK_STEP x MASK_STEP of the image
    tissue: np.ndarray | None = None

    @property
    def tiled(self) -> bool:
        return self.info.mode == "tiled"

    @property
    def n_nuclei(self) -> int:
        """Number of nuclei: the largest id (ids are 1..n; on a stitched slide, ids are given in order).
        Counted once, when the run ends (a slide's labels may be on disk)."""
        return self.info.n_nuclei


def throughput(seconds: dict[str, float], pixels: int) -> dict[str, Any]:
    """Per-stage numbers of a run: seconds, seconds per megapixel and MP/s of each stage; the
    run's MP/s; ``wall_over_networks`` (1.0: everything but the networks hidden behind them);
    ``hidden``: the share of the other stages' time (reading, watershed summed over workers, the
    hand-over of maps to the workers, stitching) that overlapped the networks; ``gpu_busy``: the
    GPU's busy share of the wall time."""
    mp = pixels / 1e6
    wall = seconds.get("total", 0.0)
    stages = {k: seconds[k] for k in ("read", "semantic", "distance", "watershed", "handoff", "stitch", "wait",
                                      "write_wait")
              if k in seconds}
    stages["networks"] = seconds.get("semantic", 0.0) + seconds.get("distance", 0.0)
    rest = sum(v for k, v in stages.items() if k in ("read", "watershed", "handoff", "stitch"))
    out: dict[str, Any] = {
        "megapixels": mp, "wall_seconds": wall, "mp_per_s": mp / wall if wall else 0.0,
        "stages": {k: {"seconds": v, "s_per_mp": v / mp if mp else 0.0, "mp_per_s": mp / v if v else None}
                   for k, v in stages.items()},
        "wall_over_networks": wall / stages["networks"] if stages["networks"] else None,
        "hidden": min(1.0, max(0.0, (stages["networks"] + rest - wall) / rest)) if rest else 1.0,
    }
    if "gpu" in seconds and wall:
        out["gpu_busy"] = seconds["gpu"] / wall
    return out
