"""The ``prunuclei`` command line: train, evaluate, score, segment, prune, models, sweep."""

from __future__ import annotations

import argparse
import sys

from napari_prunuclei.cli.models import add_models, add_prune, add_ship, add_train, add_tune
from napari_prunuclei.cli.segment import add_evaluate, add_score, add_segment
from napari_prunuclei.cli.sweep import add_sweep

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prunuclei", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for add in (add_train, add_evaluate, add_score, add_segment, add_models, add_ship, add_prune, add_tune,
                add_sweep):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input (a file, a folder, an option) gives one line naming it and exit 2;
    anything unexpected gives one line and exit 3 (``PRUNUCLEI_DEBUG=1`` shows the traceback)."""
    import os
    import signal
    import threading

    parser = build_parser()
    args = parser.parse_args(argv)
    old = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM ends a run as Ctrl-C does: scratch removed
        old = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as e:
        term = isinstance(e, Terminated)
        print(f"prunuclei {args.command}: {'terminated' if term else 'interrupted'}", file=sys.stderr)
        return 143 if term else 130
    except (ValueError, OSError, RuntimeError, LookupError, MemoryError) as e:
        if os.environ.get("PRUNUCLEI_DEBUG"):
            raise
        print(f"prunuclei {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - no traceback reaches a user
        if os.environ.get("PRUNUCLEI_DEBUG"):
            raise
        print(f"prunuclei {args.command}: unexpected error: {type(e).__name__}: {_one_line(e)} "
              "(run with PRUNUCLEI_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is so that its clean-up runs as for Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    if isinstance(e, MemoryError):
        text = f"out of memory ({text})"
    return " ".join(text.split())[:1000]


if __name__ == "__main__":
    sys.exit(main())
