"""An earlier sweep.json read back, checked row by row (study/sweep_rows.py); hostile pass cases."""

import json

import pytest

from napari_prunuclei.cli.main import main
from napari_prunuclei.runtime.pairs import ModelSpec, results_record
from napari_prunuclei.study.sweep_rows import SweepRowsError, check_made_by, read_sweep_rows

MEASURES = ("semantic_dice", "semantic_aji", "distance_aji", "distance_mse", "aji", "pq", "dice")


def _row(scheme="layerwise", cr=2.0, variant="fine-tuned", dataset="monuseg", **kw):
    made_by = (results_record(ModelSpec(scheme, cr, variant != "one-shot"))
               if isinstance(cr, float) and "made_by" not in kw else None)
    return {"dataset": dataset, "scheme": scheme, "cr": cr, "variant": variant, "n_images": 2,
            **{k: 0.6 for k in MEASURES}, "made_by": made_by, **kw}


@pytest.mark.parametrize("content, says", [
    ("5", "a JSON int"), ("null", "a JSON NoneType"), ('{"a": 1}', "a JSON dict"), ("[1", "not JSON"),
    (json.dumps([_row(cr=None)]), "row 1: 'cr' missing"), (json.dumps([_row(cr=[20])]), "'cr' missing"),
    (json.dumps([_row(cr="20")]), "'cr' missing"), (json.dumps([_row(aji=None)]), "'aji' missing"),
    (json.dumps([_row(aji="0.5")]), "'aji' missing"), ('[{"dataset": "monuseg"}]', "'scheme' missing"),
    (json.dumps([_row(), _row(aji=float("nan"))]), "row 2: 'aji' missing or not a finite number"),
    (json.dumps([_row(n_images=True)]), "'n_images'"), (json.dumps([_row(dataset="x")]), "unknown data set"),
    (json.dumps([_row(images=["a"], per_image={"aji": [0.5, 0.6]})]), "per_image 'aji' is not 1 finite"),
    ("[" * 100_000 + "]" * 100_000, "not JSON"),
])
def test_a_broken_sweep_json_is_one_line_naming_the_file_and_row(tmp_path, content, says):
    f = tmp_path / "rows.json"
    f.write_text(content)
    with pytest.raises(SweepRowsError, match=f"^{f}: .*") as e:
        read_sweep_rows(f)
    assert says in str(e.value) and str(e.value).count(str(f)) == 1


def test_a_missing_file_is_named_once(tmp_path):
    with pytest.raises(SweepRowsError) as e:
        read_sweep_rows(tmp_path / "missing.json")
    assert str(e.value).count("missing.json") == 1 and "No such file" in str(e.value)


def _sweep(tmp_path, rows_file, out, *extra):
    return main(["sweep", "--data", str(tmp_path / "none"), "--rows", str(rows_file), "--schemes", "layerwise",
                 "--cr", "2", "--variants", "fine-tuned", "--datasets", "monuseg", "--out", str(out),
                 "--report", str(tmp_path / "r.md"), *extra])


def test_the_sweep_refuses_to_write_over_its_rows_or_a_file_and_needs_dense(tmp_path, capsys):
    """Hostile pass: `--rows X/sweep.json --out X` overwrote the 82-row input with 2 rows; `--out` an existing
    file ended in a bare errno; rows with no dense row ended in StopIteration (exit 3)."""
    out = tmp_path / "out"
    out.mkdir()
    rows = out / "sweep.json"
    rows.write_text(json.dumps([_row("dense", 1.0, "dense"), _row(), _row("networkwide")]))  # (--schemes layerwise)
    before = rows.read_bytes()
    assert _sweep(tmp_path, rows, out) == 2 and rows.read_bytes() == before
    assert "without 1 of its rows (e.g. networkwide CR2 on monuseg)" in capsys.readouterr().err
    rows.write_text(json.dumps([_row("dense", 1.0, "dense"), _row()]))  # every row kept, but the report over them
    before = rows.read_bytes()
    assert _sweep(tmp_path, rows, out, "--report", str(rows)) == 2 and rows.read_bytes() == before
    assert f"--report {rows}: the sweep writes its own sweep.json there; choose another --report" in \
        capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert _sweep(tmp_path, rows, tmp_path / "file") == 2
    lonely = tmp_path / "no_dense.json"
    lonely.write_text(json.dumps([_row()]))
    assert _sweep(tmp_path, lonely, tmp_path / "o2") == 2
    assert _sweep(tmp_path, rows, tmp_path / "o3", "--include", str(tmp_path / "file")) == 2
    err = capsys.readouterr().err
    assert "exists and is not a folder" in err and "no dense row for monuseg" in err
    assert "not JSON" in err and "Traceback" not in err and "unexpected" not in err.lower()
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()  # nothing half-written


