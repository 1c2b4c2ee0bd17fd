"""The numbers of a comparison as a table (text, HTML) and the report folder (report.md, numbers.csv, charts,
canvas); layer and export metadata (provenance)."""

from __future__ import annotations

from pathlib import Path

from napari_prunuclei.base.constants import (
    DISAGREEMENT_COLORS,
    DISAGREEMENT_KINDS,
    MODEL_PIXEL_SIZE_UM,
)
from napari_prunuclei.base.machine import BUSY_SHARE
from napari_prunuclei.io.measure import one_line, preamble
from napari_prunuclei.runtime.request import Segmentation
from napari_prunuclei.study.session import ComparisonResult, mean_area, truth_mean_area
from napari_prunuclei.study.session_models import (
    edited_thresholds,
    model_note,
    own_thresholds,
    run_warning,
    verdict,
    whose_own,
)
from napari_prunuclei.study.session_seconds import end_to_end, how_timed, noisy_header, time_columns

__all__ = [
    "EVENT_COLUMNS",
    "disagreement_features",
    "disagreement_metadata",
    "format_numbers",
    "shape_note",
    "speed_text",
    "region_text",
    "layer_metadata",
    "numbers_html",
    "numbers_table",
    "thresholds_text",
    "edited_text",
    "pct_pruned",
    "run_provenance",
    "edit_provenance",
    "write_report",
]


#: each disagreement kind as said of model A, and the colour it has in the disagreement layer
EVENT_COLUMNS = {"missed": "missed by A", "extra": "extra in A", "split": "split by A", "merged": "merged by A"}
_COLOUR_NAMES = {1: "red", 2: "blue", 3: "yellow", 4: "orange"}


def _events_line(counts: dict[str, int], colours: bool = True) -> str:
    """``missed by A 3 (red), extra in A 1 (blue), ...``: disagreement events per kind."""
    value = {kind: k for k, kind in DISAGREEMENT_KINDS.items()}
    return ", ".join(f"{EVENT_COLUMNS[kind]} {counts.get(kind, 0)}"
                     + (f" ({_COLOUR_NAMES[value[kind]]})" if colours else "") for kind in EVENT_COLUMNS)


def format_numbers(result: ComparisonResult) -> str:
    """The text shown beside the picture."""
    n = result.numbers
    lines = ["nuclei: " + ", ".join(f"{k} {v}" for k, v in n.nuclei.items())]
    if n.vs_dense is not None:
        v = n.vs_dense
        a, b = result.pruned.info.model, result.dense.info.model
        lines.append(f"{a} vs {b}: AJI {v.aji:.3f}  PQ {v.pq:.3f}  Dice {v.dice:.3f}")
        lines.append(f"disagreement events ({sum(n.disagreement.values())}): {_events_line(n.disagreement)}")
    for label, v in n.vs_truth.items():
        lines.append(f"{label} vs ground truth: AJI {v.aji:.3f}  PQ {v.pq:.3f}  Dice {v.dice:.3f}")
    for role in ("pruned", "dense"):
        m = mean_area(result, role)
        seg = getattr(result, role)
        if m is not None and seg is not None:
            lines.append(f"{seg.info.model}: mean nucleus area {m[0]:.1f} {m[1]}")
    t = truth_mean_area(result)
    if t is not None:
        lines.append(f"ground truth: mean nucleus area {t[0]:.1f} {t[1]}")
    if result.request.region is not None:
        lines.append(f"region: {region_text(result.request.region)} of the image")
    for s in (result.pruned, result.dense):
        if s is None:
            continue
        i = s.info
        nz = i.semantic["nonzero"] + i.distance["nonzero"]
        tot = (i.semantic.get("dense_prunable", i.semantic["prunable"])
               + i.distance.get("dense_prunable", i.distance["prunable"]))
        t = i.seconds
        tiles = f" over {i.n_tiles} tiles" if s.tiled else ""
        ws = thresholds_text(i) + edited_text(result, s)
        lines.append(f"{i.model}: {nz:,} of {tot:,} weights ({100 * (1 - nz / tot):.1f} % pruned); "
                     f"branches {t['semantic'] + t['distance']:.2f} s, watershed {t['watershed']:.2f} s{tiles}; "
                     f"thresholds {ws}")
    if result.pruned is not None and result.dense is not None:
        lines.append(speed_text(result))
    elif how_timed(result) != "one run each":
        lines.append("seconds: " + how_timed(result).replace("one run each", "one run", 1))
    if n.tiled:
        lines.append("slide: ran tile by tile; pixel-wise comparison and maps are kept for images up to 2048x2048")
    return "\n".join(lines)


