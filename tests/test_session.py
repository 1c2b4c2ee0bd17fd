"""What a widget run computes, without Qt: A against any B, a region, pixel size, the report, the
registry's schemes and metrics."""

import json

import numpy as np
import pytest

from napari_prunuclei.base.progress import drive
from napari_prunuclei.nuclei.synthetic import synthetic_tissue
from napari_prunuclei.runtime.pairs import ModelSpec, load_pair
from napari_prunuclei.runtime.request import SegmentRequest
from napari_prunuclei.study import session as compute
from napari_prunuclei.study import session_models as compute_models
from napari_prunuclei.study import session_report as compute_report
from napari_prunuclei.study import session_seconds
from napari_prunuclei.study.session import CompareRequest, run


@pytest.fixture(scope="module")
def rgb():
    return synthetic_tissue(160, seed=3)[0]


@pytest.fixture(scope="module")
def a_vs_b(rgb):
    req = CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"),
                         reference=ModelSpec("layerwise", 20), pixel_size=0.5, region=(10, 170, 20, 180))
    return drive(run(rgb, req))


def test_two_pruned_models_compare_each_with_its_own_thresholds(a_vs_b):
    r = a_vs_b
    assert r.pruned.info.model == "network-wide CR20" and r.dense.info.model == "layer-wise CR20"
    assert r.pruned.info.watershed == load_pair("networkwide", 20).params
    assert r.dense.info.watershed == load_pair("layerwise", 20).params  # B: its own, never A's
    assert r.numbers.vs_dense is not None and r.disagreement is not None
    assert "network-wide CR20 vs layer-wise CR20: AJI" in compute_report.format_numbers(r)
    feats = compute_report.disagreement_features(r)
    assert feats["disagreement"][1] == "missed by network-wide CR20 (found by layer-wise CR20)"
    assert compute_report.disagreement_metadata(r)["prunuclei"]["reference"] == "layer-wise CR20"


def test_a_equal_to_b_or_none_runs_one_model(rgb):
    same = CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"),
                          reference=ModelSpec("networkwide", 20))
    assert same.reference_spec is None
    alone = CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"), compare_dense=False)
    assert alone.reference_spec is None
    dense_vs = CompareRequest("img", SegmentRequest(device="cpu"), reference=ModelSpec("networkwide", 20))
    r = drive(run(rgb, dense_vs))  # dense as A against a pruned B
    assert r.pruned.info.model == "dense" and r.dense.info.model == "network-wide CR20"


def test_pixel_size_region_and_the_numbers_table(a_vs_b):
    r = a_vs_b
    assert r.request.offset == (10, 20)
    f = r.features["pruned"]
    assert np.allclose(f["area_um2"], np.asarray(f["area"]) * 0.25)
    area, unit = compute.mean_area(r, "pruned")
    assert unit == "µm²" and area == pytest.approx(np.mean(f["area"]) * 0.25)
    header, rows = compute_report.numbers_table(r)
    assert header[:3] == ["model", "nuclei", "mean area (µm²)"]
    assert [row[0] for row in rows] == ["A: network-wide CR20", "B: layer-wise CR20"]
    assert rows[0][1] == str(r.pruned.n_nuclei) and rows[0][3] == f"{r.numbers.vs_dense.aji:.3f}"
    assert header[-1] == "time vs B (×, one run)" and float(rows[0][-1]) > 0  # a number, not "0.98×" text
    html = compute_report.numbers_html(r)
    assert "missed by A" in html and "rows 10-169, columns 20-179" in html
    assert "pixel size 0.5 µm" in html and "unknown" not in html
    from dataclasses import replace

    unknown = replace(r, request=replace(r.request, pixel_size=None))  # (session 37: a 0 said nothing)
    said = compute_report.numbers_html(unknown)
    assert "pixel size unknown: run as the models' 40x (0.25 µm/px), areas in px" in said
    prov = compute_report.run_provenance(r)
    assert prov["pixel_size_um"] == 0.5 and prov["region"]["rows"] == [10, 170] and prov["reference"]
    busy = compute_report.run_provenance(replace(r, others=0.6))  # what made the seconds noisy (session 38)
    assert busy["seconds_timed"] == "one run each; other work used 60% of the CPUs meanwhile"


def test_report_holds_numbers_parameters_and_hashes(tmp_path, a_vs_b):
    (tmp_path / "canvas.png").write_bytes(b"png")
    md = compute_report.write_report(tmp_path, a_vs_b, screenshot="canvas.png")
    text = md.read_text()
    for seg in (a_vs_b.pruned, a_vs_b.dense):
        assert seg.info.semantic["sha256"] in text and seg.info.distance["sha256"] in text
    assert "| A: network-wide CR20 |" in text and "pixel size: 0.5 µm" in text and "![canvas](canvas.png)" in text
    assert "known accuracy of B (layer-wise CR20)" in text
    said = compute_models.verdict(a_vs_b)  # the widget's verdict goes into the record (reviewer)
    assert (f"**Verdict:** {said}." in text) if said else "**Verdict:**" not in text
    head = [line for line in (tmp_path / "numbers.csv").read_text().splitlines() if line.startswith("#")]
    lines = [line for line in (tmp_path / "numbers.csv").read_text().splitlines() if not line.startswith("#")]
    assert lines[0].startswith("model,nuclei,mean area") and len(lines) == 3
    # the CSV travels without report.md: it names what its numbers are of
    assert head[:3] == ["# image: img", "# region: rows 10-169, columns 20-179", "# ground truth: none"]
    assert f"# thresholds of A (network-wide CR20): {compute_report.thresholds_text(a_vs_b.pruned.info)}" in head
    assert head[-1] == "# time: one run each"


