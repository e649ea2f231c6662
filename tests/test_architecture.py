"""The rooms of annex/ and the imports allowed between them (docs/architecture.md), checked: a module may
import only from its own room and the rooms below it; no module is over 400 lines; the Lambda code
imports nothing of annex (it is inlined into templates); nothing in the product imports the stand-in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ANNEX = Path(__file__).resolve().parent.parent / "annex"
FOUNDATION = {"names", "interface", "errors", "text", "progress"}
# room -> the rooms it may import from (besides itself and the foundation)
ALLOWED = {
    "config": set(),
    "policies": {"config"},
    "fleet": {"config", "policies"},
    "template": {"config", "policies", "fleet"},
    "money": {"config"},
    "pool": {"config"},
    "aws": {"config"},
    "lifecycle": {"aws", "config", "money", "pool", "template", "policies", "fleet"},
    "admin": {"lifecycle", "aws", "config", "money", "pool", "template", "policies", "fleet"},
    "cli": {"admin", "lifecycle", "aws", "config", "money", "pool", "template", "policies", "fleet"},
    "standin": {"aws"},
    "functions": set(),
}
MOST_LINES = 400


def room_of(path: Path) -> str:
    parts = path.relative_to(ANNEX).with_suffix("").parts
    return parts[0] if len(parts) > 1 else parts[0] if parts[0] not in ("__init__", "__main__") else "top"


def imported_rooms(path: Path) -> set[str]:
    """The annex rooms a module imports, absolute (annex.x) or relative (..x, .x)."""
    tree = ast.parse(path.read_text())
    here = path.relative_to(ANNEX).parent.parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[: len(here) - (node.level - 1)]) if node.level > 1 else list(here)
                target = base + (node.module.split(".") if node.module else [])
                names = target or [alias.name for alias in node.names]
                if not target:  # `from .. import x`: x is a room (or a foundation module)
                    found |= {alias.name for alias in node.names}
                else:
                    found.add(names[0])
            elif node.module and node.module.split(".")[0] == "annex":
                parts = node.module.split(".")
                found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("annex.") and "." in a.name}
    return found


MODULES = sorted(p for p in ANNEX.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ANNEX)) for p in MODULES])
def test_imports_go_down_only(path):
    room = room_of(path)
    rooms = imported_rooms(path) - {room} - FOUNDATION - {"__version__"}
    if room in FOUNDATION or room == "top":
        allowed = {"cli"} if room == "top" else set()  # __main__ runs the CLI
    else:
        allowed = ALLOWED[room]
    assert rooms <= allowed, f"{path.relative_to(ANNEX)} ({room}) imports {sorted(rooms - allowed)}"


def test_the_foundation_imports_nothing_above_it():
    for name in FOUNDATION:
        assert imported_rooms(ANNEX / f"{name}.py") <= FOUNDATION, name


def test_the_lambda_code_imports_nothing_of_annex():
    for path in (ANNEX / "functions").glob("*.py"):
        assert imported_rooms(path) == set(), path.name


def test_nothing_in_the_product_imports_the_stand_in():
    for path in MODULES:
        if room_of(path) != "standin":
            assert "standin" not in imported_rooms(path), path


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ANNEX)) for p in MODULES])
def test_no_module_is_over_400_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MOST_LINES, f"{path.relative_to(ANNEX)} has {lines} lines"


def test_every_room_is_described_in_the_architecture_document():
    text = (ANNEX.parent / "docs" / "architecture.md").read_text()
    for room in ALLOWED:
        assert f"`{room}/`" in text, room
