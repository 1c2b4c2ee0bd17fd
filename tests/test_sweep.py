"""The sweep's timing of its rows (study/sweep.py: add_times): every timed row names the machine it ran on."""

import numpy as np

from napari_prunuclei.study import sweep, timing


def test_timed_rows_record_their_ratio_the_other_work_and_the_machine(monkeypatch):
    calls = []

    def fake_times(pairs, rgb, **kw):
        calls.append((sorted(pairs), rgb.shape, kw))
        return {k: {"total_s": 1.0 if "dense" in k else 0.5, "branches_s": 0.8 if "dense" in k else 0.3,
                    "watershed_s": 0.1, "n_nuclei": 3} for k in pairs}

    monkeypatch.setattr(timing, "time_segment", fake_times)
    monkeypatch.setattr(timing, "benchmark_tile", lambda data=None: np.zeros((8, 8, 3), np.uint8))
    rows = [{"dataset": "monuseg", "scheme": "dense", "cr": 1.0, "variant": "dense"},
            {"dataset": "monuseg", "scheme": "channel-layerwise", "cr": 2.0, "variant": "fine-tuned"}]
    out = sweep.add_times(rows, "nowhere", repeat=1)
    assert [r["time_ratio"] for r in out] == [1.0, 0.5] and out[1]["branches_s"] == 0.3
    assert {r["timed_on"] for r in out} == {sweep.timing_machine()} and "torch threads" in out[0]["timed_on"]
    assert sweep.times_from(out) == sweep.timing_machine()
    assert len(calls) == 1 and calls[0][2]["repeat"] == 1  # one interleaved run for every pair
