import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def test_headless_demo_writes_labels_and_the_comparison_picture(tmp_path):
    """The README's headless equivalent of the plugin (``bash scripts/run.sh --headless``)."""
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "headless_demo.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "AJI vs dense" in r.stdout
    names = {p.name for p in tmp_path.iterdir()}
    # real tissue by default: the shipped OS-1 sample, at its own pixel size
    assert {"OS-1-detail_dense_labels.tif", "OS-1-detail_networkwide_cr20_labels.tif",
            "OS-1-detail_dense_vs_networkwide_cr20.png"} <= names
    info = json.loads((tmp_path / "OS-1-detail_dense_info.json").read_text())
    assert info["resolution"]["pixel_size_um"] == pytest.approx(0.227, abs=1e-3) and info["resolution"]["resampled"]


def test_build_zoo_plans_every_stage_of_every_scheme():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_zoo.py"), "--plan", "--steps", "500"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "30 stages" in r.stdout and "channel-networkwide CR32" in r.stdout and "layerwise CR100" in r.stdout
    half = subprocess.run([sys.executable, str(REPO / "scripts" / "build_zoo.py"), "--plan", "--shard", "1/2"],
                          capture_output=True, text=True, timeout=120)
    assert "15 stages" in half.stdout


def test_build_zoo_defaults_to_the_protocol_of_the_zoo_that_ships():
    """A bare rebuild follows the shipped zoo's one fine-tuning record, so it can never add stages of another
    protocol beside the shipped ones (tests/test_zoo.py refuses two)."""
    from napari_prunuclei.study.release import shared_protocol

    rec = shared_protocol()
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_zoo.py"), "--plan", "--shard", "1/2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:-1]]
    assert {int(row[2]) for row in rows} == {rec["steps"]}
    if rec["ladder"] == "gradual":  # whole schemes per shard
        assert len({row[0] for row in rows}) == 2


def test_build_zoo_gradual_shards_keep_each_ladder_whole_and_in_order():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_zoo.py"), "--plan", "--ladder", "gradual",
                        "--shard", "1/2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [line.split()[0:2] for line in r.stdout.splitlines()[1:-1]]
    assert {s for s, _ in rows} == {"networkwide", "channel-networkwide"}  # whole schemes per shard
    crs = [float(cr[2:]) for s, cr in rows if s == "networkwide"]
    assert crs == sorted(crs) and len(crs) == 10  # each stage after the one it is cut from


def _build_zoo_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_zoo", REPO / "scripts" / "build_zoo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_build_zoo_ships_a_staged_zoo_whole_or_not_at_all(tmp_path):
    """Shipping a staged zoo refuses while a stage is missing, and the refusal leaves the package alone."""
    from napari_prunuclei.models.zoo import WEIGHTS_DIR

    mod = _build_zoo_module()
    protocol = mod.Protocol(steps=1000, ladder="gradual", version=2)
    before = (WEIGHTS_DIR / "registry.json").read_bytes()
    with pytest.raises(SystemExit, match="2 of 2 stages are not staged yet.*channel-layerwise CR4\\); nothing shipped"):
        mod.ship_staged(tmp_path / "staged", protocol, [("channel-layerwise", 2.0), ("channel-layerwise", 4.0)])
    assert (WEIGHTS_DIR / "registry.json").read_bytes() == before
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_zoo.py"), "--ship-staged", str(tmp_path),
                        "--retune"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--retune tunes on the held-back images of --data" in r.stderr


def test_build_zoo_ship_again_after_shipping_does_nothing_unless_the_ship_was_not_committed(monkeypatch, tmp_path):
    """ship_zoo.sh resumed after its ship step shipped: the staged copies are gone, the zoo is this protocol's;
    a second --ship-staged --commit does nothing, and says so when the shipped files were never committed."""
    import types

    mod = _build_zoo_module()
    protocol = mod.Protocol(steps=1000, ladder="gradual", version=2)
    status = types.SimpleNamespace(returncode=0, stdout="")
    monkeypatch.setattr(mod, "subprocess", types.SimpleNamespace(run=lambda *a, **k: status))
    monkeypatch.setattr(mod, "shared_protocol", lambda: protocol.record())
    assert mod.ship_staged(tmp_path / "gone", protocol, [("layerwise", 2.0)], commit_it=True) == 0
    status.stdout = " M src/napari_prunuclei/models/weights/registry.json\n"
    with pytest.raises(SystemExit, match="protocol v2's but not committed: commit it"):
        mod.ship_staged(tmp_path / "gone", protocol, [("layerwise", 2.0)], commit_it=True)
    monkeypatch.setattr(mod, "shared_protocol", lambda: None)  # another protocol ships: a real ship, refused here
    with pytest.raises(SystemExit, match="1 of 1 stages are not staged yet"):
        mod.ship_staged(tmp_path / "gone", protocol, [("layerwise", 2.0)], commit_it=True)


