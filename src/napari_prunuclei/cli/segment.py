"""`prunuclei segment`, `score` and `evaluate`: images in, nuclei and scores out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_prunuclei.base.constants import HALO, MAX_BATCH, MAX_TILE, MIN_TILE, TILE
from napari_prunuclei.cli.options import count_type, machine_cores, model_args, pair_of, pixel_size_arg, watershed_of
from napari_prunuclei.io.measure import one_line


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="segment a data split and report Dice, AJI, PQ, F1, distance MSE")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=count_type(1, what="--limit"), default=None,
                   help="only the first N images of the split")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    model_args(p)
    pixel_size_arg(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_prunuclei.base.progress import tqdm_callback
    from napari_prunuclei.io.dataset import NucleiDataset
    from napari_prunuclei.study.evaluation import evaluate, format_table, write_json

    names = NucleiDataset(a.data).names(a.split)[: a.limit]
    pair = pair_of(a)
    with tqdm(total=len(names), desc="evaluate", unit="image") as bar:
        res = evaluate(a.data, a.split, pair, params=watershed_of(a, pair), device=a.device, precision=a.precision,
                       names=names, progress=tqdm_callback(bar), pixel_size=a.pixel_size)
    print(format_table(res, f"{a.data} [{a.split}] {pair.label}" + ("" if pair.spec.is_dense else " fine-tuned"
                                                                   if pair.spec.fine_tuned else "")))
    if a.json:
        write_json(a.json, res)
        print(f"wrote {a.json}")
    return 0


def add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score instance label images against ground truth")
    p.add_argument("truth", type=Path, help="ground-truth label file or folder")
    p.add_argument("pred", type=Path, help="predicted label file or folder (matched by file name)")
    p.add_argument("--json", type=Path, default=None)
    p.set_defaults(func=cmd_score)


def cmd_score(a: argparse.Namespace) -> int:
    from napari_prunuclei.study.evaluation import format_table, score_files, write_json

    res = score_files(a.truth, a.pred)
    print(format_table(res))
    for side, names in res["unmatched"].items():
        if names:
            where = a.truth if side == "truth_only" else a.pred
            print(f"prunuclei score: warning: {len(names)} label image(s) only in {where}, not scored: "
                  f"{', '.join(names[:10])}{' ...' if len(names) > 10 else ''}", file=sys.stderr)
    if a.json:
        write_json(a.json, res)
    return 0


def add_segment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment H&E images or slides; write labels (and maps) per image")
    p.add_argument("images", nargs="+",
                   help="image files (PNG, JPEG, TIFF/SVS) or folders of them; @FILE reads a list (one path a "
                        "line, blank lines and # comments skipped, paths relative to the current folder; a list may "
                        "name other @lists)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    model_args(p)
    pixel_size_arg(p)
    p.add_argument("--tile", type=count_type(MIN_TILE, MAX_TILE, "--tile"), default=TILE,
                   help="tile side for large images (px)")
    p.add_argument("--halo", type=count_type(0, MAX_TILE, "--halo"), default=HALO,
                   help="context around each tile (px, at most the tile)")
    p.add_argument("--tiled", action="store_true",
                   help="tile also images small enough to run whole (default: only above 2048x2048)")
    p.add_argument("--workers", type=count_type(1, what="--workers"), default=1,
                   help="dask worker processes (1 thread each): small images run one per worker; an image large "
                        "enough to be tiled has its tiles spread over all workers, stitched here, resumable at the "
                        "tile after an interruption (finished tiles kept in OUT/.prunuclei-<name>.tiles)")
    p.add_argument("--scheduler", default=None,
                   help="address of a running dask.distributed scheduler, used as --workers is; the images and "
                        "OUT must be on a file system every worker sees")
    p.add_argument("--per-file", action="store_true",
                   help="with --workers or --scheduler: run every image whole in one worker, never spread its tiles")
    p.add_argument("--threads", type=count_type(0, machine_cores(), "--threads"), default=0,
                   help="torch threads per worker (0: default)")
    p.add_argument("--post-workers", type=count_type(0, machine_cores(), "--post-workers"), default=None,
                   help="processes running the watershed of finished tiles while the next tiles' branches run "
                        "(default: one per available core on a GPU run; on a CPU run the cores torch leaves, "
                        "none when it uses them all; 0: in the main process)")
    p.add_argument("--batch", type=count_type(0, MAX_BATCH, "--batch"), default=0,
                   help="tiles per network call (0: 8 on CUDA, else 1)")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (CUDA; pays a warm-up)")
    p.add_argument("--no-tissue-mask", action="store_true",
                   help="run the networks on every tile of a slide (default: a tile whose core shows no stained or "
                        "dark tissue, only glass, skips them: it can hold no nucleus of its own)")
    p.add_argument("--overwrite", action="store_true",
                   help="redo the given images; when --out holds another model's results, all of them (every "
                        "image's, not only the given ones) are removed first, so one folder never mixes models")
    p.set_defaults(func=cmd_segment)


def cmd_segment(a: argparse.Namespace) -> int:
    from napari_prunuclei.runtime.batch import segment_files
    from napari_prunuclei.runtime.request import SegmentRequest, Tiling

    pair = pair_of(a)
    request = SegmentRequest(scheme=a.scheme, cr=a.cr, fine_tuned=not a.one_shot, params=watershed_of(a, pair),
                             device=a.device, precision=a.precision,
                             tiling=Tiling("tiled" if a.tiled else "auto", a.tile, a.halo),
                             post_workers=a.post_workers, batch=a.batch, compile=a.compile,
                             pixel_size=a.pixel_size, tissue_mask=not a.no_tissue_mask)
    from napari_prunuclei.io.inputs import expand_inputs

    paths = expand_inputs(a.images)
    if not paths:
        raise ValueError("no images given (the lists named are empty)")
    done = segment_files(paths, a.out, request, workers=a.workers, scheduler=a.scheduler,
                         resume=not a.overwrite, threads=a.threads, per_file=a.per_file)
    for info in done.finished:
        rate = info.get("throughput", {}).get("mp_per_s")
        print(f"{one_line(info['image'])}: {info['n_nuclei']} nuclei ({info['mode']}, {info['wall_seconds']:.1f} s"
              + (f", {rate:.2f} MP/s" if rate else "")
              + f") -> {one_line(str(a.out / Path(info['image']).stem) + '_labels.tif')}")
    if done.skipped and not done.finished and not done.failed:
        print(f"{done.skipped} image(s) already finished in {a.out} with this model: nothing to do "
              "(--overwrite redoes them)")
    for path, why in done.failed:
        print(f"prunuclei segment: {failure_line(path, why)}", file=sys.stderr)
    if done.failed:
        print(f"prunuclei segment: {len(done.failed)} of {len(paths)} image(s) failed; "
              f"{len(done.finished)} finished, {done.skipped} skipped (finished before)", file=sys.stderr)
        return 1
    return 0


def failure_line(path, why) -> str:
    """One failed image's line, naming the file once: at the start, or where the reason names it (a library's
    repeat of the name inside the reason is dropped); a name with a line break is quoted, so the line stays one."""
    p, why, shown = str(path), str(why), one_line(str(path))
    if p not in why and " ".join(p.split()) in why:  # the reason's own message had its line breaks made spaces
        p = " ".join(p.split())
    if p not in why:
        return f"{shown}: failed, nothing written: {why}"
    head, tail = why.split(p, 1)
    for repeat in (f" '{p}'", f' "{p}"', f" {p}", p):
        tail = tail.replace(repeat, "")
    if not head.strip():
        return f"{shown}: failed, nothing written: {tail.lstrip(': ')}"
    return f"failed, nothing written: {head}{shown}{tail}"
