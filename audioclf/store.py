"""Datasets: one interface, two backends.

``LocalStore`` keeps versioned datasets in a folder when there is no ClearML
server; ``ClearMLStore`` (``clearml_store.py``) wraps ClearML Datasets. Both
give the same things to the stages:

- ids: opaque strings (``local-<hex>`` here, the dataset task id online);
- lineage: a child names its parents and holds only the files it adds; files
  with the same path and content as a parent's are inherited, not stored again;
- a finalized dataset is read-only, and only finalized datasets are visible.

Local layout::

    <root>/<dataset id>/dataset.json      # name, project, tags, parents, file entries (sha256, size)
    <root>/<dataset id>/files/<relpath>   # only the files this version added

Integrity:

- A draft is built in ``<root>/.draft-<id>`` under a lock (``.draft-<id>.lock``,
  held by the building process); ``finalize`` checks that every listed file is
  there with its size (and its sha256 with ``verify``), writes ``dataset.json``
  through a temporary name, and renames the folder into place, so a dataset is
  either complete or absent. A draft whose lock is free was left by a run that
  died; opening the store removes it.
- ``get`` checks the size of every file a stage will read, always, and its
  sha256 with ``verify=True`` (``--verify`` on the stages, or
  ``AUDIOCLF_VERIFY=1``); a damaged ``dataset.json`` or file is a
  ``DatasetCorrupt`` error that names the file and how to recover.
"""

from __future__ import annotations

import errno
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

from . import atomic, locks
from .errors import UserError

DATASET_FILE = "dataset.json"
DRAFT_PREFIX = ".draft-"
VERIFY_ENV = "AUDIOCLF_VERIFY"  # "1": every get() also checks the sha256 of the files it returns


class DatasetNotFound(UserError):
    pass


class DatasetCorrupt(UserError):
    """A stored dataset or one of its files does not match what was registered."""


def verify_by_default() -> bool:
    return os.environ.get(VERIFY_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def recover_hint(dataset_id: str) -> str:
    return (f"the dataset {dataset_id} is damaged: rerun the stage that made it (get_data.py for a raw dataset, "
            "preprocessing.py for a features dataset) and use the id it prints")


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
    def name(self) -> str:
        return self.info.name

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

    def verify(self, patterns: tuple[str, ...] | None = None, sha256: bool = False) -> int:
        """Check that each file (matching ``patterns``) is there with its registered size, and its sha256
        when asked; returns how many were checked. Raises DatasetCorrupt naming the first bad file."""
        checked = 0
        for rel, entry in sorted(self.info.files.items()):
            if patterns and not any(fnmatch(rel, p) for p in patterns):
                continue
            path = self.path(rel)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise DatasetCorrupt(f"{path} is missing: {recover_hint(entry.dataset_id)}") from None
            if size != entry.size:
                raise DatasetCorrupt(f"{path} has {size} bytes, {entry.size} were registered: "
                                     f"{recover_hint(entry.dataset_id)}")
            if sha256 and sha256_of(path) != entry.sha256:
                raise DatasetCorrupt(f"{path} does not match its registered sha256: {recover_hint(entry.dataset_id)}")
            checked += 1
        return checked

    def read_table(self, relpath: str) -> pd.DataFrame:
        path = self.path(relpath)
        try:
            return pd.read_csv(path)
        except (ValueError, OSError, UnicodeDecodeError) as exc:  # ParserError, EmptyDataError are ValueErrors
            raise DatasetCorrupt(f"{path} cannot be read as a table ({exc}): {recover_hint(self.id)}") from exc

    def read_json(self, relpath: str) -> dict:
        path = self.path(relpath)
        try:
            data = json.loads(path.read_text())
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise DatasetCorrupt(f"{path} is not valid JSON ({exc}): {recover_hint(self.id)}") from exc
        if not isinstance(data, dict):
            raise DatasetCorrupt(f"{path} does not hold a JSON object: {recover_hint(self.id)}")
        return data


class LocalDraft:
    """A dataset being built. Files are staged in the draft folder until finalize."""

    def __init__(self, store: LocalStore, info: DatasetInfo, inherited: dict[str, FileEntry]):
        self.store = store
        self.info = info
        self.folder = store.root / f"{DRAFT_PREFIX}{info.id}"
        # The lock first, then the folder: a draft folder without a held lock is abandoned.
        self._lock = locks.hold(self.folder, f"the dataset draft {info.id}", wait=False)
        self._lock.__enter__()
        (self.folder / "files").mkdir(parents=True)
        self._inherited = inherited

    @property
    def id(self) -> str:
        return self.info.id

    def add_files(self, source: Path, dataset_path: str = "", files: list[str] | None = None,
                  link: bool = False) -> int:
        """Add files under ``source`` as ``<dataset_path>/<relative path>``; returns how many were new.

        ``files``: exactly these paths relative to ``source`` (default: every file under it but
        temporary ones). Files whose path and sha256 match an inherited entry stay with the parent.
        ``link=True`` hard-links the bytes (for folders this program staged itself and never modifies;
        falls back to a copy across file systems); otherwise they are copied and the source is left
        untouched. The sha256 is taken of the stored copy."""
        source = Path(source)
        if not source.is_dir():
            raise NotADirectoryError(f"add_files takes a folder; {source} is not one")
        if files is None:
            files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*")
                           if p.is_file() and not atomic.is_temporary(p))
        added = 0
        for name in files:
            src = source / name
            rel = (Path(dataset_path) / name).as_posix()
            inherited = self._inherited.get(rel)
            digest = sha256_of(src) if inherited is not None else None
            if inherited is not None and inherited.sha256 == digest:
                self.info.files[rel] = inherited
                continue
            dst = self.folder / "files" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            _place(src, dst, link)
            self.info.files[rel] = FileEntry(sha256=digest if link and digest else sha256_of(dst),
                                             size=dst.stat().st_size, dataset_id=self.id)
            added += 1
        return added

    def add_table(self, relpath: str, table: pd.DataFrame) -> None:
        self.add_bytes(relpath, table.to_csv(index=False).encode())

    def add_json(self, relpath: str, data: dict) -> None:
        self.add_bytes(relpath, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def add_bytes(self, relpath: str, payload: bytes) -> None:
        dst = self.folder / "files" / relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(dst, payload, fsync=False)
        self.info.files[relpath] = FileEntry(
            sha256=hashlib.sha256(payload).hexdigest(), size=len(payload), dataset_id=self.id
        )

    def local_path(self, relpath: str) -> Path:
        """Where a file of this draft is on disk (its own, or an inherited one in the parent)."""
        entry = self.info.files[relpath]
        folder = self.folder if entry.dataset_id == self.id else self.store.root / entry.dataset_id
        return folder / "files" / relpath

    def finalize(self, verify: bool | None = None) -> LocalDataset:
        """Check every listed file (size; sha256 of this version's own files with ``verify``), then make the
        dataset visible in one rename. Raises DatasetCorrupt (and keeps the draft hidden) on a mismatch."""
        verify = verify_by_default() if verify is None else verify
        for rel, entry in sorted(self.info.files.items()):
            path = self.local_path(rel)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise DatasetCorrupt(f"cannot finalize dataset {self.id}: {path} is missing") from None
            if size != entry.size or (verify and entry.dataset_id == self.id and sha256_of(path) != entry.sha256):
                raise DatasetCorrupt(f"cannot finalize dataset {self.id}: {path} changed after it was added")
        atomic.write_json(self.folder / DATASET_FILE, self.info.to_json())
        final = self.store.root / self.id
        os.replace(self.folder, final)  # atomic on one file system: the dataset appears complete
        atomic.fsync_dir(self.store.root)
        self._release()
        return LocalDataset(self.store, self.info)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)  # also removes the lock file
            self._lock = None


