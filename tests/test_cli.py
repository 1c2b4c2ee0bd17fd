import json

import numpy as np
import pytest
import tifffile

import napari_prunuclei
from napari_prunuclei.cli.main import main
from napari_prunuclei.io.guards import ImageError
from napari_prunuclei.io.labels import write_labels
from napari_prunuclei.models.weights import WeightsError
from napari_prunuclei.models.zoo import registry
from napari_prunuclei.nuclei.synthetic import synthetic_tile
from napari_prunuclei.pruning.oneshot import load_model

EVAL_KEYS = {"dice", "aji", "pq", "dq", "sq", "f1", "distance_mse", "n_images", "per_image"}


def test_segment_api_returns_three_outputs():
    rgb, _ = synthetic_tile(200, seed=4)  # 200 is not a multiple of 16: padded
    res = napari_prunuclei.segment(rgb, device="cpu")
    assert res.probability.shape == res.distance.shape == res.labels.shape == (200, 200)
    assert 0 <= res.probability.min() and res.probability.max() <= 1
    assert res.labels.dtype == np.int32
    assert res.info.semantic["scheme"] == "dense" and len(res.info.semantic["sha256"]) == 64
    assert set(res.info.seconds) == {"semantic", "distance", "watershed", "total"}
    assert res.info.mode == "whole" and res.info.model == "dense"


def test_segment_rejects_bad_images():
    with pytest.raises(ImageError, match="grayscale"):
        napari_prunuclei.segment(np.zeros((100, 100), np.uint8))
    with pytest.raises(ImageError, match="uint8"):
        napari_prunuclei.segment(np.zeros((100, 100, 3), np.float32))


def test_load_model_dense_and_one_shot():
    m = load_model("semantic")
    assert m.zoo_info["scheme"] == "dense" and not m.training
    p = load_model("distance", "network-wide", 7.3)
    assert p.zoo_info["fine_tuned"] is False
    with pytest.raises(ValueError, match="scheme"):
        load_model("semantic", "magic", 2)


def test_tampered_shipped_weights_are_refused(tmp_path):
    import shutil

    from napari_prunuclei.models.zoo import WEIGHTS_DIR

    wd = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, wd)
    entry = next(e for e in registry(wd)["models"] if e["id"] == "semantic-dense")
    f = wd / entry["file"]
    b = bytearray(f.read_bytes())
    b[-100] ^= 0xFF
    f.write_bytes(bytes(b))
    with pytest.raises(WeightsError, match="modified"):
        load_model("semantic", weights_dir=wd)
    f.unlink()
    with pytest.raises(WeightsError, match="missing"):
        load_model("semantic", weights_dir=wd)