def region_text(region: tuple[int, int, int, int] | None) -> str:
    """A run's region in words, its first and last row and column ("rows 0-530, columns 31-528"; the ends of
    ``region`` are exclusive, which a pathologist read as inclusive, session 39), or "whole image"."""
    last = None if region is None else (region[0], region[1] - 1, region[2], region[3] - 1)
    return "whole image" if last is None else "rows {}-{}, columns {}-{}".format(*last)


def speed_text(result: ComparisonResult) -> str:
    """A's and B's time end to end and their ratio: one run each, or the median of interleaved runs after a
    warm-up once timed (``result.timing``); with the note when both run at dense's network shape."""
    a, b = result.pruned, result.dense
    t = result.timing
    if t is None:
        ta, tb = end_to_end(a), end_to_end(b)
        first = result.first_runs
        held = f", the first of {' and '.join(first)} at this image size and pixel size, with the warm-up" \
            if first else ""
        how = how_timed(result).replace("one run each", f"one run each{held}; 'time A vs B' gives a median", 1)
    else:
        ta, tb, how = t.median("pruned"), t.median("dense"), t.how
    note = shape_note(result)
    return (f"{a.info.model} {ta:.2f} s, {b.info.model} {tb:.2f} s end to end; A takes {ta / max(tb, 1e-9):.2f}x "
            f"B's time ({how}{'; ' + note if note else ''})")


def shape_note(result: ComparisonResult) -> str:
    """"same network shape as dense..." when A and B both run at dense's shape (dense or unstructured pruning)."""
    from napari_prunuclei.base.constants import UNSTRUCTURED_SCHEMES
    from napari_prunuclei.study.timing import SAME_SHAPE_NOTE

    segs = [s for s in (result.pruned, result.dense) if s is not None]
    schemes = {s.info.scheme for s in segs}
    same = len(segs) == 2 and schemes <= {"dense", *UNSTRUCTURED_SCHEMES}
    return SAME_SHAPE_NOTE if same else ""


def pct_pruned(seg: Segmentation) -> float:
    i = seg.info
    nz = i.semantic["nonzero"] + i.distance["nonzero"]
    tot = (i.semantic.get("dense_prunable", i.semantic["prunable"])
           + i.distance.get("dense_prunable", i.distance["prunable"]))  # channel models: against dense's
    return 100 * (1 - nz / tot)


def edited_text(result: ComparisonResult, seg) -> str:
    """`` (edited in the widget; its own: ...)`` after model A's thresholds where they are not its own, else ""."""
    if seg is not result.pruned or edited_thresholds(result) is None:
        return ""
    own = own_thresholds(result.request.spec)
    return (f" (edited in the widget; {whose_own(result.request.spec)}: fg_threshold {own.fg_threshold:g}, "
            f"marker_threshold "
            f"{own.marker_threshold:g}, min_size {own.min_size:g})")


def thresholds_text(info) -> str:
    """A run's thresholds as used; at another pixel size than the models', the minimum size also in the box's px."""
    ws = ", ".join(f"{k} {v:g}" for k, v in info.watershed.as_dict().items())
    res = info.resolution or {}
    if res.get("resampled") and res.get("min_size_at_models_px") is not None:
        ws += f" px of this image (= {res['min_size_at_models_px']} px at the models' 40x)"
    return ws