def test_disagreement_is_counted_in_events_everywhere(tmp_path, a_vs_b):
    r = a_vs_b
    assert r.events is not None and r.disagreement is not None
    kinds = ("missed", "extra", "split", "merged")
    assert r.numbers.disagreement == {k: sum(e.kind == k for e in r.events) for k in kinds}
    assert all(e.a_ids or e.b_ids for e in r.events)
    header, rows = compute_report.numbers_table(r)
    for k, label in compute_report.EVENT_COLUMNS.items():
        col = header.index(f"{label} (events)")
        assert rows[0][col] == str(r.numbers.disagreement[k]) and rows[1][col] == ""  # on A's row
    assert header[3] == "AJI vs B" and header[-1] == "time vs B (×, one run)"
    assert f"disagreement events ({len(r.events)}): missed by A" in compute_report.format_numbers(r)
    html = compute_report.numbers_html(r)
    assert "disagreement events of A with B" in html and "(events)" not in html  # in colours, not the table
    md = compute_report.write_report(tmp_path, r).read_text()
    assert "Disagreement events of A" in md and "merged by A" in md
    assert "split by A (events)" in next(line for line in (tmp_path / "numbers.csv").read_text().splitlines()
                                         if not line.startswith("#"))
    assert compute_report.disagreement_features(r)["disagreement"][3].startswith("split by network-wide CR20")


def test_schemes_come_from_the_registry(monkeypatch):
    from napari_prunuclei.models import zoo

    real = zoo.registry()
    paper = [e for e in real["models"] if not e["scheme"].startswith("channel")]
    extra = [{**e, "id": e["id"].replace("networkwide", "channel-layerwise"), "scheme": "channel-layerwise"}
             for e in real["models"] if e["scheme"] == "networkwide" and e["cr"] in (2, 4)]
    monkeypatch.setattr(zoo, "registry", lambda *a, **k: {**real, "models": paper + extra})
    models = compute_models.zoo_models()
    assert list(models) == ["networkwide", "layerwise", "channel-layerwise", "dense"]
    assert models["channel-layerwise"] == [2.0, 4.0]
    assert 20.0 in models["networkwide"] and models["dense"] == [1.0]


def test_model_note_shows_monuseg_and_gbm40_or_held_back_until_measured(monkeypatch):
    """The note reads the registry (here a fixed one: the zoo is rebuilt stage by stage)."""
    from napari_prunuclei.models import zoo

    def entry(scheme, cr, **metrics):
        return {"id": f"semantic-{scheme}-cr{cr:g}", "branch": "semantic", "scheme": scheme, "cr": float(cr),
                "fine_tuned": True, **metrics}

    def m(aji, data):
        return {"aji": aji, "data": data}

    models = [entry("dense", 1, metrics=m(0.6456, "monuseg"), metrics_gbm40=m(0.7321, "gbm40"),
                    metrics_held_back=m(0.614, "held")),
              entry("networkwide", 20, metrics=m(0.6216, "monuseg"), metrics_gbm40=m(0.655, "gbm40")),
              entry("networkwide", 4, metrics=m(0.6461, "monuseg"), metrics_gbm40=m(0.73, "gbm40")),
              entry("layerwise", 8, metrics={}, metrics_held_back=m(0.5832, "held")),
              entry("layerwise", 50, metrics={}, metrics_held_back=m(0.40, "held")),
              entry("layerwise", 100, metrics={}),
              entry("networkwide", 100, metrics=m(0.12, "monuseg"), metrics_gbm40=m(0.5, "gbm40"))]
    monkeypatch.setattr(zoo, "registry", lambda *a, **k: {"watershed": None, "models": models})
    note, warn = compute_models.model_note(ModelSpec("networkwide", 20))
    assert "MoNuSeg test AJI 0.622" in note and "GBM40 AJI 0.655" in note
    assert warn and note.endswith("it loses over 10 % of dense's AJI: check its nuclei against the image")
    assert not compute_models.model_note(ModelSpec("networkwide", 4))[1]
    dense, _ = compute_models.model_note(ModelSpec())
    assert dense.startswith("MoNuSeg test AJI 0.646 · GBM40 AJI 0.732")  # (was "dense: ...": said twice)
    note, warn = compute_models.model_note(ModelSpec("layerwise", 8))  # a new stage, before the sweep
    assert note.startswith("4 held-back train images AJI 0.583 (-5.0 % vs dense 0.614)") and not warn
    assert "not yet measured on test" in note
    assert compute_models.model_note(ModelSpec("layerwise", 50))[1]  # -35 %: flagged
    assert compute_models.model_note(ModelSpec("layerwise", 100)) == ("fine-tuned; accuracy not measured", True)
    note, warn = compute_models.model_note(ModelSpec("networkwide", 100))  # a pair whose AJI is under 0.3
    assert warn and note.endswith("this pair collapses (AJI under 0.3): its nuclei are missing, merged or split")


