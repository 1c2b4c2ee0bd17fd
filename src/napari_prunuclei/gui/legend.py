"""The legend beside the canvas, and the run's layers kept on the image they were computed on: a layer of the user's
drawn over that image is named, and the run's layers follow the image when it is moved or rescaled."""

from __future__ import annotations

from napari.layers import Image, Labels

from napari_prunuclei.base.constants import TRUTH_COLOR
from napari_prunuclei.gui.state import raw
from napari_prunuclei.gui.truths import image_of


def overlap(a, b) -> bool:
    """Whether two layers' footprints on the canvas (their world extents, rows and columns: first and last pixel
    centres) share a pixel's place."""
    ea, eb = a.extent.world, b.extent.world
    return all(max(ea[0][i], eb[0][i]) <= min(ea[1][i], eb[1][i]) for i in (-2, -1))


class LegendActions:
    """Methods of :class:`~napari_prunuclei.gui.widget.PruneCompareWidget`: the legend and the run's placement."""

    def _draw_legend(self, *_) -> None:
        """The legend beside the canvas (never over the nuclei): a swatch per visible layer of the run, and a
        warning first while another layer is shown over the run's image (a second tile opened over it)."""
        from html import escape

        items = self.state.legend_items()
        chosen, run = self.truth.value, self.state.image_layer()
        if chosen is not None and raw(chosen) is not raw(self.state.truth_layer) and chosen in self.viewer.layers \
                and chosen.visible and (run is None or self.on_runs_image()):  # chosen since the run shown
            # (or before any run): not scored yet; not while another image is chosen: the canvas shows the run's
            # before a run, the images and label layers over it (a pathologist read another tile's outlines as it)
            layers = list(self.viewer.layers) if run is None else []
            at = next((i for i, layer in enumerate(layers) if raw(layer) is raw(chosen)), len(layers))
            over = [f"'{layer.name}'" for layer in layers[at + 1:] if layer.visible and overlap(layer, chosen)
                    and isinstance(raw(layer), (Image, Labels))]
            items.append((TRUTH_COLOR, f"ground truth '{chosen.name}': nuclei (thin outlines; chosen, not yet run"
                                       + (f"; under {', '.join(over)}, which you see instead)" if over else ")")))
        text = "<br>".join(f'<span style="color:{c}">■</span> {escape(t)}' for c, t in items)
        covering = self.covering_layers() if self.state.result is not None else []
        if self.run_image_hidden():  # its results lie over other layers' tissue (pathologist, session 38)
            what = f"the run's image '{run.name}' is hidden: its results lie over other layers; show it"
            if covering:  # ... and what lies over them (a tile opened since: pathologist, session 39)
                what = (f"the run's image '{run.name}' is hidden and {', '.join(f'{n!r}' for n in covering)} lie(s) "
                        "over its results: show it and hide them")
            text = (f'<span style="color:#e0a000">⚠ {escape(what)} to see the run on it</span>'
                    + (f"<br>{text}" if text else ""))
        elif covering:  # each name once (a pathologist read two long tile names, wrapped, before any swatch)
            names = ", ".join(f"'{n}'" for n in covering)
            what = (f"{names} covers {self.covered()} the run's image: hide it" if len(covering) == 1
                    else f"{len(covering)} layers cover {self.covered()} the run's image ({names}): hide them")
            text = (f'<span style="color:#e0a000">⚠ {escape(what)} to see the run on it</span>'
                    + (f"<br>{text}" if text else ""))
        elif self._cover_note and self._cover_note in str(self.status.value):  # the run's note, no longer true
            self.status.value = str(self.status.value).replace(self._cover_note, "")
            self._cover_note = ""
        self.legend.value = text

    def on_runs_image(self) -> bool:
        """Whether the image chosen in the widget is the shown run's (compared raw: the dock's viewer hands out
        a new proxy of a layer at each lookup, so ``is`` never held; reviewer, session 38)."""
        run = self.state.image_layer()
        return run is not None and self.image.value is not None and raw(self.image.value) is raw(run)

    def covered(self) -> str:
        """How much of the run's image the layers over it cover: "all of" or "part of"."""
        image, ext = self.state.image_layer(), []
        for name in self.covering_layers():
            ext.append(self.viewer.layers[name].extent.world)
        e = image.extent.world
        whole = any(all(x[0][i] <= e[0][i] and x[1][i] >= e[1][i] for i in (-2, -1)) for x in ext)
        return "all of" if whole else "part of"

    def _on_layer_event(self, event) -> None:
        """Any layer's event, re-emitted by the layer list: a layer hidden or shown redraws the legend (its warning
        of a layer over the run's image went only at the next run; pathologist passes, session 34); an image's
        grid changed moves the label layers the plugin placed on it and, for the run's image, the run's layers."""
        kind = getattr(event, "type", None)
        if kind == "visible":
            self._draw_legend()
        elif kind in ("scale", "translate", "units"):
            # (re-emitted by the layer list, whose event's index went stale once side by side had moved layers:
            # the grids are compared instead, each cheap and idempotent; the layers moved here emit again: ignored)
            if self._placing:
                return
            self._placing = True
            try:
                self._regrid_truths()  # label layers the plugin placed follow their image's new grid
                if self._steps is None:  # (a showing places them itself)
                    self._follow_image()
                self._draw_legend()  # what covers the run's image depends on where each lies
            finally:
                self._placing = False

    def _follow_image(self) -> None:
        """The run's layers put again on its image's grid (moved or rescaled after the run: a pathologist saw
        results left behind, drawn over another tile's tissue, session 37); a side-by-side view moved by hand is
        put back on it (its cell's results would stay behind), and the status says where to move the image."""
        r = self.state.result
        if r is None:
            return
        scale, origin = self.state.image_grid()
        off = r.request.offset
        results = (scale, (origin[0] + off[0] * scale[0], origin[1] + off[1] * scale[1]))
        owned = self.state.owned()

        def off_grid(layer, want) -> bool:
            return layer is not None and (tuple(float(v) for v in layer.scale[-2:]),
                                          tuple(float(v) for v in layer.translate[-2:])) != want

        moved = [m for m in ("pruned", "dense") if off_grid(owned.get(("view", f"{m} image")), (scale, origin))]
        if not moved and not any(off_grid(owned.get((m, "instances")), results) for m in ("pruned", "dense")):
            return  # on it already (e.g. a run's own pixel size just put on the image, the layers with it)
        self._start_showing(self.state.show(r, bool(self.side_by_side.value)), hold=False)
        if moved:
            self.status.value = ("side by side: each cell's view stays on the run's image, under its results; to "
                                 "move the image, turn side by side off first")

    def run_image_hidden(self) -> bool:
        """Whether the shown run's image is hidden (side by side aside, which draws its own copies)."""
        image = self.state.image_layer()
        return image is not None and not self.state.side_by_side and not image.visible

    def covering_layers(self) -> list[str]:
        """The names of the user's visible layers that lie above the shown run's image, over part of it (its ground
        truth aside): there the run's results are drawn over them, not over the image they were computed on
        (two tiles open; a tile moved beside it covers nothing: a pathologist was warned of one, session 37)."""
        image = self.state.image_layer()
        if image is None or self.state.side_by_side:  # side by side hides the user's other layers
            return []
        mine = {id(raw(layer)) for layer in self.state.owned().values()}
        truths = {id(raw(t)) for t in (self.state.truth_layer, self.truth.value if self.on_runs_image() else None)
                  if t is not None}  # (the one chosen for the run's image too: drawn over it on purpose)
        images = self._image_choices()  # a ground truth named for the run's image (a second one opened, not
        truths |= {id(raw(t)) for t in self._truth_choices()  # chosen) is its own, outlined: pathologist, s. 38
                   if (of := image_of(t, images)) is not None and raw(of) is raw(image)}
        above = list(self.viewer.layers)[self.viewer.layers.index(image) + 1:]
        return [layer.name for layer in above if layer.visible and id(raw(layer)) not in mine
                and id(raw(layer)) not in truths and overlap(layer, image)]
