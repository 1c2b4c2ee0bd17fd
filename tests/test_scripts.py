import json
import subprocess
import sys
from pathlib import Path

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


def test_build_zoo_gradual_shards_keep_each_ladder_whole_and_in_order():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_zoo.py"), "--plan", "--ladder", "gradual",
                        "--shard", "1/2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [line.split()[0:2] for line in r.stdout.splitlines()[1:-1]]
    assert {s for s, _ in rows} == {"networkwide", "channel-networkwide"}  # whole schemes per shard
    crs = [float(cr[2:]) for s, cr in rows if s == "networkwide"]
    assert crs == sorted(crs) and len(crs) == 10  # each stage after the one it is cut from