def test_store_metrics_from_a_sweep_output(tmp_path, monkeypatch):
    """`prunuclei models --store-metrics sweep.json` puts each data set's row into the pair's entries."""
    import shutil
    from pathlib import Path

    from napari_prunuclei.cli.main import main
    from napari_prunuclei.models import zoo

    weights = tmp_path / "weights"
    shutil.copytree(zoo.WEIGHTS_DIR, weights, ignore=shutil.ignore_patterns("*.safetensors"))
    reg = json.loads((weights / "registry.json").read_text())
    for e in reg["models"]:
        e.pop("metrics_gbm40", None)
    (weights / "registry.json").write_text(json.dumps(reg))
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    from napari_prunuclei.runtime.pairs import ModelSpec, results_record

    made = json.loads((Path(__file__).parents[1] / "docs" / "pruning" / "sweep.json").read_text())
    sweep = tmp_path / "sweep.json"  # the shipped sweep's rows, as a sweep of these weights writes them
    stale = [{**r, "made_by": None} for r in made]  # a sweep that did not record its weights
    sweep.write_text(json.dumps(stale))
    before = (weights / "registry.json").read_text()
    assert main(["models", "--store-metrics", str(sweep)]) == 2  # refused whole: the registry is untouched
    assert (weights / "registry.json").read_text() == before
    sweep.write_text(json.dumps([{**r, "made_by": results_record(ModelSpec(r["scheme"], r["cr"],
                                                                           r["variant"] != "one-shot"))}
                                 for r in made]))
    assert main(["models", "--store-metrics", str(sweep)]) == 0
    rows = {(r["dataset"], r["scheme"], r["cr"], r["variant"]): r for r in json.loads(sweep.read_text())}
    for e in json.loads((weights / "registry.json").read_text())["models"]:
        if e["scheme"].startswith("channel"):  # measured by the channel sweep (docs/pruning/channels)
            continue
        variant = "dense" if e["scheme"] == "dense" else "fine-tuned"
        want = rows[("gbm40", e["scheme"], float(e["cr"]), variant)]
        assert e["metrics_gbm40"]["aji"] == round(want["aji"], 6) and e["metrics_gbm40"]["data"] == "gbm40"
        assert e["metrics"]["aji"] == round(rows[("monuseg", e["scheme"], float(e["cr"]), variant)]["aji"], 6)


def test_the_verdict_names_the_budget_against_the_truth_or_the_agreement_without(a_vs_b):
    from dataclasses import replace

    from napari_prunuclei.nuclei.agreement import Agreement

    said = compute_models.verdict(a_vs_b)
    assert said.startswith("network-wide CR20 against layer-wise CR20: AJI") and "no ground truth" in said
    a, b = a_vs_b.pruned.info.model, a_vs_b.dense.info.model
    for aji_a, where in ((0.595, "within"), (0.55, "outside")):
        truth = {a: Agreement(aji_a, 0.5, 0.8, 10, 10), b: Agreement(0.6, 0.5, 0.8, 10, 10)}
        r = replace(a_vs_b, numbers=replace(a_vs_b.numbers, vs_truth=truth))
        assert f"{where} the 2 % budget" in compute_models.verdict(r)


def test_a_ground_truth_no_model_matches_is_said_not_judged(a_vs_b):
    """Pathologist, session 35: tile 2 scored against tile 1's ground truth read 'within the 2 % budget against
    the ground truth: AJI 0.108 vs dense's 0.109'."""
    from dataclasses import replace

    from napari_prunuclei.nuclei.agreement import Agreement

    a, b = a_vs_b.pruned.info.model, a_vs_b.dense.info.model
    truth = {a: Agreement(0.108, 0.016, 0.24, 575, 660), b: Agreement(0.109, 0.017, 0.25, 575, 662)}
    r = replace(a_vs_b, numbers=replace(a_vs_b.numbers, vs_truth=truth), truth_name="tile 1 [1]")
    said = compute_models.verdict(r)
    assert "not judged against the ground truth" in said and "budget" not in said
    warning = compute_models.run_warning(r)
    assert warning.startswith("the ground truth 'tile 1 [1]' matches no model's nuclei") and "0.108" in warning
    truth[b] = Agreement(compute_models.TRUTH_MISMATCH_AJI, 0.3, 0.5, 575, 662)  # one model matches: judged
    assert "budget" in compute_models.verdict(r) and compute_models.truth_mismatch(r) is None


