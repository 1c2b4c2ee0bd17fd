"""One fine-tuning protocol for every pruned model (issue 21): a stage is reproducible, resumable and records
its recipe, and the recipe reaches the registry entry."""

import hashlib
import json

import pytest
import torch

from napari_prunuclei.models.unet import UNet, UNetConfig
from napari_prunuclei.models.weights import read_metadata
from napari_prunuclei.training.protocol import Protocol, run_stage

PROTOCOL = Protocol(steps=2, batch=2, crop=64, precision="fp32", multiple=2)


def _dense():
    torch.manual_seed(0)
    return {b: UNet(UNetConfig(base_filters=4)).eval() for b in ("semantic", "distance")}


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("scheme", ["layerwise", "channel-networkwide"])
def test_a_stage_is_bit_identical_when_run_again(tiny_dataset, tmp_path, scheme):
    dense = _dense()
    a = run_stage(dense, scheme, 4, tiny_dataset, tmp_path / "a", PROTOCOL, device="cpu")
    b = run_stage(dense, scheme, 4, tiny_dataset, tmp_path / "b", PROTOCOL, device="cpu")
    for branch in ("semantic", "distance"):
        assert _sha(a[branch]) == _sha(b[branch])
        meta = read_metadata(a[branch])
        assert json.loads(meta["protocol"]) == PROTOCOL.record() and json.loads(meta["cr"]) == 4


def test_a_finished_stage_is_kept_and_another_protocol_is_told_apart(tiny_dataset, tmp_path):
    dense = _dense()
    files = run_stage(dense, "networkwide", 2, tiny_dataset, tmp_path, PROTOCOL, device="cpu",
                      branches=("semantic",))
    before = files["semantic"].stat().st_mtime_ns
    again = run_stage(dense, "networkwide", 2, tiny_dataset, tmp_path, PROTOCOL, device="cpu",
                      branches=("semantic",))
    assert again["semantic"].stat().st_mtime_ns == before  # resumable: finished work is not redone
    assert Protocol(steps=3).record() != Protocol(steps=2).record()
    assert not list(tmp_path.rglob("*.part"))
    # another protocol (another seed here) never takes this stage as its own (pre-ship review: a second seed
    # in the first seed's work folder would have been scored, and recorded, as seed 2)
    from dataclasses import replace

    with pytest.raises(ValueError, match="made by another protocol .*seed 1.*this run is .*seed 2"):
        run_stage(dense, "networkwide", 2, tiny_dataset, tmp_path, replace(PROTOCOL, seed=2), device="cpu",
                  branches=("semantic",))
    assert files["semantic"].stat().st_mtime_ns == before


def test_the_protocol_record_reaches_the_registry_entry(tiny_dataset, tmp_path, monkeypatch):
    from napari_prunuclei.models import zoo
    from napari_prunuclei.study import release

    dense = _dense()
    files = run_stage(dense, "layerwise", 4, tiny_dataset, tmp_path / "work", PROTOCOL, device="cpu")
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    entries = [release.ship_sparse(files[b]) for b in ("semantic", "distance")]
    assert all(e["finetune"] == PROTOCOL.record() and e["steps"] == 2 for e in entries)
    with pytest.raises(ValueError, match="unknown pruning scheme"):
        run_stage(dense, "random", 4, tiny_dataset, tmp_path / "x", PROTOCOL, device="cpu")


@pytest.mark.parametrize("scheme", ["networkwide", "channel-layerwise"])
def test_a_gradual_stage_is_cut_from_the_previous_one(tiny_dataset, tmp_path, scheme):
    from dataclasses import replace

    from napari_prunuclei.models.sparse import load_branch_file, load_sparse
    from napari_prunuclei.training.protocol import previous_cr

    dense = _dense()
    gradual = replace(PROTOCOL, ladder="gradual")
    with pytest.raises(FileNotFoundError, match="CR2"):
        run_stage(dense, scheme, 4, tiny_dataset, tmp_path, gradual, device="cpu", branches=("semantic",))
    assert previous_cr(scheme, 2) is None and previous_cr(scheme, 4) == 2
    first = run_stage(dense, scheme, 2, tiny_dataset, tmp_path, gradual, device="cpu", branches=("semantic",))
    second = run_stage(dense, scheme, 4, tiny_dataset, tmp_path, gradual, device="cpu", branches=("semantic",))
    assert read_metadata(first["semantic"])["cut_from"] == "dense"
    assert read_metadata(second["semantic"])["cut_from"] == f"{scheme} CR2 stage"
    if scheme == "networkwide":  # another protocol never cuts its stage from this one's (review, session 32)
        import shutil

        other = tmp_path.parent / f"{tmp_path.name}-other"
        shutil.copytree(tmp_path / scheme / "cr2", other / scheme / "cr2")
        with pytest.raises(ValueError, match="cr2.safetensors: a finished stage made by another protocol"):
            run_stage(dense, scheme, 4, tiny_dataset, other, replace(gradual, seed=2), device="cpu",
                      branches=("semantic",))
    if scheme == "networkwide":  # a weight pruned at CR2 stays pruned at CR4
        (_, m2, _), (_, m4, _) = load_sparse(first["semantic"]), load_sparse(second["semantic"])
        assert all(bool((m4[k] <= m2[k]).all()) for k in m2) and sum(int(m.sum()) for m in m4.values()) < sum(
            int(m.sum()) for m in m2.values())
    else:  # no layer wider than at CR2
        w2, w4 = (load_branch_file(f["semantic"]).config.conv_channels() for f in (first, second))
        assert all(b <= a for a, b in zip(w2, w4)) and sum(w4) < sum(w2)
    with pytest.raises(ValueError, match="ladder"):
        Protocol(ladder="sideways")
