"""From offline to a server: re-create local datasets as ClearML Datasets and import offline sessions.

Datasets go parents first, so each ClearML child is created with
``parent_datasets=[<its parent's new ClearML id>]`` and uploads only the files
it added: the lineage is kept and the audio is uploaded once. The mapping from
local to ClearML ids is saved next to the store (``clearml_ids.json``), so a
rerun skips what was already pushed. Offline task sessions go through
``Task.import_offline_session``; the model file an offline training session
carries (the artifact ``model``, or ``model_fold<k>``: the SDK's OutputModel does
not work offline) then becomes the imported task's output model, registered as
training.py registers it online, so that predict.py and serve.py take its id.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
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


MODEL_ARTIFACT = re.compile(r"^model(?:_fold(\d+))?$")  # training.py's model file offline (not its exports)


def session_models(session: Path) -> dict[str, tuple[Path, int | None]]:
    """The model files an offline training session holds: artifact name -> (file, cross-validation fold or None).
    A zip is read from the folder it was made from when that is still there, else extracted by the caller."""
    exported = _exported_task(session)
    offline_folder = Path(exported.get("offline_folder") or session)
    found = {}
    for artifact in (exported.get("execution") or {}).get("artifacts") or []:
        match = MODEL_ARTIFACT.match(str(artifact.get("key", "")))
        if not match or not artifact.get("uri"):
            continue
        try:
            path = session / Path(artifact["uri"]).relative_to(offline_folder)
        except ValueError:
            continue
        if path.is_file():
            found[artifact["key"]] = (path, int(match.group(1)) if match.group(1) else None)
    return found


def offline_model_metadata(name: str, tags: list[str], publish: bool) -> dict[str, str]:
    """Kept with an offline run's model artifact (training.py): the name, tags and publication the model gets
    online, which register_models gives it."""
    return {"model_name": name, "model_tags": json.dumps(list(tags)), "model_publish": json.dumps(bool(publish))}


def session_model_settings(session: Path) -> dict[str, dict]:
    """artifact name -> the name, tags and publication training.py gives the model online ({"name", "tags",
    "publish"}), as offline_model_metadata kept them with the artifact. A session made before they were kept:
    "audio classifier" (+ " fold N"), the serving tag on a run's final model."""
    from .tracking import SERVING_TAG

    kept = {str(artifact.get("key")): dict(artifact.get("display_data") or [])  # [[key, value], ...]
            for artifact in (_exported_task(session).get("execution") or {}).get("artifacts") or []}
    settings = {}
    for key, (_, fold) in session_models(session).items():
        values = kept.get(key, {})
        if "model_name" in values:
            settings[key] = {"name": values["model_name"], "tags": json.loads(values.get("model_tags", "[]")),
                             "publish": json.loads(values.get("model_publish", "false"))}
        else:
            settings[key] = {"name": "audio classifier" + ("" if fold is None else f" fold {fold}"),
                             "tags": [SERVING_TAG] if fold is None else [], "publish": False}
    return settings


def _exported_task(session: Path) -> dict:
    """An offline session's task.json ({} when it has none or it does not parse)."""
    try:
        return json.loads((session / "task.json").read_text())
    except (OSError, ValueError):
        return {}


def register_models(session: Path, task_id: str) -> dict[str, str]:
    """Register the model files of an imported offline training session as the output models of its task
    (``task_id``): name, labels, feature config and tags as training.py gives them online (the run's final
    model also gets tracking.SERVING_TAG, which serve.py --auto-update follows), plus "imported-from-offline";
    the weights go to the files server. Returns artifact name -> model id."""
    import clearml
    from clearml.backend_api import Session

    from .models import load_model
    with _session_folder(session) as folder:
        models = session_models(folder)
        if not models:
            return {}
        settings = session_model_settings(folder)
        bundles = {artifact: load_model(path)[1] for artifact, (path, _) in models.items()}  # damaged: a UserError
        task = clearml.Task.get_task(task_id=task_id)
        destination = str(Session.get_files_server_host())
        registered = {}
        # The SDK links a model to a task's outputs only while the task runs, and the import completed it: it is
        # started again for the time of the registration (the import itself started it at import time too).
        task.mark_started(force=True)
        try:
            for artifact, (path, fold) in sorted(models.items()):
                bundle, wanted = bundles[artifact], settings[artifact]
                tags = list(dict.fromkeys(wanted["tags"] + ["imported-from-offline"]))
                model = clearml.OutputModel(task=task, name=wanted["name"], framework="PyTorch",
                                            label_enumeration={c: i for i, c in enumerate(bundle["class_names"])},
                                            config_dict={"feature_config": bundle["feature_config"]}, tags=tags)
                model.update_weights(weights_filename=str(path), upload_uri=destination, auto_delete_file=False,
                                     async_enable=False)
                if wanted["publish"]:
                    model.publish()
                registered[artifact] = model.id
                print(f"model {artifact} of session {session} -> ClearML model {model.id} (predict.py and serve.py "
                      "take this id)")
        finally:
            task.mark_completed(force=True)
    return registered


@contextlib.contextmanager
def _session_folder(session: Path) -> Iterator[Path]:
    """A session folder as it is, or a session zip extracted to a temporary folder for the time of the block."""
    session = Path(session)
    if session.is_dir():
        yield session
        return
    temporary = Path(tempfile.mkdtemp(prefix="audioclf-session-"))
    try:
        with zipfile.ZipFile(session) as archive:
            archive.extractall(temporary)  # the SDK's own zip of a session: names relative to its folder
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
