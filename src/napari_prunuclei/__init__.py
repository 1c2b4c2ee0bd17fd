"""napari-prunuclei: what pruning does to a two-branch nuclei segmentation model."""

__version__ = "0.1.0"

from .inference import SegmentationResult, segment  # noqa: E402
from .models.zoo import load_model  # noqa: E402

__all__ = ["__version__", "segment", "load_model", "SegmentationResult"]
