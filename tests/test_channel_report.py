"""The structured-pruning report picks the fastest pair within a budget and compares the two schemes."""

from napari_prunuclei.study.channel_report import best_within, front_lines, write_channel_report
from napari_prunuclei.study.sweep import write_outputs


def _row(scheme, cr, aji, ratio, variant="fine-tuned", ds="monuseg"):
    return {"dataset": ds, "scheme": scheme, "cr": cr, "variant": variant if scheme != "dense" else "dense",
            "n_images": 2, "semantic_dice": 0.8, "semantic_aji": aji, "distance_aji": aji, "distance_mse": 0.01,
            "aji": aji, "pq": aji, "dice": 0.8, "seconds": ratio * 2.0, "time_ratio": ratio,
            "macs_ratio": 1 / ratio, "achieved_cr": cr}


ROWS = [_row("dense", 1, 0.650, 1.0), _row("layerwise", 4, 0.648, 1.01),
        _row("channel-layerwise", 4, 0.640, 0.45), _row("channel-layerwise", 8, 0.625, 0.33),
        _row("channel-networkwide", 4, 0.645, 0.50), _row("channel-networkwide", 8, 0.600, 0.34),
        _row("channel-layerwise", 16, 0.640, 0.20, variant="one-shot")]


def test_best_within_takes_the_fastest_fine_tuned_pair_inside_the_budget():
    assert best_within(ROWS, "monuseg", 0.02)["scheme"] == "channel-layerwise"   # 0.640: -1.5 %, 0.45x
    assert best_within(ROWS, "monuseg", 0.02)["cr"] == 4
    assert best_within(ROWS, "monuseg", 0.05)["cr"] == 8                          # 0.625: -3.8 %, 0.33x
    assert best_within(ROWS, "monuseg", 0.001) is None                          # one-shot rows never count


def test_report_and_pareto_plot(tmp_path):
    files = write_outputs(ROWS, tmp_path / "out")
    assert (tmp_path / "out" / "pareto_monuseg.png").is_file() and tmp_path / "out" / "pareto_monuseg.png" in files
    md = write_channel_report(ROWS, tmp_path / "r.md", "prunuclei sweep ...", {"machine": "test"}).read_text()
    assert "**channel-layerwise CR4**, AJI 0.6400 (1.5 % below dense), time 0.45× dense" in md
    assert "| 4 | 0.6400 | 0.6450 | -0.0050 | network-wide (no interval) | 0.45× | 0.50× |" in md
    assert "| 8 | 0.6250 | 0.6000 | +0.0250 | layer-wise (no interval) |" in md


def _per_image(row, values, branches):
    return {**row, "images": ["a", "b", "c", "d"], "per_image": {"aji": values}, "branches_s": branches}


def test_the_front_counts_pairs_within_2_percent_splits_time_and_decides_only_outside_the_interval(tmp_path):
    """Issue 21 item 6: the pairs within 2 % (with their paired intervals), the fastest's ratio against the
    0.25x target, dense's time split into networks and the rest (the floor), and a scheme called better only
    where the interval of the difference excludes zero."""
    dense = _per_image(_row("dense", 1, 0.650, 1.0), [0.60, 0.64, 0.66, 0.70], 1.5)
    lw4 = _per_image(_row("channel-layerwise", 4, 0.645, 0.40), [0.59, 0.64, 0.65, 0.70], 0.30)
    nw4 = _per_image(_row("channel-networkwide", 4, 0.6475, 0.45), [0.60, 0.63, 0.66, 0.70], 0.40)
    lw8 = _per_image(_row("channel-layerwise", 8, 0.640, 0.30), [0.59, 0.63, 0.65, 0.69], 0.10)
    nw8 = _per_image(_row("channel-networkwide", 8, 0.500, 0.28), [0.45, 0.49, 0.51, 0.55], 0.08)
    rows = [dense, lw4, nw4, lw8, nw8]
    text = "\n".join(front_lines(rows, "monuseg"))
    assert "within 2 % of dense AJI (point estimate; interval beside it): **3** (target: at least 3)" in text
    assert "the fastest at **0.30×** dense (channel-layerwise CR8) (target: 0.25× or less)" in text
    assert "the two networks 1.50 s and the rest (watershed, tiling, glue) 0.50 s" in text and "0.25× dense" in text
    assert "| channel-networkwide CR8 | 0.5000 |" in text and "| channel-layerwise CR8 (within) |" in text
    assert "Other work used" not in text  # not recorded: not said
    for share, said in ((0.05, "Other work used 5 % of the timing's CPUs while it ran."),
                        (0.62, "Other work used 62 % of the timing's CPUs while it ran: the times are not those")):
        assert said in "\n".join(front_lines([{**dense, "timed_others_cpu": share}, *rows[1:]], "monuseg"))
    md = write_channel_report(rows, tmp_path / "r.md", "prunuclei sweep ...", {"machine": "test"}).read_text()
    assert "| 4 | 0.6450 | 0.6475 | -0.0025 [" in md and "not decided" in md
    assert "| 8 | 0.6400 | 0.5000 | +0.1400 [+0.1400, +0.1400] | layer-wise |" in md
