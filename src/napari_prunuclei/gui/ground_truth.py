"""The widget's ground-truth choice: which labels layers are offered, which one belongs to the chosen image,
drawn on its grid, chosen again when its image is, and never scored against another image's nuclei."""

from __future__ import annotations

import numpy as np

from napari_prunuclei.gui.shown import AGAIN, STALE
from napari_prunuclei.gui.truths import GRID_KEY, align_new_truths, image_of, named_for, on_grid_of

#: the status's warning while the chosen ground truth is named for another open image
REFUSED = "Run refuses it"


class GroundTruthChoice:
    """Methods of :class:`~napari_prunuclei.gui.widget.PruneCompareWidget`: its ground-truth box."""

    def _truth_choices(self, *_) -> list:
        """The ground-truth box's choices: the user's label layers, never the plugin's own results."""
        from napari.layers import Labels

        return self._users_layers(Labels)

    def _truth_belongs(self, truth, image) -> bool:
        """A labels layer belongs to an image when its name is the image's (``truths.named_for``), when its
        metadata names the image, or when the user chose it for that image."""
        return (named_for(truth.name, image.name) or truth.metadata.get("image") == image.name
                or self._truths_chosen.get(image.name) == truth.name)

    def _own_truth(self, image):
        """The labels layer to choose for ``image``: the one the user chose for it before, else the one layer
        named for it (of its shape); None when there is none or the choice is not clear."""
        truths = self._truth_choices()
        if image.name in self._truths_chosen and self._truths_chosen[image.name] is None:
            return None  # the user chose none for it
        chosen = self._truths_chosen.get(image.name)
        before = next((t for t in truths if t.name == chosen), None)
        if before is not None:
            return before
        own = [t for t in truths if image_of(t, self._image_choices()) is image]
        return own[0] if len(own) == 1 else None

    def _truth_on_image(self, image) -> str:
        """A new image chosen: a ground truth of another image unchosen, this image's chosen (the one chosen
        for it before, or the one named for it); what was done, for the status ('' when nothing)."""
        truth = self.truth.value
        said = ""
        if truth is not None and image is not None and not self._truth_belongs(truth, image):
            kept = dict(self._truths_chosen)  # (unchosen here, not by the user: 'none' is not this image's choice)
            self.truth.value = None  # never scored against another image's nuclei
            self._truths_chosen = kept
            said = f"ground truth '{truth.name}' belongs to another image: unchosen"
        if self.truth.value is None and image is not None:
            own = self._own_truth(image)
            if own is not None:
                self.truth.value = own
                said = (f"{said}; " if said else "") + f"ground truth '{own.name}' chosen for '{image.name}'"
            elif said and self._truths_chosen.get(image.name, "") is None:
                said += f" (none, as you chose for '{image.name}')"
            elif said:
                said += f" ('{image.name}' has none open: open its label image, or choose one)"
        return f"{said}. " if said else ""

    def _on_truth(self, *_) -> None:
        """A ground truth chosen by the user counts as this image's; the shown numbers stay those of the run
        (the canvas is marked stale: Run scores against the new choice)."""
        truth, layer = self.truth.value, self.image.value
        if layer is not None:  # (None: the user chose none for this image; it stays so when it is chosen again)
            self._truths_chosen[layer.name] = truth.name if truth is not None else None
        if truth is not None and layer is not None:
            self._align_truth()  # drawn on the image's grid (µm) at once, not only after the next run
        if truth is not None:
            self.state.style_truth(truth)  # outlines, as the legend says (they showed in napari's fills till a run)
        self._draw_legend()
        if REFUSED in str(self.status.value) and not self._foreign_truth(layer):  # that warning no longer holds
            self.status.value = f"ground truth '{truth.name}' chosen" if truth is not None else "no ground truth"
        self._forget_sweep()
        self._mark_stale()
        foreign = self._foreign_truth(layer)
        if foreign:
            self.status.value = f"{foreign}: {REFUSED} (choose the ground truth of '{layer.name}', or none)"

    def _controls_said(self) -> str:
        """What the status says of the controls against the run shown (the stale warning, or that they describe
        it again), without the notices said before it: '' when it says neither."""
        status = str(self.status.value or "")
        at = [status.find(mark) for mark in (STALE, AGAIN) if mark in status]
        return status[min(at):] if at else ""

    def _foreign_truth(self, image) -> str:
        """Why the chosen ground truth is not ``image``'s: it is named for another open image ('' when not)."""
        truth = self.truth.value
        other = None if truth is None or image is None else image_of(truth, self._image_choices())
        if other is None or other is image:
            return ""
        return f"ground truth '{truth.name}' is named for the image '{other.name}', not '{image.name}'"

    def _check_truth(self, image) -> None:
        """Refuse a run on ``image`` scored against a ground truth named for another open image (its nuclei are
        not this image's: every AJI would be near 0, the verdict meaningless; pathologist pass, session 35)."""
        foreign = self._foreign_truth(image)
        if foreign:
            raise ValueError(f"{foreign}: choose the ground truth of '{image.name}', or none")

    def _align_truth(self) -> None:
        """The chosen ground truth, when it has the chosen image's shape, drawn on the image's grid (scale, offset
        and units: µm where the image has a pixel size)."""
        if self.image.value is not None and self.truth.value is not None:
            on_grid_of(self.truth.value, self.image.value)

    def _regrid_truths(self) -> None:
        """Label layers just opened (napari's grid: scale 1), or on the grid the plugin put them on before, drawn
        on the image they are named for (pathologist passes: a PNG's outlines lay 4x off a µm image); one opened
        for the chosen image, while no ground truth is chosen, is chosen."""
        truths = self._truth_choices()
        new = [t for t in truths if GRID_KEY not in t.metadata]
        align_new_truths(truths, self._image_choices())
        for t in new:  # a ground truth named for an open image: outlined when opened, not only once chosen
            if image_of(t, self._image_choices()) is not None:  # (pathologist, session 38: tile 2's in fills)
                self.state.style_truth(t)
        image = self.image.value
        if self.truth.value is None and image is not None:
            own = [t for t in new if image_of(t, self._image_choices()) is image]
            if len(own) == 1:
                self.truth.value = own[0]
                self.status.value = f"ground truth '{own[0].name}' chosen for '{image.name}'. {self._controls_said()}" \
                    .rstrip()  # (no dangling ". " when the controls say nothing: pathologist, session 39)

    def _truth_array(self, shape, region=None, truth=None, image=None) -> np.ndarray | None:
        """The ground truth's array (``truth``: a labels layer, else the chosen one) for an image (``image``, else
        the chosen one) of ``shape``, or cut to ``region`` of it; None (with an error shown) when it does not fit."""
        truth = self.truth.value if truth is None else truth
        if truth is None:
            return None
        if region is not None:  # the ground truth of the whole image, cut to the region
            r0, r1, c0, c1 = region
            data = truth.data[0] if truth.multiscale else truth.data
            if tuple(data.shape) == tuple(self._checked_shape(image)):
                return np.asarray(data[r0:r1, c0:c1])
        if tuple(truth.data.shape) != tuple(shape):
            self._error(f"ground truth '{truth.name}' has shape {truth.data.shape}, the image {tuple(shape)}")
            return None
        if self.tiling.is_tiled(shape):
            return None  # slides: counts only, no pixel-wise comparison
        return np.asarray(truth.data)

    def _checked_shape(self, layer=None) -> tuple[int, int]:
        layer = self.image.value if layer is None else layer
        data = layer.data[0] if layer.multiscale else layer.data
        return tuple(data.shape[:2])
