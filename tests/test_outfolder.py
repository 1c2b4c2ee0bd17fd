"""An output folder: only our own scratch is removed, one model per folder, an image is finished only whole."""

import json
import os
import signal

import numpy as np
import pytest
import tifffile

from napari_prunuclei.cli.main import main
from napari_prunuclei.io.atomic import bounded_name
from napari_prunuclei.io.outfolder import MANIFEST, is_finished, model_record, remove_leftovers
from napari_prunuclei.nuclei.synthetic import synthetic_tile
from napari_prunuclei.runtime.batch import segment_files
from napari_prunuclei.runtime.pairs import results_record
from napari_prunuclei.runtime.request import SegmentRequest

CPU = ["--device", "cpu"]


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiles")
    for i, name in enumerate(["a", "b", "python"]):
        rgb, _ = synthetic_tile(128, seed=20 + i)
        tifffile.imwrite(d / f"{name}.tif", rgb)
    return d


def _names(folder):
    return sorted(q.name for q in folder.iterdir())


def test_a_users_hidden_files_that_share_the_images_stem_are_never_touched(tiles, tmp_path):
    out = tmp_path / "home"
    out.mkdir()
    (out / ".python_history").write_text("import this")
    (out / ".python_cache_dir").mkdir()
    (out / ".python_cache_dir" / "x").write_text("keep")
    (out / ".python_labels.tif.abc.tif").write_text("a user's file with our old temporary name")
    assert main(["segment", str(tiles / "python.tif"), "-o", str(out), *CPU]) == 0
    assert (out / ".python_history").read_text() == "import this"
    assert (out / ".python_cache_dir" / "x").read_text() == "keep"
    assert (out / ".python_labels.tif.abc.tif").is_file()
    # a re-run with --overwrite cleans up too, and still touches none of them
    assert main(["segment", str(tiles / "python.tif"), "-o", str(out), *CPU, "--overwrite"]) == 0
    assert {".python_history", ".python_cache_dir", ".python_labels.tif.abc.tif"} <= set(_names(out))


def test_only_exact_scratch_names_are_removed(tmp_path):
    keep = [".prunuclei-s0.labels.abc.zarr.bak", ".prunuclei-s0x.labels.abc.zarr", ".prunuclei-tmp.s0_labels.tif",
            "s0_labels.tif", ".s0_labels.abc123.zarr", ".prunuclei-s0.tiles"]
    gone = [".prunuclei-s0.labels.abc_12.zarr", ".prunuclei-tmp.s0_labels.tif.x1y2.tif",
            ".prunuclei-tmp.s0_info.json.k3.json"]
    for n in keep + gone:
        (tmp_path / n).write_text("x")
    remove_leftovers(tmp_path, {"s0"})
    assert _names(tmp_path) == sorted(keep)


def test_another_model_into_a_finished_folder_is_refused_and_overwrite_replaces_it_whole(tiles, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(tiles / "a.tif"), str(tiles / "b.tif"), "-o", str(out), *CPU]) == 0
    before = {n: (out / n).read_bytes() for n in _names(out) if not n.startswith(".")}
    capsys.readouterr()
    # every image finished: still refused (the folder's model is checked first), nothing changed
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU, "--scheme", "networkwide", "--cr", "20"]) == 2
    assert "another model" in capsys.readouterr().err
    assert {n: (out / n).read_bytes() for n in _names(out) if not n.startswith(".")} == before
    # --overwrite of one image replaces the folder's results whole: no dense result is left beside it
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU, "--scheme", "networkwide", "--cr", "20",
                 "--overwrite"]) == 0
    assert not (out / "b_info.json").exists() and not (out / "b_labels.tif").exists()
    info = json.loads((out / "a_info.json").read_text())
    manifest = json.loads((out / MANIFEST).read_text())
    assert info["request"]["scheme"] == manifest["scheme"] == "networkwide" and manifest["cr"] == 20


