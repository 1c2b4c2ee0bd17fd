"""The ``prunuclei`` command line: train, evaluate, score, segment, prune, models, sweep."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one branch on a data folder")
    p.add_argument("--branch", choices=["semantic", "distance"], required=True)
    p.add_argument("--data", type=Path, required=True, help="dataset folder (images/, labels/, split.json)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<branch>)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-val", type=int, default=4, help="train images held back for tuning")
    p.add_argument("--norm", choices=["batch", "none"], default="batch")
    p.add_argument("--base-filters", type=int, default=16)
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.set_defaults(func=_cmd_train)


def _cmd_train(a: argparse.Namespace) -> int:
    from .models.unet import UNetConfig
    from .training import TrainConfig, train

    cfg = TrainConfig(
        branch=a.branch, steps=a.steps, batch=a.batch, crop=a.crop, lr=a.lr, seed=a.seed,
        n_val=a.n_val, ckpt_every=a.ckpt_every, precision=a.precision, threads=a.threads,
        model=UNetConfig(norm=a.norm, base_filters=a.base_filters).to_dict(),
    )
    out = a.out or Path("runs") / a.branch
    path = train(cfg, a.data, out, resume=a.resume, device=a.device)
    print(f"weights: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prunuclei", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    _add_train(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"prunuclei {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