def test_build_zoo_ships_no_tuning_of_another_watershed_rule(tiny_dataset, tmp_path):
    """A stage staged before the watershed's rule changed (its row names no rule: rule 1) is tuned again when
    shipped; without held-back data to tune it on, shipping is refused and the package left alone."""
    import torch

    from napari_prunuclei.models.unet import UNet, UNetConfig
    from napari_prunuclei.models.zoo import WEIGHTS_DIR
    from napari_prunuclei.nuclei.watershed import WATERSHED_RULE
    from napari_prunuclei.training.protocol import run_stage
    from napari_prunuclei.training.staging import stage

    mod = _build_zoo_module()
    protocol = mod.Protocol(steps=1, batch=2, crop=64, precision="fp32", multiple=2, ladder="gradual", version=2)
    torch.manual_seed(0)
    dense = {b: UNet(UNetConfig(base_filters=4)).eval() for b in ("semantic", "distance")}
    built = run_stage(dense, "channel-layerwise", 2, tiny_dataset, tmp_path / "work", protocol, device="cpu")
    row = {"scheme": "channel-layerwise", "cr": 2.0, "seconds": 1.0, "resumed": False, "held_back_aji": 0.5,
           "watershed": {"fg_threshold": 0.5, "marker_threshold": 0.4, "min_size": 10}}
    stage(tmp_path / "staged", built, row, protocol)
    before = (WEIGHTS_DIR / "registry.json").read_bytes()
    with pytest.raises(SystemExit, match=f"1 stages were tuned under another watershed rule than this one "
                                         f"\\({WATERSHED_RULE}\\): give --data.*nothing shipped"):
        mod.ship_staged(tmp_path / "staged", protocol, [("channel-layerwise", 2.0)])
    assert (WEIGHTS_DIR / "registry.json").read_bytes() == before
    assert mod.rule_of(row) == 1 and mod.rule_of({"watershed_rule": WATERSHED_RULE}) == WATERSHED_RULE
    assert mod.rule_of(None) is None and mod.held_back_record(0.61)["watershed_rule"] == WATERSHED_RULE
    # tuned again while the build goes on: a new line for the same files, under this rule; then nothing to do
    fake = {"watershed": {"fg_threshold": 0.6, "marker_threshold": 0.5, "min_size": 20}, "held_back_aji": 0.52,
            "watershed_rule": WATERSHED_RULE, "cpu": "test"}
    mod.held_back_of = lambda files, data: dict(fake)
    assert mod.retune_staged(tmp_path / "staged", protocol, [("channel-layerwise", 2.0)], tmp_path) == 1
    now = mod.staged_rows(tmp_path / "staged", protocol)[("channel-layerwise", 2.0)]
    assert {k: now[k] for k in fake if k != "cpu"} == {k: v for k, v in fake.items() if k != "cpu"}
    assert now["seconds"] == 1.0 and "cpu" not in now and now["retuned_on"]  # trained where the row said
    assert mod.retune_staged(tmp_path / "staged", protocol, [("channel-layerwise", 2.0)], tmp_path) == 0
    assert mod.rule_of({"watershed_rule": None}) is None and mod.rule_of({"watershed_rule": "2"}) is None
    assert mod.rule_of([2]) is None and mod.rule_of({"watershed_rule": True}) is None


