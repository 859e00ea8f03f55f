"""The README stays a short user guide: at most 200 lines, no prose line over 120 characters, and every local
file or folder it links to exists."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_the_readme_is_short():
    assert len(README.splitlines()) <= 200


def test_no_prose_line_over_120_characters():
    in_code = False
    long = []
    for line in README.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if not in_code and not line.startswith("|") and len(line) > 120:
            long.append(line)
    assert long == []


def test_every_local_link_exists():
    targets = re.findall(r"\]\(([^)#]+)\)", README)
    missing = [t for t in targets if not t.startswith("http") and not (REPO / t).exists()]
    assert targets and missing == []


def test_docs_links_exist():
    missing = []
    for page in (REPO / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if not target.startswith("http") and not (page.parent / target).exists():
                missing.append(f"{page.name}: {target}")
    assert missing == []