def test_rows_of_other_weights_or_of_a_sweep_that_did_not_record_them_are_refused(tmp_path, capsys):
    """Pre-ship review: `--rows` of the previous zoo's sweep would have put its figures in the new zoo's report
    and registry. Rows are used only when made by the weight files that ship now."""
    dense = _row("dense", 1.0, "dense")
    stale = _row(made_by={**_row()["made_by"], "weights": {"semantic": "ab" * 32, "distance": "cd" * 32}})
    for rows, says in (([dense, stale], "row 2 (monuseg layerwise CR2 fine-tuned) was made by other weight files"),
                       ([dense, _row(made_by=None)], "by a sweep that did not record its weight files")):
        f = tmp_path / "rows.json"
        f.write_text(json.dumps(rows))
        assert _sweep(tmp_path, f, tmp_path / "o") == 2
        err = capsys.readouterr().err
        assert says in err and "again without --rows" in err and "Traceback" not in err
        assert not (tmp_path / "o").exists()
    f.write_text(json.dumps([dense, _row("bogus", made_by=None)]))
    assert _sweep(tmp_path, f, tmp_path / "o") == 2  # no rows of layerwise: refused before any row is read
    with pytest.raises(SweepRowsError, match="row 2 .*unknown scheme 'bogus'"):
        check_made_by([dense, _row("bogus", made_by=None)], f)
    one_shot = _row(cr=3.3, made_by=results_record(ModelSpec("layerwise", 3.3, False)))
    with pytest.raises(SweepRowsError, match="row 2 .*says fine-tuned, but no fine-tuned pair ships at this CR"):
        check_made_by([dense, one_shot], f)  # (hostile pass: was reported as a fine-tuned CR 3.3)
    f.write_text(json.dumps([dense, _row()]))
    assert _sweep(tmp_path, f, tmp_path / "o") == 0


def test_a_report_is_drawn_again_where_its_rows_lie_when_every_row_is_kept(tmp_path):
    """`--rows X/sweep.json --out X` draws X's report and plots again in place (the repository's channel report,
    session 37), only when the sweep keeps every row of X/sweep.json (else refused above)."""
    out = tmp_path / "out"
    out.mkdir()
    rows = out / "sweep.json"
    rows.write_text(json.dumps([_row("dense", 1.0, "dense"), _row(aji=0.61)]))
    assert _sweep(tmp_path, rows, out) == 0
    again = read_sweep_rows(rows)
    assert [(r["scheme"], r["aji"]) for r in again] == [("dense", 0.6), ("layerwise", 0.61)]
    assert f"whose rows are `{rows}`" in (tmp_path / "r.md").read_text()


def test_a_fifo_or_a_folder_given_as_rows_is_refused_without_blocking(tmp_path):
    """Hostile pass, session 36: `--rows` naming a FIFO waited for a writer until the run was killed."""
    import os

    fifo = tmp_path / "rows.json"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        with pytest.raises(SweepRowsError, match="not a sweep.json file"):
            read_sweep_rows(path)


def test_a_sweep_removes_what_a_killed_sweep_left_in_its_out_and_nothing_else(tmp_path):
    """Session 36: a sweep killed with -9 while writing left .prunuclei-tmp.* files in --out for good. The next
    sweep there (holding the folder's lock) removes its own outputs' temporary files, matched exactly."""
    out = tmp_path / "out"
    out.mkdir()
    left = [".prunuclei-tmp.sweep.json.k3_x9a1b.json", ".prunuclei-tmp.pareto_gbm40.png.6m9xzava.png",
            ".prunuclei-tmp.sweep_tables.md.a1b2c3d4.md", ".prunuclei-tmp.sparsity_networkwide_cr20.png.zz11yy22.png"]
    users = [".prunuclei-tmp.notes.txt.abcdefgh.txt", "my.prunuclei-tmp.sweep.json.abcdefgh.json", ".hidden",
             ".prunuclei-tmp.sweep.json.abcdefgh.json.bak",
             ".prunuclei-tmp.sweep_report.md.abcdefgh.md"]  # (maybe another sweep's --report, writing now)
    for name in left + users:
        (out / name).write_text("x")
    (out / ".prunuclei-tmp.sweep.csv.dir00000.csv").mkdir()  # a folder of that name is not the sweep's
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([_row("dense", 1.0, "dense"), _row()]))
    assert _sweep(tmp_path, rows, out) == 0
    names = {p.name for p in out.iterdir()}
    assert not names & set(left) and set(users) | {".prunuclei-tmp.sweep.csv.dir00000.csv"} <= names


