import numpy as np
import pytest

from napari_prunuclei.data import distance_target
from napari_prunuclei.metrics import aji, panoptic_quality
from napari_prunuclei.postprocess import WatershedParams, watershed_instances
from napari_prunuclei.synthetic import synthetic_tile
from reference_tiled import watershed_reference


def test_watershed_recovers_synthetic_nuclei_from_ideal_maps():
    _, truth = synthetic_tile(256, seed=3)
    prob = (truth > 0).astype(np.float32)
    dist = distance_target(truth)
    pred = watershed_instances(prob, dist, WatershedParams(0.5, 0.4, 5))
    assert pred.max() == pytest.approx(truth.max(), abs=2)
    assert aji(truth, pred) > 0.9
    assert panoptic_quality(truth, pred)["dq"] > 0.95


def test_touching_nuclei_are_split():
    truth = np.zeros((20, 40), int)
    truth[3:17, 3:20] = 1
    truth[3:17, 20:37] = 2
    pred = watershed_instances((truth > 0).astype(float), distance_target(truth), WatershedParams(0.5, 0.5, 5))
    assert pred.max() == 2


def test_min_size_and_labels_sequential():
    truth = np.zeros((30, 30), int)
    truth[2:12, 2:12] = 1
    truth[20:22, 20:22] = 2  # 4 px
    pred = watershed_instances((truth > 0).astype(float), distance_target(truth), WatershedParams(0.5, 0.3, 10))
    assert set(np.unique(pred)) == {0, 1}


def test_params_validated():
    with pytest.raises(ValueError, match="fg_threshold"):
        WatershedParams(fg_threshold=1.5)
    with pytest.raises(ValueError, match="shapes"):
        watershed_instances(np.zeros((3, 3)), np.zeros((4, 4)))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("params", [WatershedParams(), WatershedParams(0.3, 0.2, 4), WatershedParams(0.6, 0.5, 30)])
def test_flooding_only_multi_marker_components_is_identical(seed, params):
    """Components with one marker (or none) are written from a table; the labels must not change."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    _, truth = synthetic_tile(160, seed=seed)
    noise = ndi.gaussian_filter(rng.random(truth.shape), 2)
    prob = np.clip((truth > 0) * 0.8 + noise - 0.3, 0, 1).astype(np.float32)
    dist = np.clip(distance_target(truth) + 0.5 * (noise - noise.mean()), 0, 1).astype(np.float32)
    dist[rng.random(dist.shape) < 0.01] = 1.0  # stray markers: plateaus and ties in the flooding
    ours = watershed_instances(prob, dist, params)
    np.testing.assert_array_equal(ours, watershed_reference(prob, dist, params))
    assert ours.dtype == np.int32


def test_flooding_with_no_foreground_or_no_markers():
    zeros = np.zeros((16, 16), np.float32)
    assert watershed_instances(zeros, zeros).max() == 0
    assert watershed_instances(np.ones((16, 16), np.float32), zeros).max() == 0
