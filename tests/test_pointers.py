"""Issue 35, item 2: no reference leads nowhere, in the code, the scripts' --help and the docs.

A pointer is a path (``docs/serving.md``, ``benchmarks/results/x.csv``), a named section (``README: "Serving"``,
``(docs/clearml.md, "Stopping a run")``) or a CHANGELOG entry. Each must resolve: the file exists, the heading is
a heading of that file. "see the README" with no section is refused in code and help (the README is 200 lines of
other things). Every paragraph of the docs ends as a sentence does, and every figure the README states is a row
of its figures table with the command that measures it.

    python -m pytest -q tests/test_pointers.py
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("get_data", "preprocessing", "training", "pipeline", "optimize", "predict", "cross_validation",
           "push_offline", "serve")
# Pages that another issue is writing: a pointer to one is accepted while it is missing, and this entry must go
# once it exists (test_awaited_pages_are_still_missing), so the exception cannot outlive its reason.
AWAITED: dict[str, str] = {}


def _docs() -> list[Path]:
    return [REPO / "README.md", REPO / "CHANGELOG.md", REPO / "benchmarks" / "README.md",
            *sorted((REPO / "docs").glob("*.md"))]


def _code() -> list[Path]:
    files = [*REPO.glob("*.py"), REPO / "Makefile"]
    for folder in ("audioclf", "serving", "benchmarks"):
        files += (REPO / folder).rglob("*.py")
    return sorted(files)


def _help_texts() -> dict[str, str]:
    """Each script's --help, unwrapped (argparse breaks lines at hyphens: 'docs/choosing-' 'defaults.md')."""
    texts = {}
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "10000"  # argparse's width (shutil.get_terminal_size)
    try:
        for name in SCRIPTS:
            parser: argparse.ArgumentParser = importlib.import_module(name).build_parser()
            texts[f"{name}.py --help"] = parser.format_help()
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return texts


def _sources() -> dict[str, str]:
    texts = {str(path.relative_to(REPO)): path.read_text(encoding="utf-8") for path in [*_docs(), *_code()]}
    return {**texts, **_help_texts()}


def _headings(path: Path) -> list[str]:
    in_code, found = False, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#{1,6} ", line):
            found.append(line.lstrip("#").strip().lower())
    return found


# --- paths ------------------------------------------------------------------------------------------------------

PATH = re.compile(r"(?<![\w/.<-])((?:docs|benchmarks|serving|audioclf|tests)/[\w./*-]*[\w*/])")
TOP_FILE = re.compile(r"(?<![\w/.<-])((?:README|CHANGELOG|LICENSE|NOTICE)(?:\.md)?|requirements[\w-]*\.txt)\b")


def _resolves(target: str) -> bool:
    target = target.rstrip("/.")
    if "*" in target:
        return any(REPO.glob(target))
    return (REPO / target).exists() or target in AWAITED


def test_every_path_named_in_code_help_and_docs_exists():
    missing = []
    for where, text in _sources().items():
        written = set(re.findall(r"--(?:results|output) (\S+)", text))  # a command's output: it writes them
        for target in PATH.findall(text) + TOP_FILE.findall(text):
            if target in written and (REPO / target).parent.is_dir():
                continue
            if target in ("README", "CHANGELOG", "LICENSE", "NOTICE"):
                target += "" if (REPO / target).exists() else ".md"
            if not _resolves(target):
                missing.append(f"{where}: {target}")
    assert missing == [], "\n".join(missing)


def test_awaited_pages_are_still_missing():
    assert [page for page in AWAITED if (REPO / page).exists()] == [], "drop it from AWAITED: it exists now"


# --- named sections -----------------------------------------------------------------------------------------------

SECTION = re.compile(r"\b(README|CHANGELOG|docs/[\w-]+\.md|benchmarks/README\.md)(?:\.md)?(?:'s)?(?: section)?"
                     r"[,:]?\s+[\"'“]([^\"'”\n]{2,80})[\"'”]")


def test_every_named_section_is_a_heading_of_that_file():
    wrong = []
    for where, text in _sources().items():
        for page, section in SECTION.findall(text):
            path = REPO / (page + ".md" if page in ("README", "CHANGELOG") else page)
            if not any(h == section.lower() or h.startswith(section.lower()) for h in _headings(path)):
                wrong.append(f"{where}: {page} {section!r} (headings: {_headings(path)})")
    assert wrong == [], "\n".join(wrong)


VAGUE = re.compile(r"\b(README|CHANGELOG)\b(?!\.md|[\"'”]|(?:'s)?(?: section)?[,:]?\s+[\"'“])")
SEE_VAGUE = re.compile(r"\bsee (?:the )?(README|CHANGELOG)\b(?!\.md)(?! ?[,:]? ?[\"'“])", re.IGNORECASE)


def test_code_and_help_name_the_section_they_point_to():
    """In code and --help a bare "README" sends a user to 200 lines; in the docs "see the README/CHANGELOG" too."""
    vague = []
    for where, text in _sources().items():
        pattern = SEE_VAGUE if where.endswith(".md") else VAGUE
        for match in pattern.finditer(text):
            start = text.rfind("\n", 0, match.start()) + 1
            line = text[start:text.find("\n", match.end())]
            if "/README" in line[max(0, match.start() - start - 12):match.start() - start + 1]:
                continue  # benchmarks/README.md: a path, checked above
            vague.append(f"{where}: ...{text[max(start, match.start() - 80):match.end() + 40].strip()}")
    assert vague == [], "\n".join(vague)


# --- sentences and figures ------------------------------------------------------------------------------------------

def _paragraphs(text: str) -> list[list[str]]:
    """The prose paragraphs of a Markdown page: code blocks, headings, tables and list items left out (an item
    may end with ';' or ',')."""
    paragraphs, current, in_code, in_item = [], [], False, False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            line = ""
        item = bool(re.match(r"\s*([-*] |\d+\. )", line))
        if in_code or not line.strip() or item or re.match(r"\s*(#|\||<)", line):
            if current and not in_item:
                paragraphs.append(current)
            current, in_item = [], item or (in_item and line.strip() != "" and not in_code)
            continue
        if in_item and line.startswith(" "):
            continue  # the item's next line
        in_item = False
        current.append(line)
    return paragraphs + ([current] if current else [])


def test_every_paragraph_of_the_docs_ends_as_a_sentence():
    cut = []
    for path in _docs():
        for paragraph in _paragraphs(path.read_text(encoding="utf-8")):
            if not re.search(r"[.:!?)`*]$", paragraph[-1].rstrip()):
                cut.append(f"{path.relative_to(REPO)}: ...{paragraph[-1][-60:]}")
    assert cut == [], "\n".join(cut)


FIGURE = re.compile(r"(?<![=\w.])0\.\d{3}\b|\b\d+(?:-\d+)? (?:min|s)\b|\b\d+(?:\.\d+)?x (?:faster|slower)\b")


def test_every_figure_in_the_readme_comes_with_its_command():
    """A figure is stated only in the README's figures table, each row ending in the command that measures it."""
    in_code, alone = False, []
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not FIGURE.search(line):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not (line.startswith("|") and len(cells) >= 3 and re.fullmatch(r"`[^`]+`.*|the same.*", cells[-1])):
            alone.append(line)
    assert alone == [], "\n".join(alone)