def numbers_table(result: ComparisonResult) -> tuple[list[str], list[list[str]]]:
    """The numbers as a table: a header and one row per model (A, then its reference B)."""
    n = result.numbers
    area_unit = "µm²" if result.request.pixel_size else "px"
    header = ["model", "nuclei", f"mean area ({area_unit})", "AJI vs B", "PQ vs B", "Dice vs B"]
    if n.disagreement is not None:  # events, on A's row: one per connected group of unmatched nuclei
        header += [f"{label} (events)" for label in EVENT_COLUMNS.values()]
    if n.vs_truth:
        header += ["AJI vs truth", "PQ vs truth", "Dice vs truth"]
    how, seconds = time_columns(result)
    header += ["% pruned", f"seconds ({how})", f"time vs B (×, {how})"]
    both = result.pruned is not None and result.dense is not None
    rows = []
    for role, tag in (("pruned", "A"), ("dense", "B")):
        seg = getattr(result, role)
        if seg is None:
            continue
        tag = tag if result.pruned is not None and result.dense is not None else ""
        m = mean_area(result, role)
        row = [f"{tag}: {seg.info.model}" if tag else seg.info.model, str(seg.n_nuclei),
               "" if m is None else f"{m[0]:.1f}"]
        v = n.vs_dense if role == "pruned" else None
        row += ["" if v is None else f"{x:.3f}" for x in ((v.aji, v.pq, v.dice) if v else (0, 0, 0))]
        if n.disagreement is not None:
            row += [str(n.disagreement.get(k, 0)) if role == "pruned" else "" for k in EVENT_COLUMNS]
        if n.vs_truth:
            t = n.vs_truth.get(seg.info.model)
            row += ["", "", ""] if t is None else [f"{t.aji:.3f}", f"{t.pq:.3f}", f"{t.dice:.3f}"]
        # numbers (CSV cells stay numbers): one run each (the first of a session with the warm-up in it), or
        # the median of interleaved runs once timed
        ratio = f"{seconds['pruned'] / max(seconds['dense'], 1e-9):.2f}" if both and role == "pruned" else ""
        row += [f"{pct_pruned(seg):.1f}", f"{seconds[role]:.2f}", ratio]
        rows.append(row)
    truth = next((t for t in n.vs_truth.values() if t is not None), None)
    if truth is not None:  # its count beside the models' (a pathologist found it only in a warning, session 35)
        t = truth_mean_area(result)
        rows.append(["ground truth" + (f": {result.truth_name}" if result.truth_name else ""), str(truth.n_reference),
                     "" if t is None else f"{t[0]:.1f}"] + [""] * (len(header) - 3))
    return header, rows


