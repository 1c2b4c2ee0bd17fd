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
    head_input_keep,
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


def _foreground_in_the_smallest_filters(seed: int = 8) -> UNet:
    """A seeded U-Net shaped like the trained semantic branch at its head: the head's positive
    (foreground) weights sit on the last decoder convolution's smallest filters, the negative ones
    on its largest, and the bias is below 0 (measured on the dense semantic file: its 5 positive
    channels are its 5 smallest filters of 16, bias -0.10)."""
    m = _model(seed)
    conv, _ = conv_layers(m)[-1]
    n = conv.out_channels
    with torch.no_grad():
        pos = torch.arange(n) < n // 3  # the first third: positive weights, smallest filters
        conv.weight[pos] *= 0.3
        m.head.weight.copy_(torch.where(pos, 0.35, -0.5).view(1, n, 1, 1))
        m.head.bias.fill_(-0.1)
    return m.eval()


@pytest.mark.parametrize("cr", [2, 4, 16])  # CRs at which this model's head input is cut to 8 of 16
def test_networkwide_head_keeps_a_foreground_input(cr):
    """Issue 21 item 4: ranking the head's input by magnitude alone kept only negative head weights,
    so the logit could never exceed the (negative) bias: no probability reached 0.5 anywhere."""
    m = _foreground_in_the_smallest_filters()
    plain = sorted(np.argsort(-filter_magnitudes(m)[-1], kind="stable")[:8].tolist())
    assert (m.head.weight.flatten()[plain] < 0).all()  # magnitude alone drops every foreground channel
    pruned, plan = channel_prune(m, "channel-networkwide", cr)
    w = pruned.head.weight.flatten()
    k = plan.channels[-1]
    assert k < m.config.base_filters
    assert (w > 0).sum() >= max(1, -(-k * (m.config.base_filters // 3) // (2 * m.config.base_filters)))
    assert (w < 0).any()
    # the output can rise above the bias again: some pixel of a synthetic image is foreground
    with torch.no_grad():
        pruned.head.weight.clamp_(min=0)  # only the foreground path: it must exist to lift the logit
        logits = pruned(torch.rand(1, 3, 64, 64))
    assert logits.max() > pruned.head.bias.item()


def test_head_input_keep_rule():
    mags = np.array([0.93, 1.198, 0.677, 1.218, 1.353, 1.1, 0.904, 0.766,  # the dense semantic
                     0.867, 0.621, 1.134, 0.858, 1.089, 0.836, 0.581, 0.652])  # file's last layer
    w = np.array([-0.555, -0.501, 0.354, -0.448, -0.526, -0.493, -0.402, 0.326,
                  -0.577, 0.342, -0.493, -0.449, -0.412, -0.543, 0.276, 0.322])
    keep = head_input_keep(mags, w, 8)
    assert len(keep) == 8 and sorted(keep) == keep
    assert [i for i in keep if w[i] > 0] == [2, 7]  # ceil(8 * 5/16 / 2) = 2: the two largest positive
    assert head_input_keep(mags, w, 16) == list(range(16))
    assert head_input_keep(mags, np.abs(w), 8) == sorted(np.argsort(-mags, kind="stable")[:8].tolist())
    top = sorted(np.argsort(-mags, kind="stable")[:8].tolist())
    mixed = np.where(np.isin(np.arange(16), top[:4]), 1.0, -1.0)  # both signs among the largest
    assert head_input_keep(mags, mixed, 8) == top  # nothing moves
    assert head_input_keep(mags, w, 1) == [4]  # too few to keep both signs: magnitude alone
    with pytest.raises(ValueError, match="one head weight per channel"):
        head_input_keep(mags, w[:4], 8)


@pytest.mark.parametrize("cr", [2, 4, 8, 16, 32])
def test_layerwise_cut_is_the_plain_magnitude_cut(cr):
    """channel-layerwise keeps its cut bit for bit: the largest filters of every layer, the head's
    input included (its zoo files stay reproducible); the sign rule is opt-in there."""
    m = _foreground_in_the_smallest_filters()
    pruned, plan = channel_prune(m, "channel-layerwise", cr)
    mags = filter_magnitudes(m)
    keep = [sorted(int(i) for i in np.argsort(-g, kind="stable")[:k]) for g, k in zip(mags, plan.channels)]
    ref = cut_channels(m, keep)
    a, b = pruned.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    opted, _ = channel_prune(m, "channel-layerwise", cr, head_signs=True)
    assert (opted.head.weight > 0).any()
