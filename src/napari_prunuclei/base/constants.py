"""Names and numbers used by more than one module, defined once."""

from __future__ import annotations

__all__ = [
    "SCHEMES", "PRUNED_SCHEMES", "UNSTRUCTURED_SCHEMES", "CHANNEL_SCHEMES", "SCHEME_LABELS", "SCHEME_COLORS",
    "DEFAULT_CRS", "CHANNEL_CRS", "zoo_crs",
    "IMAGE_EXTENSIONS", "TIFF_EXTENSIONS", "LABEL_EXTENSIONS", "EXPORT_EXTENSIONS",
    "TILE", "HALO", "WHOLE_MAX_PIXELS", "MIN_TILE", "MAX_TILE", "MAX_BATCH", "MODEL_PIXEL_SIZE_UM", "ZARR_PIXELS",
    "DISAGREEMENT_KINDS", "DISAGREEMENT_COLORS", "MODEL_COLORS", "TRUTH_COLOR",
]

#: pruning schemes: dense (no pruning), the paper's two unstructured magnitude schemes and
#: their structured (whole-channel) counterparts, which make smaller, faster networks
SCHEMES = ("dense", "layerwise", "networkwide", "channel-layerwise", "channel-networkwide")
PRUNED_SCHEMES = ("layerwise", "networkwide", "channel-layerwise", "channel-networkwide")
UNSTRUCTURED_SCHEMES = ("layerwise", "networkwide")
CHANNEL_SCHEMES = ("channel-layerwise", "channel-networkwide")
#: how a scheme is written for people
SCHEME_LABELS = {"dense": "dense", "layerwise": "layer-wise", "networkwide": "network-wide",
                 "channel-layerwise": "channel layer-wise", "channel-networkwide": "channel network-wide"}
#: one colour per scheme in every chart
SCHEME_COLORS = {"dense": "black", "layerwise": "tab:orange", "networkwide": "tab:blue",
                 "channel-layerwise": "tab:red", "channel-networkwide": "tab:green"}
#: compression ratios of the zoo's ladders (used when no registry is at hand)
DEFAULT_CRS = (2.0, 4.0, 5.0, 8.0, 10.0, 16.0, 20.0, 32.0, 50.0, 100.0)
#: compression ratios of the channel schemes' ladders
CHANNEL_CRS = (2.0, 4.0, 8.0, 16.0, 32.0)


def zoo_crs(scheme: str) -> tuple[float, ...]:
    """The compression ratios the zoo holds for ``scheme``, smallest first."""
    return CHANNEL_CRS if scheme in CHANNEL_SCHEMES else DEFAULT_CRS

TIFF_EXTENSIONS = (".tif", ".tiff", ".svs")
#: files read as H&E images
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", *TIFF_EXTENSIONS)
#: files read as instance labels
LABEL_EXTENSIONS = (".tif", ".tiff", ".png")
#: files the nuclei can be exported to: labels, polygons (QuPath), measurements
EXPORT_EXTENSIONS = (".tif", ".tiff", ".png", ".geojson", ".json", ".csv")

#: the one tiling policy: cores of TILE px with HALO px of context; images above
#: WHOLE_MAX_PIXELS run tile by tile (per-tile watershed, stitched), smaller ones whole
TILE = 1024
HALO = 128
WHOLE_MAX_PIXELS = 2048 * 2048
#: bounds of the tiling and of a network call (a tile of MAX_TILE px is 256 MP of maps; a batch of
#: MAX_BATCH default tiles is about 4 GB of activations)
MIN_TILE, MAX_TILE, MAX_BATCH = 64, 8192, 64
#: micrometres per pixel of the images the zoo was trained on (MoNuSeg 2018, 40x); the registry may say
#: otherwise (its "pixel_size_um")
MODEL_PIXEL_SIZE_UM = 0.25
#: tiled labels above this many pixels go to a zarr store on disk instead of memory (widget)
ZARR_PIXELS = 8192 * 8192

#: value in a disagreement image -> kind, and the kind's colour (missed: a B nucleus A lacks; extra: an A
#: nucleus B lacks; split: one B nucleus covered by several A nuclei; merged: one A nucleus over several B nuclei)
DISAGREEMENT_KINDS = {1: "missed", 2: "extra", 3: "split", 4: "merged"}
DISAGREEMENT_COLORS = {0: "transparent", 1: "#ff3030", 2: "#4060ff", 3: "#ffd000", 4: "#ff8c00",
                       None: "transparent"}
#: one colour per model on the canvas (outlines; fills cycle through the model's shades so touching nuclei stay
#: apart): A (the pruned model) in cyans, B (the reference) in greens; neither near the disagreement colours nor
#: near H&E's own
MODEL_COLORS = {"pruned": ("#00e5ff", "#00b8d4", "#4dd0e1", "#0097a7", "#80deea"),
                "dense": ("#00ff66", "#00c853", "#69f0ae", "#2e9d42", "#b9f6ca")}
#: the ground truth a run is scored against: thin white outlines, apart from both models and the disagreement rings
TRUTH_COLOR = "#ffffff"
#: colours of nuclei in the instance layers: greens, teals, cyans, olive and grey, none of them near the
#: disagreement colours (red, blue, yellow, orange) nor near H&E's own (no red, pink, magenta or purple: eosin, red
#: blood cells and hematoxylin), so a nucleus never looks like a disagreement or like the stain
INSTANCE_COLORS = ("#1b9e77", "#66c2a5", "#a6d854", "#4daf4a", "#17becf", "#2ca25f", "#8dd3c7", "#b3de69",
                   "#bf812d", "#999999", "#80cdc1", "#01665e")
