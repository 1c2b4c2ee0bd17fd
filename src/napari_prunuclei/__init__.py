"""napari-prunuclei: what pruning does to a two-branch nuclei segmentation model.

``segment(image, SegmentRequest(scheme, cr))`` is the one path an image takes. The names
below are imported on first use, so napari's reader, writer and sample data load
without torch.
"""

__version__ = "0.2.0"

__all__ = [
    "__version__", "segment", "load_pair", "load_model", "ModelPair", "ModelSpec", "Segmentation",
    "SegmentRequest", "Tiling", "Progress", "Cancelled",
]

_LAZY = {
    "segment": "runtime.pipeline", "load_pair": "runtime.pairs", "ModelPair": "runtime.pairs",
    "ModelSpec": "runtime.pairs", "Segmentation": "runtime.request", "SegmentRequest": "runtime.request",
    "Tiling": "runtime.request", "load_model": "pruning.oneshot", "Progress": "base.progress",
    "Cancelled": "base.progress",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
