"""`prunuclei sweep`: every zoo pair on MoNuSeg test and GBM40, with a time axis."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from napari_prunuclei.base.constants import CHANNEL_SCHEMES, DEFAULT_CRS, PRUNED_SCHEMES, UNSTRUCTURED_SCHEMES
from napari_prunuclei.cli.options import count_type
from napari_prunuclei.io.atomic import open_lock

SWEEP_LOCK = ".prunuclei-sweep.lock"  # in --out: one sweep at a time writes there
#: what --time measures again in a row (the rest of a row stays as it is when --rows is written over in place)
TIME_KEYS = ("seconds", "branches_s", "time_ratio", "timed_others_cpu", "timed_on", "macs_ratio", "achieved_cr",
             "finetune_steps")


def add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="the paper's experiment: both schemes, every CR, one-shot and fine-tuned")
    p.add_argument("--data", type=Path, required=True, help="folder holding monuseg2018/ and gbm40/")
    p.add_argument("--out", type=Path, default=Path("docs") / "pruning", help="tables, CSV/JSON and plots")
    p.add_argument("--report", type=Path, default=None,
                   help="the Markdown report (default: beside --out, its name + .md: docs/pruning.md for docs/pruning; "
                        "inside it for --out . or ..)")
    p.add_argument("--cr", type=float, nargs="+", default=list(DEFAULT_CRS))
    p.add_argument("--schemes", nargs="+", default=list(UNSTRUCTURED_SCHEMES), choices=list(PRUNED_SCHEMES))
    p.add_argument("--datasets", nargs="+", default=["monuseg", "gbm40"], choices=["monuseg", "gbm40"])
    p.add_argument("--include", type=Path, default=None,
                   help="sweep.json of an earlier sweep: its fine-tuned rows are shown beside (and timed with --time)")
    p.add_argument("--rows", type=Path, default=None,
                   help="sweep.json of an earlier sweep: its rows (of --schemes, --datasets, --variants) instead of "
                        "evaluating again, to time them (--time) or write the report again")
    p.add_argument("--time", action="store_true",
                   help="also time every pair end to end on one 1000x1000 tile, dense in the same run")
    p.add_argument("--time-repeat", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=["one-shot", "fine-tuned"], choices=["one-shot", "fine-tuned"])
    p.add_argument("--limit", type=count_type(1, what="--limit"), default=None,
                   help="only the first N images of each data set")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--workers", type=int, default=2, help="processes (one torch thread each)")
    p.add_argument("--update-registry", action="store_true",
                   help="store the MoNuSeg test metrics of every fine-tuned zoo model in the registry")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(a: argparse.Namespace) -> int:
    check_destinations(a)  # before hours of work, not after
    with holding(a.out):
        return sweep_into(a)


@contextmanager
def holding(out: Path) -> Iterator[None]:
    """One sweep at a time into ``out`` (a lock file there, held for the whole run): two sweeps into one folder
    would leave one's JSON beside the other's plots and report."""
    import fcntl

    made = [p for p in (out, *out.parents) if not p.exists()]  # the folders this run makes, deepest first
    out.mkdir(parents=True, exist_ok=True)
    try:
        lock = open_lock(out / SWEEP_LOCK)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot open its lock file {SWEEP_LOCK} ({e.strerror or e})") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"--out {out}: another prunuclei sweep is writing there; wait for it to finish or "
                             "choose another --out") from None
        remove_leftovers(out)
        try:
            yield
        except BaseException:
            if made and [p.name for p in out.iterdir()] == [SWEEP_LOCK]:  # folders this run made, left empty
                (out / SWEEP_LOCK).unlink()
                for folder in made:
                    try:
                        folder.rmdir()
                    except OSError:  # something else is in it now
                        break
            raise


def remove_leftovers(out: Path) -> None:
    """The temporary files a sweep killed while writing into ``out`` left there (its own outputs' names, matched
    exactly; called with ``out``'s lock held, so no running sweep's); nothing else."""
    import re

    from napari_prunuclei.io.atomic import TEMP_PREFIX
    from napari_prunuclei.study.sweep import OUTPUT_NAMES

    rx = re.compile(rf"{re.escape(TEMP_PREFIX)}(?:{OUTPUT_NAMES})\.[a-z0-9_]+\.(?:csv|json|md|png)")
    for q in out.iterdir():  # (not sweep_report.md's: another sweep's --report may be writing it here, unlocked)
        if rx.fullmatch(q.name) and not q.name.startswith(f"{TEMP_PREFIX}sweep_report.md.") and q.is_file() \
                and not q.is_symlink():
            try:
                q.unlink(missing_ok=True)
            except OSError:  # left as it is: never a reason to stop a sweep
                pass


def sweep_into(a: argparse.Namespace) -> int:
    """The sweep itself, its destinations checked and held."""
    import platform

    from tqdm import tqdm

    from napari_prunuclei.base.machine import cpu_name
    from napari_prunuclei.base.progress import tqdm_callback
    from napari_prunuclei.models.inference import resolve_precision
    from napari_prunuclei.runtime.pairs import load_pair
    from napari_prunuclei.study.pruning_report import write_report
    from napari_prunuclei.study.release import (
        channel_finetune_note,
        finetune_note,
        finetune_protocols,
        registry_watersheds,
        update_registry_metrics,
    )
    from napari_prunuclei.study.sweep import run_sweep, sparsity_rows, write_outputs
    from napari_prunuclei.study.sweep_rows import check_made_by, read_sweep_rows

    if a.include is not None:
        check_made_by(read_sweep_rows(a.include), a.include)
    file_rows = read_sweep_rows(a.rows) if a.rows is not None else []  # (read once: ~1 MB)
    if a.rows is not None:
        if a.limit is not None:  # (its rows hold every image they were evaluated on: the report would say otherwise)
            raise ValueError("--limit evaluates fewer images; with --rows nothing is evaluated: leave it out")
        rows = earlier_rows(file_rows, a.rows, a.schemes, a.datasets, a.variants, a.cr)
    else:
        with tqdm(desc="sweep", unit="model") as bar:
            rows = run_sweep(a.data, schemes=tuple(a.schemes), crs=tuple(a.cr), variants=tuple(a.variants),
                             datasets=tuple(a.datasets), device=a.device, precision=a.precision, limit=a.limit,
                             progress=tqdm_callback(bar), workers=a.workers)
        rows = [r.as_dict() for r in rows]
    if a.include is not None:
        have = {row_key(r) for r in rows}
        # a report written again from --rows keeps the included pairs as that run had them (timed), where they are
        # the very rows of --include (the same scores, the same files); else the --include row
        kept = {row_key(r): r for r in file_rows}
        rows += [same_row(kept.get(row_key(r)), r) for r in read_sweep_rows(a.include)  # the earlier fine-tuned pairs
                 if row_key(r) not in have and r["dataset"] in a.datasets and r["variant"] == "fine-tuned"]
    kept_in_place(a, rows, file_rows)
    multiples = read_multiples(a.out / "multiples.json") if set(a.schemes) & set(CHANNEL_SCHEMES) else None
    if a.time:
        from napari_prunuclei.study.sweep import add_times

        rows = add_times(rows, a.data, repeat=a.time_repeat, device=a.device, precision=a.precision)
    files = write_outputs(rows, a.out, None if set(a.schemes) <= set(CHANNEL_SCHEMES) else sparsity_rows())
    protocols = finetune_protocols()
    import torch

    meta = {"machine": f"{cpu_name()} ({platform.machine()}), {torch.get_num_threads()} torch threads",
            "precision": f"{a.precision} ({resolve_precision(a.precision, torch.device(a.device))} here)",
            "watershed": load_pair().params.as_dict(), "finetune": finetune_note(protocols),
            "protocols": protocols, "watershed_models": registry_watersheds()}
    if a.rows is not None:
        meta["rows_from"] = str(a.rows)
    if not a.time and any(r.get("seconds") is not None for r in rows):  # times of another run, maybe another CPU
        from napari_prunuclei.study.sweep import times_from

        meta["times_from"] = times_from(rows) or "the machine of the run that made them (their rows do not name it)"
    command = "prunuclei sweep " + shlex.join(sys.argv[2:])  # (pasted back as it ran, odd names too)
    if set(a.schemes) & set(CHANNEL_SCHEMES):
        from napari_prunuclei.study.channel_report import write_channel_report

        meta["finetune"] = channel_finetune_note()
        if multiples is not None:
            meta["multiples"] = multiples
        files.append(write_channel_report(rows, a.report, command, meta, a.out))
    else:
        files.append(write_report(rows, a.report, command, meta, a.out))
    if a.update_registry:
        update_registry_metrics(rows)
    for f in files:
        print(f"wrote {f}")
    return 0


def same_row(earlier: dict | None, included: dict) -> dict:
    """``earlier`` (a row of --rows) where it is ``included`` (a row of --include) with what a timing added, else
    ``included``."""
    same = earlier is not None and all(earlier.get(k) == included.get(k) for k in ("aji", "per_image", "made_by"))
    return earlier if same else included


def check_destinations(a: argparse.Namespace) -> None:
    """--out a folder (or new), --report's folder there, and neither the --rows nor the --include file about to
    be written over."""
    if a.out.exists() and not a.out.is_dir():
        raise ValueError(f"--out {a.out}: exists and is not a folder")
    derived = a.report is None
    if derived:  # beside --out: a sweep into a folder of its own never writes over the repository's report
        name = a.out.name
        a.report = a.out / "sweep_report.md" if name in ("", ".", "..") else a.out.parent / f"{name}.md"
    if a.report.is_dir() or (a.report.exists() and not a.report.is_file()):
        raise ValueError(f"--report {a.report}: exists and is not a file")
    if derived and a.report.is_file() and not is_sweep_report(a.report):  # docs/performance.md for docs/performance
        raise ValueError(f"{a.report} exists and is not a sweep's report: this sweep would write over it "
                         "(--out FOLDER writes FOLDER.md); give --report, or another --out")
    if not derived:  # (a derived one's folder is --out's, made with it)
        named_report(a)
    report = a.report.resolve()
    for flag, given in (("--rows", a.rows), ("--include", a.include)):  # (--rows may be --out's own sweep.json:
        if given is None:  # see kept_in_place)
            continue
        if given.resolve() == report:
            raise ValueError(f"--report {a.report}: it is the {flag} file, which the report would write over; "
                             "choose another --report")
        if given.resolve() == (a.out / "sweep.json").resolve() and not (flag == "--rows" and in_place(a)):
            raise ValueError(f"{given}: this sweep would write over it (--out {a.out}); choose another --out")


def named_report(a: argparse.Namespace) -> None:
    """A --report given by name: in a writable folder, never a file of the sweep's own in --out, never an existing
    file that is not a sweep's report (a hostile pass wrote a report over README.md, and over --out's sweep.json)."""
    import os
    import re

    from napari_prunuclei.study.sweep import OUTPUT_NAMES

    r = a.report
    own = re.fullmatch(OUTPUT_NAMES, r.name) and r.name != "sweep_report.md" or r.name == SWEEP_LOCK
    if own and r.parent.resolve() == a.out.resolve():
        raise ValueError(f"--report {r}: the sweep writes its own {r.name} there; choose another --report")
    if not r.parent.exists() and r.parent.resolve() == a.out.resolve():  # in --out, made with it: nothing there
        made = next(q for q in r.parent.resolve().parents if q.exists())  # (yet; its nearest folder takes it)
        if not os.access(made, os.W_OK):
            raise ValueError(f"--report {r}: its folder {r.parent} cannot be made ({made} is not writable)")
        return
    if not r.parent.is_dir():
        raise ValueError(f"--report {r}: its folder {r.parent} does not exist")
    if not os.access(r.parent, os.W_OK):
        raise ValueError(f"--report {r}: its folder {r.parent} is not writable")
    if r.is_file() and not is_sweep_report(r):
        raise ValueError(f"--report {r}: exists and is not a sweep's report, which this sweep would write over; "
                         "choose another --report")


def in_place(a: argparse.Namespace) -> bool:
    """Whether --rows is the sweep.json this sweep writes (a report drawn again where its rows lie)."""
    return a.rows is not None and a.rows.resolve() == (a.out / "sweep.json").resolve()


def row_key(r: dict) -> tuple:
    """What names a sweep row: its data set, scheme, CR and variant."""
    return r["dataset"], r["scheme"], float(r["cr"]), r["variant"]


def kept_in_place(a: argparse.Namespace, rows: list[dict], before: list[dict]) -> None:
    """--rows (whose rows are ``before``) written over in place only when every row it holds is among ``rows`` (a
    narrower --schemes, --cr, --variants or --datasets would have dropped rows of it: a hostile pass lost 80 of 82
    so)."""
    if not in_place(a):
        return
    from collections import Counter

    def kept(r: dict) -> str:  # what must stay as it is (with --time, all but the times measured again)
        return json.dumps({k: v for k, v in r.items() if not (a.time and k in TIME_KEYS)}, sort_keys=True)

    have, same = {row_key(r) for r in rows}, Counter(kept(r) for r in rows)
    lost = [r for r in before if row_key(r) not in have]
    extra = Counter(map(kept, before)) - same  # the file's rows not among the sweep's as they are
    changed = [r for r in before if row_key(r) in have and kept(r) in extra]
    if lost or changed:
        what = (f"without {len(lost)} of its rows" if lost else f"with {len(changed)} of its rows changed (their "
                "--include rows differ from them)")
        r = (lost or changed)[0]
        name = "dense" if r["scheme"] == "dense" else f"{r['scheme']} CR{float(r['cr']):g}"
        raise ValueError(f"{a.rows}: this sweep would write over it (--out {a.out}) {what} (e.g. {name} on "
                         f"{r['dataset']}); in place, every row stays as it is: choose another --out, or the "
                         "--schemes, --cr, --variants, --datasets and --include that made it")


def read_multiples(path: Path) -> dict | None:
    """``bench/bench_channels.py``'s result in --out, for the channel report (None where there is none); read
    before anything is written, a broken one named."""
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
        rows = m["rows"]
        for k in ("size", "cpu", "threads", "precision"):
            m[k]  # noqa: B018 - present, or KeyError below
        if not isinstance(rows, list) or not all(isinstance(r, dict) and {"scheme", "cr", "multiple", "achieved_cr",
                                                     "macs_ratio", "speedup"} <= set(r) for r in rows):
            raise TypeError("its rows are not bench_channels.py's")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        why = f"no {e}" if isinstance(e, KeyError) else str(e)
        raise ValueError(f"{path}: not a result of bench/bench_channels.py ({why}); move it away or make it "
                         "again") from None
    return m


def is_sweep_report(path: Path) -> bool:
    """Whether ``path`` starts as a report of :func:`cmd_sweep` does (written over by a sweep without asking)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline(200).strip()
    except OSError:
        return False
    from napari_prunuclei.study import channel_report, pruning_report

    return first in (pruning_report.TITLE, channel_report.TITLE)


