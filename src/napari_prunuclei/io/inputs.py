"""The images a command is given: files, folders of images, and ``@LIST`` files naming more of them."""

from __future__ import annotations

from pathlib import Path

from napari_prunuclei.base.constants import IMAGE_EXTENSIONS
from napari_prunuclei.io.outfolder import is_output_file

__all__ = ["MAX_LIST_DEPTH", "expand_inputs", "read_list"]

MAX_LIST_DEPTH = 4


def read_list(path: Path) -> list[str]:
    """The entries of a list file: one path per line; blank lines and lines starting with ``#`` skipped,
    surrounding spaces stripped. A line is always a path (never an option), relative to the current
    folder as on the command line."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not a path
    except FileNotFoundError:
        raise ValueError(f"list file not found: {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text list of image paths (one per line)") from None
    except OSError as e:
        raise ValueError(f"cannot read list file {path}: {e.strerror or e}") from None
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]


def expand_inputs(items: list[str | Path], _seen: tuple[Path, ...] = ()) -> list[Path]:
    """Image paths from command-line items: a folder gives its images (sorted; the outputs of an earlier run
    into the same folder left out), ``@FILE`` the entries of a list file (lists may name lists,
    :data:`MAX_LIST_DEPTH` deep, never one that includes itself), anything else is taken as an image path."""
    from napari_prunuclei.io.slides import OPENSLIDE_SUFFIXES

    exts = set(IMAGE_EXTENSIONS) | set(OPENSLIDE_SUFFIXES)
    paths: list[Path] = []
    for item in items:
        s = str(item)
        if s.startswith("@") and len(s) > 1:
            lst = Path(s[1:])
            key = lst.resolve()
            if key in _seen:
                raise ValueError(f"list file {lst} includes itself (through {' -> '.join(map(str, _seen))})")
            if len(_seen) >= MAX_LIST_DEPTH:
                raise ValueError(f"list file {lst}: lists nested more than {MAX_LIST_DEPTH} deep")
            paths += expand_inputs(read_list(lst), (*_seen, key))
            continue
        p = Path(s)
        if p.is_dir():
            # every entry named as an image, a pipe, a link to nothing or a folder too: each then fails by name
            # with its reason (they were skipped without a word)
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in exts and not q.name.startswith(".")
                           and not is_output_file(q))
            if not found:
                raise ValueError(f"no image files ({', '.join(sorted(exts))}) in folder {p}")
            paths += found
        else:
            paths.append(p)
    return paths
