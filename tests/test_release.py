"""Shipping and describing the zoo (study/release.py)."""

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
