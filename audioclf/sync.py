"""From offline to a server: re-create local datasets as ClearML Datasets and import offline sessions.

Datasets go parents first, so each ClearML child is created with
``parent_datasets=[<its parent's new ClearML id>]`` and uploads only the files
it added: the lineage is kept and the audio is uploaded once. The mapping from
local to ClearML ids is saved next to the store (``clearml_ids.json``), so a
rerun skips what was already pushed. Offline task sessions go through
``Task.import_offline_session``.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import atomic
from .store import LocalStore

ID_MAP_FILE = "clearml_ids.json"


def _in_lineage_order(store: LocalStore) -> list[str]:
    """Dataset ids with every parent before its children."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(dataset_id: str) -> None:
        if dataset_id in seen:
            return
        seen.add(dataset_id)
        for parent in store.get(dataset_id).parent_ids:
            visit(parent)
        ordered.append(dataset_id)

    for dataset_id in store.list_ids():
        visit(dataset_id)
    return ordered


def push_datasets(store: LocalStore, dataset_ids: list[str] | None = None) -> dict[str, str]:
    """Create a finalized ClearML Dataset for each local one (and its ancestors); returns local id -> ClearML id."""
    from clearml import Dataset

    map_path = store.root / ID_MAP_FILE
    id_map: dict[str, str] = json.loads(map_path.read_text()) if map_path.is_file() else {}
    wanted = set(dataset_ids) if dataset_ids else None
    for local_id in _in_lineage_order(store):
        if local_id in id_map:
            continue
        local = store.get(local_id)
        if wanted is not None and local_id not in wanted and not _is_ancestor(store, local_id, wanted):
            continue
        remote = Dataset.create(dataset_name=local.info.name, dataset_project=local.info.project,
                                dataset_tags=local.info.tags + ["imported-from-offline"],
                                parent_datasets=[id_map[p] for p in local.parent_ids] or None,
                                description=f"{local.info.description} (offline id {local_id})".strip())
        # Only the files this version added; ClearML inherits the rest from the parent.
        added = store.root / local_id / "files"
        if added.is_dir() and any(added.rglob("*")):
            remote.add_files(path=str(added), recursive=True)
        remote.upload(show_progress=True)
        remote.finalize()
        id_map[local_id] = remote.id
        atomic.write_json(map_path, id_map)
        print(f"dataset {local_id} -> ClearML {remote.id}")
    return id_map


def _is_ancestor(store: LocalStore, candidate: str, of: set[str]) -> bool:
    stack = list(of)
    while stack:
        parents = store.get(stack.pop()).parent_ids
        if candidate in parents:
            return True
        stack.extend(parents)
    return False


def import_sessions(session_dirs: list[Path]) -> dict[str, str]:
    """Import offline task sessions (folders or zips); returns session path -> new task id."""
    from clearml import Task

    imported = {}
    for session in session_dirs:
        imported[str(session)] = Task.import_offline_session(session_folder_zip=str(session))
        print(f"session {session} -> ClearML task {imported[str(session)]}")
    return imported
