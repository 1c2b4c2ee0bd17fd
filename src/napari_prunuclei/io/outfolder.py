"""An output folder of ``prunuclei segment``: what it holds, which model made it, what a run may remove.

A folder holds one model's results. ``prunuclei_run.json`` (the manifest) names the model and settings;
each image's outputs are ``<stem>_labels.tif`` (and, for images run whole, ``<stem>_probability.tif``
and ``<stem>_distance.tif``), then ``<stem>_info.json`` last, which lists them. An image is finished only
when its info JSON names this folder's model and every output it lists exists.

Every scratch name a run makes in the folder starts with ``.prunuclei-`` (a temporary file of
:func:`~napari_prunuclei.io.atomic.atomic_write`, a scratch label store, the finished tiles of a cluster run),
so the clean-up after a killed run matches only names this package makes: a user's own files (hidden
or not) are never touched.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from napari_prunuclei.io.atomic import TEMP_PREFIX, atomic_write, bounded_name, open_lock

__all__ = ["MANIFEST", "LOCK", "SCRATCH_PREFIX", "OUTPUT_KINDS", "model_record", "info_path", "tiles_path",
           "output_path", "labels_scratch", "check_name", "is_finished", "claim", "remove_leftovers",
           "remove_results", "is_output_file", "source_record", "outputs_record", "check_outputs_free",
           "release_new_folder", "pending_path", "record_pending", "describe_differences", "printable"]

MANIFEST = "prunuclei_run.json"
LOCK = ".prunuclei.lock"
SCRATCH_PREFIX = ".prunuclei-"
OUTPUT_KINDS = ("labels", "probability", "distance", "tissue")
RUNTIME_KEYS = ("device", "post_workers", "batch", "compile")  # how a run ran, not which results it makes
NAME_MAX = 255


def model_record(request, results: dict | None = None) -> dict:
    """What makes two runs' results the same: the request without its runtime settings, and ``results``:
    what the request resolved to (the weight files' sha256, the thresholds, the watershed's rule:
    :func:`napari_prunuclei.runtime.pairs.results_record`), so that results of the same name made by other
    weights (a rebuilt zoo) are not taken for this run's."""
    record = {k: v for k, v in request.as_dict().items() if k not in RUNTIME_KEYS}
    return {**record, "results": results} if results is not None else record


def _info_record(info: dict) -> dict:
    """The model record an info JSON was written by (older versions: its request alone)."""
    model = info.get("model")
    return model if isinstance(model, dict) else {k: v for k, v in info["request"].items() if k not in RUNTIME_KEYS}


def output_path(path: Path, out_dir: Path, kind: str) -> Path:
    """Where the ``kind`` output (labels, probability, distance) of image ``path`` goes."""
    return Path(out_dir) / f"{Path(path).stem}_{kind}.tif"


def info_path(path: Path, out_dir: Path) -> Path:
    """The info JSON of image ``path``: written last, its presence (and content) marks the image finished."""
    return Path(out_dir) / f"{Path(path).stem}_info.json"


def _key(stem: str) -> str:
    return bounded_name(stem)


def _recorded(info: dict, out_dir: Path, stem: str) -> set[str]:
    """The outputs ``info`` lists that are still as its run wrote them: an output name of ``stem`` with the
    size recorded (a whole number), unchanged since. A file edited since, or listed without a size, is not
    the run's any more."""
    listed, names = info.get("outputs"), {f"{stem}_{k}.tif" for k in OUTPUT_KINDS}
    ours = set()
    for name, size in (listed.items() if isinstance(listed, dict) else ()):
        q = Path(out_dir) / str(name)
        try:
            if (name in names and isinstance(size, int)
                    and not isinstance(size, bool) and q.is_file() and q.stat().st_size == size):
                ours.add(name)
        except OSError:
            continue
    return ours


def tiles_path(path: Path, out_dir: Path) -> Path:
    """The folder holding the finished tiles of an image spread over a cluster (kept for resume)."""
    return Path(out_dir) / f"{SCRATCH_PREFIX}{_key(Path(path).stem)}.tiles"


def labels_scratch(path: Path, out_dir: Path) -> Path:
    """A new, uniquely named scratch folder for the label store of one tiled run of image ``path``."""
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{_key(Path(path).stem)}.labels.", suffix=".zarr",
                                 dir=out_dir))