def test_a_named_report_never_writes_over_another_file_or_the_sweeps_own(tmp_path, capsys):
    """Hostile pass, session 37: `--report README.md` replaced the README with a sweep report; `--report
    OUT/sweep.json` replaced the rows just written; `--report OUT/multiples.json` broke every later run."""
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([_row("dense", 1.0, "dense"), _row()]))
    out = tmp_path / "out"
    out.mkdir()
    readme = tmp_path / "README.md"
    readme.write_text("# my notes\n")
    (out / "multiples.json").write_text("{}")
    for report, says in ((readme, "exists and is not a sweep's report"), (out / "multiples.json", "exists and is"),
                         (out / "sweep.json", "the sweep writes its own sweep.json there"),
                         (out / "pareto_gbm40.png", "its own pareto_gbm40.png"),
                         (out / ".prunuclei-sweep.lock", "its own .prunuclei-sweep.lock"),
                         (rows, "exists and is not a sweep's report")):
        args = ["sweep", "--data", str(tmp_path), "--rows", str(rows), "--schemes", "layerwise", "--cr", "2",
                "--variants", "fine-tuned", "--datasets", "monuseg", "--out", str(out), "--report", str(report)]
        assert main(args) == 2, report
        err = capsys.readouterr().err
        assert f"--report {report}: " in err and says in err and "choose another --report" in err, err
    assert readme.read_text() == "# my notes\n" and (out / "multiples.json").read_text() == "{}"
    assert sorted(p.name for p in out.iterdir()) == ["multiples.json"]  # nothing else made there


def test_a_named_report_inside_a_new_out_is_made_with_it(tmp_path, capsys):
    """Session 37's candidate: `--out new --report new/r.md` was refused ("its folder new does not exist") though
    the sweep makes that folder; a report in any other missing folder still is."""
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([_row("dense", 1.0, "dense"), _row()]))
    out = tmp_path / "new"
    args = ["sweep", "--data", str(tmp_path), "--rows", str(rows), "--schemes", "layerwise", "--cr", "2",
            "--variants", "fine-tuned", "--datasets", "monuseg", "--out", str(out), "--report"]
    assert main([*args, str(tmp_path / "elsewhere" / "r.md")]) == 2
    assert "its folder" in capsys.readouterr().err and not out.exists()
    assert main([*args, str(out / "sweep.json")]) == 2  # the sweep's own file there, in a new folder too
    assert "the sweep writes its own sweep.json there" in capsys.readouterr().err and not out.exists()
    assert main([*args, str(out / "r.md")]) == 0, capsys.readouterr().err
    assert (out / "r.md").is_file() and (out / "sweep.json").is_file()
    # reviewer: an --out through a missing folder ('missing/..') resolved onto an existing one skipped the checks
    mine = tmp_path / "d"
    mine.mkdir()
    (mine / "notes.md").write_text("# mine\n")
    odd = ["--out", str(tmp_path / "missing" / ".." / "d"), "--report", str(mine / "notes.md")]
    assert main([*args[:-3], *odd]) == 2 and "exists and is not a sweep's report" in capsys.readouterr().err
    assert (mine / "notes.md").read_text() == "# mine\n"

