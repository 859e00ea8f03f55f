"""Where raw audio comes from.

A source resolves to a folder in UrbanSound8K layout (``audio/fold*/`` and
``metadata/UrbanSound8K.csv``). ``synthetic`` generates one (the built-in data);
a path uses a copy already on disk, which is only ever read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .metadata import URBANSOUND8K_CSV

BUILTIN_SOURCES = ("synthetic",)
# Sources that need a download; they arrive with the downloader (issue: every real source).
DOWNLOAD_SOURCES = ("urbansound8k", "clearml-subset", "esc50")


class SourceError(ValueError):
    pass


@dataclass
class SourceFolder:
    root: Path
    owned: bool  # True: this program staged the folder and may move files out of it
    description: str


def resolve_source(source: str, staging: Path, num_clips: int, seed: int, workers: int) -> SourceFolder:
    if source == "synthetic":
        from .synthetic import generate_dataset

        root = staging / f"synthetic-n{num_clips}-seed{seed}"
        generate_dataset(root, num_clips=num_clips, seed=seed, workers=workers)
        return SourceFolder(root, owned=True, description=f"synthetic UrbanSound8K layout, {num_clips} clips, seed {seed}")
    if source in DOWNLOAD_SOURCES:
        raise SourceError(
            f"--source {source} needs a download, which this version does not do yet. Download and unpack it "
            "yourself, then pass the folder: --source /path/to/UrbanSound8K"
        )
    root = Path(source).expanduser()
    if not root.exists():
        raise SourceError(
            f"--source {source!r} is neither a known source ({', '.join(BUILTIN_SOURCES + DOWNLOAD_SOURCES)}) "
            "nor an existing folder"
        )
    if not (root / URBANSOUND8K_CSV).is_file():
        raise SourceError(
            f"{root} is not in UrbanSound8K layout: expected {URBANSOUND8K_CSV} and audio/fold1..fold10/ inside it"
        )
    return SourceFolder(root.resolve(), owned=False, description=f"local copy at {root.resolve()}")
