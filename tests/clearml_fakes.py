"""Test doubles for the ClearML SDK, for the code paths that need a server.

Everything here is a ``unittest.mock.create_autospec`` of the REAL clearml
class, so a wrong argument name or a method the SDK does not have fails the
test. ``FakeDatasetServer`` adds side effects that follow ClearML Datasets'
rules (clearml 2.1.12, datasets/dataset.py):

- ``Dataset.create(parent_datasets=[ids])`` needs FINALIZED parents and
  inherits their file entries;
- ``add_files`` hashes the files but reads them again only at ``upload()``
  (so a file removed between the two is an upload error), and a file with the
  same path and sha256 as an inherited one stays with the parent;
- ``finalize()`` refuses pending uploads; ``Dataset.get`` and
  ``get_local_copy`` need a finalized dataset; ``get_local_copy(files=...)``
  fetches only those files (here: links only those files into the folder).

The server keeps its "uploaded" bytes in a folder, so stages can really read
back what they registered.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from unittest.mock import create_autospec

from clearml import Dataset, Logger, Task
from clearml.backend_api import services
from clearml.backend_api.session.client.client import APIClient, make_service_class
from clearml.utilities.matching import matches_any_wildcard

_CREATE = inspect.signature(Dataset.create)
_GET = inspect.signature(Dataset.get)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- Task ------------------------------------------------------------------------------------------

def online_task(task_id: str = "task-online-0001"):
    """(Task class autospec, task instance autospec, logger autospec); ``Task.init`` returns the instance."""
    task_cls = create_autospec(Task)
    task = create_autospec(Task, instance=True)
    task.id = task_id
    logger = create_autospec(Logger, instance=True)
    task.get_logger.return_value = logger
    task.get_output_log_web_page.return_value = f"https://app.clearml.example/tasks/{task_id}"
    task_cls.init.return_value = task
    return task_cls, task, logger


# --- Datasets --------------------------------------------------------------------------------------

@dataclass
class Entry:
    sha256: str
    owner: str                  # the dataset version that stores the bytes
    local: Path | None = None   # pending upload: read from here at upload()
    stored: Path | None = None  # uploaded bytes


@dataclass
class Record:
    id: str
    name: str | None
    project: str | None
    tags: list[str]
    parents: list[str]
    description: str | None
    output_uri: str | None
    files: dict[str, Entry] = field(default_factory=dict)
    metadata: dict[str, object] = field(default_factory=dict)
    final: bool = False


class FakeDatasetServer:
    """ClearML Datasets in a folder. ``self.Dataset`` replaces ``clearml.Dataset`` (or a module's import of it)."""

    def __init__(self, root: Path, id_prefix: str = "ds"):
        self.root = Path(root)
        self.Dataset = create_autospec(Dataset)
        self.Dataset.create.side_effect = self._create
        self.Dataset.get.side_effect = self._get
        self.records: dict[str, Record] = {}
        self.instances: dict[str, list] = {}  # id -> autospec instances handed out (create and every get)
        self.events: list[tuple] = []          # ("create"|"add_files"|"upload"|"finalize"|"get"|"get_local_copy", id, ...)
        self.downloads: list[tuple[str, list[str] | None]] = []
        self._counter = itertools.count(1)
        self._prefix = id_prefix

    # -- what tests look at
    def created(self) -> list[Record]:
        return [self.records[e[1]] for e in self.events if e[0] == "create"]

    def own_files(self, dataset_id: str) -> set[str]:
        return {rel for rel, e in self.records[dataset_id].files.items() if e.owner == dataset_id}

    def read(self, dataset_id: str, relpath: str) -> bytes:
        """The uploaded bytes of one file of a dataset (wherever in the lineage they are stored)."""
        return Path(self.records[dataset_id].files[relpath].stored).read_bytes()

    # -- seeding from a finished local store (an offline run's datasets) ----------------------------
    def import_local(self, store, local_id: str, _done: dict | None = None) -> str:
        """Register a LocalStore dataset (and its ancestors) as finalized server datasets; returns the new id."""
        done = _done if _done is not None else {}
        if local_id in done:
            return done[local_id]
        local = store.get(local_id)
        parents = [self.import_local(store, p, done) for p in local.parent_ids]
        rec = self._new_record(local.info.name, local.info.project, list(local.info.tags), parents,
                               local.info.description, None)
        for rel, entry in local.info.files.items():
            if entry.dataset_id == local_id:
                rec.files[rel] = Entry(sha256=entry.sha256, owner=rec.id, stored=store.root / local_id / "files" / rel)
            else:
                assert rel in rec.files, f"{rel} of {local_id} is in none of its parents"
        rec.final = True
        done[local_id] = rec.id
        return rec.id

    # -- Dataset classmethods ---------------------------------------------------------------------
    def _new_record(self, name, project, tags, parents, description, output_uri) -> Record:
        rec = Record(id=f"{self._prefix}-{next(self._counter):04d}", name=name, project=project,
                     tags=list(tags or []), parents=list(parents), description=description, output_uri=output_uri)
        for pid in rec.parents:  # later parents override earlier ones, as in ClearML
            rec.files.update(self.records[pid].files)
        self.records[rec.id] = rec
        return rec

    def _create(self, *args, **kwargs):
        a = _CREATE.bind(*args, **kwargs).arguments
        parents = []
        for parent in a.get("parent_datasets") or []:
            pid = parent if isinstance(parent, str) else parent.id
            if pid not in self.records:
                raise ValueError(f"Dataset {pid} not found")
            if not self.records[pid].final:
                raise ValueError("Cannot inherit from a parent that was not finalized/closed")
            parents.append(pid)
        if a.get("use_current_task"):
            raise AssertionError("the project keeps use_current_task=False: a dataset gets its own task")
        rec = self._new_record(a.get("dataset_name"), a.get("dataset_project"), a.get("dataset_tags"), parents,
                               a.get("description"), a.get("output_uri"))
        self.events.append(("create", rec.id, tuple(parents)))
        return self._instance(rec)

    def _get(self, *args, **kwargs):
        a = _GET.bind(*args, **kwargs).arguments
        unknown = {k for k in a.get("kwargs", {}) if not k.startswith("_")}
        if unknown:
            raise ValueError(f"Dataset.get() got unexpected keyword arguments {sorted(unknown)}")
        dataset_id = a.get("dataset_id")
        if not dataset_id:
            raise AssertionError("the project fetches datasets by id only")
        if dataset_id not in self.records:
            raise ValueError(f"Could not find Dataset id={dataset_id}")
        rec = self.records[dataset_id]
        if not rec.final:
            raise ValueError(f"Dataset id={dataset_id} is in draft mode, delete and recreate it")
        self.events.append(("get", dataset_id, a.get("alias")))
        return self._instance(rec)

    # -- Dataset instance methods -----------------------------------------------------------------
    def _instance(self, rec: Record):
        ds = create_autospec(Dataset, instance=True)
        ds.id = rec.id
        ds.name = rec.name
        ds.project = rec.project
        ds.tags = list(rec.tags)
        ds.add_files.side_effect = lambda *a, **k: self._add_files(rec, *a, **k)
        ds.upload.side_effect = lambda *a, **k: self._upload(rec)
        ds.finalize.side_effect = lambda *a, **k: self._finalize(rec, *a, **k)
        ds.set_metadata.side_effect = lambda *a, **k: self._set_metadata(rec, *a, **k)
        ds.list_files.side_effect = lambda *a, **k: self._list_files(rec, *a, **k)
        ds.get_local_copy.side_effect = lambda *a, **k: self._get_local_copy(rec, *a, **k)
        ds.get_dependency_graph.side_effect = lambda: self._graph(rec.id)
        ds.is_final.side_effect = lambda: rec.final
        self.instances.setdefault(rec.id, []).append(ds)
        return ds

    def _add_files(self, rec: Record, path, wildcard=None, local_base_folder=None, dataset_path=None,
                   recursive=True, verbose=False, max_workers=None) -> int:
        if rec.final:
            raise ValueError("Cannot add files to a finalized dataset")
        path = Path(path)
        if not path.exists():
            raise ValueError(f"Could not find local path {path}")
        prefix = Path((dataset_path or ".").lstrip("/"))
        if path.is_file():
            found = [(path, (prefix / path.name).as_posix())]
        else:
            base = Path(local_base_folder or path)
            found = [(p, (prefix / p.relative_to(base)).as_posix())
                     for p in sorted(path.rglob("*") if recursive else path.glob("*")) if p.is_file()]
        if wildcard is not None:
            found = [(p, rel) for p, rel in found if matches_any_wildcard(rel, wildcard, recursive=recursive)]
        added = 0
        for src, rel in found:
            digest = sha256_of(src)
            current = rec.files.get(rel)
            if current is not None and current.sha256 == digest:
                continue  # unchanged: stays where it is (with the parent, if inherited)
            added += current is None
            rec.files[rel] = Entry(sha256=digest, owner=rec.id, local=src.resolve())
        self.events.append(("add_files", rec.id, str(path), dataset_path, tuple(rel for _, rel in found)))
        return added

    def _upload(self, rec: Record) -> None:
        if rec.final:
            raise ValueError("Cannot upload a finalized dataset")
        for rel, entry in sorted(rec.files.items()):
            if entry.owner != rec.id or entry.local is None:
                continue
            if not entry.local.is_file():
                raise ValueError(f"upload: {entry.local} ({rel}) was added but is gone before upload()")
            if sha256_of(entry.local) != entry.sha256:
                raise ValueError(f"upload: {entry.local} ({rel}) changed between add_files() and upload()")
            target = self.root / "storage" / rec.id / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(entry.local, target)
            entry.stored, entry.local = target, None
        self.events.append(("upload", rec.id))

    def _finalize(self, rec: Record, verbose=False, raise_on_error=True, auto_upload=False) -> bool:
        pending = [rel for rel, e in rec.files.items() if e.owner == rec.id and e.local is not None]
        if pending:
            if auto_upload:
                self._upload(rec)
            elif raise_on_error:
                raise ValueError(f"Cannot finalize dataset, pending uploads: {pending[:3]}")
            else:
                return False
        rec.final = True
        self.events.append(("finalize", rec.id))
        return True

    def _set_metadata(self, rec: Record, metadata, metadata_name="metadata", ui_visible=True) -> None:
        if metadata_name.startswith("data_"):
            raise ValueError("metadata_name can not start with 'data_'")
        rec.metadata[metadata_name] = metadata.copy() if hasattr(metadata, "copy") else metadata

    def _list_files(self, rec: Record, dataset_path=None, recursive=True, dataset_id=None) -> list[str]:
        files = [rel for rel, e in rec.files.items() if not dataset_id or e.owner == dataset_id]
        if not dataset_path:
            return sorted(files)
        pattern = dataset_path.lstrip("/")
        return sorted(f for f in files if matches_any_wildcard(f, pattern, recursive=recursive))

    def _get_local_copy(self, rec: Record, use_soft_links=None, part=None, num_parts=None, raise_on_error=True,
                        max_workers=None, files=None) -> str:
        if not rec.final:
            raise ValueError("Cannot get a local copy of a dataset that was not finalized/closed")
        wanted = sorted(rec.files) if files is None else list(files)
        missing = [f for f in wanted if f not in rec.files]
        if missing:
            raise ValueError(f"files not in dataset {rec.id}: {missing[:3]}")
        suffix = "" if files is None else "_" + hashlib.md5("\n".join(sorted(wanted)).encode()).hexdigest()[:8]
        folder = self.root / "cache" / f"ds_{rec.id}{suffix}"
        if folder.exists():
            shutil.rmtree(folder)
        for rel in wanted:
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(rec.files[rel].stored, target)  # ClearML's default on POSIX: soft links into the cache
        folder.mkdir(parents=True, exist_ok=True)
        self.downloads.append((rec.id, None if files is None else sorted(wanted)))
        self.events.append(("get_local_copy", rec.id, None if files is None else tuple(sorted(wanted))))
        return str(folder)

    def _graph(self, dataset_id: str) -> dict[str, list[str]]:
        graph, stack = {}, [dataset_id]
        while stack:
            current = stack.pop()
            if current not in graph:
                graph[current] = list(self.records[current].parents)
                stack.extend(graph[current])
        return graph


# --- APIClient (pipeline.check_queues) ---------------------------------------------------------------

def fake_api_client(queues: list[tuple[str, str]], workers: list[list[str]]):
    """An APIClient class autospec whose instance has autospec'd ``queues``/``workers`` services.

    queues: (name, id) in the order the server returns them; ``get_all(name=<regex>)`` filters by regex
    search, as the server does. workers: for each worker, the ids of the queues it listens to.
    Returns (client class, client instance).
    """
    client_cls = create_autospec(APIClient)
    client = client_cls.return_value
    client.queues = create_autospec(make_service_class(services.queues), instance=True)
    client.workers = create_autospec(make_service_class(services.workers), instance=True)

    def queues_get_all(*args, **kwargs):
        pattern = kwargs.get("name")
        return [services.queues.Queue(id=qid, name=name) for name, qid in queues
                if pattern is None or re.search(pattern, name)]

    def workers_get_all(*args, **kwargs):
        return [services.workers.Worker(id=f"worker-{i}", queues=[services.workers.QueueEntry(id=q) for q in qs])
                for i, qs in enumerate(workers)]

    client.queues.get_all.side_effect = queues_get_all
    client.workers.get_all.side_effect = workers_get_all
    return client_cls, client