def test_an_image_missing_an_output_is_not_finished(tiles, tmp_path):
    out = tmp_path / "out"
    req = SegmentRequest(device="cpu")
    segment_files([tiles / "a.tif"], out, req, progress=False)
    assert is_finished(tiles / "a.tif", out, model_record(req, results_record(req.spec, req.params)))
    (out / "a_labels.tif").unlink()
    res = segment_files([tiles / "a.tif"], out, req, progress=False)
    assert res.skipped == 0 and len(res.finished) == 1 and (out / "a_labels.tif").is_file()
    info = json.loads((out / "a_info.json").read_text())
    assert sorted(info["outputs"]) == ["a_distance.tif", "a_labels.tif", "a_probability.tif"]
    assert info["outputs"]["a_labels.tif"] == (out / "a_labels.tif").stat().st_size


def test_a_failed_image_leaves_no_file(tiles, tmp_path, monkeypatch):
    import napari_prunuclei.io.atomic as io

    real = io.atomic_write

    def full_disk(path, write):
        if str(path).endswith("_distance.tif"):
            raise OSError(28, f"cannot write {path}: No space left on device")
        return real(path, write)

    monkeypatch.setattr(io, "atomic_write", full_disk)
    out = tmp_path / "out"
    out.mkdir()
    res = segment_files([tiles / "a.tif"], out, SegmentRequest(device="cpu"), progress=False)
    assert len(res.failed) == 1 and "No space left" in res.failed[0][1]
    assert [n for n in _names(out) if n.startswith("a_")] == []


def test_a_long_name_fails_alone_and_a_batch_goes_on(tmp_path, capsys):
    rgb, _ = synthetic_tile(128, seed=3)
    src = tmp_path / "in"
    src.mkdir()
    ok_long = "n" * 230  # its outputs fit in 255 bytes, the temporary names must too
    too_long = "m" * 245
    for stem in (ok_long, too_long, "short"):
        tifffile.imwrite(src / f"{stem}.tif", rgb)
    out = tmp_path / "out"
    for _ in range(2):  # a re-run retries, never aborts the batch
        assert main(["segment", str(src), "-o", str(out), *CPU]) == 1
        err = capsys.readouterr().err
        assert "name is too long" in err and "1 of 3 image(s) failed" in err
    assert (out / f"{ok_long}_labels.tif").is_file() and (out / "short_labels.tif").is_file()
    assert len(bounded_name("x" * 400)) < 100


