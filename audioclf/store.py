"""Datasets: one interface, two backends.

``LocalStore`` keeps versioned datasets in a folder when there is no ClearML
server; ``ClearMLStore`` (``clearml_store.py``) wraps ClearML Datasets. Both
give the same things to the stages:

- ids: opaque strings (``local-<hex>`` here, the dataset task id online);
- lineage: a child names its parents and holds only the files it adds; files
  with the same path and content as a parent's are inherited, not stored again;
- a finalized dataset is read-only.

Local layout::

    <root>/<dataset id>/dataset.json      # name, project, tags, parents, file entries
    <root>/<dataset id>/files/<relpath>   # only the files this version added

A draft is built in ``<root>/.draft-<id>`` and renamed into place by
``finalize``, so an interrupted run never leaves a half dataset under a real id.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import pandas as pd

DATASET_FILE = "dataset.json"


class DatasetNotFound(LookupError):
    pass


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FileEntry:
    sha256: str
    size: int
    dataset_id: str  # the version that stores the bytes


@dataclass
class DatasetInfo:
    id: str
    name: str
    project: str
    tags: list[str]
    parent_ids: list[str]
    created: float
    files: dict[str, FileEntry] = field(default_factory=dict)
    description: str = ""

    def to_json(self) -> dict:
        data = dict(self.__dict__)
        data["files"] = {k: v.__dict__ for k, v in sorted(self.files.items())}
        return data

    @classmethod
    def from_json(cls, data: dict) -> DatasetInfo:
        data = dict(data)
        data["files"] = {k: FileEntry(**v) for k, v in data["files"].items()}
        return cls(**data)


class LocalDataset:
    """A finalized dataset in a LocalStore."""

    def __init__(self, store: LocalStore, info: DatasetInfo):
        self.store = store
        self.info = info

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def parent_ids(self) -> list[str]:
        return list(self.info.parent_ids)

    def list_files(self, pattern: str | None = None, added_only: bool = False) -> list[str]:
        return sorted(
            rel
            for rel, entry in self.info.files.items()
            if (pattern is None or fnmatch(rel, pattern)) and (not added_only or entry.dataset_id == self.id)
        )

    def path(self, relpath: str) -> Path:
        """The local path of one file, wherever in the lineage its bytes live."""
        try:
            entry = self.info.files[relpath]
        except KeyError:
            raise FileNotFoundError(f"dataset {self.id} has no file {relpath!r}") from None
        return self.store.root / entry.dataset_id / "files" / relpath

    def read_table(self, relpath: str) -> pd.DataFrame:
        return pd.read_csv(self.path(relpath))

    def read_json(self, relpath: str) -> dict:
        return json.loads(self.path(relpath).read_text())


class LocalDraft:
    """A dataset being built. Files are staged in the draft folder until finalize."""

    def __init__(self, store: LocalStore, info: DatasetInfo, inherited: dict[str, FileEntry]):
        self.store = store
        self.info = info
        self.folder = store.root / f".draft-{info.id}"
        (self.folder / "files").mkdir(parents=True)
        self._inherited = inherited

    @property
    def id(self) -> str:
        return self.info.id

    def add_files(self, source: Path, dataset_path: str = "", move: bool = False) -> int:
        """Add every file under ``source`` as ``<dataset_path>/<relative path>``; returns how many were new.

        Files whose path and sha256 match an inherited entry stay with the parent.
        ``move=True`` moves the bytes (for folders this program staged itself);
        otherwise they are copied and the source is left untouched.
        """
        if not Path(source).is_dir():
            raise NotADirectoryError(f"add_files takes a folder; {source} is not one")
        added = 0
        for src in sorted(p for p in Path(source).rglob("*") if p.is_file()):
            rel = (Path(dataset_path) / src.relative_to(source)).as_posix()
            digest = sha256_of(src)
            inherited = self._inherited.get(rel)
            if inherited is not None and inherited.sha256 == digest:
                self.info.files[rel] = inherited
                continue
            dst = self.folder / "files" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if move:
                shutil.move(str(src), dst)
            else:
                shutil.copy2(src, dst)
            self.info.files[rel] = FileEntry(sha256=digest, size=dst.stat().st_size, dataset_id=self.id)
            added += 1
        return added

    def add_table(self, relpath: str, table: pd.DataFrame) -> None:
        self.add_bytes(relpath, table.to_csv(index=False).encode())

    def add_json(self, relpath: str, data: dict) -> None:
        self.add_bytes(relpath, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def add_bytes(self, relpath: str, payload: bytes) -> None:
        dst = self.folder / "files" / relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(payload)
        self.info.files[relpath] = FileEntry(
            sha256=hashlib.sha256(payload).hexdigest(), size=len(payload), dataset_id=self.id
        )

    def finalize(self) -> LocalDataset:
        (self.folder / DATASET_FILE).write_text(json.dumps(self.info.to_json(), indent=1) + "\n")
        final = self.store.root / self.id
        os.replace(self.folder, final)  # atomic on one file system
        return LocalDataset(self.store, self.info)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class LocalStore:
    """Versioned datasets in one folder, for runs without a ClearML server."""

    kind = "local"

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def create(
        self,
        name: str,
        project: str,
        tags: list[str] | None = None,
        parent_ids: list[str] | None = None,
        description: str = "",
    ) -> LocalDraft:
        parents = [self.get(pid) for pid in parent_ids or []]
        inherited: dict[str, FileEntry] = {}
        for parent in parents:  # later parents override earlier ones, as in ClearML
            inherited.update(parent.info.files)
        info = DatasetInfo(
            id=f"local-{uuid.uuid4().hex}",
            name=name,
            project=project,
            tags=list(tags or []),
            parent_ids=[p.id for p in parents],
            created=time.time(),
            files=dict(inherited),
            description=description,
        )
        return LocalDraft(self, info, inherited)

    def get(self, dataset_id: str, alias: str | None = None, needs: tuple[str, ...] | None = None) -> LocalDataset:
        """A finalized dataset by id. ``alias`` and ``needs`` matter only to ClearMLStore (all files are local here)."""
        meta = self.root / dataset_id / DATASET_FILE
        if not dataset_id or "/" in dataset_id or not meta.is_file():
            known = ", ".join(self.list_ids()[-5:]) or "none"
            raise DatasetNotFound(
                f"no dataset {dataset_id!r} in the local store {self.root} (latest: {known}). "
                "Pass the id that the previous stage printed, and the same --store folder."
            )
        return LocalDataset(self, DatasetInfo.from_json(json.loads(meta.read_text())))

    def list_ids(self) -> list[str]:
        """Finalized dataset ids, oldest first."""
        found = [p for p in self.root.glob("local-*") if (p / DATASET_FILE).is_file()]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime)]
