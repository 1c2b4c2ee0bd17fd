"""Dataset reader, training targets and augmentation.

The dataset layout is the one in ``../shared/data``::

    ROOT/images/<name>.png   RGB uint8
    ROOT/labels/<name>.tif   uint16 instance ids, 0 = background
    ROOT/split.json          {"train": [...], "test": [...]}

Distance target (``distance_target``): for every nucleus, the Euclidean distance
of each of its pixels to the nearest pixel outside that nucleus, divided by the
nucleus's own maximum, so every nucleus peaks at exactly 1 and the background is
0. One marker threshold then fits small and large nuclei alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_prunuclei.io.images import read_image
from napari_prunuclei.io.labels import read_labels

__all__ = [
    "DataError",
    "NucleiDataset",
    "distance_target",
    "split_train_val",
    "hed_jitter",
    "augment",
    "random_crops",
]


class DataError(ValueError):
    """A data folder is missing, malformed or inconsistent."""


@dataclass
class NucleiDataset:
    """Reader for one dataset folder (``images/``, ``labels/``, ``split.json``)."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise DataError(f"data folder not found: {self.root}")
        for sub in ("images", "labels"):
            if not (self.root / sub).is_dir():
                raise DataError(f"data folder {self.root} has no '{sub}/' subfolder")
        split_file = self.root / "split.json"
        if not split_file.is_file():
            raise DataError(f"data folder {self.root} has no split.json")
        try:
            split = json.loads(split_file.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{split_file} is not valid JSON: {e}") from None
        if not isinstance(split, dict):
            raise DataError(f"{split_file} must hold an object of split name -> list of names")
        self.splits: dict[str, list[str]] = {
            k: list(v) for k, v in split.items() if isinstance(v, list)
        }
        for k, names in self.splits.items():  # names, not paths: nothing outside the data folder is read
            bad = [n for n in names if not isinstance(n, str) or not n or n in (".", "..") or "/" in n
                   or "\\" in n or "\0" in n]
            if bad:
                raise DataError(f"{split_file}: split {k!r} lists {bad[0]!r}, which is not an image name "
                                "(a name without folders, as in images/<name>.png)")

    def names(self, split: str) -> list[str]:
        """Image names of one split (``train``, ``test``...)."""
        if split not in self.splits:
            raise DataError(
                f"split {split!r} not in {self.root / 'split.json'} "
                f"(has: {', '.join(sorted(self.splits)) or 'none'})"
            )
        return list(self.splits[split])

    def image_path(self, name: str) -> Path:
        return self.root / "images" / f"{name}.png"

    def label_path(self, name: str) -> Path:
        return self.root / "labels" / f"{name}.tif"

    def load(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(rgb uint8 HxWx3, labels int32 HxW)`` of one image."""
        img_p, lab_p = self.image_path(name), self.label_path(name)
        if not img_p.is_file():
            raise DataError(f"image of {name!r} missing: {img_p}")
        if not lab_p.is_file():
            raise DataError(f"labels of {name!r} missing: {lab_p}")
        rgb = read_image(img_p)
        lab = read_labels(lab_p)
        if lab.shape != rgb.shape[:2]:
            raise DataError(
                f"{name}: labels {lab.shape} and image {rgb.shape[:2]} differ in size"
            )
        return rgb, lab


def split_train_val(names: list[str], n_val: int = 4, seed: int = 0) -> tuple[list[str], list[str]]:
    """Hold back ``n_val`` of ``names`` (seeded) for tuning; return ``(train, val)``."""
    names = sorted(names)
    if n_val <= 0:
        return names, []
    if n_val >= len(names):
        raise DataError(f"cannot hold back {n_val} of {len(names)} images")
    rng = np.random.default_rng(seed)
    val = sorted(rng.choice(names, size=n_val, replace=False).tolist())
    return [n for n in names if n not in val], val


def distance_target(labels: np.ndarray) -> np.ndarray:
    """Per-nucleus normalised inner distance map in [0, 1] (float32)."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, np.float32)
    for idx, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        # one pixel of margin so the object never touches the crop border
        sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        mask = labels[sl] == idx
        padded = np.pad(mask, 1)
        d = ndi.distance_transform_edt(padded)[1:-1, 1:-1]
        peak = d[mask].max()
        if peak > 0:
            out[sl][mask] = d[mask] / peak
    return out


# Ruifrok & Johnston stain vectors, as in skimage.color
RGB_FROM_HED = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float32
)
RGB_FROM_HED[2] = np.cross(RGB_FROM_HED[0], RGB_FROM_HED[1])
RGB_FROM_HED /= np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
_HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED).astype(np.float32)


def hed_jitter(
    rgb: np.ndarray, rng: np.random.Generator, sigma: float = 0.05, bias: float = 0.05
) -> np.ndarray:
    """Stain jitter in HED optical-density space; float RGB in [0, 1] in and out."""
    od = -np.log(np.clip(rgb, 1 / 255, 1.0))
    hed = od @ _HED_FROM_RGB
    alpha = rng.uniform(1 - sigma, 1 + sigma, size=3).astype(np.float32)
    beta = rng.uniform(-bias, bias, size=3).astype(np.float32)
    hed = hed * alpha + beta
    return np.clip(np.exp(-(hed @ RGB_FROM_HED)), 0.0, 1.0)


def augment(
    rgb: np.ndarray, targets: list[np.ndarray], rng: np.random.Generator, stain: float = 0.05
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Random flips, 90-degree rotations, HED stain and brightness/contrast jitter.

    ``rgb`` is float32 HxWx3 in [0, 1]; ``targets`` are HxW maps moved the same way. ``stain``: each stain's
    optical density scaled by U(1 - stain, 1 + stain) and shifted by U(-stain, stain) (the same draws whatever
    its value).
    """
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))

    def geo(a: np.ndarray) -> np.ndarray:
        a = np.rot90(a, k, axes=(0, 1))
        return a[:, ::-1] if flip else a

    rgb = hed_jitter(geo(rgb), rng, sigma=stain, bias=stain)
    contrast = rng.uniform(0.9, 1.1)
    bright = rng.uniform(-0.05, 0.05)
    rgb = np.clip((rgb - 0.5) * contrast + 0.5 + bright, 0, 1).astype(np.float32)
    return np.ascontiguousarray(rgb), [np.ascontiguousarray(geo(t)) for t in targets]


def random_crops(
    images: list[np.ndarray],
    targets: list[np.ndarray],
    n: int,
    size: int,
    rng: np.random.Generator,
    augment_fn=augment,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` random ``size``x``size`` crops (augmented) from the images.

    ``images`` are float32 HxWx3 in [0, 1], ``targets`` float32 HxW (or HxWxC: several
    maps moved together). Returns ``(x: n x 3 x size x size, y: n x C x size x size)``.
    """
    xs, ys = [], []
    for _ in range(n):
        i = int(rng.integers(len(images)))
        img, tgt = images[i], targets[i]
        h, w = tgt.shape[:2]
        if h < size or w < size:
            raise DataError(f"image {i} ({h}x{w}) is smaller than the crop size {size}")
        r, c = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        x, (y,) = augment_fn(img[r : r + size, c : c + size], [tgt[r : r + size, c : c + size]], rng)
        xs.append(x.transpose(2, 0, 1))
        ys.append(y[None] if y.ndim == 2 else np.moveaxis(y, -1, 0))
    return np.stack(xs), np.stack(ys)
