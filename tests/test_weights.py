import pytest
import torch

from napari_prunuclei.models.unet import UNet, UNetConfig
from napari_prunuclei.models.weights import WeightsError, load_branch, save_branch


def test_round_trip_and_hash(tmp_path):
    m = UNet(UNetConfig(base_filters=4, norm="none"))
    p = tmp_path / "w.safetensors"
    sha = save_branch(p, m, {"branch": "semantic"})
    m2 = load_branch(p, sha256=sha)
    assert m2.config == m.config
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_tampered_missing_and_garbage(tmp_path):
    m = UNet(UNetConfig(base_filters=4))
    p = tmp_path / "w.safetensors"
    sha = save_branch(p, m)
    data = bytearray(p.read_bytes())
    data[-5] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="modified"):
        load_branch(p, sha256=sha)
    with pytest.raises(WeightsError, match="missing"):
        load_branch(tmp_path / "nope.safetensors")
    g = tmp_path / "g.safetensors"
    g.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="not a valid"):
        load_branch(g)


def test_a_corrupt_architecture_in_the_header_names_the_file(tmp_path):
    """Hostile pass: a bad 'config' in the header raised ValueError/RuntimeError/TypeError without the file."""
    import json

    import pytest

    from napari_prunuclei.models.unet import UNet, UNetConfig
    from napari_prunuclei.models.weights import WeightsError, load_branch, save_branch

    f = tmp_path / "w.safetensors"
    save_branch(f, UNet(UNetConfig(base_filters=4)), {"config": json.dumps({**UNetConfig(base_filters=4).to_dict(),
                                                                          "norm": "weird"})})
    with pytest.raises(WeightsError, match="w.safetensors"):
        load_branch(f)
