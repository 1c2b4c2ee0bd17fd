import pytest
import torch

from napari_prunuclei.models.unet import UNet, UNetConfig


def test_default_is_the_authors_layout():
    m = UNet()
    n = sum(p.numel() for p in m.parameters() if p.requires_grad)
    # 1.94 M conv/transposed-conv parameters plus BatchNorm affine terms
    assert 1_930_000 < n < 1_950_000
    widths = [b[0].out_channels for b in m.down]
    assert widths == [16, 32, 64, 128, 256]
    assert all(isinstance(u, torch.nn.ConvTranspose2d) and u.kernel_size == (2, 2) for u in m.up)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_output_shape(norm):
    m = UNet(UNetConfig(norm=norm, base_filters=4)).eval()
    x = torch.rand(2, 3, 64, 48)
    assert m(x).shape == (2, 1, 64, 48)


def test_bad_norm():
    with pytest.raises(ValueError, match="norm"):
        UNet(UNetConfig(norm="group"))