def check_name(path: Path) -> None:
    """Refuse an image whose outputs' names would exceed the file system's limit (255 bytes)."""
    longest = f"{Path(path).stem}_probability.tif"
    if len(longest.encode()) > NAME_MAX:
        raise ValueError(f"{path}: the name is too long for its outputs ({len(longest.encode())} bytes in "
                         f"{longest[:40]}..., the limit is {NAME_MAX}): rename or link it with a shorter name")


def _read_info(path: Path) -> dict | None:
    if not path.is_file():  # a FIFO, a device, a folder: never opened (a FIFO would block)
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("request"), dict) else None


def source_record(path: Path) -> dict:
    """Which file an image's results were made from: its absolute path, size and modification time."""
    st = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def outputs_record(out_dir: Path, written: list[Path]) -> dict:
    """The outputs of an image with their sizes, as its info JSON lists them."""
    return {p.name: p.stat().st_size for p in written}


def is_finished(path: Path, out_dir: Path, model: dict) -> bool:
    """Whether image ``path`` has results of ``model`` in ``out_dir``: its info JSON names this model and this
    very file (path, size, time), and every output it lists exists with the size it had."""
    info = _read_info(info_path(path, out_dir))
    if info is None or _info_record(info) != model:
        return False
    try:
        if info.get("source") != source_record(path):
            return False
    except OSError:
        return False
    outputs = info.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return False
    for name, size in outputs.items():
        q = Path(out_dir) / name
        if "/" in name or not q.is_file() or q.stat().st_size != size:
            return False
    return True


def pending_path(path: Path, out_dir: Path) -> Path:
    """The record of the outputs a run of image ``path`` has written so far (removed once its info is written):
    a run killed before its info JSON leaves it, so the next run knows those files are its own."""
    return Path(out_dir) / f"{SCRATCH_PREFIX}{_key(Path(path).stem)}.pending.json"


def record_pending(path: Path, out_dir: Path, written: list[Path], about_to_write: Path | None = None) -> None:
    """Record the outputs written so far, each with its size and modification time (a file changed since is
    no longer counted as this package's), and the one ``about_to_write`` (no stamp yet: a kill between its
    rename into place and the next record leaves it named, and newer than the record)."""
    done: dict = {q.name: [q.stat().st_size, q.stat().st_mtime_ns] for q in written if q.is_file()}
    if about_to_write is not None:
        done[about_to_write.name] = None
    atomic_write(pending_path(path, out_dir), lambda t: t.write_text(json.dumps(done)))


def _pending(path: Path, out_dir: Path) -> set[str]:
    """Outputs a killed run of image ``path`` wrote and recorded, unchanged since."""
    return _pending_in(pending_path(path, out_dir), out_dir)


def _pending_in(record: Path, out_dir: Path) -> set[str]:
    """Outputs listed in the pending ``record`` of a killed run, unchanged since."""
    if not record.is_file():
        return set()
    try:
        done = json.loads(record.read_text())
        recorded_ns = record.stat().st_mtime_ns
    except (OSError, ValueError, RecursionError):
        return set()
    ours = set()
    key = record.name[len(SCRATCH_PREFIX):-len(".pending.json")]
    for name, stamp in (done.items() if isinstance(done, dict) else ()):
        q = Path(out_dir) / str(name)
        try:  # only an output name of this record's image: a hand-made record names no other file
            if "/" in str(name) or not q.is_file() or not any(
                    str(name).endswith(f"_{k}.tif") and _key(str(name)[: -len(f"_{k}.tif")]) == key
                    for k in OUTPUT_KINDS):
                continue
            st = q.stat()
            # a stamped file unchanged since; an announced one (no stamp) written after the record was
            if [st.st_size, st.st_mtime_ns] == stamp or (stamp is None and st.st_mtime_ns >= recorded_ns):
                ours.add(q.name)
        except OSError:
            continue
    return ours


