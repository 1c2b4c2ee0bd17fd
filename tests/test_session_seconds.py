"""A comparison's seconds: how they were taken, and the noisy flag on the columns of a table read alone."""

from dataclasses import replace

from napari_prunuclei.base.progress import drive
from napari_prunuclei.nuclei.synthetic import synthetic_tissue
from napari_prunuclei.runtime.request import SegmentRequest
from napari_prunuclei.study.session import CompareRequest, run
from napari_prunuclei.study.session_report import numbers_html, numbers_table, write_report
from napari_prunuclei.study.session_seconds import noisy_header
from napari_prunuclei.study.timing import Timing


def test_the_seconds_columns_say_noisy_after_a_busy_timing_too(tmp_path):
    """Pathologist, session 39: after 'time A vs B' beside other work, the table's header lost "noisy" (only the
    line under it said so), and report.md's table never had it; numbers.csv keeps its plain column names."""
    rgb = synthetic_tissue(96, seed=1)[0]
    r = drive(run(rgb, CompareRequest("img", SegmentRequest("networkwide", 20, device="cpu"))))
    quiet = replace(r, others=0.0)
    header = numbers_table(quiet)[0]
    assert noisy_header(quiet, header) == header
    busy_run = replace(r, others=0.6)
    assert noisy_header(busy_run, header)[-2:] == ["seconds (one run), noisy: other work ran",
                                                    "time vs B (×, one run), noisy: other work ran"]
    timed = replace(quiet, timing=Timing({"pruned": [2.0, 1.0, 3.0], "dense": [4.0, 5.0, 9.0]},
                                         ["pruned", "dense"] * 3, others=0.53))
    header = numbers_table(timed)[0]
    assert noisy_header(timed, header)[-2] == "seconds (median of 3), noisy: other work ran"
    assert "seconds (median of 3), noisy: other work ran" in numbers_html(timed)
    assert noisy_header(replace(timed, timing=replace(timed.timing, others=0.1)), header) == header
    md = write_report(tmp_path, timed, None)
    assert "| seconds (median of 3), noisy: other work ran |" in md.read_text()
    assert "- image: img, region: whole image" in md.read_text()  # said when whole too (pathologist, session 39)
    csv_header = next(line for line in (tmp_path / "numbers.csv").read_text().splitlines() if line.startswith("model"))
    assert "seconds (median of 3)" in csv_header and "noisy" not in csv_header  # (names that stay)