def test_list_files(tiles, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    nested = tmp_path / "more.txt"
    nested.write_text(f"{tiles / 'b.tif'}\n")
    lst = tmp_path / "list.txt"
    lst.write_text(f"# images\n\n  {tiles / 'a.tif'}  \n@{nested}\n")
    assert main(["segment", f"@{lst}", "-o", str(tmp_path / "o"), *CPU]) == 0
    assert sorted(n for n in _names(tmp_path / "o") if n.endswith("_labels.tif")) == ["a_labels.tif",
                                                                                      "b_labels.tif"]
    capsys.readouterr()
    (tmp_path / "opts.txt").write_text("--overwrite\n-x.png\n")  # lines are paths, never options
    assert main(["segment", "@opts.txt", "-o", str(tmp_path / "o2"), *CPU]) == 1
    err = capsys.readouterr().err
    assert "--overwrite" in err and "-x.png" in err and not (tmp_path / "o2").exists()
    (tmp_path / "self.txt").write_text("@self.txt\n")
    assert main(["segment", "@self.txt", "-o", str(tmp_path / "o3"), *CPU]) == 2
    assert "includes itself" in capsys.readouterr().err
    assert main(["segment", "@missing.txt", "-o", str(tmp_path / "o3"), *CPU]) == 2
    assert "list file not found: missing.txt" in capsys.readouterr().err


def test_a_rerun_into_the_input_folder_does_not_take_its_own_outputs_as_images(tiles, tmp_path, capsys):
    import shutil

    folder = tmp_path / "f"
    shutil.copytree(tiles, folder)
    for _ in range(2):
        assert main(["segment", str(folder), "-o", str(folder), *CPU]) == 0
    assert "failed" not in capsys.readouterr().err


def test_sigterm_ends_a_run_like_ctrl_c(tiles, tmp_path, monkeypatch, capsys):
    import napari_prunuclei.runtime.batch as batch

    def killed(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("not reached: SIGTERM interrupts the run")

    monkeypatch.setattr(batch, "segment_files", killed)
    assert main(["segment", str(tiles / "a.tif"), "-o", str(tmp_path / "o"), *CPU]) == 143
    assert "terminated" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_files_a_run_did_not_make_are_never_overwritten(tiles, tmp_path, capsys):
    """Ground truth named like an output (X_labels.tif) beside the image: refused by name, kept byte for byte."""
    import shutil

    folder = tmp_path / "gt"
    folder.mkdir()
    shutil.copy(tiles / "a.tif", folder / "a.tif")
    truth = folder / "a_labels.tif"
    tifffile.imwrite(truth, np.ones((128, 128), np.uint16))
    before = truth.read_bytes()
    assert main(["segment", str(folder / "a.tif"), "-o", str(folder), *CPU]) == 1
    assert "a_labels.tif exists and no prunuclei run made it" in capsys.readouterr().err
    assert truth.read_bytes() == before and not (folder / "a_probability.tif").exists()


def test_a_refused_run_never_removes_a_folder_it_did_not_fill(tiles, tmp_path, monkeypatch):
    """A run that found no folder, then was refused (another run made and filled it meanwhile), removes nothing."""
    import napari_prunuclei.runtime.batch as batch

    out = tmp_path / "race"
    real = batch.claim

    def other_run_first(folder, model, overwrite, **kw):
        monkeypatch.setattr(batch, "claim", real)
        segment_files([tiles / "b.tif"], folder, SegmentRequest(device="cpu", scheme="networkwide", cr=20),
                      progress=False)  # another model's run finishes first
        return real(folder, model, overwrite, **kw)

    monkeypatch.setattr(batch, "claim", other_run_first)
    with pytest.raises(ValueError, match="another model"):
        segment_files([tiles / "a.tif"], out, SegmentRequest(device="cpu"), progress=False)
    assert (out / "b_labels.tif").is_file() and (out / "b_info.json").is_file()


def test_a_new_folder_keeps_the_tiles_of_an_interrupted_run(tiles, tmp_path):
    from napari_prunuclei.io.outfolder import LOCK, release_new_folder

    out = tmp_path / "new"
    (out / ".prunuclei-a.tiles").mkdir(parents=True)
    (out / LOCK).write_text("")
    (out / MANIFEST).write_text("{}")
    release_new_folder(out)
    assert (out / ".prunuclei-a.tiles").is_dir() and (out / MANIFEST).is_file()
    (out / ".prunuclei-a.tiles").rmdir()
    release_new_folder(out)
    assert not out.exists()


def test_resume_knows_the_image_not_only_its_name(tiles, tmp_path):
    """Another file with the same name, or a truncated output, is not 'finished'."""
    import shutil

    one, two = tmp_path / "cohA", tmp_path / "cohB"
    one.mkdir()
    two.mkdir()
    shutil.copy(tiles / "a.tif", one / "x.tif")
    shutil.copy(tiles / "b.tif", two / "x.tif")
    out, req = tmp_path / "out", SegmentRequest(device="cpu")
    segment_files([one / "x.tif"], out, req, progress=False)
    res = segment_files([two / "x.tif"], out, req, progress=False)
    assert res.skipped == 0 and len(res.finished) == 1
    assert json.loads((out / "x_info.json").read_text())["image"] == str(two / "x.tif")
    with open(out / "x_labels.tif", "r+b") as f:
        f.truncate(100)
    assert not is_finished(two / "x.tif", out, model_record(req, results_record(req.spec, req.params)))


def test_one_file_named_twice_runs_once_and_empty_inputs_are_errors(tiles, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tiles)
    assert main(["segment", "a.tif", "./a.tif", str(tiles / "a.tif"), "-o", str(tmp_path / "o"), *CPU]) == 0
    assert capsys.readouterr().out.count("nuclei") == 1
    (tmp_path / "empty").mkdir()
    assert main(["segment", str(tmp_path / "empty"), "-o", str(tmp_path / "o2"), *CPU]) == 2
    assert "no image files" in capsys.readouterr().err
    (tmp_path / "bom.txt").write_bytes("\ufeff".encode() + str(tiles / "a.tif").encode() + b"\r\n")
    assert main(["segment", f"@{tmp_path / 'bom.txt'}", "-o", str(tmp_path / "o3"), *CPU]) == 0
    (tmp_path / "afile").write_text("x")
    assert main(["segment", "a.tif", "-o", str(tmp_path / "afile"), *CPU]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_run_refused_by_the_lock_never_removes_the_folder_of_the_run_holding_it(tiles, tmp_path):
    """Hostile pass: two runs started together into a new folder: the one refused by the lock removed the
    other's folder on its way out (it had seen no folder), and both failed."""
    from napari_prunuclei.io.outfolder import LOCK, claim

    out = tmp_path / "new"
    req = SegmentRequest(device="cpu")
    with claim(out, model_record(req), overwrite=False, finished=lambda: False):  # run 1 made it, holds it
        with pytest.raises(ValueError, match="another prunuclei run is writing"):
            segment_files([tiles / "a.tif"], out, req, progress=False)  # run 2: refused
        assert (out / LOCK).is_file() and (out / MANIFEST).is_file()  # run 1's, untouched
    assert not out.exists()  # run 1 finished nothing: the folder it made goes (while it held the lock)


def test_a_run_that_failed_on_every_image_claims_no_existing_folder(tiles, tmp_path):
    """Hostile pass: a run whose every image failed left its manifest, and the folder then refused another
    model although it held no results."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    bad = tmp_path / "empty.tif"
    bad.write_bytes(b"")
    res = segment_files([bad], out, SegmentRequest(device="cpu"), progress=False)
    assert not res.finished and res.failed
    assert sorted(p.name for p in out.iterdir()) == [".prunuclei.lock", "notes.txt"]
    res = segment_files([tiles / "a.tif"], out, SegmentRequest(device="cpu", scheme="networkwide", cr=20),
                        progress=False)
    assert res.finished


def test_an_interrupted_run_keeps_the_manifest_that_names_its_tiles(tmp_path):
    """The manifest taken back only when the run left nothing: tiles kept for a resume keep the manifest that
    names their model, so another model is still refused there."""
    from napari_prunuclei.io.outfolder import claim

    out = tmp_path / "mine"
    out.mkdir()
    dense = model_record(SegmentRequest(device="cpu"))
    with claim(out, dense, overwrite=False, finished=lambda: False):
        (out / ".prunuclei-a.tiles").mkdir()  # the first image's finished tiles, then killed
    assert json.loads((out / MANIFEST).read_text()) == dense
    with pytest.raises(ValueError, match="another model"):
        with claim(out, model_record(SegmentRequest(device="cpu", scheme="networkwide", cr=20)), overwrite=False):
            pass


def test_overwrite_never_leaves_another_models_outputs_nor_removes_a_users_files(tiles, tmp_path, capsys):
    """Hostile pass (session 32): --overwrite with another model kept outputs whose info was unreadable or
    whose killed run had only its pending record, and removed any file a hand-edited info listed."""
    out = tmp_path / "out"
    assert main(["segment", str(tiles / "a.tif"), str(tiles / "b.tif"), "-o", str(out), *CPU]) == 0
    info = json.loads((out / "b_info.json").read_text())
    (out / "b_notes.txt").write_text("mine")
    info["outputs"]["b_notes.txt"] = 4  # a hand-edited info lists a user's file
    (out / "b_info.json").write_text(json.dumps(info))
    (out / "a_labels.tif").write_bytes(b"edited by the user")  # changed since its run: the user's now
    assert main(["segment", str(tiles / "python.tif"), "-o", str(out), *CPU, "--scheme", "layerwise", "--cr", "4",
                 "--overwrite"]) == 0
    assert (out / "b_notes.txt").read_text() == "mine" and (out / "a_labels.tif").read_bytes() == b"edited by the user"
    assert not (out / "b_labels.tif").exists() and not (out / "b_info.json").exists()
    # an info that cannot be read: its outputs cannot be told from a user's files, so --overwrite is refused
    (out / "python_info.json").write_text("[" * 100_000 + "]" * 100_000)
    capsys.readouterr()
    assert main(["segment", str(tiles / "b.tif"), "-o", str(out), *CPU, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "python_info.json cannot be read as a prunuclei record" in err and "Traceback" not in err
    assert (out / "python_labels.tif").is_file()
    # nor is it silently relabelled without --overwrite (re-check: an unreadable manifest and infos were)
    assert main(["segment", str(tiles / "b.tif"), "-o", str(out), *CPU]) == 2
    assert (out / "python_labels.tif").is_file()


def test_a_users_edited_labels_are_not_taken_for_the_runs_own(tiles, tmp_path, capsys):
    """Re-check (session 32): a labels file replaced by a user's own (another size than its run recorded) was
    overwritten by a plain re-run; and a size that is not a whole number made --overwrite remove the file."""
    out = tmp_path / "out"
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU]) == 0
    (out / "a_labels.tif").write_bytes(b"the user's corrected labels")
    capsys.readouterr()
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU]) == 1  # not finished, and not ours
    assert "a_labels.tif exists and no prunuclei run made it" in capsys.readouterr().err
    assert (out / "a_labels.tif").read_bytes() == b"the user's corrected labels"
    info = json.loads((out / "a_info.json").read_text())
    info["outputs"]["a_labels.tif"] = "27"  # not a whole number: its size is not known
    (out / "a_info.json").write_text(json.dumps(info))
    assert main(["segment", str(tiles / "b.tif"), "-o", str(out), *CPU, "--fg-threshold", "0.5",
                 "--overwrite"]) == 0
    assert (out / "a_labels.tif").read_bytes() == b"the user's corrected labels"


def test_special_files_and_huge_numbers_in_a_folder_are_refused_not_waited_on(tiles, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / ".prunuclei.lock")
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU]) == 2  # (it blocked forever)
    assert "lock" in capsys.readouterr().err
    (out / ".prunuclei.lock").unlink()
    os.mkfifo(out / "zz_info.json")
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU]) == 2
    assert "zz_info.json cannot be read" in capsys.readouterr().err
    (out / "zz_info.json").unlink()
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU]) == 0
    m = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**m, "cr": 10 ** 400, "scheme": "\x1b[2Jx"}))
    (out / "a_info.json").unlink()
    capsys.readouterr()
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU]) == 2
    err = capsys.readouterr().err
    assert "holds results of another model" in err and "\x1b" not in err and "unexpected" not in err


def test_a_killed_runs_recorded_outputs_go_with_overwrite(tiles, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU]) == 0
    (out / "b_labels.tif").write_bytes(b"half a run")  # as a run killed before its info leaves it
    from napari_prunuclei.io.outfolder import record_pending

    record_pending(tiles / "b.tif", out, [out / "b_labels.tif"])
    assert main(["segment", str(tiles / "python.tif"), "-o", str(out), *CPU, "--scheme", "layerwise", "--cr", "4",
                 "--overwrite"]) == 0
    assert not (out / "b_labels.tif").exists() and not (out / "a_labels.tif").exists()


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_kept(tiles, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (out / ".prunuclei.lock").symlink_to(precious)
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU]) == 2
    assert precious.read_text() == "keep me" and "lock" in capsys.readouterr().err


def test_another_models_info_under_this_models_manifest_is_named_with_what_differs(tiles, tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["segment", str(tiles / "a.tif"), "-o", str(one), *CPU]) == 0
    assert main(["segment", str(tiles / "b.tif"), "-o", str(two), *CPU, "--scheme", "layerwise", "--cr", "4"]) == 0
    for q in two.glob("b_*"):
        q.rename(one / q.name)  # another model's results copied into this model's folder
    capsys.readouterr()
    assert main(["segment", str(tiles / "a.tif"), "-o", str(one), *CPU]) == 2
    err = capsys.readouterr().err
    assert "(b_info.json: layerwise CR4" in err and "differing from this run in cr: 4.0 there, 1 now" in err
    assert "scheme: layerwise there, dense now" in err


def test_a_resume_with_everything_finished_says_so(tiles, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU]) == 0
    capsys.readouterr()
    assert main(["segment", str(tiles / "a.tif"), "-o", str(out), *CPU]) == 0
    assert "1 image(s) already finished" in capsys.readouterr().out
