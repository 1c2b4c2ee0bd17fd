"""Shipping and describing the zoo (study/release.py)."""

import pytest

from napari_prunuclei.study.release import protocol_text, shared_protocol
from napari_prunuclei.training.protocol import Protocol


def _entry(scheme, cr, record, fine_tuned=True):
    e = {"scheme": scheme, "cr": cr, "fine_tuned": fine_tuned}
    if record is not None:
        e["finetune"] = record
    return e


def test_one_protocol_is_named_only_when_every_fine_tuned_pruned_entry_carries_the_same_record():
    one, other = Protocol(steps=250, ladder="gradual").record(), Protocol(steps=500, ladder="gradual").record()
    dense = _entry("dense", 1, None, fine_tuned=False)
    assert shared_protocol([dense, _entry("layerwise", 2, one), _entry("networkwide", 2, one)]) == one
    assert shared_protocol([dense, _entry("layerwise", 2, one), _entry("networkwide", 2, other)]) is None
    assert shared_protocol([dense, _entry("layerwise", 2, one), _entry("networkwide", 4, None)]) is None  # old
    assert shared_protocol([dense, _entry("layerwise", 2, one), _entry("layerwise", 2, None, False)]) == one
    text = protocol_text(one)
    assert "gradual ladder, 250 Adam steps per branch per stage" in text and "seed 1" in text
    assert "lr 0.0005 cosine to 2.5e-05 after 25 warm-up steps" in text


def test_a_channel_entrys_macs_ratio_is_against_dense_not_the_stage_it_was_cut_from():
    """The gradual ladder recorded MACs against the previous stage (channel-layerwise CR 4: 1.86, CR 32: 1.18);
    every shipped channel entry now carries dense's MACs over its own, from its channel counts."""
    from napari_prunuclei.models.zoo import registry
    from napari_prunuclei.study.release import macs_ratio

    dense = [16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 128, 128, 128, 64, 64, 64, 32, 32, 32, 16, 16, 16]
    assert macs_ratio(dense) == 1.0
    entries = [e for e in registry()["models"] if e.get("format") == "channels"]
    assert entries
    for e in entries:
        assert e["macs_ratio"] == macs_ratio(e["channels"]), e["id"]
        assert e["macs_ratio"] > 1.5 or e["cr"] < 2, e["id"]
    by_cr = {e["cr"]: e["macs_ratio"] for e in entries if e["scheme"] == "channel-layerwise"
             and e["branch"] == "semantic"}
    assert list(by_cr.values()) == sorted(by_cr.values())  # more pruned, fewer MACs


def test_a_pairs_macs_ratio_counts_both_branches_whose_dense_networks_are_equal():
    from napari_prunuclei.pruning.channels import macs
    from napari_prunuclei.pruning.oneshot import load_model
    from napari_prunuclei.study.release import pair_ratio

    sem, dst = load_model("semantic", "dense", 1), load_model("distance", "dense", 1)
    assert macs(sem.config) == macs(dst.config)  # the harmonic mean below rests on this
    assert pair_ratio(2.0, 4.0) == round(2 / (0.5 + 0.25), 4) and pair_ratio(None, None) == 1.0
    assert pair_ratio(3.0, 3.0) == 3.0


def test_the_weights_folder_is_looked_up_at_each_call_not_bound_at_import(tmp_path, monkeypatch):
    """Session 36: release.py and oneshot.py bound zoo.WEIGHTS_DIR at import; imported first while a test had
    pointed it at a temporary copy, they kept reading that copy after it was gone (tests passed or failed by
    their order)."""
    import shutil

    from napari_prunuclei.models import zoo
    from napari_prunuclei.study.release import finetune_protocols

    good = finetune_protocols()
    empty = tmp_path / "weights"
    shutil.copytree(zoo.WEIGHTS_DIR, empty, ignore=shutil.ignore_patterns("*.safetensors"))
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", empty)
    with pytest.raises(OSError, match=str(empty)):
        finetune_protocols()  # the folder of now: its files are not there
    monkeypatch.undo()
    assert finetune_protocols() == good