def test_the_ground_truths_count_is_a_row_and_a_model_alone_is_judged_against_it(a_vs_b):
    """Pathologist, session 35: the ground truth's nucleus count appeared only inside a warning; a run with
    model B 'none' and a ground truth gave no verdict."""
    from dataclasses import replace

    from napari_prunuclei.nuclei.agreement import Agreement
    from napari_prunuclei.study.session_report import numbers_table

    a, b = a_vs_b.pruned.info.model, a_vs_b.dense.info.model
    truth = {a: Agreement(0.645, 0.62, 0.8, 575, 657), b: Agreement(0.647, 0.62, 0.8, 575, 662)}
    r = replace(a_vs_b, numbers=replace(a_vs_b.numbers, vs_truth=truth), truth_name="tile 1 [1]")
    header, rows = numbers_table(r)
    assert rows[-1][:2] == ["ground truth: tile 1 [1]", "575"] and len(rows[-1]) == len(header)
    from napari_prunuclei.study.session import compute_numbers

    gt = np.zeros_like(a_vs_b.dense.labels, dtype=np.int64)
    gt[:2, :2], gt[5:7, 5:9] = 2**40, 7  # 4 and 8 px (ids of any integer size)
    n = compute_numbers(a_vs_b.pruned, a_vs_b.dense, gt)
    assert n.truth_mean_area_px == 6.0  # a pathologist, session 35: the ground truth's mean area was given nowhere
    assert compute_numbers(a_vs_b.pruned, a_vs_b.dense, np.zeros_like(gt)).truth_mean_area_px is None  # empty
    _, rows = numbers_table(replace(r, numbers=replace(r.numbers, truth_mean_area_px=6.0),
                                    request=replace(r.request, pixel_size=None)))
    assert rows[-1][2] == "6.0"  # px, as the models' rows without a pixel size
    _, rows = numbers_table(replace(r, numbers=replace(r.numbers, truth_mean_area_px=6.0),
                                    request=replace(r.request, pixel_size=0.5)))
    assert rows[-1][2] == "1.5"  # µm², as the models' rows with a pixel size
    alone = replace(r, dense=None, numbers=replace(r.numbers, vs_truth={a: truth[a]}, vs_dense=None,
                                                   disagreement=None))
    assert compute_models.verdict(alone) == (f"{a} against the ground truth: AJI 0.645, PQ 0.620, 657 vs 575 nuclei "
                                             "(no model B to compare with)")
    assert compute_models.verdict(replace(alone, numbers=replace(alone.numbers, vs_truth={}))) is None
    from napari_prunuclei.study.session_report import format_numbers, numbers_html

    busy = replace(alone, others=0.55)  # a pathologist: a model alone never said the CPUs were busy
    assert "seconds: one run; other work used 55% of the CPUs meanwhile" in format_numbers(busy)
    assert "other work used 55% of the CPUs" in numbers_html(busy) and "other work" not in numbers_html(alone)
    assert "seconds (one run), noisy: other work ran</td>" in numbers_html(busy)  # on the row, not only below it
    assert "noisy" not in numbers_html(alone)


def test_the_warning_names_the_model_that_collapsed_or_over_segments_a_or_b(a_vs_b):
    """A reviewer: a collapsed B (thousands of fragments) was never named; only a collapsed A was."""
    from dataclasses import replace

    def counts(n_a, n_b):
        def seg(s, n):
            return replace(s, info=replace(s.info, n_nuclei=n))

        return replace(a_vs_b, pruned=seg(a_vs_b.pruned, n_a), dense=seg(a_vs_b.dense, n_b))

    a, b = a_vs_b.pruned.info.model, a_vs_b.dense.info.model
    assert compute_models.run_warning(counts(300, 320)) is None
    assert compute_models.run_warning(counts(5, 320)).startswith(f"A ({a}) found 5 nuclei") and "collapsed" in (
        compute_models.run_warning(counts(5, 320)))
    said = compute_models.run_warning(counts(300, 12))
    assert said.startswith(f"B ({b}) found 12 nuclei") and "collapsed" in said
    said = compute_models.run_warning(counts(300, 2400))
    assert said.startswith(f"B ({b}) found 2400 nuclei") and "far more nuclei" in said
    assert f"or {a} misses nuclei" in said  # either side may be off: not blamed on B (reviewer)
    said = compute_models.run_warning(counts(1500, 300))
    assert said.startswith(f"A ({a}) found 1500 nuclei") and "far more nuclei" in said
    assert compute_models.run_warning(counts(440, 300)) is None  # 1.47x: within
    said = compute_models.run_warning(counts(1301, 662))  # a reviewer's network-wide CR100 against dense
    assert said.startswith(f"A ({a}) found 1301 nuclei") and "far more" in said
    # with a ground truth, its count says which side is off (a second reviewer: CR100's 776 against dense's 355
    # and a truth of 325 read "or dense misses nuclei")
    from napari_prunuclei.nuclei.agreement import Agreement

    def with_truth(r, n_truth):
        vs = {m: Agreement(0.5, 0.5, 0.5, n_truth, n) for m, n in ((a, r.pruned.n_nuclei), (b, r.dense.n_nuclei))}
        return replace(r, numbers=replace(r.numbers, vs_truth=vs))

    said = compute_models.run_warning(with_truth(counts(776, 355), 325))
    assert f"the ground truth has 325: {a} splits nuclei or marks background" in said
    said = compute_models.run_warning(with_truth(counts(217, 355), 340))
    assert f"the ground truth has 340: {a} misses nuclei" in said and f"B ({b}) found 355" in said


