"""ClearML Datasets behind the same interface as ``store.LocalStore``.

Used when a server is configured. A child dataset is created with
``parent_datasets=[parent id]``: ClearML inherits the parent's file entries and
``add_files`` skips files whose path and sha256 are unchanged, so ``upload``
sends only what this version adds (the spectrograms, never the audio again).
Datasets are always fetched BY ID.

Integrity: ``get_local_copy`` checks the size of every file it returns against
the dataset's file entries and fetches again on a mismatch (clearml 2.1.12,
datasets/dataset.py ``_verify_dataset_folder``, line 3886); with ``verify`` the
files a stage reads are also checked against their registered sha256 (the
entries' ``hash``, as ``Dataset.verify_dataset_hash`` does, line 1374). A
dataset whose build fails is deleted from the server, so no half-made dataset
stays behind.

Uploads: chunks of CHUNK_MB, stored without compression (PCM audio and float16
spectrograms barely compress, and deflating them costs more CPU than the bytes
it saves), with one worker per core for every destination (the SDK uses one
for s3/gs/azure).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pandas as pd
from clearml import Dataset

from . import atomic
from .store import DatasetCorrupt, recover_hint, sha256_of, verify_by_default

CHUNK_MB = 128
TABLE_ROWS = 1000  # rows of a table shown on the dataset's page; the whole table is in the dataset


class ClearMLDataset:
    """A finalized ClearML dataset; files are fetched on first use and cached by ClearML."""

    def __init__(self, dataset: Dataset, needs: tuple[str, ...] | None = None, verify: bool = False):
        self.dataset = dataset
        self.needs = needs
        self.verify_hashes = verify
        self._root: Path | None = None

    @property
    def id(self) -> str:
        return self.dataset.id

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def parent_ids(self) -> list[str]:
        return list(self.dataset.get_dependency_graph().get(self.id, []))

    def list_files(self, pattern: str | None = None, added_only: bool = False) -> list[str]:
        return self.dataset.list_files(dataset_path=pattern, dataset_id=self.id if added_only else None)

    def _needed(self) -> list[str] | None:
        if not self.needs:
            return None
        return sorted({f for pattern in self.needs for f in self.dataset.list_files(dataset_path=pattern)})

    def path(self, relpath: str) -> Path:
        if self._root is None:
            # The merged, read-only local copy. With ``needs`` only the chunks holding those files are
            # fetched: training reads the spectrograms without downloading the parent's audio.
            files = self._needed()
            self._root = Path(self.dataset.get_local_copy(files=files) if files else self.dataset.get_local_copy())
            if self.verify_hashes:
                self.verify(files)
        return self._root / relpath

    def verify(self, files: list[str] | None = None) -> int:
        """The sha256 of each local file (``files``, default all) against its entry; DatasetCorrupt names a bad one."""
        entries = self.dataset.file_entries_dict
        names = files if files is not None else sorted(entries)
        for rel in names:
            entry = entries.get(rel)
            local = self._root / rel
            if entry is not None and entry.hash and sha256_of(local) != entry.hash:
                raise DatasetCorrupt(f"{local} (file {rel} of ClearML dataset {self.id}) does not match its "
                                     "registered sha256: delete ClearML's dataset cache (~/.clearml/cache/storage_manager/"
                                     f"datasets/ds_{self.id}*) and rerun, or {recover_hint(self.id)}")
        return len(names)

    def read_table(self, relpath: str) -> pd.DataFrame:
        path = self.path(relpath)
        try:
            return pd.read_csv(path)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise DatasetCorrupt(f"{relpath} of ClearML dataset {self.id} ({path}) cannot be read as a table "
                                 f"({exc}): {recover_hint(self.id)}") from exc

    def read_json(self, relpath: str) -> dict:
        path = self.path(relpath)
        try:
            data = json.loads(path.read_text())
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise DatasetCorrupt(f"{relpath} of ClearML dataset {self.id} ({path}) is not valid JSON ({exc}): "
                                 f"{recover_hint(self.id)}") from exc
        if not isinstance(data, dict):
            raise DatasetCorrupt(f"{relpath} of ClearML dataset {self.id} does not hold a JSON object")
        return data


class ClearMLDraft:
    def __init__(self, dataset: Dataset, scratch_root: Path):
        self.dataset = dataset
        # Payload files are linked (same file system) or written here until the upload is done.
        self._scratch = Path(scratch_root) / f"clearml-draft-{dataset.id}-{secrets.token_hex(3)}"
        self._scratch.mkdir(parents=True)
        self._local: dict[str, Path] = {}

    @property
    def id(self) -> str:
        return self.dataset.id

    @property
    def logger(self):
        """The dataset's own logger: what it reports appears on the dataset's page."""
        return self.dataset.get_logger()

    def add_files(self, source: Path, dataset_path: str = "", files: list[str] | None = None,
                  link: bool = False) -> int:
        """Add files under ``source`` (exactly ``files`` when given, else all but temporary ones). ClearML reads
        them at upload time, so an explicit list is linked (or copied) into a scratch folder of only those files."""
        source = Path(source)
        if files is None:
            files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*")
                           if p.is_file() and not atomic.is_temporary(p))
        folder = self._scratch / f"add-{len(self._local)}-{secrets.token_hex(2)}"
        for name in files:
            dst = folder / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source / name, dst)
            except OSError:
                shutil.copy2(source / name, dst)
            self._local[(Path(dataset_path) / name).as_posix()] = dst
        if not files:
            return 0
        return self.dataset.add_files(path=str(folder), dataset_path=dataset_path or None, recursive=True)

    def _add_payload(self, relpath: str, payload: bytes) -> None:
        target = self._scratch / "payload" / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(target, payload, fsync=False)
        parent = Path(relpath).parent.as_posix()
        self.dataset.add_files(path=str(target), dataset_path=None if parent == "." else parent)
        self._local[relpath] = target

    def add_table(self, relpath: str, table: pd.DataFrame) -> None:
        self._add_payload(relpath, table.to_csv(index=False).encode())
        # Also as dataset metadata (an artifact), so a step that needs only the table reads it without the
        # audio; shown on the dataset's page under its own title (set_metadata's ui_visible would report every
        # table as "Dataset Metadata", the last replacing the others).
        name = Path(relpath).stem
        self.dataset.set_metadata(table, metadata_name=name, ui_visible=False)
        shown = table if len(table) <= TABLE_ROWS else table.head(TABLE_ROWS)
        title = name if len(table) <= TABLE_ROWS else f"{name} (first {TABLE_ROWS} of {len(table)} rows)"
        self.logger.report_table(title=title, series=name, iteration=0, table_plot=shown)

    def add_json(self, relpath: str, data: dict) -> None:
        self._add_payload(relpath, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def local_path(self, relpath: str) -> Path:
        """A file this draft adds, on local disk (no download)."""
        return self._local[relpath]

    def finalize(self, verify: bool | None = None) -> ClearMLDataset:
        # preview=False: the SDK's own preview would show every CSV again as "Tables / summary" (each replacing
        # the last) and some audio files under "Audio"; the dataset's page has each table under its own title
        # and one audio sample per class already.
        self.dataset.upload(show_progress=True, compression=zipfile.ZIP_STORED, chunk_size=CHUNK_MB,
                            max_workers=os.cpu_count() or 1, preview=False)
        self.dataset.finalize()
        shutil.rmtree(self._scratch, ignore_errors=True)
        return ClearMLDataset(self.dataset)

    def discard(self) -> None:
        """Remove the scratch files and the unfinished dataset from the server (best effort)."""
        shutil.rmtree(self._scratch, ignore_errors=True)
        try:
            Dataset.delete(dataset_id=self.dataset.id, force=True)
        except Exception as exc:  # the SDK raises many kinds; the run is failing already
            print(f"warning: could not delete the unfinished ClearML dataset {self.dataset.id} "
                  f"({type(exc).__name__}: {exc}); delete it in the web UI")


class ClearMLStore:
    kind = "clearml"

    def __init__(self, output_uri: str | None = None, scratch_root: Path | str | None = None):
        self.output_uri = output_uri
        self.scratch_root = Path(scratch_root) if scratch_root else Path.cwd() / "outputs" / "staging"

    def create(self, name: str, project: str, tags: list[str] | None = None,
               parent_ids: list[str] | None = None, description: str = "") -> ClearMLDraft:
        dataset = Dataset.create(dataset_name=name, dataset_project=project, dataset_tags=tags,
                                 parent_datasets=parent_ids or None, output_uri=self.output_uri,
                                 description=description)
        return ClearMLDraft(dataset, self.scratch_root)

    def get(self, dataset_id: str, alias: str | None = None, needs: tuple[str, ...] | None = None,
            verify: bool | None = None) -> ClearMLDataset:
        """By id only, never "latest with this name". ``alias`` also records the id on the current task
        (``Datasets/<alias>``) so the UI shows which dataset a run used."""
        from .store import DatasetNotFound

        try:
            dataset = Dataset.get(dataset_id=dataset_id, alias=alias)
        except ValueError as exc:
            raise DatasetNotFound(f"no ClearML dataset {dataset_id!r} ({exc}). Pass the id that the previous "
                                  "stage printed") from exc
        return ClearMLDataset(dataset, needs=needs, verify=verify_by_default() if verify is None else verify)


def matches(relpath: str, patterns: tuple[str, ...] | None) -> bool:
    return not patterns or any(fnmatch(relpath, p) for p in patterns)