def test_in_place_every_row_stays_as_it_is(tmp_path, capsys):
    """Hostile pass, session 37: in place, an --include row that differed from the file's (re-evaluated) replaced
    it and dropped its times; a duplicate row was dropped silently."""
    out = tmp_path / "out"
    out.mkdir()
    dense = _row("dense", 1.0, "dense")
    chan = _row("channel-layerwise", made_by=results_record(ModelSpec("channel-layerwise", 2.0, True)))
    timed = _row(seconds=0.7, time_ratio=1.0, timed_on="Intel Xeon, 1 torch threads, bf16")  # an included pair
    rows = out / "sweep.json"
    rows.write_text(json.dumps([dense, chan, timed]))
    include = tmp_path / "include.json"
    include.write_text(json.dumps([dense, _row(aji=0.601)]))  # evaluated again since

    def sweep(*extra):
        return main(["sweep", "--data", str(tmp_path), "--rows", str(rows), "--schemes", "channel-layerwise", "--cr",
                     "2", "--variants", "fine-tuned", "--datasets", "monuseg", "--out", str(out), "--report",
                     str(tmp_path / "r.md"), *extra])

    before = rows.read_bytes()
    assert sweep("--include", str(include)) == 2 and rows.read_bytes() == before
    err = capsys.readouterr().err
    assert "with 1 of its rows changed (their --include rows differ from them) (e.g. layerwise CR2 on monuseg)" in err
    assert sweep() == 2 and "without 1 of its rows (e.g. layerwise CR2 on monuseg)" in capsys.readouterr().err
    include.write_text(json.dumps([dense, _row()]))  # the very rows it included
    rows.write_text(json.dumps([dense, chan, timed, {**timed, "seconds": 0.9}]))  # two rows of one pair: one would go
    assert sweep("--include", str(include)) == 2 and "changed" in capsys.readouterr().err
    rows.write_text(json.dumps([dense, chan, timed]))
    assert sweep("--include", str(include)) == 0
    assert [r.get("timed_on") for r in read_sweep_rows(rows)] == [None, None, "Intel Xeon, 1 torch threads, bf16"]


def test_a_broken_multiples_json_is_named_before_anything_is_written(tmp_path, capsys):
    """Hostile pass, session 37: a multiples.json of [1, 2] ended in 'unexpected error: TypeError' after the
    outputs were rewritten; a truncated one in a JSON message that named no file."""
    chan = _row("channel-layerwise", made_by=results_record(ModelSpec("channel-layerwise", 2.0, True)))
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([_row("dense", 1.0, "dense"), chan]))
    out = tmp_path / "out"
    out.mkdir()
    for content in ("[1, 2]", '{"x":', '{"rows": [{"cr": 2}], "size": 1, "cpu": "x", "threads": 1, "precision": "b"}'):
        (out / "multiples.json").write_text(content)
        code = main(["sweep", "--data", str(tmp_path), "--rows", str(rows), "--schemes", "channel-layerwise",
                     "--cr", "2", "--variants", "fine-tuned", "--datasets", "monuseg", "--out", str(out),
                     "--report", str(tmp_path / "r.md")])
        err = capsys.readouterr().err
        assert code == 2 and f"{out / 'multiples.json'}: not a result of bench/bench_channels.py" in err, err
        assert sorted(p.name for p in out.iterdir()) == [".prunuclei-sweep.lock", "multiples.json"]


def test_a_refused_sweep_removes_every_folder_it_made_and_the_report_command_is_quoted(tmp_path, monkeypatch):
    rows = tmp_path / "rows.json"
    rows.write_text("[1")
    assert _sweep(tmp_path, rows, tmp_path / "new" / "sub") == 2
    assert not (tmp_path / "new").exists()  # (a hostile pass found new/ left behind)
    odd = tmp_path / "sp ace $(touch pwned)"
    odd.mkdir()
    rows = odd / "rows.json"
    rows.write_text(json.dumps([_row("dense", 1.0, "dense"), _row()]))
    import sys

    monkeypatch.setattr(sys, "argv", ["prunuclei", "sweep", "--rows", str(rows)])  # (what the report quotes)
    assert _sweep(tmp_path, rows, tmp_path / "o") == 0
    import shlex

    assert f"--rows {shlex.quote(str(rows))}" in (tmp_path / "r.md").read_text()  # pasted back as it ran


def test_with_rows_flags_that_could_not_act_are_refused(tmp_path, capsys):
    """Hostile pass, session 37: with --rows, --limit 2, --cr ... 64 and --variants one-shot ran and were recorded
    in the report's command, though its tables held every image, no CR 64 and no one-shot row."""
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([_row("dense", 1.0, "dense"), _row()]))
    for extra, says in ((["--limit", "2"], "--limit evaluates fewer images"),
                        (["--cr", "2", "64"], "no rows of CR 64 for layerwise"),
                        (["--variants", "fine-tuned", "one-shot"], "no rows of one-shot for layerwise")):
        assert _sweep(tmp_path, rows, tmp_path / "o", *extra) == 2
        assert says in capsys.readouterr().err
        assert not (tmp_path / "o").exists() and not (tmp_path / "r.md").exists()