def test_cli_segment_writes_outputs(tmp_path, capsys):
    import imageio.v3 as iio

    rgb, _ = synthetic_tile(160, seed=5)
    iio.imwrite(tmp_path / "tile.png", rgb)
    assert main(["segment", str(tmp_path / "tile.png"), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 0
    lab = tifffile.imread(tmp_path / "out" / "tile_labels.tif")
    assert lab.shape == (160, 160)
    assert tifffile.imread(tmp_path / "out" / "tile_probability.tif").dtype == np.float32
    info = json.loads((tmp_path / "out" / "tile_info.json").read_text())
    assert info["n_nuclei"] == lab.max()
    iio.imwrite(tmp_path / "odd\nname.png", rgb)  # hostile pass: a name with a line break stays on one line
    assert main(["segment", str(tmp_path / "odd\nname.png"), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 0
    done = [line for line in capsys.readouterr().out.splitlines() if "nuclei (" in line]
    assert len(done) == 2 and done[1].startswith('"') and 'odd\\nname.png": ' in done[1]
    assert done[1].endswith('odd\\nname_labels.tif"')


def test_cli_segment_bad_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(b"nope")
    assert main(["segment", str(tmp_path / "x.png"), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "cannot read image" in err and "x.png" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing written for rejected input


def test_cli_score_files_and_folders(tmp_path):
    _, t = synthetic_tile(128, seed=1)
    p = t.copy()
    p[p == 1] = 0  # one nucleus missed
    for d in ("t", "p"):
        (tmp_path / d).mkdir()
    write_labels(tmp_path / "t" / "a.tif", t)
    write_labels(tmp_path / "p" / "a.tif", p)
    out = tmp_path / "s.json"
    assert main(["score", str(tmp_path / "t"), str(tmp_path / "p"), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res) == (EVAL_KEYS - {"distance_mse"}) | {"unmatched"}
    n = t.max()
    assert res["f1"] == pytest.approx(2 * (n - 1) / (2 * (n - 1) + 1))
    assert main(["score", str(tmp_path / "t" / "a.tif"), str(tmp_path / "p" / "a.tif")]) == 0


def test_cli_models_lists_dense(capsys):
    assert main(["models", "--json"]) == 0
    reg = json.loads(capsys.readouterr().out)
    assert {"semantic-dense", "distance-dense"} <= {e["id"] for e in reg["models"]}


@pytest.mark.data
def test_evaluate_on_a_tiny_subset_of_shared_data(data_root, tmp_path):
    out = tmp_path / "e.json"
    assert main(["evaluate", "--data", str(data_root / "gbm40"), "--limit", "2", "--json", str(out),
                 "--device", "cpu"]) == 0
    res = json.loads(out.read_text())
    assert set(res) >= EVAL_KEYS and res["n_images"] == 2
    assert res["aji"] > 0.5 and res["dice"] > 0.7  # a trained model, not noise
    assert len(res["per_image"]) == 2


@pytest.mark.data
def test_evaluate_missing_split_is_a_clear_error(data_root, capsys):
    assert main(["evaluate", "--data", str(data_root / "gbm40"), "--split", "validation"]) == 2
    assert "split 'validation'" in capsys.readouterr().err


def test_inference_model_folds_batchnorm_and_follows_weight_changes():
    import torch

    from napari_prunuclei.models.inference import inference_model
    from napari_prunuclei.models.unet import UNet, UNetConfig

    torch.manual_seed(0)
    m = UNet(UNetConfig(base_filters=4)).eval()
    for mod in m.modules():  # non-trivial statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    fast = inference_model(m, torch.device("cpu"), "fp32")
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in fast.modules())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(fast(x), m(x), atol=1e-4)
    assert inference_model(m, torch.device("cpu"), "fp32") is fast  # cached
    with torch.no_grad():
        m.head.bias.add_(1.0)  # an in-place change rebuilds it
    again = inference_model(m, torch.device("cpu"), "fp32")
    assert again is not fast
    with torch.no_grad():
        assert torch.allclose(again(x), m(x), atol=1e-4)


def _sweep_row(dataset, scheme, cr, variant, aji, images=("a", "b", "c")):
    keys = ("semantic_dice", "semantic_aji", "distance_aji", "distance_mse", "aji", "pq", "dice")
    per = {k: [aji + 0.01 * i for i in range(len(images))] for k in keys}
    from napari_prunuclei.runtime.pairs import ModelSpec, results_record

    return {"dataset": dataset, "scheme": scheme, "cr": cr, "variant": variant, "n_images": len(images),
            **{k: float(np.mean(v)) for k, v in per.items()}, "images": list(images), "per_image": per,
            "made_by": results_record(ModelSpec(scheme, cr, variant != "one-shot"))}


def test_a_report_written_again_from_rows_keeps_the_included_pairs_times():
    """Session 35: the channel report written again with --rows and --include lost the unstructured pairs' times
    (taken from --include, untimed, instead of the earlier run's timed copies)."""
    from napari_prunuclei.cli.sweep import same_row

    included = _sweep_row("monuseg", "layerwise", 2.0, "fine-tuned", 0.59)
    timed = {**included, "seconds": 0.71, "time_ratio": 0.99}
    assert same_row(timed, included) is timed and same_row(None, included) is included
    other = {**timed, "aji": 0.5}  # another evaluation (other weights or scores): not taken
    assert same_row(other, included) is included


def test_sweep_rows_of_an_earlier_sweep_write_the_report_without_evaluating(tmp_path, capsys):
    """`--rows` takes an earlier sweep.json (no data read: --data names a folder that does not exist), keeps the
    rows asked for, and writes the report; a missing file or no matching rows is one line, exit 2."""
    rows = [_sweep_row("monuseg", "dense", 1.0, "dense", 0.60), _sweep_row("monuseg", "layerwise", 2.0,
                                                                          "fine-tuned", 0.59),
            _sweep_row("monuseg", "networkwide", 2.0, "fine-tuned", 0.58)]
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(rows))
    out, report = tmp_path / "out", tmp_path / "pruning.md"
    assert main(["sweep", "--data", str(tmp_path / "none"), "--rows", str(earlier), "--schemes", "layerwise",
                 "--cr", "2", "--variants", "fine-tuned", "--datasets", "monuseg", "--out", str(out),
                 "--report", str(report)]) == 0
    kept = json.loads((out / "sweep.json").read_text())
    assert {(r["scheme"], r["cr"]) for r in kept} == {("dense", 1.0), ("layerwise", 2.0)}
    assert "layerwise" in report.read_text() or "layer-wise" in report.read_text()
    assert f"whose rows are `{earlier}`" in report.read_text()  # the report says where its rows came from
    assert main(["sweep", "--data", str(tmp_path), "--rows", str(tmp_path / "missing.json"), "--out", str(out),
                 "--report", str(report)]) == 2
    assert main(["sweep", "--data", str(tmp_path), "--rows", str(earlier), "--schemes", "channel-layerwise",
                 "--out", str(out), "--report", str(report)]) == 2
    err = capsys.readouterr().err
    assert "missing.json" in err and "no rows of channel-layerwise" in err and "Traceback" not in err


def test_a_sweep_into_a_folder_of_its_own_writes_its_report_beside_it(tmp_path, monkeypatch, capsys):
    """Session 36: `prunuclei sweep --out FOLDER` without --report wrote over docs/pruning.md (of the current
    folder: the repository's report) with another CPU's timings; the report now lies beside --out, named for it."""
    rows = [_sweep_row("monuseg", "dense", 1.0, "dense", 0.60),
            _sweep_row("monuseg", "layerwise", 2.0, "fine-tuned", 0.59)]
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(rows))
    (tmp_path / "docs").mkdir()
    repo_report = tmp_path / "docs" / "pruning.md"
    repo_report.write_text("the repository's report")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--data", "none", "--rows", str(earlier), "--schemes", "layerwise", "--cr", "2",
                 "--variants", "fine-tuned", "--datasets", "monuseg", "--out", "runs/amd"]) == 0
    assert repo_report.read_text() == "the repository's report"
    assert (tmp_path / "runs" / "amd.md").is_file() and (tmp_path / "runs" / "amd" / "sweep.json").is_file()
    assert main(["sweep", "--data", "none", "--rows", str(earlier), "--schemes", "layerwise", "--cr", "2",
                 "--variants", "fine-tuned", "--datasets", "monuseg", "--out", "."]) == 0
    assert (tmp_path / "sweep_report.md").is_file() and not (tmp_path / ".md").exists()  # "." has no name to take
    (tmp_path / "docs" / "performance.md").write_text("# Performance\n")  # a page of the user's, not a report
    args = ["sweep", "--data", "none", "--rows", str(earlier), "--schemes", "layerwise", "--cr", "2",
            "--variants", "fine-tuned", "--datasets", "monuseg"]
    assert main([*args, "--out", "docs/performance"]) == 2  # would have written over docs/performance.md
    assert (tmp_path / "docs" / "performance.md").read_text() == "# Performance\n"
    assert not (tmp_path / "docs" / "performance").exists()
    (tmp_path / "runs" / "dir.md").mkdir()
    assert main([*args, "--out", "runs/dir"]) == 2 and not (tmp_path / "runs" / "dir").exists()
    assert main([*args, "--out", "runs/amd"]) == 0  # its own earlier report: written again
    report = (tmp_path / "runs" / "amd.md").read_text()
    assert "](amd/sweep_monuseg.png)" in report and (tmp_path / "runs" / "amd" / "sweep_monuseg.png").is_file()
    err = capsys.readouterr().err
    assert "docs/performance.md exists and is not a sweep's report" in err and "exists and is not a file" in err


def test_a_report_written_again_on_another_cpu_names_where_its_times_were_measured(tmp_path):
    """Session 36: a report written again from --rows on an AMD EPYC would have called the Intel Xeon's times its
    own machine's. Timed rows record their machine; a report of rows timed elsewhere names it (or says unknown)."""
    from napari_prunuclei.study.sweep import times_from, timing_machine

    here = timing_machine()
    assert "torch threads" in here and here.endswith(("fp32", "bf16"))
    timed = [{**_sweep_row("monuseg", s, cr, v, 0.6), "seconds": 0.7, "time_ratio": 1.0}
             for s, cr, v in (("dense", 1.0, "dense"), ("channel-layerwise", 2.0, "fine-tuned"))]
    assert times_from(timed) is None and times_from([_sweep_row("monuseg", "dense", 1.0, "dense", 0.6)]) is None
    for rows, says in ((timed, "the machine of the run that made them (their rows do not name it)"),
                       ([{**r, "timed_on": "Intel Xeon (x86_64), 1 torch threads, bf16"} for r in timed],
                        "Intel Xeon (x86_64), 1 torch threads, bf16")):
        earlier = tmp_path / "earlier.json"
        earlier.write_text(json.dumps(rows))
        report = tmp_path / "channels.md"
        assert main(["sweep", "--data", "none", "--rows", str(earlier), "--schemes", "channel-layerwise", "--cr", "2",
                     "--variants", "fine-tuned", "--datasets", "monuseg", "--out", str(tmp_path / "out"),
                     "--report", str(report)]) == 0
        assert f"The times were not measured by this command: they were measured on {says}" in report.read_text()


def test_two_sweeps_into_one_folder_the_second_refused_and_nothing_of_the_first_touched(tmp_path, capsys):
    """Hostile pass, session 36: two sweeps into one --out wrote one's JSON beside the other's plots and report."""
    import fcntl

    from napari_prunuclei.cli.sweep import SWEEP_LOCK

    rows = [_sweep_row("monuseg", "dense", 1.0, "dense", 0.60),
            _sweep_row("monuseg", "layerwise", 2.0, "fine-tuned", 0.59)]
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(rows))
    out = tmp_path / "out"
    args = ["sweep", "--data", "none", "--rows", str(earlier), "--schemes", "layerwise", "--cr", "2",
            "--variants", "fine-tuned", "--datasets", "monuseg", "--out", str(out)]
    out.mkdir()
    (out / "sweep.json").write_text("the first sweep's")
    with open(out / SWEEP_LOCK, "w") as held:  # the first sweep, still running
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"--out {out}: another prunuclei sweep is writing there" in err and "Traceback" not in err
        assert (out / "sweep.json").read_text() == "the first sweep's" and not (tmp_path / "out.md").exists()
    assert main(args) == 0  # the first one done: this one runs
    assert json.loads((out / "sweep.json").read_text())[0]["scheme"] == "dense"
    assert not [p for p in out.iterdir() if p.name.startswith(".prunuclei-tmp")]  # no temporary left


def test_a_failed_image_is_named_once_in_its_line(tmp_path, capsys):
    """A file declaring 20 µm per pixel fails with one line that names the file once (it was named twice)."""
    path = tmp_path / "coarse.tif"
    tifffile.imwrite(path, np.full((64, 64, 3), 200, np.uint8), photometric="rgb",
                     description="Aperio Image Library |MPP = 20")
    assert main(["segment", str(path), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "failed, nothing written" in x)
    assert line.count(str(path)) == 1 and "20 µm per pixel" in line and "--pixel-size" in line


@pytest.mark.parametrize("why, line", [
    ("{p}: the file declares 20 µm per pixel", "{p}: failed, nothing written: the file declares 20 µm per pixel"),
    ("cannot read image {p}: corrupt (cannot identify image file '{p}')",
     "failed, nothing written: cannot read image {p}: corrupt (cannot identify image file)"),
    ("image file not found: {p}", "failed, nothing written: image file not found: {p}"),
    ("out of memory", "{p}: failed, nothing written: out of memory"),
])
def test_a_failure_line_names_the_file_once(why, line):
    """Hostile pass: lines named the file two or three times (the batch's prefix and the reader's own)."""
    from napari_prunuclei.cli.segment import failure_line

    p = "multi/trunc d.tif"
    assert failure_line(p, why.format(p=p)) == line.format(p=p)


def test_a_failure_line_with_a_line_break_in_the_name_stays_one_line():
    """Hostile pass: a file named with a line break split the failure into two lines on the terminal."""
    from napari_prunuclei.cli.segment import failure_line

    p = "odd\nname.tif"
    for why in (f"cannot read image {p}: corrupted IFD structure", "corrupted IFD structure",
                "cannot read image odd name.tif: corrupted IFD structure"):  # the reader's own, made one line
        line = failure_line(p, why)
        assert "\n" not in line and '"odd\\nname.tif"' in line and "corrupted IFD structure" in line
        assert "odd name" not in line  # named once


def test_models_markdown_is_one_row_per_pair_with_drops_against_dense(capsys):
    from napari_prunuclei.cli.models import pairs_markdown

    models = [{"branch": "semantic", "scheme": "dense", "cr": 1, "steps": 4000, "metrics": {"aji": 0.6},
               "metrics_held_back": {"aji": 0.5}},
              {"branch": "distance", "scheme": "dense", "cr": 1},
              {"branch": "semantic", "scheme": "channel-layerwise", "cr": 4, "macs_ratio": 3.96, "steps": 250,
               "metrics": {"aji": 0.54}, "metrics_held_back": {"aji": 0.45}},
              {"branch": "distance", "scheme": "channel-layerwise", "cr": 4, "macs_ratio": 3.96},
              {"branch": "semantic", "scheme": "channel-networkwide", "cr": 2, "macs_ratio": 2.0, "steps": 250},
              {"branch": "distance", "scheme": "channel-networkwide", "cr": 2, "macs_ratio": 4.0}]
    lines = pairs_markdown(models).splitlines()
    assert len(lines) == 5 and lines[2].startswith("| dense | 1 |  | 4000 | 0.500 | 0.600 |")
    assert lines[3] == "| channel-layerwise | 4 | 3.96 | 250 | 0.450 (-10.0 %) | 0.540 (-10.0 %) |  |"
    # the pair's MACs: both branches (dense MACs 2M over M/2 + M/4), not the semantic branch's alone
    assert lines[4].startswith("| channel-networkwide | 2 | 2.67 | 250 |")
    assert main(["models", "--markdown"]) == 0
    assert capsys.readouterr().out.count("\n| ") >= 30  # the shipped zoo: dense and 30 pairs


def test_models_markdown_into_replaces_the_model_cards_table_alone(tmp_path, capsys):
    """The card's table comes from the registry in place (no copy by hand); prose around it is kept, and a card
    without that table, or with two, is left as it was with a one-line error naming it."""
    from napari_prunuclei.cli.models import pairs_markdown
    from napari_prunuclei.models.zoo import registry

    header = pairs_markdown([]).split("\n")[0]
    card = tmp_path / "models.md"
    card.write_text(f"# card\n\nbefore\n\n{header}\n|---|\n| old | 1 |\n\nafter | not a table\n| other | table |\n")
    assert main(["models", "--markdown", "--into", str(card)]) == 0
    text = card.read_text()
    assert text.startswith("# card\n\nbefore\n\n" + pairs_markdown(registry()["models"]) + "\n\nafter | not")
    assert "| old | 1 |" not in text and text.endswith("| other | table |\n")
    for broken in ("no table here\n", f"{header}\n|---|\n\n{header}\n"):
        card.write_text(broken)
        with pytest.raises(SystemExit, match=f"prunuclei models --into {card}: (no|2) tables headed"):
            main(["models", "--markdown", "--into", str(card)])
        assert card.read_text() == broken
    with pytest.raises(SystemExit, match="missing.md"):
        main(["models", "--markdown", "--into", str(tmp_path / "missing.md")])