def numbers_html(result: ComparisonResult) -> str:
    """The dock's numbers: the table, then the disagreement counts (in their colours), thresholds, notes."""
    from html import escape

    header, rows = numbers_table(result)
    # shown with a column per model and a row per metric: the dock is narrower than it is tall
    right = 'style="padding: 1px 8px; text-align: right"'

    def breakable(name: str) -> str:  # a long file name breaks after its hyphens and underscores, not mid-token
        return " ".join(escape(w).replace("-", "-&#8203;").replace("_", "_&#8203;") if len(w) > 16 else escape(w)
                        for w in name.split(" "))  # (short words, e.g. models' names, stay as they are to copy)

    req = result.request  # the image the numbers are of (a pathologist found it named only in the status line)
    out = [f"<p>image <b>{escape(req.image_name)}</b> · {region_text(req.region)}</p>",
           '<table border="0" cellspacing="0">',
           "<tr><th></th>" + "".join(f"<th {right}>{breakable(r[0])}</th>" for r in rows) + "</tr>"]
    for k, h in enumerate(noisy_header(result, header)[1:], 1):
        if all(not r[k] for r in rows) or h.endswith("(events)"):  # events: in their colours below
            continue
        out.append(f'<tr><td style="padding: 1px 8px 1px 0">{escape(h)}</td>'
                   + "".join(f"<td {right}>{escape(r[k])}</td>" for r in rows) + "</tr>")
    out.append("</table>")
    n = result.numbers
    if n.disagreement is not None:
        c = n.disagreement
        a, b = result.pruned.info.model, result.dense.info.model
        kinds = " · ".join(f'<span style="color:{DISAGREEMENT_COLORS[v]}">■</span> {EVENT_COLUMNS[kind]} '
                           f"{c.get(kind, 0)}" for v, kind in DISAGREEMENT_KINDS.items())
        out.append(f"<p>disagreement events of A with B ({sum(c.values())}): {kinds}"
                   f"<br><small>A = {escape(a)}, B = {escape(b)}; one event = one B nucleus A lacks, one A nucleus "
                   f"B lacks, one B nucleus A cut in several, or several B nuclei A made one</small></p>")
    small = []
    for s in (result.pruned, result.dense):
        if s is not None:
            small.append(f"{escape(s.info.model)} thresholds: "
                         f"{escape(thresholds_text(s.info) + edited_text(result, s))}")
    if result.request.region is not None:
        small.append(f"region: {region_text(result.request.region)} of the image")
    if n.tiled:
        small.append("slide: ran tile by tile; pixel-wise comparison and maps are kept for images up to "
                     "2048x2048 (or tick 'visible region only')")
    if result.request.pixel_size:
        small.append(f"pixel size {result.request.pixel_size:g} µm")
    else:  # (a pathologist set 0 on a 20x image: nothing said the run took it as 40x, session 37)
        small.append(f"pixel size unknown: run as the models' 40x ({MODEL_PIXEL_SIZE_UM:g} µm/px), areas in px")
    if result.pruned is not None and result.dense is not None:
        small.insert(0, escape(speed_text(result), quote=False))
    elif how_timed(result) != "one run each":  # one model alone: what makes its seconds noisy (session 35)
        small.insert(0, escape("seconds: " + how_timed(result).replace("one run each", "one run", 1), quote=False))
    out.append("<p><small>" + "<br>".join(small) + "</small></p>")
    return "\n".join(out)


def run_provenance(result: ComparisonResult) -> dict:
    """What an export or report of a run records beyond the model's info: region, pixel size, reference."""
    out: dict = {}
    if result.request.region is not None:
        out["region"] = {"rows": list(result.request.region[:2]), "columns": list(result.request.region[2:]),
                         "note": "CSV centroids and GeoJSON coordinates are in the image's frame; a label "
                                 "image holds the region only"}
    out["pixel_size_um"] = result.request.pixel_size
    if result.dense is not None and result.pruned is not None:
        out["reference"] = result.dense.info.model
    out["seconds_timed"] = how_timed(result)  # (with what made them noisy: a pathologist missed it, session 38)
    return out


def edit_provenance(result: ComparisonResult) -> dict:
    """For an export of model A: its thresholds' record when they were edited in the widget (the file's own
    watershed record holds the edited ones only: a pathologist could not tell, session 38), else {}."""
    if edited_thresholds(result) is None:
        return {}
    return {"thresholds_edited_in_widget": True, "own_thresholds": own_thresholds(result.request.spec).as_dict()}


