"""The comparison state: owns the plugin's layers by role, free of Qt.

Roles are (model, output) pairs: ``("dense"|"pruned", "semantic"|"distance"|"instances")``,
``("pruned", "disagreement")`` and, with side by side on, the dense cell's views
``("view", "image")`` and ``("view", "disagreement")``. :meth:`ComparisonState.show`
makes the viewer hold exactly the current run's layers: layers of roles the run does not
have are removed, the others are updated in place (or added when missing), and nothing
is found by its name. Works on a napari ``ViewerModel`` (tests) and a ``Viewer`` alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from napari.layers import Image, Labels, Layer

from ..constants import DISAGREEMENT_COLORS
from ._compute import ComparisonResult, disagreement_metadata, layer_metadata

__all__ = ["Role", "LayerSpec", "ComparisonState", "DENSE_CELL", "PRUNED_CELL"]

Role = tuple[str, str]
OUTPUTS = ("semantic", "distance", "instances")
#: the roles shown in the left (dense) and right (pruned) cells of side by side, bottom to top
DENSE_CELL: tuple[Role, ...] = (("view", "image"), ("dense", "semantic"), ("dense", "distance"),
                                ("dense", "instances"), ("view", "disagreement"))
PRUNED_CELL: tuple[Role, ...] = (("pruned", "semantic"), ("pruned", "distance"), ("pruned", "instances"),
                                 ("pruned", "disagreement"))


@dataclass
class LayerSpec:
    """What one role's layer should be: its type, name, data and properties."""

    kind: type[Layer]
    name: str
    data: object
    kwargs: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def _disagreement_colormap():
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict=DISAGREEMENT_COLORS)


class ComparisonState:
    """The current run's layers by role, the side-by-side arrangement, and the run itself."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.layers: dict[Role, Layer] = {}
        self.result: ComparisonResult | None = None
        self.side_by_side = False
        self._grid_before: tuple | None = None

    # ---- what the viewer should hold ---------------------------------
    def image_layer(self) -> Layer | None:
        if self.result is None:
            return None
        name = self.result.request.image_name
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _side_by_side_on(self) -> bool:
        r = self.result
        return (self.side_by_side and r is not None and r.pruned is not None and r.dense is not None
                and self.image_layer() is not None)

    def specs(self) -> dict[Role, LayerSpec]:
        """The layer of every role of the current run (none before a run)."""
        r = self.result
        if r is None:
            return {}
        image = r.request.image_name
        out: dict[Role, LayerSpec] = {}
        for model, seg in (("dense", r.dense), ("pruned", r.pruned)):
            if seg is None:
                continue
            base = f"{image} · {seg.info.model}"
            meta = layer_metadata(seg, image)
            if not seg.tiled:
                maps = {"colormap": "inferno", "contrast_limits": (0, 1), "opacity": 0.6, "blending": "additive"}
                out[(model, "semantic")] = LayerSpec(Image, f"{base} · semantic", seg.probability,
                                                     {**maps, "visible": False}, meta)
                out[(model, "distance")] = LayerSpec(Image, f"{base} · distance", seg.distance,
                                                     {**maps, "colormap": "viridis", "visible": False}, meta)
            out[(model, "instances")] = LayerSpec(Labels, f"{base} · instances", seg.labels, {"opacity": 0.5}, meta)
        if r.disagreement is not None:
            name = f"{image} · {r.pruned.info.model} · disagreement with dense"
            out[("pruned", "disagreement")] = LayerSpec(Labels, name, r.disagreement, {"opacity": 0.8},
                                                        disagreement_metadata(r))
        if self._side_by_side_on():
            src = self.image_layer()
            out[("view", "image")] = LayerSpec(Image, f"{image} · (dense view)", src.data,
                                               {"rgb": src.rgb, "multiscale": src.multiscale}, {})
            if ("pruned", "disagreement") in out:
                d = out[("pruned", "disagreement")]
                out[("view", "disagreement")] = LayerSpec(Labels, f"{d.name} (dense view)", d.data, d.kwargs,
                                                          d.metadata)
        return out

    # ---- making the viewer match --------------------------------------
    def owned(self) -> dict[Role, Layer]:
        """The plugin's layers that are still in the viewer, by role."""
        return {role: layer for role, layer in self.layers.items() if layer in self.viewer.layers}

    def show(self, result: ComparisonResult | None, side_by_side: bool | None = None) -> Iterator[None]:
        """Make the viewer show ``result``: a generator, one step per layer added or updated (the
        widget runs one step per event-loop turn; tests exhaust it). The previous run's scratch
        stores are released once no layer shows them."""
        previous = self.result
        self.result = result
        if side_by_side is not None:
            self.side_by_side = side_by_side
        specs = self.specs()
        for role, layer in list(self.layers.items()):
            if role not in specs or not isinstance(layer, specs[role].kind):
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)
                del self.layers[role]
        for role, spec in specs.items():
            layer = self.layers.get(role)
            if layer is not None and layer in self.viewer.layers:
                if layer.name != spec.name:
                    layer.name = spec.name
                layer.data = spec.data
                layer.metadata = spec.metadata
            else:
                kwargs = {k: v for k, v in spec.kwargs.items() if k not in ("rgb", "multiscale") or v is not None}
                add = self.viewer.add_image if spec.kind is Image else self.viewer.add_labels
                layer = add(spec.data, name=spec.name, metadata=spec.metadata, **kwargs)
                if role[1] == "disagreement":
                    layer.colormap = _disagreement_colormap()
                self.layers[role] = layer
            yield
        self._arrange()
        if previous is not None and previous is not result:
            previous.release()

    def apply(self, result: ComparisonResult | None, side_by_side: bool | None = None) -> None:
        """:meth:`show` in one go."""
        for _ in self.show(result, side_by_side):
            pass

    def set_side_by_side(self, on: bool) -> None:
        self.apply(self.result, on)

    def clear(self) -> None:
        """Remove every layer the plugin made, give back the grid, release scratch stores."""
        self.apply(None)
        self.layers.clear()

    # ---- side by side ---------------------------------------------------
    def _arrange(self) -> None:
        """napari grid mode (one camera): the dense cell left, the pruned cell right. Other layers keep
        their order above the two groups."""
        grid = self.viewer.canvas.grid
        if not self._side_by_side_on():
            if self._grid_before is not None:
                grid.enabled, grid.stride, grid.shape = self._grid_before
                self._grid_before = None
            return
        owned = self.owned()
        left = [owned[r] for r in DENSE_CELL if r in owned]
        right = [self.image_layer(), *(owned[r] for r in PRUNED_CELL if r in owned)]
        stride = max(len(left), len(right))
        order = left + [None] * (stride - len(left)) + right
        layers = self.viewer.layers
        for dest, layer in enumerate(order):  # the two groups at the bottom of the list, in order
            if layer is None:
                continue
            i = layers.index(layer)
            if i != dest:
                layers.move(i, dest)
        if self._grid_before is None:
            self._grid_before = (grid.enabled, grid.stride, grid.shape)
        grid.stride = stride
        grid.shape = (1, -1)
        grid.enabled = True
        self.viewer.reset_view()
