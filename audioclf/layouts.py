"""The dataset layouts this project reads, and where a folder's layout and folds are found.

Pure pathlib, no third-party import: the pipeline controller uses it to know a source's folds before any
step runs, and runs on a services agent with nothing installed but clearml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

URBANSOUND8K_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
URBANSOUND8K_CSV = Path("metadata") / "UrbanSound8K.csv"
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
ESC50_CSV = Path("meta") / "esc50.csv"
_SEARCH_DEPTH = 2  # a layout root may sit this many folders below the given folder (UrbanSound8K/, ESC-50-master/)


class SourceError(UserError):
    pass


@dataclass(frozen=True)
class Layout:
    """Where a source keeps its table and audio, and what the table holds."""

    name: str
    csv: Path  # relative to the dataset root
    columns: tuple[str, ...]
    audio_dir: str
    meta_dir: str
    folds: range
    class_id: str  # the source's class-number column

    def describe(self) -> str:
        return f"{self.csv.as_posix()} and {self.audio_dir}/"


URBANSOUND8K = Layout("urbansound8k", URBANSOUND8K_CSV, URBANSOUND8K_COLUMNS, "audio", "metadata", range(1, 11),
                      "classID")
ESC50 = Layout("esc50", ESC50_CSV, ESC50_COLUMNS, "audio", "meta", range(1, 6), "target")
LAYOUTS = {layout.name: layout for layout in (URBANSOUND8K, ESC50)}


def source_folds(source: str) -> range:
    """A source's predefined folds, known before anything is downloaded: ESC-50's 1..5, a local folder's own
    layout, otherwise UrbanSound8K's 1..10 (an archive or URL is assumed to hold UrbanSound8K)."""
    if source == "esc50":
        return ESC50.folds
    folder = Path(source).expanduser()
    if folder.is_dir():
        try:
            return detect_layout(folder)[1].folds
        except SourceError:
            pass  # get_data reports the layout problem
    return URBANSOUND8K.folds


def detect_layout(folder: Path, origin: Path | None = None) -> tuple[Path, Layout]:
    """The shallowest folder (``folder`` itself or up to two levels down) holding a known metadata CSV."""
    level = [Path(folder)]
    for _ in range(_SEARCH_DEPTH + 1):
        found = [(candidate, layout) for candidate in level for layout in LAYOUTS.values()
                 if (candidate / layout.csv).is_file()]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            listed = "; ".join(f"{(root / layout.csv)}" for root, layout in found)
            raise SourceError(f"{origin or folder} holds more than one dataset ({listed}); pass the folder of "
                              "the one you want")
        level = [child for parent in level for child in sorted(parent.iterdir())
                 if child.is_dir() and not child.name.startswith((".", "__MACOSX"))]
    expected = " or ".join(f"{layout.describe()} ({layout.name})" for layout in LAYOUTS.values())
    raise SourceError(f"{origin or folder} is in no known layout: expected {expected} at its top or up to "
                      f"{_SEARCH_DEPTH} folders down (for UrbanSound8K: {URBANSOUND8K_CSV} and audio/fold1..fold10/)")