def test_a_threshold_edit_recomputes_only_what_a_changes_and_equals_a_fresh_computation():
    from napari_prunuclei.nuclei.agreement import disagreement
    from napari_prunuclei.nuclei.watershed import WatershedParams

    rgb, truth = synthetic_tissue(192, seed=5)
    req = CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"), pixel_size=0.5)
    r = drive(run(rgb, req, truth=truth))
    own = r.pruned.info.watershed
    for ws in (WatershedParams(own.fg_threshold, own.marker_threshold, own.min_size + 40),
               WatershedParams(0.35, 0.3, 10)):
        new = compute.rerun_watershed(r, ws, truth, rgb)
        fresh = compute.compute_numbers(new.pruned, new.dense, truth)
        assert new.numbers == fresh
        assert new.numbers.vs_truth["dense"] is r.numbers.vs_truth["dense"]  # B against the same truth: kept
        assert np.array_equal(new.disagreement, disagreement(new.dense.labels, new.pruned.labels).image)
        assert new.features["pruned"] == compute.nucleus_features(new.pruned.labels, rgb, 0.5)
        assert new.features["dense"] is r.features["dense"]
    edited = truth.copy()
    edited[edited == edited.max()] = 0  # the user painted over a nucleus of the ground truth
    new = compute.rerun_watershed(r, own, edited, rgb)
    assert new.numbers == compute.compute_numbers(new.pruned, new.dense, edited)
    assert new.numbers.vs_truth["dense"] is not r.numbers.vs_truth["dense"]


def test_the_runs_own_thresholds_again_give_the_run_back_and_an_edit_keeps_its_warm_up_mark():
    """Pathologist, session 36: after Restore the numbers still said the watershed was "timed again alone", and an
    edit dropped the warm-up mark on the run's first seconds (the networks' seconds are still that run's)."""
    from napari_prunuclei.nuclei.watershed import WatershedParams

    rgb, truth = synthetic_tissue(160, seed=6)
    req = CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"))
    r = drive(run(rgb, req, truth=truth))
    r.first_runs = ["networkwide CR20"]
    own = r.pruned.info.watershed
    edited = compute.rerun_watershed(r, WatershedParams(0.35, 0.3, 10), truth, rgb)
    assert edited.rewatershed and edited.ran is r and edited.first_runs == ["networkwide CR20"]
    twice = compute.rerun_watershed(edited, WatershedParams(0.45, 0.3, 10), truth, rgb)
    assert twice.ran is r  # always the run itself, never a chain of edits
    assert compute.rerun_watershed(twice, own, truth, rgb) is r  # restored: the run as it was
    # at another pixel size than the models' (a 20x image), the run's info holds its min size on the image's grid:
    # Restore still gives the run back, and a min size typed equal to that scaled one is an edit (reviewer)
    half = drive(run(rgb, CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu", pixel_size=0.5),
                                         pixel_size=0.5), truth=truth))
    ran_with = compute_models.own_thresholds(half.request.spec)
    assert half.pruned.info.watershed.min_size != ran_with.min_size
    edited_half = compute.rerun_watershed(half, WatershedParams(0.35, 0.3, 10), truth, rgb)
    assert compute.rerun_watershed(edited_half, ran_with, truth, rgb) is half
    scaled = half.pruned.info.watershed
    assert compute.rerun_watershed(edited_half, scaled, truth, rgb) is not half
    assert "timed again" not in session_seconds.how_timed(r)
    other = truth.copy()
    other[other == other.max()] = 0  # another truth: scored again, not the run's numbers
    again = compute.rerun_watershed(twice, own, other, rgb)
    assert again is not r and again.numbers == compute.compute_numbers(again.pruned, again.dense, other)


