"""A zoo built over several sessions, staged stage by stage outside the package (issue 21).

Shipping a new protocol's stages into the package one by one would put two protocols in the registry for
as long as the build runs (days of CPU). Instead each finished stage is *staged*: its two branch files are
copied into a folder of the repository (each through a ``.part`` name, so a file that is there is whole),
then one line is appended to ``stages.jsonl`` naming the files with their SHA-256, the stage's
measurements and the protocol's record. A stage counts as staged only when its line is there, its files
are there with those hashes, and the files themselves were made by that protocol; the whole set is
shipped at once when every stage is (``scripts/build_zoo.py --ship-staged``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from napari_prunuclei.io.atomic import open_lock
from napari_prunuclei.training.protocol import Protocol, file_protocol, stage_file

__all__ = ["STAGES_LOG", "StageBusy", "building", "stage", "restage", "staged_rows", "restore_into_work",
           "sha256"]

#: the staging folder's log: one JSON line per staged stage
STAGES_LOG = "stages.jsonl"
BRANCHES = ("semantic", "distance")


def sha256(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stage(folder: Path, files: dict[str, Path], row: dict, protocol: Protocol) -> list[Path]:
    """Stage one finished stage: its files (made by ``protocol``, else ValueError) copied into ``folder``,
    then its line appended to the log (last, so that a stage interrupted here is simply not staged).
    Returns the paths written (for a commit)."""
    folder.mkdir(parents=True, exist_ok=True)
    named = {}
    for branch in BRANCHES:
        src = Path(files[branch])
        if file_protocol(src) != protocol.record():
            raise ValueError(f"{src}: not made by this protocol (version {protocol.version}, "
                             f"{protocol.steps} steps): not staged")
        part = folder / (src.name + ".part")
        shutil.copyfile(src, part)
        os.replace(part, folder / src.name)
        named[branch] = {"file": src.name, "sha256": sha256(folder / src.name)}
    line = json.dumps({**row, "files": named, "protocol": protocol.record()}) + "\n"
    with open(folder / STAGES_LOG, "a", encoding="utf-8") as fh:  # one write: lines of two jobs do not mix
        fh.write(line)
    return [folder / n["file"] for n in named.values()] + [folder / STAGES_LOG]


def restage(folder: Path, row: dict, protocol: Protocol) -> list[Path]:
    """Append a new line for a stage already staged in ``folder`` by ``protocol``, its files unchanged (e.g. its
    watershed tuned again under a new rule): refused (ValueError) unless the stage is staged and ``row`` names
    the very files of its line. The new line replaces the earlier one. Returns the paths written."""
    key = (str(row["scheme"]), float(row["cr"]))
    now = staged_rows(folder, protocol).get(key)
    if now is None or row.get("files") != now["files"]:
        raise ValueError(f"{folder}: {key[0]} CR{key[1]:g} is not staged by this protocol with the files named: "
                         "not staged again")
    line = json.dumps({**row, "protocol": protocol.record()}) + "\n"
    with open(folder / STAGES_LOG, "a", encoding="utf-8") as fh:  # one write: lines of two jobs do not mix
        fh.write(line)
    return [folder / STAGES_LOG]


def staged_rows(folder: Path, protocol: Protocol) -> dict[tuple[str, float], dict]:
    """The stages staged in ``folder`` by ``protocol``, by (scheme, CR): their line is whole, their files are
    there with the hashes the line names. A later line for the same stage replaces an earlier one."""
    rows: dict[tuple[str, float], dict] = {}
    log = folder / STAGES_LOG
    lines = log.read_text(encoding="utf-8").splitlines() if log.is_file() else []
    for line in lines:
        try:
            row = json.loads(line)
            key = (str(row["scheme"]), float(row["cr"]))
            named = row["files"]
        except (ValueError, KeyError, TypeError):  # a line cut short by an interruption
            continue
        if row.get("protocol") != protocol.record():
            continue
        if all(isinstance(named.get(b), dict) and (folder / str(named[b].get("file"))).is_file()
               and named[b]["file"] == stage_file(b, *key)
               and sha256(folder / named[b]["file"]) == named[b].get("sha256") for b in BRANCHES):
            rows[key] = row
    return rows


def restore_into_work(folder: Path, work: Path, scheme: str, cr: float) -> None:
    """Put a staged stage's files where a build keeps its finished stages (``work/<scheme>/cr<k>/``) if they
    are not there: the next stage of a gradual ladder is cut from them (a new machine, a lost work folder)."""
    out = Path(work) / scheme / f"cr{float(cr):g}"
    for branch in BRANCHES:
        dst = out / stage_file(branch, scheme, cr)
        if not dst.is_file():
            out.mkdir(parents=True, exist_ok=True)
            part = dst.with_name(dst.name + ".part")
            shutil.copyfile(folder / stage_file(branch, scheme, cr), part)
            os.replace(part, dst)


class StageBusy(RuntimeError):
    """Another job is building this stage in the same work folder."""


@contextmanager
def building(work: Path, scheme: str, cr: float) -> Iterator[None]:
    """Hold a stage of ``work`` for this job (an advisory lock, released when the job ends, even by a kill):
    two jobs training one stage would write the same checkpoints. :class:`StageBusy` when another holds it."""
    import fcntl

    folder = Path(work) / scheme
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"cr{float(cr):g}.lock"
    try:  # the same lock file rule as output folders: no links, no FIFOs
        lock_file = open_lock(path)
    except OSError as e:
        raise StageBusy(f"cannot use {path} as this stage's lock ({e.strerror}): remove it if it is a link, "
                        "folder or other special file") from None
    with lock_file as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StageBusy(f"{scheme} CR{float(cr):g} is being built by another job in {work} ({path}): "
                            f"run one job per ladder (--shard K/N)") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