def test_build_zoo_ships_no_dense_figure_or_thresholds_of_another_watershed_rule(monkeypatch, tmp_path):
    """Stages tuned under this rule, dense's held-back AJI under another: shipping without --data is refused
    (stages would be compared with dense's figure of the other rule); with data, dense's thresholds are tuned
    again and registered with its AJI, both under this rule."""
    import napari_prunuclei.study.evaluation as evaluation

    mod = _build_zoo_module()
    protocol = mod.Protocol(steps=1, batch=2, crop=64, precision="fp32", multiple=2, ladder="gradual", version=2)
    row = {"scheme": "channel-layerwise", "cr": 2.0, "held_back_aji": 0.6, "watershed_rule": mod.WATERSHED_RULE,
           "watershed": {"fg_threshold": 0.5, "marker_threshold": 0.4, "min_size": 10}}
    monkeypatch.setattr(mod, "staged_rows", lambda folder, p: {("channel-layerwise", 2.0): row})
    monkeypatch.setattr(mod, "file_protocol", lambda f: protocol.record())
    dense = {"id": "semantic-dense", "metrics_held_back": {"aji": 0.61, "data": "..."}}  # no rule named: rule 1
    monkeypatch.setattr(mod, "find_entry", lambda branch, scheme, cr, *a, **k: dict(dense))
    calls = []
    monkeypatch.setattr(mod, "register", lambda entry=None, **kw: calls.append((entry, kw)))
    with pytest.raises(SystemExit, match="dense's held-back AJI was tuned under another watershed rule.*--data"):
        mod.ship_staged(tmp_path, protocol, [("channel-layerwise", 2.0)])
    assert calls == [] and mod.dense_stale()
    best = {"fg_threshold": 0.55, "marker_threshold": 0.35, "min_size": 20}
    monkeypatch.setattr(evaluation, "held_back_scores", lambda data, s, d: {"best": best, "aji": 0.62})
    monkeypatch.setattr(mod, "load_model", lambda *a: None)
    mod.dense_held_back(tmp_path)
    assert calls[0] == (None, {"watershed": best})
    assert [e["metrics_held_back"] for e, _ in calls[1:]] == [mod.held_back_record(0.62)] * 2
    assert mod.held_back_record(0.62)["watershed_rule"] == mod.WATERSHED_RULE


def test_watershed_pilot_writes_out_the_shipped_rule_exactly():
    """The pilot's plain form of the shipped rule gives the shipped watershed's nuclei (so its alternatives are
    compared with the rule the product runs), and filling holes fills them."""
    import importlib.util

    from napari_prunuclei.nuclei.synthetic import synthetic_tile
    from napari_prunuclei.nuclei.watershed import WatershedParams, watershed_instances

    spec = importlib.util.spec_from_file_location("watershed_pilot", REPO / "scripts" / "watershed_pilot.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from napari_prunuclei.io.dataset import distance_target

    _, truth = synthetic_tile(256, seed=3)
    rng = np.random.default_rng(0)
    prob = np.clip((truth > 0) * 0.8 + rng.normal(0, 0.15, truth.shape), 0, 1).astype(np.float32)
    prob[truth > 0] = np.where(rng.random((truth > 0).sum()) < 0.02, 0.1, prob[truth > 0])  # holes
    dist = distance_target(truth).astype(np.float32)
    ours = mod.flood(prob, dist, 0.5, 0.4, 20, fill=False, h=0.0)  # rule 1, before zoo v2
    own = mod.flood(prob, dist, 0.5, 0.4, 20, fill="nuclei", h=0.0)  # rule 3, shipped
    shipped = watershed_instances(prob, dist, WatershedParams(0.5, 0.4, 20))
    assert ours.max() > 5
    pairs = np.unique(np.stack([own.ravel(), shipped.ravel()]), axis=1)  # (own, shipped) label pairs met
    assert np.array_equal(own > 0, shipped > 0) and pairs.shape[1] == len(np.unique(own)) == len(np.unique(shipped))
    filled = mod.flood(prob, dist, 0.5, 0.4, 20, fill=True, h=0.0)
    assert (filled > 0).sum() > (ours > 0).sum()
    assert mod.holed_share(ours) > 0 == mod.holed_share(own) and (own > 0).sum() > (ours > 0).sum()
    assert np.array_equal(own[ours > 0], ours[ours > 0])  # only holes change, each to its own nucleus
    lab = np.zeros((12, 12), np.int32)
    lab[2:9, 2:9] = 1
    lab[5, 5] = 0
    assert mod.holed_share(lab) == 1.0 and mod.holed_share(mod.fill_own_holes(lab)) == 0.0


def test_build_zoo_status_counts_only_stages_staged_by_its_protocol(tmp_path):
    (tmp_path / "stages.jsonl").write_text('{"scheme": "layerwise", "cr": 2.0, "files": {}}\n')  # no files: not staged
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_zoo.py"), "--steps", "1000", "--ladder",
                        "gradual", "--version", "2", "--status", str(tmp_path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-2] == "0 of 30 stages staged" and "| layerwise CR 2 |" not in r.stdout
    assert lines[-1].startswith("left: 30 stages (no stage of their kind staged whole yet")


def test_second_seed_refuses_a_protocol_the_shipped_pair_was_not_made_by(tmp_path):
    """Seed 1 is the shipped pair: a second seed by another protocol (e.g. a zoo's new version before it
    ships) would compare two protocols, and stops before training anything."""
    out = tmp_path / "seed2.json"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "second_seed.py"), "--data", str(tmp_path),
                        "--work", str(tmp_path / "w"), "--schemes", "layerwise", "--steps", "7", "--version", "9",
                        "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "was not made by protocol v9 with 7 steps" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists() and not (tmp_path / "w").exists()


