"""A zoo staged over several sessions: a stage counts only when whole and made by the protocol asked for."""

import json

import pytest
import torch

from napari_prunuclei.models.unet import UNet, UNetConfig
from napari_prunuclei.training.protocol import Protocol, run_stage, stage_file
from napari_prunuclei.training.staging import STAGES_LOG, restage, restore_into_work, stage, staged_rows

PROTOCOL = Protocol(steps=1, batch=2, crop=64, precision="fp32", multiple=2, ladder="gradual", version=2)
ROW = {"scheme": "channel-layerwise", "cr": 2.0, "seconds": 1.0, "resumed": False, "held_back_aji": 0.5}


@pytest.fixture
def built(tiny_dataset, tmp_path):
    torch.manual_seed(0)
    dense = {b: UNet(UNetConfig(base_filters=4)).eval() for b in ("semantic", "distance")}
    return run_stage(dense, "channel-layerwise", 2, tiny_dataset, tmp_path / "work", PROTOCOL, device="cpu")


def test_a_staged_stage_is_found_with_its_hashes(built, tmp_path):
    folder = tmp_path / "staged"
    paths = stage(folder, built, ROW, PROTOCOL)
    assert {p.name for p in paths} == {stage_file(b, "channel-layerwise", 2) for b in ("semantic", "distance")} | {
        STAGES_LOG}
    rows = staged_rows(folder, PROTOCOL)
    assert set(rows) == {("channel-layerwise", 2.0)} and rows[("channel-layerwise", 2.0)]["held_back_aji"] == 0.5
    assert staged_rows(folder, Protocol(steps=1000, ladder="gradual", version=2)) == {}  # another protocol
    assert not list(folder.glob("*.part"))


def test_a_stage_cut_short_or_changed_does_not_count(built, tmp_path):
    folder = tmp_path / "staged"
    stage(folder, built, ROW, PROTOCOL)
    with open(folder / STAGES_LOG, "a", encoding="utf-8") as fh:
        fh.write('{"scheme": "channel-layerwise", "cr": 4.0, "fi')  # a line cut by an interruption
    assert set(staged_rows(folder, PROTOCOL)) == {("channel-layerwise", 2.0)}
    f = folder / stage_file("distance", "channel-layerwise", 2)
    f.write_bytes(f.read_bytes()[:-10])  # a file that is not the one staged
    assert staged_rows(folder, PROTOCOL) == {}


def test_files_of_another_protocol_are_refused(built, tmp_path):
    other = Protocol(steps=1000, ladder="gradual", version=2)
    with pytest.raises(ValueError, match="not made by this protocol.*not staged"):
        stage(tmp_path / "staged", built, ROW, other)
    assert not (tmp_path / "staged" / STAGES_LOG).exists()


def test_a_lost_work_folder_gets_the_staged_files_back(built, tmp_path):
    folder = tmp_path / "staged"
    stage(folder, built, ROW, PROTOCOL)
    fresh = tmp_path / "fresh"
    restore_into_work(folder, fresh, "channel-layerwise", 2.0)
    for b in ("semantic", "distance"):
        got = fresh / "channel-layerwise" / "cr2" / stage_file(b, "channel-layerwise", 2)
        assert got.read_bytes() == built[b].read_bytes()
    line = json.loads((folder / STAGES_LOG).read_text().splitlines()[0])
    assert line["protocol"] == PROTOCOL.record() and set(line["files"]) == {"semantic", "distance"}


def test_a_stage_is_built_by_one_job_at_a_time(tmp_path):
    from napari_prunuclei.training.staging import StageBusy, building

    with building(tmp_path, "layerwise", 2):
        with pytest.raises(StageBusy, match="layerwise CR2 is being built by another job"):
            with building(tmp_path, "layerwise", 2):
                pass
        with building(tmp_path, "layerwise", 4):  # another stage is free
            pass
    with building(tmp_path, "layerwise", 2):  # released
        pass
    # a lock that is a link or a FIFO is refused (its target untouched), never followed or waited on
    import os

    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    (tmp_path / "layerwise" / "cr5.lock").symlink_to(precious)
    os.mkfifo(tmp_path / "layerwise" / "cr8.lock")
    for cr in (5, 8):
        with pytest.raises(StageBusy, match=f"cr{cr}.lock as this stage's lock"):
            with building(tmp_path, "layerwise", cr):
                pass
    assert precious.read_text() == "keep"


def test_a_staged_stage_tuned_again_gets_a_new_line_for_the_same_files(built, tmp_path):
    folder = tmp_path / "staged"
    stage(folder, built, ROW, PROTOCOL)
    row = staged_rows(folder, PROTOCOL)[("channel-layerwise", 2.0)]
    restage(folder, {**row, "held_back_aji": 0.55, "watershed_rule": 2}, PROTOCOL)
    now = staged_rows(folder, PROTOCOL)[("channel-layerwise", 2.0)]
    assert now["held_back_aji"] == 0.55 and now["watershed_rule"] == 2 and now["files"] == row["files"]
    with pytest.raises(ValueError, match="not staged by this protocol with the files named"):
        restage(folder, {**row, "files": {}}, PROTOCOL)  # other files
    with pytest.raises(ValueError, match="channel-layerwise CR4 is not staged"):
        restage(folder, {**row, "cr": 4.0}, PROTOCOL)  # a stage never staged
    assert len((folder / STAGES_LOG).read_text().splitlines()) == 2