def write_report(folder: Path, result: ComparisonResult, sweep_rows: list | None = None,
                 screenshot: str | None = None, charts: str | None = None, *, canvas_caption: str | None = None,
                 sweep_dropped: str | None = None) -> Path:
    """``report.md`` (numbers table, time, disagreement, parameters, model ids and sha256, pixel size, the
    sweep), ``numbers.csv`` (numbers as numbers) and, with a sweep, ``sweep.csv`` in ``folder``; returns
    report.md's path. ``sweep_dropped``: why the CR sweep of this image was dropped (said in the report)."""
    import csv
    import datetime

    from napari_prunuclei import __version__

    folder = Path(folder)
    header, rows = numbers_table(result)
    req = result.request
    where = region_text(req.region)
    with open(folder / "numbers.csv", "w", newline="") as f:
        f.write(preamble({  # the CSV travels without report.md: what its numbers are of (pandas: comment="#")
            "image": req.image_name, "region": where, "ground truth": result.truth_name or "none",
            "pixel size um": req.pixel_size or "unknown",
            **{f"thresholds of {'A' if s is result.chosen else 'B'} ({s.info.model})": thresholds_text(s.info)
               + edited_text(result, s) for s in (result.pruned, result.dense) if s is not None},
            "time": how_timed(result)}))
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    lines = [f"# napari-prunuclei report: {one_line(req.image_name)}", "",
             f"Written {datetime.datetime.now().isoformat(timespec='seconds')} by napari-prunuclei {__version__}.",
             "", "## Numbers", "", "| " + " | ".join(noisy_header(result, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    said, warning = verdict(result), run_warning(result)  # (its edit too: a pathologist read the verdict alone)
    if said:
        lines += ["", f"**Verdict:** {said}."]
    if warning:
        lines += ["", f"**Warning:** {warning}."]
    if result.pruned is not None and result.dense is not None:
        lines += ["", speed_text(result) + "."]
    n = result.numbers
    if n.disagreement is not None:
        lines += ["", f"Disagreement events of A ({result.pruned.info.model}) with B ({result.dense.info.model}), "
                      f"{sum(n.disagreement.values())} in all (one event = one connected group of nuclei the other "
                      f"model does not match): {_events_line(n.disagreement)}."]
    lines += ["", "## Parameters and models", "",
              f"- image: {one_line(req.image_name)}, region: {region_text(req.region)}",  # (said when whole too)
              f"- pixel size: {req.pixel_size:g} µm" if req.pixel_size else "- pixel size: unknown (areas in px)",
              f"- ground truth: layer '{one_line(result.truth_name)}'" if result.truth_name else "- ground truth: none",
              f"- device: {result.chosen.info.device}; precision used: "
              + ", ".join(f"{s.info.model} {s.info.precision}" for s in (result.pruned, result.dense) if s is not None)
              + f" (asked: {req.segment.precision})"]
    for s in (result.pruned, result.dense):
        if s is None:
            continue
        i = s.info
        ws = thresholds_text(i) + edited_text(result, s)  # the boxes' values, where not the model's own
        kind = "dense: not pruned" if i.scheme == "dense" else "fine-tuned" if i.fine_tuned else "one-shot"
        lines += [f"- **{i.model}** ({kind}): thresholds {ws}; "
                  f"{pct_pruned(s):.1f} % of weights pruned; mode {'tiled' if s.tiled else 'whole'}",
                  f"  - semantic: `{i.semantic.get('id')}` sha256 `{i.semantic.get('sha256')}`",
                  f"  - distance: `{i.distance.get('id')}` sha256 `{i.distance.get('sha256')}`"]
    for tag, spec in (("A", req.spec), ("B", req.reference_spec)):
        if spec is not None:
            note, _ = model_note(spec)
            lines.append(f"- known accuracy of {tag} ({spec.label}): {note}")
    if sweep_rows:
        with open(folder / "sweep.csv", "w", newline="") as f:
            f.write(preamble({  # pandas: comment="#"; a name with a line break is written as JSON
                "image": req.image_name,
                "region": where,
                "ground truth": result.truth_name or "none", "pixel size um": req.pixel_size or "unknown",
                "device": f"{req.segment.device}, precision {result.chosen.info.precision}",
                "thresholds": "each pair its own (the registry's; columns fg, marker, min_size), dense dense's",
                "seconds": "end to end, one run each on this image; dense's (dense_seconds) run again at the end, "
                           "warm (its first run held the session's warm-up)",
                "others_cpu": f"the share of the CPUs other work used during the row's run (above {BUSY_SHARE:g}: "
                              "its seconds are noisy); dense_others_cpu: the same during dense's"}))
            w = csv.writer(f)
            w.writerow(["scheme", "cr", "fine_tuned", "aji_vs_dense", "pq_vs_dense", "dice_vs_dense",
                        "aji_vs_truth", "pq_vs_truth", "dice_vs_truth", "seconds", "dense_seconds", "fg", "marker",
                        "min_size", "others_cpu", "dense_others_cpu", "nuclei", "dense_nuclei"])

            def num(v, fmt: str) -> str:
                return "" if v is None else format(v, fmt)

            for row in sorted(sweep_rows, key=lambda r: (r.scheme, r.cr)):
                t, ws = row.vs_truth, row.params or {}
                w.writerow([row.scheme, f"{row.cr:g}", row.fine_tuned, f"{row.vs_dense.aji:.4f}",
                            f"{row.vs_dense.pq:.4f}", f"{row.vs_dense.dice:.4f}",
                            *(num(None if t is None else getattr(t, k), ".4f") for k in ("aji", "pq", "dice")),
                            num(row.seconds, ".3f"), num(row.dense_seconds, ".3f"),
                            *(num(ws.get(k), "g") for k in ("fg_threshold", "marker_threshold", "min_size")),
                            num(row.others, ".2f"), num(row.dense_others, ".2f"), row.vs_dense.n_other,
                            row.vs_dense.n_reference])
        busy = [r.others for r in sweep_rows if r.others is not None and r.others > BUSY_SHARE]
        dense_busy = next((r.dense_others for r in sweep_rows if r.dense_others is not None), None)
        lines += ["", f"## CR sweep on this image ({where}, {len(sweep_rows)} models): [sweep.csv](sweep.csv)"]
        if busy:
            lines += ["", f"Other work used up to {max(busy):.0%} of the CPUs during {len(busy)} of the sweep's runs: "
                          "their seconds are noisy (column others_cpu)."]
        if dense_busy is not None and dense_busy > BUSY_SHARE:  # the denominator of every row's time ratio
            lines += ["", f"Other work used {dense_busy:.0%} of the CPUs during dense's run: every time ratio of the "
                          "sweep is noisy (column dense_others_cpu)."]
    elif sweep_dropped:  # a change of the controls ("the image changed ..."), or why another's is not this run's
        why = f"not included: {sweep_dropped}" if sweep_dropped.startswith("it ") else f"dropped when {sweep_dropped}"
        lines += ["", f"CR sweep: {why}; press 'CR sweep' again."]
    if screenshot:
        lines += ["", "## Canvas", "", f"![canvas]({screenshot})"]
        if canvas_caption:
            lines += ["", canvas_caption[0].upper() + canvas_caption[1:] + "."]
    if charts:
        lines += ["", "## Charts", "", f"![charts]({charts})"]
    md = folder / "report.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def layer_metadata(seg: Segmentation, image_name: str) -> dict:
    """What a result layer records: the run's info (models, sha256, thresholds, timings...) and its image."""
    return {"prunuclei": {**seg.info.as_dict(), "image": image_name}}


def disagreement_metadata(result: ComparisonResult) -> dict:
    """What the disagreement layer and its exports record: the kinds, the events per kind, the models."""
    return {"prunuclei": {"kinds": DISAGREEMENT_KINDS, "counts": result.numbers.disagreement,
                          "counted": "events: one per connected group of nuclei the other model does not match",
                          "image": result.request.image_name, "model": result.pruned.info.model,
                          "reference": result.dense.info.model}}


def disagreement_features(result: ComparisonResult) -> dict[str, list]:
    """What hovering over the disagreement layer says: each kind named with the two models."""
    a, b = result.pruned.info.model, result.dense.info.model
    return {"index": [0, 1, 2, 3, 4],
            "disagreement": ["agree", f"missed by {a} (found by {b})", f"extra in {a} (not in {b})",
                             f"split by {a} (one {b} nucleus, several of {a})",
                             f"merged by {a} (several {b} nuclei, one of {a})"]}
