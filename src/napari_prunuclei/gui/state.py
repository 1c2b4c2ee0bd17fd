"""The comparison state: owns the plugin's layers by role, free of Qt.

Roles are (model, output) pairs: ``("dense"|"pruned", "semantic"|"distance"|"instances")``,
``("pruned", "disagreement")`` and, with side by side on, the views of the image for each
grid cell and of the disagreement for the dense cell (``("view", ...)``).
:meth:`ComparisonState.show` makes the viewer hold exactly the current run's layers, in
the order of :func:`ordered_roles`: layers of roles the run does not have are removed,
the others are updated in place; when the roles or their order change, the plugin's
layers are made anew in order (layers are never moved: moving and then removing layers
crashed napari's OpenGL canvas under Mesa). Nothing is found by its name. Works on a
napari ``ViewerModel`` (tests) and a ``Viewer`` alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from napari.layers import Image, Labels, Layer

from napari_prunuclei.base.constants import DISAGREEMENT_COLORS, DISAGREEMENT_KINDS, MODEL_COLORS, TRUTH_COLOR
from napari_prunuclei.gui.camera import fit, restore_view, stack_above, view_of
from napari_prunuclei.gui.styles import CONTOUR, cr_first, disagreement_colormap, instance_style, truth_colormap
from napari_prunuclei.gui.warmup import stop_warm_up
from napari_prunuclei.study.session import ComparisonResult
from napari_prunuclei.study.session_report import disagreement_features, disagreement_metadata, layer_metadata

__all__ = ["Role", "PAINT", "LayerSpec", "ComparisonState", "DENSE_CELL", "PRUNED_CELL"]

Role = tuple[str, str]
#: what :meth:`ComparisonState.show` yields where the canvas should paint before its next step
PAINT = "paint"
#: set on a ground-truth layer given the truth's look (once: the user may restyle it after)
TRUTH_STYLED = "prunuclei_truth_styled"
OUTPUTS = ("semantic", "distance", "instances")
#: the roles shown in the left (dense) and right (pruned) cells of side by side, bottom to top
DENSE_CELL: tuple[Role, ...] = (("view", "dense image"), ("dense", "semantic"), ("dense", "distance"),
                                ("view", "dense truth"), ("dense", "instances"), ("view", "disagreement"))
PRUNED_CELL: tuple[Role, ...] = (("view", "pruned image"), ("pruned", "semantic"), ("pruned", "distance"),
                                 ("view", "pruned truth"), ("pruned", "instances"), ("pruned", "disagreement"))
#: the order of the plugin's layers, bottom to top: side by side uses a negative grid stride, which
#: fills cells from the top of the layer list, so the dense cell (on top) is the left one
ORDER: tuple[Role, ...] = (("tissue", "mask"),) + PRUNED_CELL + DENSE_CELL
#: the order in one view (side by side off): maps, then both models' nuclei, the disagreement on top of all
OVERLAY_ORDER: tuple[Role, ...] = (("tissue", "mask"), ("pruned", "semantic"), ("pruned", "distance"),
                                   ("dense", "semantic"), ("dense", "distance"), ("dense", "instances"),
                                   ("pruned", "instances"), ("pruned", "disagreement"))


@dataclass
class LayerSpec:
    """What one role's layer should be: its type, name, data and properties."""

    kind: type[Layer]
    name: str
    data: object
    kwargs: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)



def raw(layer):
    """The layer itself: a plugin's dock widget sees napari's proxies of the viewer's objects, a new proxy at
    each access, so identity (``id``) is the wrapped object's."""
    return getattr(layer, "__wrapped__", layer)


#: the legend's key of a map layer: a bright colour of its colormap, and what the brightness means
MAP_KEYS = {"semantic": ("#fca50a", "semantic map (inferno: brighter = more likely nucleus)"),
            "distance": ("#7ad151", "distance map (viridis: brighter = nearer a nucleus centre)")}


