"""Issue 35, item 5: docs/layout.md names every module of the project, and only modules that exist.

    python -m pytest -q tests/test_layout.py
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("audioclf", "benchmarks", "serving")


NAME = re.compile(r"(?<![\w/.])(\w+\.py)(?=,| {2,}|$)")  # an entry: a name before a comma or a column gap


def _sections() -> dict[str, set[str]]:
    """The modules layout.md's block lists, by folder: '' for the repository root (the unindented lines), else the
    folder whose unindented line the indented lines follow. A name in the prose ("optimize.py's search space")
    is not an entry."""
    block = (REPO / "docs" / "layout.md").read_text().split("```")[1]
    sections: dict[str, set[str]] = {"": set(), **{folder: set() for folder in FOLDERS}}
    current = ""
    for line in block.splitlines():
        if not line.startswith(" "):
            head = line.split()[0].rstrip(",") if line.strip() else ""
            current = head.rstrip("/") if head.rstrip("/") in FOLDERS else ""
            if current == "":
                sections[""].update(NAME.findall(line))
        elif current:
            sections[current].update(NAME.findall(line))
    return sections


def _modules(folder: str) -> set[str]:
    path = REPO / folder if folder else REPO
    return {p.name for p in path.glob("*.py") if p.name != "__init__.py"}


def test_layout_names_every_module_and_only_existing_ones():
    sections = _sections()
    wrong = {}
    for folder in ("", *FOLDERS):
        missing, extra = _modules(folder) - sections[folder], sections[folder] - _modules(folder)
        if missing or extra:
            wrong[folder or "(root)"] = {"not in layout.md": sorted(missing), "no such file": sorted(extra)}
    assert wrong == {}