def check_outputs_free(path: Path, out_dir: Path) -> None:
    """Refuse to write image ``path``'s outputs over files that no run of this package made (ground truth named
    ``X_labels.tif``, another tool's results, a user's ``X_info.json``): a file there counts as ours only when
    ``X_info.json`` lists it, or when a killed run recorded writing it (:func:`record_pending`) and it is
    unchanged since. (``--overwrite`` names the images to redo: their outputs are replaced without this check.)"""
    ipath = info_path(path, out_dir)
    info = _read_info(ipath)
    if info is None and (ipath.exists() or ipath.is_symlink()):
        raise ValueError(f"{ipath} exists and is not the info file of a prunuclei run: move it away, choose another "
                         "output folder, or --overwrite to replace it; nothing was written")
    ours = _recorded(info, out_dir, Path(path).stem) if info is not None else set()
    ours |= _pending(path, out_dir)
    for kind in OUTPUT_KINDS:
        q = output_path(path, out_dir, kind)
        if q.name not in ours and (q.exists() or q.is_symlink()):
            raise ValueError(f"{q} exists and no prunuclei run made it (no {info_path(path, out_dir).name} lists "
                             "it): move it away, choose another output folder, or --overwrite to replace it; "
                             "nothing was written")


def release_new_folder(out: Path) -> None:
    """A folder this run made and finished nothing in: removed when it holds only the run's lock and manifest
    (tiles kept for a resume, or another run's results, keep it)."""
    try:
        names = {q.name for q in out.iterdir()}
    except OSError:
        return
    if names <= {LOCK, MANIFEST}:
        for n in names:
            (out / n).unlink(missing_ok=True)
        try:
            out.rmdir()
        except OSError:
            pass


def _describe(req: dict, other: dict) -> str:
    """A saved run's record ``req`` in words, and how it differs from this run's ``other``."""
    px = req.get("pixel_size")
    cr = req.get("cr")
    text = (f"{printable(req.get('scheme'))} CR{_number(cr)} "
            f"{'fine-tuned' if req.get('fine_tuned') else 'one-shot'}, "
            f"thresholds {printable(req.get('params') or 'own')}, "
            f"tiling {printable(req.get('tiling'))}, pixel size "
            f"{f'{_number(px)} µm' if isinstance(px, (int, float)) else 'from each file'}, tissue mask "
            f"{'on' if req.get('tissue_mask') else 'off'}")
    if not isinstance(req.get("results"), dict) and isinstance(other.get("results"), dict):
        return text + "; made by an earlier version that did not record its weight files"
    return text + "; differing from this run in " + describe_differences(req, other)


def _number(value) -> str:
    try:
        return f"{value:g}"
    except (TypeError, ValueError, OverflowError):  # not a number, or an integer too large for a float
        return printable(value, 40)


def printable(value, limit: int = 120) -> str:
    """``value`` for a message: control characters escaped, at most ``limit`` characters, and weight
    files shown by the first 12 hex digits of their sha256."""
    if isinstance(value, dict) and set(value) == {"semantic", "distance"}:
        text = "/".join(str(value[b])[:12] for b in ("semantic", "distance"))
    else:
        text = str(value)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_differences(old: dict, new: dict) -> str:
    """What differs between two records (a saved run's and this one's), key by key, for a message:
    ``key: A there, B now``; nested records (``results``) by their own keys."""
    parts = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and not {"semantic", "distance"} >= set(a) | set(b):
            parts.append(describe_differences(a, b))
        else:
            parts.append(f"{printable(k, 40)}: {printable(a)} there, {printable(b)} now")
    return "; ".join(parts) or "nothing shown"