def _place(src: Path, dst: Path, link: bool) -> None:
    if link:
        try:
            os.link(src, dst)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    shutil.copy2(src, dst)


class LocalStore:
    """Versioned datasets in one folder, for runs without a ClearML server."""

    kind = "local"

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.remove_abandoned_drafts()

    def remove_abandoned_drafts(self) -> list[str]:
        """Drafts whose builder is gone (killed, or crashed before discarding): removed; returns their ids."""
        removed = []
        for folder in sorted(self.root.glob(f"{DRAFT_PREFIX}*")):
            if not folder.is_dir() or not locks.is_free(folder):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            locks.lock_path(folder).unlink(missing_ok=True)
            removed.append(folder.name[len(DRAFT_PREFIX):])
            print(f"removed the unfinished dataset draft {folder} (left by a run that stopped before finishing)")
        return removed

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

    def get(self, dataset_id: str, alias: str | None = None, needs: tuple[str, ...] | None = None,
            verify: bool | None = None) -> LocalDataset:
        """A finalized dataset by id, its files checked (those matching ``needs``, or all): sizes always,
        sha256 with ``verify``. ``alias`` matters only to ClearMLStore."""
        meta = self.root / str(dataset_id) / DATASET_FILE
        if not dataset_id or "/" in dataset_id or dataset_id.startswith(".") or not meta.is_file():
            known = ", ".join(self.list_ids()[-5:]) or "none"
            raise DatasetNotFound(
                f"no dataset {dataset_id!r} in the local store {self.root} (latest: {known}). "
                "Pass the id that the previous stage printed, and the same --output-dir.")
        try:
            info = DatasetInfo.from_json(json.loads(meta.read_text()))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise DatasetCorrupt(f"{meta} cannot be read ({type(exc).__name__}: {exc}): "
                                 f"{recover_hint(dataset_id)}") from exc
        if info.id != dataset_id:
            raise DatasetCorrupt(f"{meta} describes dataset {info.id!r}, not {dataset_id!r}: {recover_hint(dataset_id)}")
        dataset = LocalDataset(self, info)
        dataset.verify(needs, sha256=verify_by_default() if verify is None else verify)
        return dataset

    def list_ids(self) -> list[str]:
        """Finalized dataset ids, oldest first."""
        found = [p for p in self.root.glob("local-*") if (p / DATASET_FILE).is_file()]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime)]