def test_after_a_threshold_edit_the_seconds_add_up(a_vs_b):
    """Tester: exports recorded the new watershed time next to the old total: the total is the other steps (kept)
    plus the new watershed, everywhere the seconds are recorded (the layer metadata, the throughput, the CSV)."""
    from dataclasses import replace

    from napari_prunuclei.nuclei.watershed import WatershedParams

    before = {"read": 0.5, "semantic": 1.0, "distance": 1.5, "watershed": 5.0, "total": 8.25}
    r = replace(a_vs_b, pruned=replace(a_vs_b.pruned, info=replace(a_vs_b.pruned.info, seconds=before)))
    own = r.pruned.info.watershed
    new = compute.rerun_watershed(r, WatershedParams(own.fg_threshold, own.marker_threshold, own.min_size + 20))
    secs = compute_report.layer_metadata(new.pruned, "img")["prunuclei"]["seconds"]
    ws = secs["watershed"]
    assert 0 < ws < 5.0 and secs["total"] == pytest.approx(3.25 + ws)  # read + branches + the new watershed
    assert {k: secs[k] for k in ("read", "semantic", "distance")} == {"read": 0.5, "semantic": 1.0, "distance": 1.5}
    tp = new.pruned.info.throughput
    assert tp["wall_seconds"] == pytest.approx(secs["total"]) and tp["stages"]["watershed"]["seconds"] == ws
    header, rows = compute_report.numbers_table(new)
    # the widget's and report's seconds are the files' total (a second tester: 4.63 s shown, 4.748 s exported)
    col = header.index("seconds (one run)")
    assert float(rows[0][col]) == pytest.approx(3.25 + ws, abs=0.01)


