"""The real H&E samples shipped with the package open with their pixel size and credit."""

import numpy as np
import pytest

from napari_prunuclei.gui.samples import cmu1_sample, os1_sample
from napari_prunuclei.io.samples import SAMPLES, load_sample, sample_path


@pytest.mark.parametrize("key,px,side", [("os1", 0.227, 1101), ("cmu1", 0.499, 1024)])
def test_each_sample_is_real_rgb_tissue_with_its_pixel_size(key, px, side):
    rgb, got = load_sample(key)
    assert rgb.shape == (side, side, 3) and rgb.dtype == np.uint8
    assert got == pytest.approx(px, abs=1e-3)
    assert 60 < rgb.mean() < 230 and rgb.std() > 20  # tissue, not a flat fill
    assert (sample_path(key).parent / "NOTICE.md").read_text().count("OpenSlide") >= 2


def test_the_napari_samples_carry_pixel_size_and_credit():
    for fn, key in ((os1_sample, "os1"), (cmu1_sample, "cmu1")):
        (data, meta, kind), = fn()
        assert kind == "image" and meta["rgb"] and data.shape[-1] == 3
        assert meta["metadata"]["pixel_size_um"] == pytest.approx(load_sample(key)[1])
        assert "OpenSlide" in meta["metadata"]["source"] and meta["name"] in SAMPLES[key].title
    with pytest.raises(ValueError, match="no sample"):
        sample_path("nope")
