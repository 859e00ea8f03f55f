"""ClearML Datasets behind the same interface as ``store.LocalStore``.

Used when a server is configured. A child dataset is created with
``parent_datasets=[parent id]``: ClearML inherits the parent's file entries and
``add_files`` skips files whose path and sha256 are unchanged, so ``upload``
sends only what this version adds (the spectrograms, never the audio again).
Datasets are always fetched BY ID.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
from clearml import Dataset


class ClearMLDataset:
    """A finalized ClearML dataset; files are fetched on first use and cached by ClearML."""

    def __init__(self, dataset: Dataset, needs: tuple[str, ...] | None = None):
        self.dataset = dataset
        self.needs = needs
        self._root: Path | None = None

    @property
    def id(self) -> str:
        return self.dataset.id

    @property
    def parent_ids(self) -> list[str]:
        return list(self.dataset.get_dependency_graph().get(self.id, []))

    def list_files(self, pattern: str | None = None, added_only: bool = False) -> list[str]:
        return self.dataset.list_files(dataset_path=pattern, dataset_id=self.id if added_only else None)

    def path(self, relpath: str) -> Path:
        if self._root is None:
            # The merged, read-only local copy. With ``needs`` only the chunks holding those files are
            # fetched: training reads the spectrograms without downloading the parent's audio.
            files = None
            if self.needs:
                files = sorted({f for pattern in self.needs for f in self.dataset.list_files(dataset_path=pattern)})
            self._root = Path(self.dataset.get_local_copy(files=files) if files else self.dataset.get_local_copy())
        return self._root / relpath

    def read_table(self, relpath: str) -> pd.DataFrame:
        return pd.read_csv(self.path(relpath))

    def read_json(self, relpath: str) -> dict:
        return json.loads(self.path(relpath).read_text())


class ClearMLDraft:
    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self._scratch = tempfile.TemporaryDirectory(prefix="audioclf-draft-")

    @property
    def id(self) -> str:
        return self.dataset.id

    def add_files(self, source: Path, dataset_path: str = "", move: bool = False) -> int:
        # ClearML reads the files at upload time; ``move`` is irrelevant here (nothing is moved).
        return self.dataset.add_files(path=str(source), dataset_path=dataset_path or None, recursive=True)

    def _add_payload(self, relpath: str, payload: bytes) -> None:
        target = Path(self._scratch.name) / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
        parent = Path(relpath).parent.as_posix()
        self.dataset.add_files(path=str(target), dataset_path=None if parent == "." else parent)

    def add_table(self, relpath: str, table: pd.DataFrame) -> None:
        self._add_payload(relpath, table.to_csv(index=False).encode())
        # Also as dataset metadata, so a step that needs only the table can read it without the audio.
        self.dataset.set_metadata(table, metadata_name=Path(relpath).stem, ui_visible=True)

    def add_json(self, relpath: str, data: dict) -> None:
        self._add_payload(relpath, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def finalize(self) -> ClearMLDataset:
        self.dataset.upload(show_progress=True)
        self.dataset.finalize()
        self._scratch.cleanup()
        return ClearMLDataset(self.dataset)

    def discard(self) -> None:
        self._scratch.cleanup()


class ClearMLStore:
    kind = "clearml"

    def __init__(self, output_uri: str | None = None):
        self.output_uri = output_uri

    def create(self, name: str, project: str, tags: list[str] | None = None,
               parent_ids: list[str] | None = None, description: str = "") -> ClearMLDraft:
        dataset = Dataset.create(dataset_name=name, dataset_project=project, dataset_tags=tags,
                                 parent_datasets=parent_ids or None, output_uri=self.output_uri,
                                 description=description)
        return ClearMLDraft(dataset)

    def get(self, dataset_id: str, alias: str | None = None, needs: tuple[str, ...] | None = None) -> ClearMLDataset:
        """By id only, never "latest with this name". ``alias`` also records the id on the current task
        (``Datasets/<alias>``) so the UI shows which dataset a run used."""
        return ClearMLDataset(Dataset.get(dataset_id=dataset_id, alias=alias), needs=needs)
