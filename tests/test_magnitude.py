import pytest
import torch

from napari_prunuclei.models.sparse import load_sparse, save_sparse
from napari_prunuclei.models.unet import UNet, UNetConfig
from napari_prunuclei.models.weights import WeightsError, save_branch
from napari_prunuclei.pruning.magnitude import (
    kept_count,
    magnitude_masks,
    prunable_parameters,
    prune,
    recalibrate_batchnorm,
    sparsity_report,
)

ZOO_CRS = [2, 4, 5, 8, 10, 16, 20, 32, 50, 100]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UNet()


def test_head_and_biases_are_not_prunable(model):
    names = list(prunable_parameters(model))
    assert "head.weight" not in names and all(n.endswith("weight") for n in names)
    assert sum(p.numel() for p in prunable_parameters(model).values()) == 1_939_376


@pytest.mark.parametrize("scheme", ["layerwise", "networkwide"])
@pytest.mark.parametrize("cr", ZOO_CRS + [3, 7.5])
def test_exact_compression_ratio(model, scheme, cr):
    pruned, masks = prune(model, scheme, cr)
    n = sum(m.numel() for m in masks.values())
    kept = sum(int(torch.count_nonzero(p)) for p in prunable_parameters(pruned).values())
    assert kept == kept_count(n, cr) == round(n / cr)
    assert sum(int(m.sum()) for m in masks.values()) == kept


def test_layerwise_keeps_the_same_fraction_everywhere(model):
    masks = magnitude_masks(model, "layerwise", 20)
    for m in masks.values():
        assert abs(int(m.sum()) - m.numel() / 20) <= 1


def test_networkwide_is_one_global_threshold(model):
    masks = magnitude_masks(model, "networkwide", 10)
    params = prunable_parameters(model)
    kept = torch.cat([params[k].detach().abs().flatten()[masks[k].flatten()] for k in masks])
    dropped = torch.cat([params[k].detach().abs().flatten()[~masks[k].flatten()] for k in masks])
    assert kept.min() >= dropped.max()
    rows = sparsity_report(prune(model, "networkwide", 10)[0])
    assert len({round(r["sparsity"], 2) for r in rows}) > 3  # sparsity differs per layer


def test_bad_scheme_and_cr(model):
    with pytest.raises(ValueError, match="scheme"):
        magnitude_masks(model, "random", 2)
    with pytest.raises(ValueError, match=">= 1"):
        magnitude_masks(model, "layerwise", 0.5)


@pytest.mark.parametrize("cr", [2, 20, 100])
def test_sparse_round_trip_is_bit_exact_and_small(model, tmp_path, cr):
    pruned, masks = prune(model, "networkwide", cr)
    sha = save_sparse(tmp_path / "s.safetensors", pruned, masks)
    save_branch(tmp_path / "d.safetensors", pruned)
    dense_size = (tmp_path / "d.safetensors").stat().st_size
    back, masks2, meta = load_sparse(tmp_path / "s.safetensors", sha256=sha)
    for (k, a), b in zip(pruned.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), k
    assert all(torch.equal(masks[k], masks2[k]) for k in masks)
    ratio = (tmp_path / "s.safetensors").stat().st_size / dense_size
    assert ratio < (4 / cr + 1 / 8) / 4 + 0.02
    if cr >= 20:
        assert ratio <= 0.15


def test_tampered_sparse_file_is_refused(model, tmp_path):
    pruned, masks = prune(model, "layerwise", 8)
    p = tmp_path / "s.safetensors"
    sha = save_sparse(p, pruned, masks)
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 1
    p.write_bytes(bytes(b))
    with pytest.raises(WeightsError, match="modified"):
        load_sparse(p, sha256=sha)


def test_recalibrate_batchnorm_changes_only_statistics():
    m = UNet(UNetConfig(base_filters=4))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    recalibrate_batchnorm(m, [torch.rand(2, 3, 32, 32) for _ in range(2)])
    after = m.state_dict()
    for k in before:
        if "running" in k or "num_batches" in k:
            continue
        assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["down.0.1.running_mean"], after["down.0.1.running_mean"])
    assert m.training  # the mode it was in is restored