def test_the_time_is_one_run_until_timed_then_the_median_and_the_csv_holds_numbers(tmp_path, rgb):
    import csv
    from dataclasses import replace

    from napari_prunuclei.study.timing import SAME_SHAPE_NOTE, Timing

    r = drive(run(rgb, CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"))))
    header, rows = compute_report.numbers_table(r)
    assert header[-2:] == ["seconds (one run)", "time vs B (×, one run)"]
    assert "one run each" in compute_report.format_numbers(r) and SAME_SHAPE_NOTE in compute_report.numbers_html(r)
    timed = replace(r, timing=Timing({"pruned": [2.0, 1.0, 3.0], "dense": [4.0, 5.0, 9.0]}, ["pruned", "dense"] * 3))
    header, rows = compute_report.numbers_table(timed)
    assert header[-2:] == ["seconds (median of 3)", "time vs B (×, median of 3)"]
    busy = replace(timed, timing=replace(timed.timing, others=0.62))  # beside a training job: the CSV says so
    assert compute_report.numbers_table(busy)[0][-1] == "time vs B (×, median of 3)"  # names that stay
    assert session_seconds.how_timed(busy).endswith("while other work used 62% of this machine's CPU (interleaving "
                                                   "evens out steady load, not bursts; time again when the machine "
                                                   "is idle)")
    assert rows[0][-2:] == ["2.00", "0.40"] and rows[1][-2:] == ["5.00", ""]
    html = compute_report.numbers_html(timed)
    assert "median of 3 interleaved runs after a warm-up" in html and "0.40x B's time" in html
    md = compute_report.write_report(tmp_path, timed, sweep_dropped="the image changed from 'a' to 'b'").read_text()
    assert "median of 3 interleaved runs after a warm-up" in md and SAME_SHAPE_NOTE in md
    assert "CR sweep: dropped when the image changed from 'a' to 'b'; press 'CR sweep' again." in md
    assert "**dense** (dense: not pruned)" in md and "fine-tuned" not in md.split("**dense**")[1].split("\n")[0]
    assert f"precision used: network-wide CR20 {r.pruned.info.precision}, dense {r.dense.info.precision}" in md
    with open(tmp_path / "numbers.csv", newline="") as f:
        table = list(csv.reader(line for line in f if not line.startswith("#")))
    for row in table[1:]:  # every cell but the model's name is a number or empty
        for cell in row[1:]:
            assert cell == "" or float(cell) == float(cell)
    assert float(table[1][-1]) == 0.4


def test_thresholds_count_as_edited_only_where_they_differ_from_the_models_own(tmp_path, a_vs_b):
    """Reviewer: after Restore the report still said "edited in the widget", and a min size of 200 was reported
    as the model having collapsed at its CR."""
    from dataclasses import replace

    from napari_prunuclei.nuclei.watershed import WatershedParams

    own = compute_models.own_thresholds(a_vs_b.request.spec)
    assert compute_models.edited_thresholds(a_vs_b) is None
    big = WatershedParams(own.fg_threshold, own.marker_threshold, own.min_size + 200)
    edited = compute.rerun_watershed(a_vs_b, big)
    assert compute_models.edited_thresholds(edited) == big
    restored = compute.rerun_watershed(edited, own)  # Restore: the boxes set to the model's own, run again
    assert restored is a_vs_b and compute_models.edited_thresholds(restored) is None  # the run itself again
    for result, tag in ((edited, True), (restored, False)):
        folder = tmp_path / str(tag)
        folder.mkdir()
        text = compute_report.write_report(folder, result).read_text()
        assert ("edited in the widget; its own: fg_threshold" in text) is tag
        assert ("edited in the widget" in compute_report.numbers_html(result)) is tag  # the Numbers tab too
        # an export of A records that its thresholds were edited, and the model's own (pathologist, session 38)
        assert compute_report.edit_provenance(result) == ({"thresholds_edited_in_widget": True,
                                                           "own_thresholds": own.as_dict()} if tag else {})
        # the verdict, said again after a sweep or an image switch, keeps the edit (pathologist, session 38)
        assert ("A's thresholds edited: fg" in compute_models.verdict(result)) is tag
        assert "edited" not in compute_models.verdict(result, edit=False)
    few = replace(edited, pruned=replace(edited.pruned, info=replace(edited.pruned.info, n_nuclei=0)))
    said = compute_models.run_warning(few)
    assert "at the edited thresholds" in said and "collapsed at this CR" not in said
    few = replace(restored, pruned=replace(restored.pruned, info=replace(restored.pruned.info, n_nuclei=0)))
    assert "collapsed at this CR" in compute_models.run_warning(few)


def test_the_sweep_csv_names_the_region_and_the_files_keep_an_odd_image_name_on_one_line(tmp_path, a_vs_b):
    """The CSV travels without report.md: it says which part of which image its numbers are of."""
    import dataclasses

    from napari_prunuclei.nuclei.agreement import Agreement

    row = compute_models.ImageSweepRow("layerwise", 2.0, True, Agreement(0.9, 0.8, 0.95, 10, 11), None, 1.5, 2.0,
                                       {"fg_threshold": 0.6, "marker_threshold": 0.4, "min_size": 10}, 0.69, 0.51)
    odd = dataclasses.replace(a_vs_b, request=dataclasses.replace(a_vs_b.request, image_name="tile\n# cr,2"))
    md = compute_report.write_report(tmp_path, odd, sweep_rows=[row]).read_text().splitlines()
    assert md[0] == '# napari-prunuclei report: "tile\\n# cr,2"' and not any(line == "# cr,2" for line in md)
    lines = (tmp_path / "sweep.csv").read_text().splitlines()
    assert lines[0] == '# image: "tile\\n# cr,2"' and "# region: rows 10-169, columns 20-179" in lines
    header = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    assert lines[header].startswith("scheme,cr,")
    assert lines[header + 1] == "layerwise,2,True,0.9000,0.8000,0.9500,,,,1.500,2.000,0.6,0.4,10,0.69,0.51,11,10"
    assert "## CR sweep on this image (rows 10-169, columns 20-179, 1 models)" in "\n".join(md)
    assert "Other work used up to 69% of the CPUs during 1 of the sweep's runs" in "\n".join(md)
    # a pathologist, session 36: dense's own run (every ratio's denominator) took 3.9 s beside 1.1 s pairs, unflagged
    assert "Other work used 51% of the CPUs during dense's run: every time ratio of the sweep is noisy" in "\n".join(md)


def test_a_run_records_how_busy_other_work_kept_the_cpus_and_its_times_say_so(monkeypatch, rgb):
    """One-run seconds measured beside a training job are noisy: the speed line and numbers.csv say so."""
    snaps = iter([(0.0, 0.0, 0.0, 2), (10.0, 15.0, 1.0, 2)])  # 14 of 20 CPU-s: other work
    from napari_prunuclei.base import machine

    monkeypatch.setattr(machine, "cpu_snapshot", lambda: next(snaps))
    r = drive(run(rgb, CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"))))
    assert r.others == pytest.approx(0.7)
    from dataclasses import replace

    cold = replace(r, first_runs=["network-wide CR20"])
    assert ("one run each, the first of network-wide CR20 at this image size and pixel size, with the warm-up; "
            "'time A vs B' gives a median; other work used 70% of the CPUs meanwhile") in \
        compute_report.speed_text(cold)
    # a pathologist, session 36: every run's line said "the first run of a session holds the warm-up"
    assert "one run each; 'time A vs B' gives a median; other work used 70% of the CPUs meanwhile" in \
        compute_report.speed_text(replace(r, first_runs=[]))
    monkeypatch.setattr(machine, "cpu_snapshot", lambda: None)
    again = drive(run(rgb, CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"))))
    assert again.first_runs == [] and "warm-up" not in compute_report.speed_text(again)
    assert compute_report.numbers_table(r)[0][-1] == "time vs B (×, one run)"  # column names that stay the same
    assert session_seconds.how_timed(r) == "one run each; other work used 70% of the CPUs meanwhile"
    own = r.chosen.info.watershed
    edited = compute.rerun_watershed(r, replace(own, min_size=own.min_size + 1))
    assert edited.others == pytest.approx(0.7) and edited.rewatershed and not r.rewatershed  # the networks' run
    assert "after the threshold edit, network-wide CR20's watershed timed again alone" in \
        compute_report.speed_text(edited)  # why the seconds moved a little (pathologist, session 34)
    assert session_seconds.how_timed(edited) == ("one run each; after the threshold edit, network-wide CR20's "
                                                "watershed timed again alone; other work used 70% of the CPUs "
                                                "meanwhile")


def test_a_one_shot_models_own_thresholds_are_called_dense_s():
    """Pathologist, session 34: after an edit on a one-shot model the status said 'Restore gives its own'."""
    assert compute_models.whose_own(ModelSpec("networkwide", 20)) == "its own"
    assert compute_models.whose_own(ModelSpec()) == "its own"
    assert compute_models.whose_own(ModelSpec("networkwide", 12, False)) == "dense's"


def test_the_dock_sweep_hands_over_its_rows_as_they_come():
    """Pathologist, session 36: the dock's sweep chart stayed empty for the whole sweep (147 s)."""
    rgb, truth = synthetic_tissue(96, seed=8)
    seen = []
    rows = drive(compute_models.sweep_image(rgb, [("networkwide", 20.0), ("layerwise", 20.0)], "cpu", truth,
                                            on_rows=seen.append))
    assert [len(s) for s in seen] == [1, 2] and [r.scheme for r in seen[1]] == ["networkwide", "layerwise"]
    assert all(r.dense_vs_truth is not None for r in seen[1])  # the dotted baseline from the first pair on
    assert [r.vs_truth for r in rows] == [r.vs_truth for r in seen[1]]
    assert rows[0].dense_vs_truth == seen[0][0].dense_vs_truth


def test_a_run_without_truth_is_read_against_the_pairs_agreement_on_annotated_images(rgb, tmp_path, monkeypatch):
    """Pathologist, session 37: on a 20x tile A agreed with dense at AJI 0.70 against 0.88-0.89 on 40x tiles, and
    nothing said so. The verdict gives the pair's range on the annotated images and, below nearly all of them,
    says the image is unlike them; neither where A's thresholds were edited, B is another pair, or dense found
    too few nuclei to say."""
    import shutil
    from dataclasses import replace

    from napari_prunuclei.models import zoo
    from napari_prunuclei.nuclei.agreement import Agreement
    from napari_prunuclei.nuclei.watershed import WatershedParams
    from napari_prunuclei.study.known_agreement import update_registry_agreement

    r = drive(run(rgb, CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"))))
    weights = tmp_path / "weights"  # (the registry alone: the run above loaded its models)
    shutil.copytree(zoo.WEIGHTS_DIR, weights, ignore=shutil.ignore_patterns("*.safetensors"))
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    reg = json.loads((weights / "registry.json").read_text())
    for e in reg["models"]:
        e.pop("agreement_with_dense", None)
    (weights / "registry.json").write_text(json.dumps(reg))
    monkeypatch.setattr(compute_models, "RANGE_MIN_NUCLEI", 0)  # (the synthetic tile has few nuclei)
    assert compute_models.known_range(r) is None and "annotated" not in compute_models.verdict(r)  # none known
    values = [0.64] + [0.80 + i / 100 for i in range(19)]  # 20 images: one far lower than the rest
    measured = {"networkwide-cr20": {"monuseg2018 test": {"images": list("abcdefghij"), "aji": values[:10]},
                                     "gbm40": {"images": list("klmnopqrst"), "aji": values[10:]}}}
    assert update_registry_agreement(measured) == 2  # both branches' entries

    def at(aji, **kw):
        return replace(r, numbers=replace(r.numbers, vs_dense=Agreement(aji, 0.5, 0.8, 10, 10)), **kw)

    said = compute_models.verdict(at(0.70))
    assert said.startswith("network-wide CR20 against dense: AJI 0.700, ")  # (the range said once, below)
    assert said.endswith(". ⚠ lower than on 19 of the 20 annotated 40x images A was measured on (median 0.885): "
                         "this image may be unlike them, and neither model's known accuracy may hold here; judge "
                         "the nuclei against the image")
    assert compute_models.low_agreement(at(0.60)) is not None  # under all
    ok = compute_models.verdict(at(0.805))  # above 2 of 20: not flagged, the median given
    assert "⚠" not in ok and ok.startswith("network-wide CR20 against dense: AJI 0.805 (median 0.885 on 20 "
                                           "annotated 40x images), ")
    edited = replace(r.request, segment=replace(r.request.segment, params=WatershedParams(0.5, 0.4, 10)))
    assert compute_models.known_range(at(0.70, request=edited)) is None  # its own thresholds' range only
    other_b = replace(r.request, reference=ModelSpec("layerwise", 20))
    assert compute_models.known_range(at(0.70, request=other_b)) is None  # the range is against dense
    monkeypatch.setattr(compute_models, "RANGE_MIN_NUCLEI", r.dense.n_nuclei + 1)
    assert compute_models.low_agreement(at(0.70)) is None  # too few nuclei to say


def test_a_model_run_by_a_sweep_is_warm_for_the_next_run(rgb):
    """Pathologist, session 39: the first run after a CR sweep of the same image was said to hold its model's
    warm-up, though the sweep had run it at that size."""
    tile = np.ascontiguousarray(rgb[:97, :101])  # (a size no other test runs at: nothing warm yet)
    drive(compute_models.sweep_image(tile, [("channel-layerwise", 8.0)], "cpu"))
    r = drive(run(tile, CompareRequest("img", SegmentRequest("channel-layerwise", 8, device="cpu"))))
    assert r.first_runs == []  # both ran in the sweep (dense too)
    other = np.ascontiguousarray(rgb[:95, :101])
    r = drive(run(other, CompareRequest("img", SegmentRequest("channel-layerwise", 8, device="cpu"))))
    assert set(r.first_runs) == {"channel layer-wise CR8", "dense"}  # another size: both said to hold it