def test_second_seed_trains_before_its_zoo_ships_and_scores_nothing(tiny_dataset, tmp_path):
    """--train-only: the seed-2 stage of a protocol not shipped yet is trained into --work (the machine's idle
    hours before shipping), no shipped seed 1 asked for, nothing scored or written beside it."""
    out = tmp_path / "seed2.json"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "second_seed.py"), "--data", str(tiny_dataset),
                        "--work", str(tmp_path / "small"), "--schemes", "channel-layerwise", "--steps", "1",
                        "--version", "9", "--train-only"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "smaller than the crop size 256" in r.stderr and "Traceback" not in r.stderr
    import imageio.v3 as iio

    from napari_prunuclei.nuclei.synthetic import synthetic_tile

    for name in (tiny_dataset / "images").iterdir():  # tiles as large as the protocol's crops
        rgb, lab = synthetic_tile(264, seed=len(name.stem))
        iio.imwrite(name, rgb)
        tifffile_write(tiny_dataset / "labels" / f"{name.stem}.tif", lab)
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "second_seed.py"), "--data", str(tiny_dataset),
                        "--work", str(tmp_path / "w"), "--schemes", "channel-layerwise", "--steps", "1",
                        "--version", "9", "--json", str(out), "--train-only"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert "channel-layerwise CR2 seed 2: trained in" in r.stdout and "(protocol v9, 1 steps)" in r.stdout
    made = sorted(p.name for p in (tmp_path / "w" / "channel-layerwise" / "cr2").glob("*.safetensors"))
    assert made == ["distance_channel-layerwise_cr2.safetensors", "semantic_channel-layerwise_cr2.safetensors"]
    assert not out.exists()


def tifffile_write(path, labels) -> None:
    import tifffile

    tifffile.imwrite(path, labels.astype(np.uint16))


def test_build_zoo_status_estimates_what_is_left_from_whole_stages_of_its_kind():
    mod = _build_zoo_module()
    staged = [{"scheme": "layerwise", "seconds": 3000.0}, {"scheme": "networkwide", "seconds": 3200.0},
              {"scheme": "layerwise", "seconds": 50.0, "resumed": True},  # only its last part: not counted
              {"scheme": "channel-layerwise", "seconds": 900.0}]
    said = mod.time_left([("layerwise", 5.0), ("networkwide", 8.0), ("channel-networkwide", 4.0)], staged)
    assert said.startswith("left: 3 stages, about 2.0 h of one core") and "unstructured 3100 s" in said
    assert "about 1.0 h with one job per core" in said
    assert "no estimate" in mod.time_left([("channel-layerwise", 2.0)], staged[:2])
    assert mod.time_left([], staged) == "left: none"
    staged.append({"scheme": "networkwide", "seconds": 2300.0, "cpu": "Intel Xeon"})  # another machine's stage
    assert "unstructured 3000 s)" in mod.time_left([("layerwise", 8.0)], staged, "AMD EPYC")
    said = mod.time_left([("layerwise", 8.0)], staged, "Intel Xeon")
    assert "at this CPU's median" in said and "unstructured 2300 s here" in said and "channel 900 s," in said


