import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_headless_demo_writes_labels_and_the_comparison_picture(tmp_path):
    """The README's headless equivalent of the plugin (``bash scripts/run.sh --headless``)."""
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "headless_demo.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "AJI vs dense" in r.stdout
    names = {p.name for p in tmp_path.iterdir()}
    assert {"synthetic_dense_labels.tif", "synthetic_networkwide_cr20_labels.tif",
            "synthetic_dense_vs_networkwide_cr20.png"} <= names
