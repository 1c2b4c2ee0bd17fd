"""The package's shape: floors that import only from below, no private names across modules, small files."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "napari_prunuclei"
FLOORS = ["base", "io", "nuclei", "models", "pruning", "training", "runtime", "study", "cli", "gui"]
MAX_LINES = 450


def _modules():
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG)
        yield p, rel.parts[0] if len(rel.parts) > 1 else None


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("napari_prunuclei"):
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            yield "." * node.level + (node.module or ""), [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("napari_prunuclei"):
                    yield a.name, []


def test_the_top_level_holds_at_most_twelve_entries_and_the_floors():
    entries = sorted(p.name for p in PKG.iterdir() if p.name != "__pycache__" and not p.name.endswith(".egg-info"))
    assert len(entries) <= 12, entries
    assert set(FLOORS) <= set(entries)


@pytest.mark.parametrize("path,floor", list(_modules()), ids=lambda v: str(v) if isinstance(v, str) else None)
def test_each_module_imports_only_from_its_floor_or_below(path, floor):
    if floor is None:
        return  # the package's __init__: lazy public names
    here = FLOORS.index(floor)
    for module, _ in _imports(path):
        assert not module.startswith("."), f"{path.name}: relative import {module}"
        parts = module.split(".")
        if len(parts) > 1:
            assert parts[1] in FLOORS, f"{path.relative_to(PKG)} imports {module}, outside the floors"
            assert FLOORS.index(parts[1]) <= here, f"{path.relative_to(PKG)} ({floor}) imports {module} from above"


@pytest.mark.parametrize("path,floor", list(_modules()), ids=lambda v: str(v) if isinstance(v, str) else None)
def test_no_private_name_is_imported_from_another_module(path, floor):
    for module, names in _imports(path):
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        assert not private, f"{path.relative_to(PKG)} imports {private} from {module}"


@pytest.mark.parametrize("path,floor", list(_modules()), ids=lambda v: str(v) if isinstance(v, str) else None)
def test_no_source_file_is_over_450_lines(path, floor):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PKG)} has {n} lines"