def test_ship_zoo_runs_its_steps_in_order_with_flags_that_exist_and_resumes(tmp_path):
    """The unattended ship (docs/models.md, Protocol v2), with python, prunuclei and git replaced by stubs that
    only log their arguments: every step runs once in order, every flag it passes is one its script defines, a
    failed step stops the run without marking it, and a rerun skips what finished."""
    stubs, log = tmp_path / "stubs", tmp_path / "calls.log"
    stubs.mkdir()
    for name in ("python", "prunuclei", "git"):
        (stubs / name).write_text('#!/bin/sh\necho "$(basename "$0") $*" >> "$LOG"\n'
                                  'case "$*" in *"$FAIL"*) exit 3;; esac\n'
                                  'exit 0\n')
        (stubs / name).chmod(0o755)
    env = {**os.environ, "WORK": str(tmp_path / "work"), "LOG": str(log), "VIRTUAL_ENV": "stub",
           "PATH": f"{stubs}:{os.environ['PATH']}", "FAIL": "no call has this"}

    def ship(**extra):
        return subprocess.run(["bash", str(REPO / "scripts" / "ship_zoo.sh")], env={**env, **extra},
                              capture_output=True, text=True, timeout=120)

    r = ship(FAIL="--schemes channel-layerwise channel-networkwide")  # step 3 fails
    assert r.returncode == 3 and "== 3-sweep-channels: ran in" not in r.stdout
    done = ["1-ship.done", "1-ship.ran", "2-sweep.done", "2-sweep.ran", "ship.lock"]
    assert sorted(f.name for f in (tmp_path / "work").iterdir()) == done
    log.unlink()
    r = ship()
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("finished before, skipped") == 2 and "all steps done" in r.stdout
    calls = log.read_text().splitlines()
    tools = [c.split()[1] if c.startswith("python") else " ".join(c.split()[:2]) for c in calls
             if not c.startswith("git")]
    assert tools == ["prunuclei sweep", "bench/profile_floor.py", "bench/profile_floor.py", "bench/bench_watershed.py",
                     "bench/labels_hashes.py", "scripts/second_seed.py", "scripts/second_seed.py",
                     "prunuclei models"]
    registry = "src/napari_prunuclei/models/weights/registry.json"
    assert f"git add -- docs/pruning_channels.md docs/pruning/channels {registry}" in calls  # its own paths only
    defined = {"prunuclei sweep": REPO / "src" / "napari_prunuclei" / "cli" / "sweep.py",
               "prunuclei models": REPO / "src" / "napari_prunuclei" / "cli" / "models.py"}
    text = (REPO / "scripts" / "ship_zoo.sh").read_text()
    for tool in [*set(tools), "scripts/build_zoo.py"]:
        source = (defined.get(tool) or REPO / tool).read_text()
        line = next(c for c in calls if tool in c) if tool != "scripts/build_zoo.py" else \
            next(x for x in text.splitlines() if "build_zoo.py" in x and "--ship-staged" in x)
        for flag in re.findall(r"(?<!\S)--[a-z][a-z-]*", line):
            assert f'"{flag}"' in source or (tool == "scripts/build_zoo.py" and flag == "--steps"), (tool, flag)
    assert ship().stdout.count("finished before, skipped") == 5
    import fcntl

    with open(tmp_path / "work" / "ship.lock", "a") as held:  # another run of it: refused, nothing done
        fcntl.flock(held, fcntl.LOCK_EX)
        log.unlink()
        r = ship()
    assert r.returncode == 2 and "another run holds" in r.stderr and not log.exists()



def test_tta_pilot_turns_each_transform_back_and_uses_all_eight():
    """The test-time augmentation pilot's maps are averaged in the image's own frame: each of the 8 transforms
    of the square is undone exactly, and the 8 are distinct."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from tta_pilot import backward, forward
    finally:
        sys.path.remove(str(REPO / "scripts"))
    a = np.arange(5 * 5 * 3).reshape(5, 5, 3)
    assert all(np.array_equal(backward(forward(a, k), k), a) for k in range(8))
    assert len({forward(a, k).tobytes() for k in range(8)}) == 8
    assert np.array_equal(forward(a, 4), np.rot90(a)) and np.array_equal(forward(a, 3), a[::-1, ::-1])


def test_the_branch_oracle_replaces_only_the_chosen_maps_by_their_targets():
    """scripts/branch_oracle.py (issue 21): each branch's map swapped for its ground-truth target, alone or both;
    with both, the watershed gives the truth back (AJI near 1), so the oracle's rows measure the branches."""
    import importlib.util

    from napari_prunuclei.nuclei.metrics import score_instances
    from napari_prunuclei.nuclei.synthetic import synthetic_tile
    from napari_prunuclei.nuclei.watershed import WatershedParams
    from napari_prunuclei.runtime.pipeline import rewatershed, segment
    from napari_prunuclei.runtime.request import SegmentRequest
    from napari_prunuclei.study.evaluation import Prediction

    spec = importlib.util.spec_from_file_location("branch_oracle", REPO / "scripts" / "branch_oracle.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rgb, truth = synthetic_tile(128, seed=2)
    seg = segment(rgb, SegmentRequest(device="cpu", precision="fp32"))
    pred = Prediction("t", seg, truth, 0.0)
    (sem,) = mod.with_targets([pred], True, False)
    assert np.array_equal(sem.segmentation.probability, (truth > 0).astype(np.float32))
    assert sem.segmentation.distance is seg.distance and sem.truth is truth
    (both,) = mod.with_targets([pred], True, True)
    labels = rewatershed(both.segmentation, WatershedParams(0.5, 0.3, 1)).labels
    assert score_instances(truth, labels).aji > 0.95
    assert pred.segmentation is seg and seg.probability is not None  # the run itself untouched