def earlier_rows(file_rows: list[dict], path: Path, schemes, datasets, variants, crs) -> list[dict]:
    """The rows (``file_rows``) of an earlier sweep.json (``path``) for these schemes (and dense), data sets,
    variants and CRs; each data set kept has its dense row (the reports compare with it)."""
    from napari_prunuclei.study.sweep_rows import check_made_by

    keep = [r for r in file_rows if r["dataset"] in datasets
            and (r["scheme"] == "dense" or (r["scheme"] in schemes and r["variant"] in variants
                                            and float(r["cr"]) in {float(c) for c in crs}))]
    if not any(r["scheme"] != "dense" for r in keep):
        raise ValueError(f"{path}: no rows of {', '.join(schemes)} ({', '.join(variants)}) on {', '.join(datasets)}")
    # every CR and variant asked for has rows: the report's command names them (a hostile pass, session 37: --cr 64
    # and one-shot were recorded for a report that had neither)
    pairs = [r for r in keep if r["scheme"] != "dense"]
    missing = [f"CR {float(c):g}" for c in crs if not any(float(r["cr"]) == float(c) for r in pairs)]
    missing += [v for v in variants if not any(r["variant"] == v for r in pairs)]
    if missing:
        raise ValueError(f"{path}: no rows of {', '.join(missing)} for {', '.join(schemes)}; give only the --cr and "
                         "--variants it holds")
    for ds in sorted({r["dataset"] for r in keep}):
        if not any(r["dataset"] == ds and r["scheme"] == "dense" for r in keep):
            raise ValueError(f"{path}: no dense row for {ds} (the reports compare every pair with it)")
    return check_made_by(keep, path)