class ComparisonState:
    """The current run's layers by role, the side-by-side arrangement, and the run itself."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.layers: dict[Role, Layer] = {}
        self.result: ComparisonResult | None = None
        self.side_by_side = False
        self._grid_before: tuple | None = None
        self._image_visible: bool | None = None
        self._overlay_before: tuple | None = None
        self.fill = False  # nuclei as outlines (default) or filled
        self.on_legend = None  # called when the legend may have changed (the widget draws it)
        self._features: dict[Role, object] = {}  # the features object each role's layer was given last
        self.truth_layer: Layer | None = None  # the user's ground truth the shown run was scored against
        # layers made hidden, and the visibility each gets in the next step (side by side: after the grid is set)
        self._reveal: dict[Role, bool] = {}

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
        both = r.dense is not None and r.pruned is not None
        for model, seg in (("dense", r.dense), ("pruned", r.pruned)):
            if seg is None:
                continue
            # the model first (its CR before its scheme) and the output last: napari shortens names in the
            # middle, so the CR and the output stay readable in a narrow layer list (the image is in the metadata)
            base = (f"{'A' if model == 'pruned' else 'B'} · " if both else "") + cr_first(seg.info.model)
            meta = layer_metadata(seg, image)
            if not seg.tiled:
                maps = {"colormap": "inferno", "contrast_limits": (0, 1), "opacity": 0.6, "blending": "additive"}
                out[(model, "semantic")] = LayerSpec(Image, f"{base} · semantic", seg.probability,
                                                     {**maps, "visible": False}, meta)
                out[(model, "distance")] = LayerSpec(Image, f"{base} · distance", seg.distance,
                                                     {**maps, "colormap": "viridis", "visible": False}, meta)
            feats = r.features.get(model)
            levels = r.pyramids.get(model, [seg.labels])  # a slide: a pyramid made in the worker
            data = levels if len(levels) > 1 else levels[0]
            out[(model, "instances")] = LayerSpec(Labels, f"{base} · instances", data, {"features": feats}, meta)
        if r.disagreement is not None:
            name = f"A · {cr_first(r.pruned.info.model)} · disagreement with B"
            out[("pruned", "disagreement")] = LayerSpec(Labels, name, r.disagreement,
                                                        {"opacity": 1.0, "contour": CONTOUR["disagreement"],
                                                         "features": disagreement_features(r)},
                                                        disagreement_metadata(r))
        tissue = r.chosen.tissue
        if tissue is not None and not self._side_by_side_on():  # a slide: where tissue was found (glass skipped)
            from napari_prunuclei.runtime.tissue import MASK_STEP

            out[("tissue", "mask")] = LayerSpec(
                Labels, f"{r.chosen.info.model} · tissue mask (1 px per {MASK_STEP}²)", tissue.astype(np.uint8),
                {"opacity": 0.25, "scale": (MASK_STEP, MASK_STEP), "visible": False},
                {"prunuclei": {"tissue": r.chosen.info.tissue, "image": image}})
        # the results lie on the image: its scale (µm per px when known) and, for a region, where the region is
        scale, origin = self.image_grid()
        image_layer = self.image_layer()
        units = tuple(str(u) for u in image_layer.units[-2:]) if image_layer is not None else ("pixel", "pixel")
        offset = r.request.offset
        for spec in out.values():
            spec.kwargs["units"] = units
            step = spec.kwargs.get("scale", (1, 1))
            spec.kwargs["scale"] = (step[0] * scale[0], step[1] * scale[1])
            spec.kwargs["translate"] = (origin[0] + offset[0] * scale[0], origin[1] + offset[1] * scale[1])
        if self._side_by_side_on():
            src = self.image_layer()
            for model, cell in (("dense", "left"), ("pruned", "right")):
                seg = r.dense if model == "dense" else r.pruned
                out[("view", f"{model} image")] = LayerSpec(Image, f"{image} · {cell}: {seg.info.model}", src.data,
                                                            {"rgb": src.rgb, "multiscale": src.multiscale,
                                                             "scale": scale, "translate": origin, "units": units},
                                                            {})
            truth = self.truth_layer
            seen = truth is not None and truth in self.viewer.layers and (
                truth.visible or any(t is truth for t in getattr(self, "_others_hidden", [])))
            if seen:  # the ground truth the user shows, in each cell as outlines (none made while it is hidden)
                for model, cell in (("dense", "left"), ("pruned", "right")):
                    out[("view", f"{model} truth")] = LayerSpec(
                        Labels, f"{truth.name} ({cell} cell)", truth.data,
                        {"opacity": 0.9, "visible": True, "contour": 1, "units": units,
                         "scale": tuple(truth.scale[-2:]), "translate": tuple(truth.translate[-2:])}, {})
            if ("pruned", "disagreement") in out:
                d = out[("pruned", "disagreement")]
                out[("view", "disagreement")] = LayerSpec(Labels, "disagreement (left cell)", d.data, d.kwargs,
                                                          d.metadata)
        order = ORDER if self._side_by_side_on() else OVERLAY_ORDER
        return {role: out[role] for role in order if role in out}

    def image_grid(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The run's image layer's scale and translate (rows, columns): (1, 1) and (0, 0) without one."""
        layer = self.image_layer()
        if layer is None:
            return (1.0, 1.0), (0.0, 0.0)
        return (tuple(float(v) for v in layer.scale[-2:]), tuple(float(v) for v in layer.translate[-2:]))

    # ---- making the viewer match --------------------------------------
    def owned(self) -> dict[Role, Layer]:
        """The plugin's layers that are still in the viewer, by role."""
        return {role: layer for role, layer in self.layers.items() if layer in self.viewer.layers}

    def show(self, result: ComparisonResult | None, side_by_side: bool | None = None) -> Iterator[str | None]:
        """Make the viewer show ``result``: a generator, one step per layer added or updated (the
        widget runs one step per event-loop turn; tests exhaust it); it yields :data:`PAINT` where the canvas
        should paint before the next step (side by side: one layer revealed a paint). One showing at a time:
        a new one starts after the last is exhausted or closed. The previous run's scratch stores are released
        once no layer shows them."""
        previous = self.result
        self.result = result
        if side_by_side is not None:
            self.side_by_side = side_by_side
        specs = self.specs()
        image = self.image_layer()
        view = view_of(self.viewer, image) if image is not None else None  # zoom and pan, kept (a first run too)
        self._restore_grid()  # layers change outside grid mode; _arrange sets it again when wanted
        owned = self.owned()
        in_order = sorted(owned, key=lambda role: self.viewer.layers.index(owned[role]))
        same = in_order == list(specs) and all(
            isinstance(owned[r], specs[r].kind) and owned[r].multiscale == isinstance(specs[r].data, list)
            for r in specs)
        # the run's own image lies above the plugin's layers (a new image opened and run): they are made anew, on
        # top, so a run is never drawn under the image it was computed on; another image above them stays above
        # (a threshold edit of the shown run while the user looks at a second tile leaves that tile on top)
        mine = [self.viewer.layers.index(layer) for layer in owned.values()]
        if self._side_by_side_on():  # napari's grid counts every layer from the top: the plugin's must be on top
            others = [i for i, layer in enumerate(self.viewer.layers) if layer not in owned.values()]
            same = same and (not mine or not others or min(mine) > max(others))
        else:
            same = same and (not mine or image is None or self.viewer.layers.index(image) < min(mine))
        # side by side: the cells' layers other than the image are revealed after the grid is set, one a painted
        # turn (the first paint in a grid compiles every visible layer's shaders and uploads its textures: 180-350 ms
        # at once for six layers on Mesa's software OpenGL)
        grid = self._side_by_side_on()
        # the user's choice survives a rebuild (a layer not yet revealed counts as what it will be)
        shown = {role: self._reveal.get(role, layer.visible) for role, layer in owned.items()}
        self._reveal = {}
        for role, layer in list(self.layers.items()):
            if not same or role not in specs:
                del self.layers[role]
                self._features.pop(role, None)
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)
                    yield  # one layer removed a turn (napari's removal of a labels layer is 50-100 ms)
        for role, spec in specs.items():
            layer = self.layers.get(role)
            if layer is not None:  # only what changed (a threshold edit changes A's labels and the disagreement)
                if layer.name != spec.name:
                    layer.name = spec.name
                if layer.data is not spec.data:
                    layer.data = spec.data
                if layer.metadata != spec.metadata:
                    layer.metadata = spec.metadata
                units = tuple(spec.kwargs.get("units", ("pixel", "pixel")))
                if tuple(str(u) for u in layer.units) != tuple(str(u) for u in units):
                    layer.units = units
                scale = tuple(float(v) for v in spec.kwargs.get("scale", (1, 1)))
                if tuple(float(v) for v in layer.scale) != scale:
                    layer.scale = scale
                translate = tuple(float(v) for v in spec.kwargs.get("translate", (0, 0)))
                if tuple(float(v) for v in layer.translate) != translate:
                    layer.translate = translate
                if "features" in spec.kwargs and self._features.get(role) is not spec.kwargs["features"]:
                    layer.features = spec.kwargs["features"] or {}
                    self._features[role] = spec.kwargs["features"]
            else:
                kwargs = {k: v for k, v in spec.kwargs.items()
                          if k != "contour" and (k not in ("rgb", "multiscale", "features") or v is not None)}
                # made hidden and styled, then shown in the next step: a layer's cost is split over two event-loop
                # turns (napari's add and the first slice of a 1000x1000 labels layer are 100-250 ms each)
                self._reveal[role] = shown.get(role, kwargs.get("visible", True))
                kwargs["visible"] = False
                add = self.viewer.add_image if spec.kind is Image else self.viewer.add_labels
                layer = add(spec.data, name=spec.name, metadata=spec.metadata, **kwargs)
                self._features[role] = spec.kwargs.get("features")
                if role[1] == "disagreement":
                    layer.colormap = disagreement_colormap()
                    layer.contour = spec.kwargs.get("contour", 0)
                elif role[1].endswith("truth"):
                    layer.colormap = truth_colormap()
                    layer.contour = spec.kwargs.get("contour", 1)
                elif role[1] == "instances":
                    self._style(layer, role[0])
                layer.events.visible.connect(self._legend_changed)
                self.layers[role] = layer
                yield
                if (not grid or role[0] == "view" and role[1].endswith("image")) and self._reveal.pop(role):
                    layer.visible = True  # (made hidden: a layer to stay hidden is not set again)
            yield
        yield  # the grid (side by side) in a turn of its own
        self._arrange()
        if not self._side_by_side_on():  # (side by side put them on top of every layer)
            stack_above(self.viewer.layers, list(self.owned().values()), image)
        if view is not None:
            restore_view(self.viewer, view, [*self.owned().values(), image])
        for role in [r for r in self._reveal if r in self.layers]:  # side by side: one layer drawn a turn
            if self._reveal.get(role):
                yield PAINT
                if self._reveal.pop(role, False):
                    self.layers[role].visible = True
            else:  # stays hidden (a layer the user shows meanwhile is left shown)
                self._reveal.pop(role, None)
        for (model, output), layer in self.owned().items():  # filled or not: side by side may have changed
            if output == "instances" and (layer.contour == 0) != self.filled(model):
                self._style(layer, model)
        self._legend()
        if previous is not None and previous is not result:
            previous.release()

    def apply(self, result: ComparisonResult | None, side_by_side: bool | None = None) -> None:
        """:meth:`show` in one go."""
        for _ in self.show(result, side_by_side):
            pass

    def set_side_by_side(self, on: bool) -> None:
        self.apply(self.result, on)

    def _style(self, layer: Layer, model: str) -> None:
        for key, value in instance_style(model, self.filled(model)).items():
            setattr(layer, key, value)

    def filled(self, model: str) -> bool:
        """Whether ``model``'s nuclei are drawn filled: with fills on, B's stay outlines while it lies under A's
        fills in one view (A's opaque shades hid it); side by side, each cell's are filled."""
        r = self.result
        under = model == "dense" and r is not None and r.pruned is not None and not self._side_by_side_on()
        return self.fill and not under

    def set_truth(self, layer: Layer | None) -> None:
        """The shown run's ground truth: drawn once as thin white outlines (the user may restyle it after), so
        its colours never read as a model's nuclei or a disagreement ring, and named in the legend."""
        if self.truth_layer is not None:
            self.truth_layer.events.visible.disconnect(self._legend_changed)
        self.truth_layer = layer
        if layer is not None:
            self.style_truth(layer)
            layer.events.visible.connect(self._legend_changed)
        self._legend_changed()

    def style_truth(self, layer: Layer) -> None:
        """A ground truth (chosen, or the run's) drawn as thin white outlines, once per layer (the user may
        restyle it after): a newly chosen one showed in napari's fills until the next run (session 37)."""
        if not raw(layer).metadata.get(TRUTH_STYLED):  # (a flag on the layer: ids of deleted layers come back)
            raw(layer).metadata[TRUTH_STYLED] = True
            layer.colormap, layer.contour, layer.opacity = truth_colormap(), 1, 0.9

    def set_fill(self, on: bool) -> None:
        """Nuclei filled (each model in its shades) or as outlines in the model's colour."""
        self.fill = bool(on)
        for (model, output), layer in self.owned().items():
            if output == "instances":
                self._style(layer, model)
        self._legend_changed()

    def clear(self) -> None:
        """Remove every layer the plugin made, give back the grid, release scratch stores."""
        self.apply(None)
        self.layers.clear()

    def legend_items(self) -> list[tuple[str, str]]:
        """(colour, what it means) for every visible layer of the run: the legend, beside the canvas."""
        r, owned = self.result, self.owned()
        if r is None:
            return []
        items = []
        for model, seg in (("pruned", r.pruned), ("dense", r.dense)):
            layer = owned.get((model, "instances"))
            if seg is not None and layer is not None and layer.visible:
                who = ("A · " if model == "pruned" else "B · ") if r.pruned is not None and r.dense is not None else ""
                how = "fills" if self.filled(model) else "outlines, under A's fills" if self.fill else "outlines"
                what = f"nuclei ({how})" if seg.n_nuclei else "no nuclei found"
                items.append((MODEL_COLORS[model][0], f"{who}{seg.info.model}: {what}"))
        for model, seg in (("pruned", r.pruned), ("dense", r.dense)):  # a map the user shows (hidden at first)
            who = ("A · " if model == "pruned" else "B · ") if r.pruned is not None and r.dense is not None else ""
            for output, (colour, what) in MAP_KEYS.items():
                layer = owned.get((model, output))
                if seg is not None and layer is not None and layer.visible:
                    items.append((colour, f"{who}{seg.info.model}: {what}"))
        truth = self.truth_layer
        views = [owned.get(("view", "dense truth")), owned.get(("view", "pruned truth"))]
        seen = truth is not None and truth in self.viewer.layers and truth.visible
        if truth is not None and (seen or any(layer is not None and layer.visible for layer in views)):
            items.append((TRUTH_COLOR, f"ground truth '{truth.name}': nuclei (thin outlines)"))
        marks = [owned.get(("pruned", "disagreement")), owned.get(("view", "disagreement"))]
        if any(layer is not None and layer.visible for layer in marks):
            b = r.dense.info.model
            what = {"missed": f"a nucleus of B ({b}) that A lacks", "extra": "a nucleus of A that B lacks",
                    "split": "one nucleus of B split by A", "merged": "nuclei of B merged into one by A"}
            counts = (r.numbers.disagreement if r.numbers is not None else None) or {}
            for key, kind in DISAGREEMENT_KINDS.items():
                if counts.get(kind, 1):  # a kind with no event this run is not keyed (reviewer)
                    items.append((DISAGREEMENT_COLORS[key], f"thick ring, {kind}: {what.get(kind, kind)}"))
        return items

    def legend_text(self) -> str:
        """The canvas legend: in side by side, which cell is which model (one line at the top)."""
        r = self.result
        if r is None or not self._side_by_side_on():
            return ""
        return f"left: B · {r.dense.info.model}  |  right: A · {r.pruned.info.model}"

    def _legend_changed(self, *_) -> None:
        if self.on_legend is not None:
            self.on_legend()

    def _legend(self) -> None:
        self._legend_changed()
        overlay = self.viewer.canvas.overlays.text
        text = self.legend_text()
        if text:
            stop_warm_up(self.viewer)  # (the dock's glyph warm-up, if still running, gives the overlay back first)
            if self._overlay_before is None:
                self._overlay_before = (overlay.visible, overlay.text, overlay.position, overlay.font_size)
            overlay.text, overlay.position, overlay.visible = text, "top_center", True
            overlay.font_size = 9  # fits a 1366 px wide window's canvas
        elif self._overlay_before is not None:
            overlay.visible, overlay.text, overlay.position, overlay.font_size = self._overlay_before
            self._overlay_before = None

    # ---- side by side ---------------------------------------------------
    def _restore_grid(self) -> None:
        """Give the user's grid settings (and the image's visibility) back, if the plugin changed them: the grid
        first, so that the layers shown again are not laid out in cells of their own on the way (a stall of
        150-200 ms)."""
        if self._grid_before is not None:
            grid = self.viewer.canvas.grid
            grid.enabled, grid.stride, grid.shape = self._grid_before
            self._grid_before = None
        if self._image_visible is not None:
            image = self.image_layer()
            if image is not None:
                image.visible = self._image_visible
            self._image_visible = None
        for layer in getattr(self, "_others_hidden", []):  # the user's other layers, as they were
            if layer in self.viewer.layers:
                layer.visible = True
        self._others_hidden = []

    def _arrange(self) -> None:
        """napari grid mode (one camera): the dense cell left, the pruned cell right; both cells hold
        ``stride`` layers at the top of the layer list, the user's layers below take no cell while hidden."""
        grid = self.viewer.canvas.grid
        if not self._side_by_side_on():
            self._restore_grid()
            return
        owned = self.owned()
        stride = max(sum(r in owned for r in DENSE_CELL), sum(r in owned for r in PRUNED_CELL))
        image = self.image_layer()
        if self._image_visible is None:  # the image's views stand in for it in the two cells
            self._image_visible = image.visible
        image.visible = False
        # any other visible layer of the user (another image, a ground truth) would take a grid cell of its own
        # beside the two the legend names: hidden while side by side is on, shown again after
        mine = {id(raw(layer)) for layer in owned.values()} | {id(raw(image))}
        hidden = [layer for layer in self.viewer.layers if id(raw(layer)) not in mine and layer.visible]
        for layer in hidden:
            layer.visible = False
        self._others_hidden = [*getattr(self, "_others_hidden", []), *hidden]
        if self._grid_before is None:
            self._grid_before = (grid.enabled, grid.stride, grid.shape)
        grid.stride = -stride
        grid.shape = (1, -1)
        grid.enabled = True
        fit(self.viewer, [*owned.values(), image])
