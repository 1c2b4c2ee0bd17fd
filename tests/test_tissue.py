"""Glass is skipped: tiles without tissue cost no network call, and the labels are those of a full run."""

import numpy as np

from napari_prunuclei import segment
from napari_prunuclei.nuclei.synthetic import synthetic_tile
from napari_prunuclei.runtime.request import Tiling
from napari_prunuclei.runtime.tissue import core_has_tissue, tissue_box, tissue_pixels


def _glass(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(236, 2.5, (h, w, 3)), 0, 255).astype(np.uint8)


def test_glass_is_not_tissue_and_stain_is():
    glass = _glass(64, 64)
    assert not tissue_pixels(glass).any() and not core_has_tissue(glass, (0, 64, 0, 64))
    rgb, _ = synthetic_tile(64, seed=1)
    assert tissue_pixels(rgb).mean() > 0.5 and core_has_tissue(rgb, (0, 64, 0, 64))
    spot = glass.copy()
    spot[30:36, 30:36] = (120, 60, 140)  # one small nucleus-sized stain: the tile runs
    assert core_has_tissue(spot, (0, 64, 0, 64))
    assert tissue_box(spot) == (0, 64, 0, 64)  # grown by the context, clipped to the crop


def test_a_mostly_glass_slide_skips_its_glass_tiles_with_the_labels_of_a_full_run():
    slide = _glass(768, 768)
    tissue, _ = synthetic_tile(200, seed=2)
    slide[300:500, 280:480] = tissue
    tiling = Tiling("tiled", 192, 48)
    fast = segment(slide, device="cpu", tiling=tiling, post_workers=0)
    full = segment(slide, device="cpu", tiling=tiling, post_workers=0, tissue_mask=False)
    assert fast.info.tissue["glass_tiles"] >= 10 and full.info.tissue["glass_tiles"] == 0
    assert fast.n_nuclei > 5
    assert abs(fast.n_nuclei - full.n_nuclei) <= max(1, full.n_nuclei // 50)  # within 2 %
    assert not fast.labels[:250].any() and not fast.labels[:, :230].any()  # nothing on the glass
    # the low-resolution mask: tissue where the tissue was put, glass elsewhere; throughput per MP of tissue
    assert fast.tissue.shape == (48, 48) and fast.tissue[20:30, 19:29].all() and not fast.tissue[:15].any()
    assert 0.05 < fast.info.tissue["tissue_fraction"] < 0.1 and fast.info.tissue["mp_per_s_tissue"] > 0
