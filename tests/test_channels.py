"""Channel pruning: dependency consistency, achieved CR, smaller files that round-trip, tampering refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_prunuclei.base.constants import CHANNEL_SCHEMES
from napari_prunuclei.models.unet import UNet, UNetConfig
from napari_prunuclei.models.weights import WeightsError, load_branch, save_branch, sha256_file
from napari_prunuclei.pruning.channels import (
    channel_prune,
    conv_layers,
    cut_channels,
    filter_magnitudes,
    macs,
    plan_channels,
    prunable_count,
)


def _model(seed: int = 0, base: int = 16) -> UNet:
    torch.manual_seed(seed)
    m = UNet(UNetConfig(base_filters=base))
    with torch.no_grad():  # non-trivial BatchNorm so that folding matters
        for _, bn in conv_layers(m):
            if bn is not None:
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.1, 0.1)
                bn.running_mean.uniform_(-0.1, 0.1)
                bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def test_prunable_count_matches_the_modules():
    from napari_prunuclei.pruning.magnitude import prunable_parameters

    for cfg in (UNetConfig(), UNetConfig(channels=tuple(range(8, 8 + 22)))):
        m = UNet(cfg)
        assert prunable_count(cfg) == sum(p.numel() for p in prunable_parameters(m).values())


def test_macs_counts_every_convolution():
    cfg = UNetConfig(base_filters=4)
    m = UNet(cfg).eval()
    total = [0]

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        if isinstance(mod, torch.nn.ConvTranspose2d):
            total[0] += inp[0].numel() * mod.out_channels * k
        else:
            total[0] += out.numel() * mod.in_channels * k

    for mod in m.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            mod.register_forward_hook(hook)
    with torch.no_grad():
        m(torch.zeros(1, 3, 64, 64))
    assert macs(cfg, 64, 64) == total[0]


def test_removing_silent_channels_leaves_the_output_unchanged():
    """The dependency graph follows skips, transposed convolutions and BatchNorm: channels that
    contribute nothing (filter, BatchNorm scale and shift zero) can be cut without changing a pixel,
    and magnitude ranking finds exactly them."""
    m = _model(1)
    rng = np.random.default_rng(0)
    keep = []
    with torch.no_grad():
        for conv, bn in conv_layers(m):
            n = conv.out_channels
            silent = rng.choice(n, size=n // 2 - 1, replace=False)
            keep.append(sorted(set(range(n)) - set(silent.tolist())))
            if isinstance(conv, torch.nn.ConvTranspose2d):
                conv.weight[:, silent] = 0
                conv.bias[silent] = 0
            else:
                conv.weight[silent] = 0
                bn.weight[silent] = 0
                bn.bias[silent] = 0
    x = torch.rand(2, 3, 64, 48)
    pruned = cut_channels(m, keep)
    assert pruned.config.channels == tuple(len(k) for k in keep)
    with torch.no_grad():
        assert torch.allclose(pruned(x), m(x), atol=1e-5)
    assert [sorted(np.flatnonzero(mg > 0).tolist()) for mg in filter_magnitudes(m)] == keep


@pytest.mark.parametrize("scheme", CHANNEL_SCHEMES)
@pytest.mark.parametrize("cr", [2, 4, 8, 16, 32])
def test_achieved_cr_within_5_percent_and_shapes_unchanged(scheme, cr):
    m = _model(2)
    pruned, plan = channel_prune(m, scheme, cr)
    assert abs(plan.achieved_cr / cr - 1) < 0.05
    assert all(c % 8 == 0 for c in plan.channels)
    assert prunable_count(pruned.config) == plan.prunable
    assert pruned.head.out_channels == 1 and pruned.down[0][0].in_channels == 3
    x = torch.rand(2, 3, 48, 80)
    with torch.no_grad():
        assert pruned(x).shape == m(x).shape == (2, 1, 48, 80)


def test_layerwise_keeps_the_same_fraction_and_networkwide_differs():
    m = _model(3)
    lw = plan_channels(m, "channel-layerwise", 4, multiple=1)
    dense = np.array(m.config.conv_channels(), float)
    frac = np.array(lw.channels) / dense
    assert frac.max() - frac.min() < 0.2
    nw = plan_channels(m, "channel-networkwide", 4, multiple=1)
    assert nw.channels != lw.channels


def test_a_ladder_step_never_grows_a_layer():
    m = _model(4)
    first, _ = channel_prune(m, "channel-networkwide", 2)
    second, plan = channel_prune(first, "channel-networkwide", 8, dense_config=m.config)
    assert all(b <= a for a, b in zip(first.config.conv_channels(), plan.channels))
    assert abs(plan.achieved_cr / 8 - 1) < 0.05


def test_smaller_file_round_trip_and_tampering_refused(tmp_path):
    m = _model(5)
    pruned, plan = channel_prune(m, "channel-layerwise", 8)
    dense_file, small_file = tmp_path / "dense.safetensors", tmp_path / "small.safetensors"
    save_branch(dense_file, m)
    sha = save_branch(small_file, pruned, {"scheme": "channel-layerwise", "cr": 8})
    assert small_file.stat().st_size < dense_file.stat().st_size / 5
    back = load_branch(small_file, sha256=sha)
    assert back.config.channels == plan.channels
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(back(x), pruned(x))
    data = bytearray(small_file.read_bytes())
    data[-10] ^= 0xFF
    small_file.write_bytes(bytes(data))
    assert sha256_file(small_file) != sha
    with pytest.raises(WeightsError, match="corrupt or was modified"):
        load_branch(small_file, sha256=sha)


def test_a_file_whose_channels_do_not_fit_is_refused(tmp_path):
    pruned, _ = channel_prune(_model(6), "channel-layerwise", 4)
    f = tmp_path / "bad.safetensors"
    save_branch(f, pruned)
    import json

    from safetensors.torch import load_file, save_file

    from napari_prunuclei.models.weights import read_metadata

    meta = read_metadata(f)
    cfg = json.loads(meta["config"])
    cfg["channels"][3] += 8  # the recorded configuration no longer matches the tensors
    meta["config"] = json.dumps(cfg)
    save_file(load_file(str(f)), str(f), metadata=meta)
    with pytest.raises(WeightsError, match="does not fit"):
        load_branch(f)


def test_bad_arguments():
    m = _model(7)
    with pytest.raises(ValueError, match="scheme"):
        plan_channels(m, "layerwise", 4)
    with pytest.raises(ValueError, match=">= 1"):
        plan_channels(m, "channel-layerwise", 0.5)
    with pytest.raises(ValueError, match="channels"):
        UNetConfig(channels=(8, 8))
