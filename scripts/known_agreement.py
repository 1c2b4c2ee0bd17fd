"""Each zoo pair's agreement with dense (AJI of A against dense, as the widget measures it) on every image of
MoNuSeg 2018 test and GBM40: the range a run without ground truth is read against (the widget warns below it).

No ground truth is read and nothing is chosen on these images; the registry's entries get the range
(``agreement_with_dense``) with ``--update-registry`` (``--from-json``: an earlier run's file, not measured again).

    python scripts/known_agreement.py --data ../shared/data --workers 2 \
        --json docs/results/agreement_with_dense.json --update-registry
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from tqdm import tqdm

from napari_prunuclei.base.machine import cpu_name
from napari_prunuclei.base.progress import tqdm_callback
from napari_prunuclei.io.dataset import DataError
from napari_prunuclei.study.evaluation import write_json
from napari_prunuclei.study.known_agreement import measure_agreement, summarize_agreement, update_registry_agreement


def markdown(summary: dict[str, dict]) -> str:
    """The ranges as a Markdown table (docs/models.md)."""
    lines = ["| pair | images | AJI vs dense: lowest | median | highest | MoNuSeg test (lowest-highest) | "
             "GBM40 (lowest-highest) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for pair, s in summary.items():
        per = [s["per_dataset"].get(name) for name in ("monuseg2018 test", "gbm40")]
        cells = [f"{d['aji_min']:.3f}-{d['aji_max']:.3f}" if d else "" for d in per]
        lines.append(f"| {pair} | {s['n_images']} | {s['aji_min']:.3f} | {s['aji_median']:.3f} | {s['aji_max']:.3f} "
                     f"| {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, help="the folder holding monuseg2018/ and gbm40/")
    p.add_argument("--from-json", type=Path, help="an earlier run's --json: its values, not measured again")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--workers", type=int, default=2, help="processes, one torch thread each")
    p.add_argument("--limit", type=int, default=None, help="the first N images of each set only (a quick check)")
    p.add_argument("--update-registry", action="store_true")
    p.add_argument("--markdown", action="store_true", help="print the ranges as a Markdown table")
    a = p.parse_args()
    if a.update_registry and a.limit is not None:
        p.error("--update-registry needs every image (no --limit)")
    if (a.data is None) == (a.from_json is None):
        p.error("give --data (measure) or --from-json (an earlier run's values)")
    if a.from_json is not None and a.limit is not None:
        p.error("--limit measures fewer images: it has no meaning with --from-json")
    failed: dict[str, str] = {}
    if a.from_json is not None:
        try:
            earlier = json.loads(a.from_json.read_text())
            measured = earlier["per_image"]
            if not isinstance(measured, dict) or not all(isinstance(d, dict) for d in measured.values()):
                raise TypeError("'per_image' is not pair -> data set -> values")
        except (OSError, UnicodeError, ValueError, KeyError, TypeError) as e:
            p.error(f"--from-json {a.from_json}: not a file this script wrote ({type(e).__name__}: {e})")
        if a.update_registry and (earlier.get("limit") is not None or earlier.get("failed")):
            p.error(f"--from-json {a.from_json}: measured on part of the images (--limit or failed images): the "
                    "registry takes a range over every image")
    else:
        t0 = time.perf_counter()
        try:
            with tqdm(desc="images", unit="image") as bar:
                measured = measure_agreement(a.data, workers=a.workers, limit=a.limit, progress=tqdm_callback(bar),
                                             failed=failed)
        except DataError as e:  # (a folder or image that is not there or not readable, named)
            p.error(str(e))
        seconds = time.perf_counter() - t0
    summary = {pair: summarize_agreement(d) for pair, d in measured.items()}
    if a.markdown:
        print(markdown(summary))
    else:
        for pair, s in summary.items():
            print(f"{pair:28s} AJI vs dense {s['aji_min']:.3f} - {s['aji_max']:.3f} (median {s['aji_median']:.3f}, "
                  f"{s['n_images']} images)")
    if a.json is not None and a.from_json is not None:  # the earlier values summarized again (as this code does)
        write_json(a.json, {**earlier, "summary": summary, "summarized_by": shlex.join(["python", *sys.argv])})
    elif a.json is not None:
        write_json(a.json, {"command": shlex.join(["python", *sys.argv]), "machine": cpu_name(),
                            "seconds": round(seconds, 1), "workers": a.workers, "limit": a.limit, "failed": failed,
                            "summary": summary, "per_image": measured})
    for image, why in failed.items():
        print(f"not measured: {image}: {why}", file=sys.stderr)
    if a.update_registry and failed:
        p.error(f"{len(failed)} image(s) could not be measured (above): the registry takes a range over every image")
    if a.update_registry:
        print(f"{update_registry_agreement(measured)} registry entries updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