@contextmanager
def claim(out: Path, model: dict, overwrite: bool, finished: Callable[[], bool] = lambda: True) -> Iterator[None]:
    """Hold ``out`` for this run: one run at a time per folder (a lock file), one model per folder.

    A folder holding another model's results is refused unless ``overwrite``; then those results are
    removed whole before this run writes (never mixed with the new ones). When the run ends having
    ``finished()`` nothing, still holding the lock: a folder this run made (its own ``mkdir``, never a
    folder another run made meanwhile) is removed if it holds only the lock and manifest, and a manifest
    it wrote into a folder without results is taken back (a run that failed on every image claims nothing)."""
    import fcntl

    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {out} is a file: choose a folder")
    made = False
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.mkdir()
        made = True  # this run's own mkdir: no other run can have made it
    except FileExistsError:
        if not out.is_dir():  # a dangling link, a loop
            raise ValueError(f"cannot make output folder {out}: the path exists and is not a folder") from None
    try:  # never through a link: the lock file is this package's, not whatever a link points at
        lock_file = open_lock(out / LOCK)
    except OSError as e:
        raise ValueError(f"cannot use {out / LOCK} as this folder's lock ({e.strerror}): remove it if it is a "
                         "link, folder or other special file, or choose another folder") from None
    with lock_file as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another prunuclei run is writing into {out}: wait for it or choose another "
                             "folder") from None
        manifest = out / MANIFEST
        have = _read_manifest(manifest)
        had_manifest = manifest.is_file()
        where = manifest
        foreign = have is not None and have != model
        infos = {q: _read_info(q) for q in sorted(out.glob("*_info.json"))}
        if not foreign:  # results of another model under this model's manifest, or of an older version
            for q, info in infos.items():
                if info is not None and _info_record(info) != model:
                    foreign, have, where = True, _info_record(info), q
                    break
        unreadable = [q for q, info in infos.items() if info is None]
        if had_manifest and have is None:
            unreadable.insert(0, manifest)
        if unreadable:  # whose results these are cannot be told: neither mixed with nor removed for this run's
            raise ValueError(f"{printable(unreadable[0], 300)} cannot be read as a prunuclei record, so whose results "
                             "this folder holds cannot be told: remove it (and the outputs it names, if they are a "
                             "run's) or choose another folder")
        if foreign and not overwrite:
            raise ValueError(f"{out} holds results of another model or settings ({printable(where.name)}: "
                             f"{_describe(have, model)}): choose another folder, or --overwrite to replace them "
                             "all")
        if foreign:
            remove_results(out)
        atomic_write(manifest, lambda t: t.write_text(json.dumps(model, indent=1)))
        try:
            yield
        finally:
            if not finished():  # still holding the lock: nothing here is another run's
                if made:
                    release_new_folder(out)
                elif not had_manifest and not any(out.glob("*_info.json")) and not any(
                        q.name.startswith(SCRATCH_PREFIX) for q in out.iterdir()):  # (tiles kept for a resume
                    manifest.unlink(missing_ok=True)  # keep the manifest that names their model)


def _read_manifest(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        have = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return have if isinstance(have, dict) else None


def remove_results(out: Path) -> None:
    """Remove every image's results from ``out`` (each named by its own info JSON), and every scratch
    name this package made there; nothing else."""
    for info_file in out.glob("*_info.json"):
        info = _read_info(info_file)
        if info is None:
            continue
        for name in _recorded(info, out, info_file.name[: -len("_info.json")]):  # a file edited since stays
            (out / name).unlink(missing_ok=True)
        info_file.unlink(missing_ok=True)
    for record in out.glob(f"{SCRATCH_PREFIX}*.pending.json"):  # what killed runs wrote before their info
        for name in _pending_in(record, out):
            (out / name).unlink(missing_ok=True)
    for q in out.iterdir():
        if q.name.startswith(SCRATCH_PREFIX):
            shutil.rmtree(q, ignore_errors=True) if q.is_dir() else q.unlink(missing_ok=True)


def remove_leftovers(out: Path, stems: set[str], keep_tiles: bool = True) -> None:
    """What a killed run left for these images: scratch label stores and temporary files (names this package
    makes, matched exactly); the finished tiles of an image spread over a cluster stay when ``keep_tiles``."""
    patterns = []
    for s in stems:
        k = re.escape(_key(s))
        patterns.append(rf"{re.escape(SCRATCH_PREFIX)}{k}\.labels\.[a-z0-9_]+\.zarr")
        if not keep_tiles:
            patterns.append(rf"{re.escape(SCRATCH_PREFIX)}{k}\.tiles")
        pending = f"{SCRATCH_PREFIX}{_key(s)}.pending.json"  # its record's temporary file (the record stays)
        for name in [f"{s}_{kind}.tif" for kind in OUTPUT_KINDS] + [f"{s}_info.json", pending]:
            patterns.append(rf"{re.escape(TEMP_PREFIX)}{re.escape(bounded_name(name))}\.[a-z0-9_]+(\.tif|\.json)")
    rx = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
    for q in out.iterdir():
        if rx is not None and rx.fullmatch(q.name):
            shutil.rmtree(q, ignore_errors=True) if q.is_dir() else q.unlink(missing_ok=True)


def is_output_file(path: Path) -> bool:
    """Whether ``path`` is an output of a run (``X_labels.tif`` etc. beside ``X_info.json``): a folder given
    as input that is also an output folder does not feed its own outputs back in."""
    for kind in OUTPUT_KINDS:
        suffix = f"_{kind}.tif"
        if path.name.endswith(suffix):
            return _read_info(path.with_name(path.name[: -len(suffix)] + "_info.json")) is not None
    return False
