"""napari-prunuclei: what pruning does to a two-branch nuclei segmentation model."""

__version__ = "0.1.0"
