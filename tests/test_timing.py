"""Timing A against B: interleaved runs after a warm-up each, medians and their ratio (fake fast models)."""

import pytest

from napari_prunuclei.base.progress import Cancelled, drive
from napari_prunuclei.study.timing import SAME_SHAPE_NOTE, Timing, iter_time_interleaved


class FakeClock:
    """A clock that each fake model moves by its own durations, one per call."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_models(clock, durations: dict[str, list[float]], calls: list[str]):
    def model(label):
        def run():
            calls.append(label)
            clock.now += durations[label].pop(0)
        return run
    return {label: model(label) for label in durations}


def test_runs_are_interleaved_after_one_warm_up_each_and_the_medians_exclude_it():
    clock, calls = FakeClock(), []
    # the first call of each is the warm-up: 100 s, never counted
    durations = {"pruned": [100.0, 3.0, 1.0, 2.0], "dense": [100.0, 4.0, 8.0, 6.0]}
    progress = []
    t = drive(iter_time_interleaved(fake_models(clock, durations, calls), repeat=3, clock=clock,
                                    snapshot=lambda: None), progress.append)
    assert calls == ["pruned", "dense", "pruned", "dense", "pruned", "dense", "pruned", "dense"]
    assert t.order == ["pruned", "dense"] * 3
    assert t.seconds == {"pruned": [3.0, 1.0, 2.0], "dense": [4.0, 8.0, 6.0]}
    assert t.median("pruned") == 2.0 and t.median("dense") == 6.0 and t.ratio("pruned", "dense") == pytest.approx(1 / 3)
    assert t.repeat == 3 and t.how == "median of 3 interleaved runs after a warm-up"
    assert [p.done for p in progress] == list(range(0, 9)) and progress[-1].total == 8


def test_cancel_stops_timing_between_runs():
    clock, calls = FakeClock(), []
    durations = {"pruned": [1.0] * 4, "dense": [1.0] * 4}
    job = iter_time_interleaved(fake_models(clock, durations, calls), repeat=3, clock=clock,
                                cancelled=lambda: len(calls) >= 3)
    with pytest.raises(Cancelled):
        drive(job)
    assert len(calls) == 3


def test_time_pair_times_both_models_and_says_unstructured_runs_at_dense_shape():
    """The real pipeline on a small tile: both roles timed three times; network-wide against dense keeps
    dense's network shape."""
    from napari_prunuclei.nuclei.synthetic import synthetic_tissue
    from napari_prunuclei.runtime.request import SegmentRequest
    from napari_prunuclei.study.session import CompareRequest, model_requests
    from napari_prunuclei.study.timing import time_pair

    rgb = synthetic_tissue(96, seed=1)[0]
    req = CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"))
    t = drive(time_pair(rgb, model_requests(req), repeat=3))
    assert t.order == ["pruned", "dense"] * 3 and all(s > 0 for v in t.seconds.values() for s in v)
    assert t.names == {"pruned": "network-wide CR20", "dense": "dense"} and t.note == SAME_SHAPE_NOTE


def test_progress_names_the_models_not_their_roles():
    """Reviewer: the status said "timing: pruned, run 1 of 3"."""
    from napari_prunuclei.study.timing import iter_time_interleaved

    job = iter_time_interleaved({"pruned": lambda: None, "dense": lambda: None}, 1,
                                names={"pruned": "network-wide CR20", "dense": "dense"})
    messages = []
    try:
        while True:
            messages.append(next(job).message)
    except StopIteration:
        pass
    assert messages[0] == "timing: warm-up of network-wide CR20..." and "pruned" not in " ".join(messages)


def test_progress_names_the_step_about_to_run_not_the_one_finished():
    """Reviewer: the status named the step that had just finished while the next one ran."""
    from napari_prunuclei.study.timing import iter_time_interleaved

    ran, seen = [], []
    job = iter_time_interleaved({"a": lambda: ran.append("a"), "b": lambda: ran.append("b")}, 2)
    try:
        while True:
            p = next(job)
            seen.append((p.message, list(ran), p.done))
    except StopIteration:
        pass
    assert seen[0] == ("timing: warm-up of a...", [], 0)  # said before A's warm-up runs
    assert seen[1] == ("timing: warm-up of b...", ["a"], 1)
    assert seen[2] == ("timing: a, run 1 of 2...", ["a", "b"], 2)
    assert seen[-1] == ("timing: done", ["a", "b", "a", "b", "a", "b"], 6)


def test_a_timing_says_when_other_work_used_the_machine_meanwhile():
    """Interleaving evens out steady load, not bursts: a ratio measured beside a training job says so."""
    snaps = iter([(0.0, 100.0, 5.0, 2), (10.0, 113.0, 9.0, 2)])  # 13 CPU s in all, 4 of them this process's
    durations = {"pruned": [1.0] * 2, "dense": [1.0] * 2}
    t = drive(iter_time_interleaved(fake_models(FakeClock(), durations, []), repeat=1, snapshot=lambda: next(snaps)))
    assert t.others == pytest.approx(9.0 / 20.0)
    busy = Timing({"pruned": [1.0], "dense": [2.0]}, ["pruned", "dense"], others=0.62)
    assert busy.busy and busy.how.startswith("median of 1 interleaved runs after a warm-up, while other work "
                                             "used 62% of this machine's CPU")
    quiet = Timing({"pruned": [1.0], "dense": [2.0]}, ["pruned", "dense"], others=0.05)
    unknown = Timing({"pruned": [1.0], "dense": [2.0]}, ["pruned", "dense"])
    assert not quiet.busy and not unknown.busy
    assert quiet.how == unknown.how == "median of 1 interleaved runs after a warm-up"
