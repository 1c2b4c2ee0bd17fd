"""Atomic writes: a file appears whole or not at all; temporary names are recognisable and bounded."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "TEMP_PREFIX",
    "bounded_name",
    "atomic_write",
    "open_lock",
]


TEMP_PREFIX = ".prunuclei-tmp."  # every temporary file atomic_write makes starts with this (cleanup matches it)


def bounded_name(name: str, limit: int = 96) -> str:
    """``name`` itself when short, else its first characters and a hash of the whole: temporary and scratch
    names built from it stay far below the file system's 255-byte limit, and stay distinct."""
    if len(name.encode()) <= limit:
        return name
    import hashlib

    head = name.encode()[: limit - 17].decode(errors="ignore")
    return f"{head}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it.

    A failure leaves no partial file at ``path``.
    """
    p = Path(path)
    if not p.parent.is_dir():
        raise OSError(f"cannot write {p}: folder {p.parent} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise OSError(f"cannot write {p}: folder {p.parent} is not writable")
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{bounded_name(p.name)}.", suffix=p.suffix[:16], dir=p.parent)
    os.close(fd)
    tmp_p = Path(tmp)
    try:
        write(tmp_p)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_p, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_p, p)
    except OSError as e:  # e.g. [Errno 28] No space left on device: say which file, nothing left behind
        tmp_p.unlink(missing_ok=True)
        if str(p) in str(e) and getattr(e, "filename2", None) is None:  # (a failed rename names the temporary too)
            raise
        raise OSError(e.errno, f"cannot write {p}: {e.strerror or e}") from None
    except BaseException:
        tmp_p.unlink(missing_ok=True)
        raise
    return p


def open_lock(path: str | os.PathLike):
    """A lock file opened for ``fcntl.flock`` (created if missing, never truncated): never through a link,
    never waiting on a FIFO; OSError when ``path`` is a link, folder or other special file."""
    import stat

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0), 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device: not a lock file
        os.close(fd)
        raise OSError(0, "not a regular file")
    return os.fdopen(fd, "w")
