"""The ClearML ONLINE code paths, without a server.

No ClearML server can run here, so (as the project's guide asks):
- where the SDK's offline mode works (offline sessions, PipelineController DAG
  construction), the real SDK runs offline and the tests read what it wrote;
- where a call needs a server, the real classes are replaced by
  ``create_autospec`` of the real clearml classes (Task, Dataset, Logger,
  OutputModel, PipelineController, APIClient), so a wrong argument name or a
  method that does not exist fails the test. ``tests/clearml_fakes.py`` holds
  the doubles; its FakeDatasetServer follows ClearML Datasets' rules so that a
  stage really reads back what it registered;
- an unreachable server is tested for real: a subprocess against a refused
  loopback port.

Tiny artefacts (40 synthetic clips, 1 training epoch on the CPU) are built once
per module.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import zipfile
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import call, create_autospec

import numpy as np
import pandas as pd
import pytest

import clearml
import cross_validation
import get_data
import pipeline
import preprocessing
import push_offline
import training
from audioclf import cli, clearml_store, crossval, enqueue, sync, tracking
from audioclf.errors import UserError
from audioclf.store import LocalStore
from clearml import Dataset, Logger, OutputModel, PipelineController, Task
from clearml.backend_api.session import client as api_client_module
from clearml.binding.args import PatchArgumentParser, call_original_argparser
from clearml.binding.artifacts import Artifact
from clearml.utilities.matching import matches_any_wildcard

sys.path.insert(0, str(Path(__file__).resolve().parent))
import clearml_fakes as fakes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NUM_CLIPS = 40
ONLINE_REASON = "test: pretend a ClearML server is configured"


# --- helpers ---------------------------------------------------------------------------------------

def session_events(session_dir: str | Path) -> list[dict]:
    """All events of an offline ClearML session (metrics.jsonl: one JSON array per line)."""
    events = []
    path = Path(session_dir) / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        if line.strip():
            events.extend(json.loads(line))
    return events


def clean_subprocess_env(tmp_path: Path) -> dict:
    """The environment without any ClearML/Trains variable (offline mode and credentials included)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), CLEARML_CACHE_DIR=str(tmp_path / "clearml-cache"), CLEARML_LOG_LEVEL="ERROR",
               TQDM_DISABLE="1")
    return env


def agent_parse(task, build_parser, script: str, monkeypatch):
    """What argparse returns when clearml-agent runs ``script`` for ``task`` with no command line.

    The SDK's argparse patch (clearml/binding/args.py, ``_patched_parse_args`` when running remotely) calls
    ``task._connect_argparse(parser, parsed_args=None)`` -> ``task._arguments.copy_to_parser(parser, None)``
    (the task's Args/ become the parser's defaults) and then the original ``parse_args``. Same calls here,
    on an offline task holding what ``Task.init`` + connect recorded.
    """
    monkeypatch.setattr(sys, "argv", [script])  # the agent starts the script with no arguments
    parser = build_parser()
    try:
        task._arguments.copy_to_parser(parser, None)
        return call_original_argparser(parser, args=None)
    except SystemExit as exc:
        pytest.fail(f"under an agent, {script} would stop in argparse (exit {exc.code}) on the recorded Args/: "
                    f"{ {k: v for k, v in task.get_parameters().items() if k.startswith('Args/')} }")


# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def offline_runs(tmp_path_factory):
    """Real offline runs: raw -> features -> two trainings (test folds 10 and 9)."""
    out = tmp_path_factory.mktemp("offline-runs")
    common = ["--offline", "--output-dir", str(out)]
    raw = get_data.main(["--num-clips", str(NUM_CLIPS), "--data-seed", "1", "--workers", "1"] + common)
    feats = preprocessing.main(["--dataset-id", raw["dataset_id"], "--device", "cpu", "--workers", "1"] + common)
    base = ["--dataset-id", feats["dataset_id"], "--epochs", "1", "--device", "cpu", "--batch-size", "16"] + common
    fold10 = training.main(base)
    fold9 = training.main(base + ["--test-fold", "9", "--val-fold", "8"])
    return SimpleNamespace(out=out, store=LocalStore(out / "datasets"), raw=raw, features=feats,
                           trainings=[fold10, fold9])


@pytest.fixture
def online(monkeypatch, tmp_path):
    """The stages believe a server is configured: Task and config_obj in audioclf.tracking are autospecs,
    and audioclf.clearml_store.Dataset is a FakeDatasetServer."""
    task_cls, task, logger = fakes.online_task()
    config = create_autospec(tracking.config_obj)
    server = fakes.FakeDatasetServer(tmp_path / "server")
    monkeypatch.setattr(tracking, "Task", task_cls)
    monkeypatch.setattr(tracking, "config_obj", config)
    monkeypatch.setattr(tracking, "decide_offline", lambda offline_flag: (False, ONLINE_REASON))
    monkeypatch.setattr(clearml_store, "Dataset", server.Dataset)
    # The checks before enqueueing need a server and a pushed repository (tests/test_enqueue_checks.py has them).
    monkeypatch.setattr(enqueue, "before_enqueue", lambda *args, **kwargs: None)
    return SimpleNamespace(Task=task_cls, task=task, logger=logger, config=config, server=server,
                           out=tmp_path / "outputs")


@pytest.fixture
def offline_controller(monkeypatch):
    """Build pipeline controllers for real in offline mode; close their controller tasks afterwards.

    Offline mode stays on afterwards (as after any offline stage run in this process): switching the test
    process to online could let a stray real SDK call reach for a server."""
    Task.set_offline(True)
    monkeypatch.setattr(Task, "_report_subprocess_enabled", False)  # close() in 0 s, no reporting subprocess
    # As in a fresh process: ClearML's argparse binding remembers the last parse_args of any earlier test, and
    # Task.init would record that parser's arguments on the controller.
    for name in ("_last_arg_parser", "_last_parsed_args", "_current_task"):
        monkeypatch.setattr(PatchArgumentParser, name, None)

    def build(argv: list[str]):
        parser = pipeline.build_parser()
        args = cli.parse_quietly(parser, argv)  # as pipeline.main parses (unseen by ClearML's argparse binding)
        return args, pipeline.build_controller(args, parser)

    yield build
    current = Task.current_task()
    if current is not None:
        current.close()


# =====================================================================================================
# 1. ClearMLStore: the calls it makes on clearml.Dataset
# =====================================================================================================

@pytest.fixture
def dataset_cls(monkeypatch):
    cls = create_autospec(Dataset)
    instance = create_autospec(Dataset, instance=True)
    instance.id = "ds-created"
    cls.create.return_value = instance
    fetched = create_autospec(Dataset, instance=True)
    fetched.id = "ds-fetched"
    cls.get.return_value = fetched
    monkeypatch.setattr(clearml_store, "Dataset", cls)
    return cls


def test_store_create_passes_name_project_tags_parent_and_storage(dataset_cls, tmp_path):
    draft = clearml_store.ClearMLStore(output_uri="s3://bucket/audio", scratch_root=tmp_path).create(
        "UrbanSound8K features", "Audio Classification", tags=["features"], parent_ids=["ds-raw"],
        description="log-mel features of ds-raw")
    dataset_cls.create.assert_called_once_with(
        dataset_name="UrbanSound8K features", dataset_project="Audio Classification", dataset_tags=["features"],
        parent_datasets=["ds-raw"], output_uri="s3://bucket/audio", description="log-mel features of ds-raw")
    assert draft.id == "ds-created"


def test_store_create_without_parent_passes_none(dataset_cls, tmp_path):
    clearml_store.ClearMLStore(scratch_root=tmp_path).create("raw", "P", tags=["raw"])
    clearml_store.ClearMLStore(scratch_root=tmp_path).create("raw", "P", tags=["raw"], parent_ids=[])
    for made in dataset_cls.create.call_args_list:
        assert made.kwargs["parent_datasets"] is None and made.kwargs["output_uri"] is None


def test_draft_add_files_registers_exactly_the_listed_files(dataset_cls, tmp_path):
    # A stray file in the source (a planted .npy.tmp, a file nobody listed) must never reach the dataset.
    source = tmp_path / "work"
    for rel in ("features/a.npy", "features/b.npy", "features/b.npy.tmp", "features/.c.npy.tmp-1-ab", "x.txt"):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(rel.encode())
    draft = clearml_store.ClearMLStore(scratch_root=tmp_path / "scratch").create("features", "P")
    ds = dataset_cls.create.return_value
    seen = {}
    ds.add_files.side_effect = lambda path, dataset_path=None, recursive=True: seen.update(
        {(dataset_path, p.relative_to(path).as_posix()): p.read_bytes() for p in Path(path).rglob("*") if p.is_file()})
    draft.add_files(source, files=["features/a.npy", "features/b.npy"])
    draft.add_files(source / "features", dataset_path="more")
    assert seen == {(None, "features/a.npy"): b"features/a.npy", (None, "features/b.npy"): b"features/b.npy",
                    ("more", "a.npy"): b"features/a.npy", ("more", "b.npy"): b"features/b.npy",
                    ("more", "b.npy.tmp"): b"features/b.npy.tmp"}  # only the project's own temporaries are skipped
    assert draft.local_path("features/a.npy").read_bytes() == b"features/a.npy"


def test_draft_add_table_adds_a_real_csv_and_shows_each_table_under_its_own_title(dataset_cls, tmp_path):
    draft = clearml_store.ClearMLStore(scratch_root=tmp_path).create("raw", "P")
    ds = dataset_cls.create.return_value
    table = pd.DataFrame({"filepath": ["audio/fold1/a.wav", "audio/fold2/b.wav"], "fold": [1, 2]})
    seen = {}

    def add_files(path, dataset_path=None, **_):  # read the file while it exists (a scratch file)
        seen[(Path(path).name, dataset_path)] = pd.read_csv(path)
        return 1

    ds.add_files.side_effect = add_files
    draft.add_table("metadata.csv", table)
    draft.add_table("tables/label_map.csv", table.head(1))
    assert set(seen) == {("metadata.csv", None), ("label_map.csv", "tables")}
    pd.testing.assert_frame_equal(seen[("metadata.csv", None)], table)
    assert [c.kwargs["metadata_name"] for c in ds.set_metadata.call_args_list] == ["metadata", "label_map"]
    # set_metadata(ui_visible=True) would show every table as "Dataset Metadata", the last one replacing the others.
    assert all(c.kwargs["ui_visible"] is False for c in ds.set_metadata.call_args_list)
    shown = ds.get_logger.return_value.report_table.call_args_list
    assert [c.kwargs["title"] for c in shown] == ["metadata", "label_map"]
    pd.testing.assert_frame_equal(shown[0].kwargs["table_plot"], table)


def test_draft_add_json_adds_the_json_file(dataset_cls, tmp_path):
    draft = clearml_store.ClearMLStore(scratch_root=tmp_path).create("features", "P")
    ds = dataset_cls.create.return_value
    seen = {}
    ds.add_files.side_effect = lambda path, dataset_path=None, **_: seen.update(
        {Path(path).name: (json.loads(Path(path).read_text()), dataset_path)})
    draft.add_json("features.json", {"class_names": ["a", "b"], "shape": [64, 173]})
    assert seen == {"features.json": ({"class_names": ["a", "b"], "shape": [64, 173]}, None)}


def test_draft_finalize_uploads_uncompressed_chunks_then_finalizes(dataset_cls, tmp_path):
    draft = clearml_store.ClearMLStore(scratch_root=tmp_path).create("raw", "P")
    ds = dataset_cls.create.return_value
    added = []
    ds.add_files.side_effect = lambda path, **_: added.append(Path(path))
    ds.upload.side_effect = lambda **_: [pytest.fail(f"{p} gone before upload()") for p in added if not p.is_file()]
    draft.add_table("metadata.csv", pd.DataFrame({"a": [1]}))
    result = draft.finalize()
    names = [c[0] for c in ds.mock_calls]
    assert names.index("upload") < names.index("finalize")
    assert names.count("upload") == 1 and names.count("finalize") == 1
    upload = ds.upload.call_args.kwargs
    assert upload["compression"] == zipfile.ZIP_STORED and upload["chunk_size"] == clearml_store.CHUNK_MB
    assert upload["max_workers"] == (os.cpu_count() or 1)
    assert result.id == "ds-created"
    assert not any(p.exists() for p in added), "the scratch copies are removed once finalized"


def test_draft_discard_deletes_the_unfinished_dataset_on_the_server(dataset_cls, tmp_path):
    draft = clearml_store.ClearMLStore(scratch_root=tmp_path).create("raw", "P")
    draft.discard()
    dataset_cls.delete.assert_called_once_with(dataset_id="ds-created", force=True)
    assert not list(tmp_path.iterdir()), "the scratch folder is gone"


def test_store_get_by_id_with_alias_and_partial_download(dataset_cls, tmp_path):
    fetched = dataset_cls.get.return_value
    listing = ["audio/fold1/a.wav", "features.csv", "features.json", "features/audio/fold1/a.npy",
               "metadata.csv"]
    fetched.list_files.side_effect = lambda dataset_path=None, recursive=True, dataset_id=None: [
        f for f in listing if matches_any_wildcard(f, dataset_path)]
    fetched.get_local_copy.return_value = str(tmp_path)
    dataset = clearml_store.ClearMLStore().get("ds-features", alias="features_dataset",
                                               needs=("features/*", "features.csv", "features.json"), verify=False)
    dataset_cls.get.assert_called_once_with(dataset_id="ds-features", alias="features_dataset")
    assert dataset.path("features.csv") == tmp_path / "features.csv"
    assert dataset.path("features/audio/fold1/a.npy") == tmp_path / "features/audio/fold1/a.npy"
    fetched.get_local_copy.assert_called_once_with(
        files=["features.csv", "features.json", "features/audio/fold1/a.npy"])


def test_store_get_with_verify_checks_the_sha256_of_what_it_fetched(dataset_cls, tmp_path):
    fetched = dataset_cls.get.return_value
    fetched.list_files.side_effect = lambda dataset_path=None, recursive=True, dataset_id=None: [
        f for f in ["features.csv", "features/a.npy"] if matches_any_wildcard(f, dataset_path)]
    fetched.get_local_copy.return_value = str(tmp_path)
    (tmp_path / "features").mkdir()
    (tmp_path / "features.csv").write_text("feature_path\nfeatures/a.npy\n")
    (tmp_path / "features/a.npy").write_bytes(b"spectrogram")
    fetched.file_entries_dict = {rel: SimpleNamespace(hash=fakes.sha256_of(tmp_path / rel), size=0)
                                 for rel in ("features.csv", "features/a.npy")}
    store = clearml_store.ClearMLStore(scratch_root=tmp_path / "scratch")
    assert store.get("ds-f", needs=("features/*", "features.csv"), verify=True).path("features.csv").is_file()
    (tmp_path / "features/a.npy").write_bytes(b"spectrogran")  # a flipped byte in ClearML's cache
    with pytest.raises(clearml_store.DatasetCorrupt, match="features/a.npy"):
        store.get("ds-f", needs=("features/*", "features.csv"), verify=True).path("features.csv")


def test_store_get_without_needs_downloads_everything_once(dataset_cls, tmp_path):
    fetched = dataset_cls.get.return_value
    fetched.get_local_copy.return_value = str(tmp_path)
    (tmp_path / "metadata.csv").write_text("filepath,fold\na.wav,1\n")
    dataset = clearml_store.ClearMLStore().get("ds-raw", verify=False)
    dataset_cls.get.assert_called_once_with(dataset_id="ds-raw", alias=None)
    assert dataset.read_table("metadata.csv")["fold"].tolist() == [1]
    assert dataset.path("audio/x.wav") == tmp_path / "audio/x.wav"
    fetched.get_local_copy.assert_called_once_with()
    fetched.list_files.assert_not_called()


def test_dataset_lineage_and_listing_map_to_the_sdk(dataset_cls):
    fetched = dataset_cls.get.return_value
    fetched.get_dependency_graph.return_value = {"ds-fetched": ["ds-raw"], "ds-raw": []}
    fetched.list_files.return_value = ["x"]
    dataset = clearml_store.ClearMLStore().get("ds-fetched")
    assert dataset.parent_ids == ["ds-raw"]
    dataset.list_files("features/*", added_only=True)
    dataset.list_files()
    assert fetched.list_files.call_args_list == [call(dataset_path="features/*", dataset_id="ds-fetched"),
                                                 call(dataset_path=None, dataset_id=None)]


# =====================================================================================================
# 3. --queue and what start_run does before Task.init
# =====================================================================================================

def _tracking_parser():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--num-clips", type=int, default=5)
    tracking.add_tracking_args(parser, stage="demo")
    return parser


def test_queue_online_enqueues_after_connecting_the_arguments(online):
    online.task.execute_remotely.side_effect = SystemExit(0)  # exit_process=True leaves the process
    parser = _tracking_parser()
    args = parser.parse_args(["--queue", "cpu-queue", "--output-dir", str(online.out)])
    with pytest.raises(SystemExit) as exc:
        tracking.start_run("demo", args, parser)
    assert exc.value.code == 0
    names = [c[0] for c in online.task.mock_calls]
    assert names.index("_connect_argparse") < names.index("execute_remotely")
    online.task._connect_argparse.assert_called_once_with(parser=parser, parsed_args=args, name="Args")
    online.task.execute_remotely.assert_called_once_with(queue_name="cpu-queue", exit_process=True)
    assert not (online.out / "runs").exists(), "nothing runs here once enqueued"


def test_queue_stage_does_no_work_here(online):
    online.task.execute_remotely.side_effect = SystemExit(0)
    with pytest.raises(SystemExit):
        preprocessing.main(["--dataset-id", "ds-x", "--queue", "gpu", "--output-dir", str(online.out)])
    online.server.Dataset.get.assert_not_called()
    online.task.execute_remotely.assert_called_once_with(queue_name="gpu", exit_process=True)


def test_queue_offline_is_an_error_naming_the_server(monkeypatch, tmp_path, capsys):
    task_cls, _, _ = fakes.online_task()
    monkeypatch.setattr(tracking, "Task", task_cls)
    parser = _tracking_parser()
    args = parser.parse_args(["--offline", "--queue", "cpu-queue", "--output-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exc:
        tracking.start_run("demo", args, parser)
    message = capsys.readouterr().err
    assert exc.value.code == 2, "a user error: exit status 2, as the README says"
    assert "server" in message and "--queue cpu-queue" in message and "--offline" in message
    task_cls.init.assert_not_called()


def test_online_forces_requirements_file_before_task_init_and_caps_retries(online):
    parser = _tracking_parser()
    args = parser.parse_args(["--output-dir", str(online.out)])
    run = tracking.start_run("demo", args, parser, task_type="training", tags=["t"])
    run.close()
    names = [c[0] for c in online.Task.mock_calls]
    assert names.index("force_requirements_env_freeze") < names.index("init")
    online.Task.force_requirements_env_freeze.assert_called_once_with(
        force=True, requirements_file=str(REPO / "requirements.txt"))
    assert (REPO / "requirements.txt").is_file()
    assert "clearml" in (REPO / "requirements.txt").read_text(), "the frozen list replaces detection: list clearml"
    (overrides,), _ = online.config.set_overrides.call_args
    retries = overrides["api"]["http"]["retries"]
    assert retries["total"] <= 5 and retries["backoff_max"] <= 5
    assert overrides["sdk"]["development"]["report_use_subprocess"] is False
    init = online.Task.init.call_args.kwargs
    assert init["task_type"] is online.Task.TaskTypes.training and init["tags"] == ["t"]
    assert init["auto_connect_arg_parser"] is False and init["auto_resource_monitoring"] is True
    assert init["auto_connect_frameworks"]["pytorch"] is False
    assert run.offline is False and run.web_url() == online.task.get_output_log_web_page.return_value
    assert isinstance(tracking.open_store(run), clearml_store.ClearMLStore)


@pytest.mark.parametrize("stage, argv", [
    (get_data, ["--num-clips", "50", "--classes", "dog_bark", "siren", "--cache-dir", "/tmp/cache",
                "--tags", "a", "b", "--storage", "s3://b/p"]),
    (preprocessing, ["--dataset-id", "abc", "--n-mels", "32", "--f-max", "8000", "--device", "cpu"]),
    (training, ["--dataset-id", "abc", "--test-fold", "3", "--val-fold", "2", "--export", "onnx", "--lr", "0.01",
                "--no-augment"]),
    (cross_validation, ["--training-tasks", "a,b"]),
], ids=["get_data", "preprocessing", "training", "cross_validation"])
def test_queued_stage_gets_its_arguments_back_under_the_agent(stage, argv, tmp_path, monkeypatch):
    """--queue: the agent re-runs the script with no command line; argparse must give the same arguments."""
    parser = stage.build_parser()
    args = parser.parse_args(argv + ["--offline", "--output-dir", str(tmp_path)])
    run = tracking.start_run("roundtrip", args, parser)  # records Args/ exactly as online (same connect call)
    try:
        agent = agent_parse(run.task, stage.build_parser, Path(stage.__file__).name, monkeypatch)
    finally:
        run.close()
    assert vars(agent) == vars(args)


def test_queued_training_with_folds_gets_its_folds_back_under_the_agent(tmp_path, monkeypatch):
    parser = training.build_parser()
    args = parser.parse_args(["--dataset-id", "abc", "--folds", "1,2,3", "--offline", "--output-dir", str(tmp_path)])
    run = tracking.start_run("roundtrip", args, parser)
    try:
        agent = agent_parse(run.task, training.build_parser, "training.py", monkeypatch)
    finally:
        run.close()
    assert agent.folds == [1, 2, 3]


# =====================================================================================================
# 4. An unreachable server, for real
# =====================================================================================================

def test_unreachable_server_fails_fast_naming_the_host_and_offline(tmp_path):
    env = clean_subprocess_env(tmp_path)
    env.update(CLEARML_API_HOST="http://127.0.0.1:9", CLEARML_WEB_HOST="http://127.0.0.1:9",
               CLEARML_FILES_HOST="http://127.0.0.1:9", CLEARML_API_ACCESS_KEY="dummy-access-key",
               CLEARML_API_SECRET_KEY="dummy-secret-key")
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, str(REPO / "get_data.py"), "--num-clips", "10", "--workers", "1",
                               "--output-dir", str(tmp_path / "out")],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"BUG: get_data.py hangs for 90 s against an unreachable server; output: {exc.stderr!r}")
    elapsed = time.monotonic() - started
    assert done.returncode != 0
    assert elapsed < 60, f"took {elapsed:.0f} s to give up"
    assert "127.0.0.1:9" in done.stderr and "--offline" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out" / "datasets").exists(), "nothing is registered"
    assert not list((tmp_path / "clearml-cache").glob("offline/offline-*")), "no silent fallback to offline"


# =====================================================================================================
# 5. The pipeline graph, with the real PipelineController offline
# =====================================================================================================

@pytest.mark.parametrize("folds, no_cache", [("10", False), ("1,2,3", False), ("all", False), ("1,2,3", True)],
                         ids=["one-fold", "three-folds", "all-folds", "three-folds-no-cache"])
def test_pipeline_dag(offline_controller, folds, no_cache):
    argv = ["--folds", folds, "--steps-queue", "cpu-q", "--gpu-queue", "gpu-q", "--num-clips", "77", "--seed", "5",
            "--model", "resnet18", "--epochs", "3", "--device", "cuda", "--source", "urbansound8k", "--project", "Proj"]
    args, pipe = offline_controller(argv + (["--no-cache"] if no_cache else []))
    dag = pipe.get_pipeline_dag()
    fold_list = list(range(1, 11)) if folds == "all" else [int(f) for f in folds.split(",")]
    trainings = ["training"] if len(fold_list) == 1 else [f"training_fold{f}" for f in fold_list]
    expected = ["get_data", "preprocessing", *trainings] + (["cross_validation"] if len(fold_list) > 1 else [])
    assert list(dag) == expected

    assert dag["get_data"].parents == [] and dag["preprocessing"].parents == ["get_data"]
    for name in trainings:
        assert dag[name].parents == ["preprocessing"]
    queues = {name: node.queue for name, node in dag.items()}
    assert queues == {name: ("gpu-q" if name in ["preprocessing", *trainings] else "cpu-q") for name in expected}
    cached = {name for name, node in dag.items() if node.cache_executed_step}
    assert cached == (set() if no_cache else {"get_data", "preprocessing"})

    params = {name: node.parameters for name, node in dag.items()}
    for name, overrides in params.items():
        assert all("/" in key for key in overrides), f"{name}: every override needs a section: {overrides}"
        assert overrides["Args/project"] == "Proj" and overrides["Args/offline"] == "False"
    # The source is fixed when the DAG is built (it decides the folds, one training step each): not a
    # pipeline parameter a UI rerun could change under a DAG built for other folds.
    assert params["get_data"]["Args/source"] == "urbansound8k"
    # A real source has no clip count to change: --num-clips is not a parameter of its pipeline.
    assert "Args/num_clips" not in params["get_data"]
    # Issue 35: --seed is training's seed (a pipeline parameter), --data-seed get_data's (fixed with the source).
    assert params["get_data"]["Args/data_seed"] == "0" and "Args/seed" not in params["get_data"]
    assert params["preprocessing"]["Args/dataset_id"] == "${get_data.parameters.General/dataset_id}"
    assert params["preprocessing"]["Args/device"] == "${pipeline.device}"
    for name, fold in zip(trainings, fold_list):
        assert params[name]["Args/dataset_id"] == "${preprocessing.parameters.General/dataset_id}"
        assert params[name]["Args/test_fold"] == str(fold)
        assert params[name]["Args/model"] == "${pipeline.model}" and params[name]["Args/epochs"] == "${pipeline.epochs}"
        assert "Args/task_name" not in params[name], "each step names its task after its own settings"
        assert params[name]["Args/seed"] == "${pipeline.seed}"
    if len(fold_list) > 1:
        assert dag["cross_validation"].parents == trainings
        referenced = params["cross_validation"]["Args/training_tasks"].split(",")
        assert referenced == [f"${{{name}.id}}" for name in trainings]
        assert not dag["cross_validation"].cache_executed_step

    # The steps read those overrides: each Args/<key> is an argparse dest of the step's script.
    dests = {name: {a.dest for a in importlib.import_module(name).build_parser()._actions}
             for name, step in pipeline.STEPS.items()}
    for name, overrides in params.items():
        script = "training" if name.startswith("training") else name
        assert {k.split("/", 1)[1] for k in overrides} <= dests[script], name

    assert pipe.get_parameters() == {"seed": 5, "model": "resnet18", "epochs": "3", "device": "cuda"}
    # Every step is created by its factory (no template lookups on a server).
    assert all(node.base_task_id is None and callable(node.task_factory_func) for node in dag.values())


@pytest.mark.parametrize("folds, trainings", [(None, ["training"]),
                                               ("all", [f"training_fold{f}" for f in range(1, 6)])],
                         ids=["default", "all"])
def test_pipeline_dag_esc50_has_five_folds(offline_controller, folds, trainings):
    _, pipe = offline_controller(["--source", "esc50"] + (["--folds", folds] if folds else []))
    dag = pipe.get_pipeline_dag()
    assert [name for name in dag if name.startswith("training")] == trainings
    if folds:
        assert dag[trainings[-1]].parameters["Args/test_fold"] == "5"
    else:  # one step; training.py takes the dataset's last fold when it runs (5 for ESC-50)
        assert "Args/test_fold" not in dag["training"].parameters


def test_pipeline_rejects_folds_the_source_does_not_have(capsys):
    with pytest.raises(SystemExit) as exc:
        pipeline.main(["--source", "esc50", "--folds", "4,10", "--offline"])
    assert exc.value.code == 2
    assert "--folds 10: esc50 has the folds 1..5" in capsys.readouterr().err


def test_pipeline_task_factories_create_each_step_from_its_script(offline_controller, monkeypatch):
    _, pipe = offline_controller(["--folds", "1,2", "--project", "Proj"])
    # The factories hold clearml.Task (imported when the DAG was built): patch its create() classmethod.
    create = create_autospec(Task.create)
    made = create_autospec(Task, instance=True)
    create.return_value = made
    monkeypatch.setattr(Task, "create", create)
    dag = pipe.get_pipeline_dag()
    for name, node in dag.items():
        assert node.task_factory_func(node) is made
    scripts = {c.kwargs["task_name"]: c.kwargs for c in create.call_args_list}
    expected = {"get_data": ("get_data.py", "data_processing"), "preprocessing": ("preprocessing.py", "data_processing"),
                "training_fold1": ("training.py", "training"), "training_fold2": ("training.py", "training"),
                "cross_validation": ("cross_validation.py", "qc")}
    assert set(scripts) == set(expected)
    for name, (script, task_type) in expected.items():
        kwargs = scripts[name]
        assert kwargs["script"] == script and (REPO / script).is_file()
        # next to the pipeline: in the controller's own project
        assert kwargs["task_type"] == task_type and kwargs["project_name"] == pipe._task.get_project_name()
        assert kwargs["repo"] == str(REPO) and kwargs["working_directory"] == "."
        assert kwargs["requirements_file"].endswith("requirements.txt") and Path(kwargs["requirements_file"]).is_file()
        assert kwargs["add_task_init_call"] is False, "the scripts call Task.init themselves"


def test_pipeline_from_template_project_clones_templates_by_name(monkeypatch):
    controller_cls = create_autospec(PipelineController)
    monkeypatch.setattr(clearml, "PipelineController", controller_cls)
    args = pipeline.build_parser().parse_args(["--template-project", "Templates", "--folds", "1,2",
                                               "--pipeline-name", "P1"])
    pipe = pipeline.build_controller(args)
    assert pipe is controller_cls.return_value
    controller_cls.assert_called_once_with(name="P1", project="Audio Classification", version="1.0.0",
                                           add_pipeline_tags=False, abort_on_failure=True)
    steps = [(c.kwargs["name"], c.kwargs.get("base_task_project"), c.kwargs.get("base_task_name"),
              c.kwargs.get("base_task_factory")) for c in pipe.add_step.call_args_list]
    assert steps == [("get_data", "Templates", "get_data", None), ("preprocessing", "Templates", "preprocessing", None),
                     ("training_fold1", "Templates", "training", None), ("training_fold2", "Templates", "training", None),
                     ("cross_validation", "Templates", "cross_validation", None)]
    pipe.set_default_execution_queue.assert_called_once_with("default")
    assert {c.kwargs["name"] for c in pipe.add_parameter.call_args_list} == {
        "num_clips", "seed", "model", "epochs", "device"}


def controller_on_agent(pipe, parser=None, **ui_changes) -> argparse.Namespace:
    """The arguments a controller run by an agent builds its DAG from (pipeline.main under an agent: no command
    line, then build_controller's restore_arguments), after what ``pipe.start()`` records on its task; with
    ``ui_changes``, after a NEW RUN from the web UI changed those Args/ of the cloned controller."""
    pipe._verify()
    pipe._serialize_pipeline_task()  # what start() records before it enqueues the controller
    task = pipe.task
    for name, value in ui_changes.items():
        task.set_parameter(f"Args/{name}", value)
    parser = parser or pipeline.build_parser()
    args = cli.parse_quietly(parser, [])  # the agent starts pipeline.py with no arguments
    pipeline.restore_arguments(task, parser, args, task.get_configuration_object_as_dict(pipeline.FIXED_CONFIG))
    return args


def test_pipeline_controller_gets_default_arguments_back_under_the_agent(offline_controller):
    """Online with --queue the controller runs on the services agent, which runs pipeline.py again."""
    args, pipe = offline_controller(["--num-clips", "50", "--epochs", "3", "--gpu-queue", "g"])
    agent = controller_on_agent(pipe)
    assert (agent.folds, agent.num_clips, agent.epochs, agent.gpu_queue) == (args.folds, 50, 3, "g")
    assert pipeline.step_folds(agent) == [None], "the default: one step on the dataset's last fold (chosen at run time)"


@pytest.mark.parametrize("classes", [["dog_bark", "siren"], ["dog_bark,siren"]])
def test_pipeline_controller_gets_its_classes_back_under_the_agent(offline_controller, classes):
    _, pipe = offline_controller(["--classes", *classes, "--training-args", "--lr 0.002"])
    agent = controller_on_agent(pipe)
    assert cli.name_list(agent.classes) == ["dog_bark", "siren"] and agent.training_args == "--lr 0.002"
    assert pipe.get_pipeline_dag()["get_data"].parameters["Args/classes"] == "dog_bark,siren"


def test_pipeline_controller_gets_its_folds_back_under_the_agent(offline_controller):
    _, pipe = offline_controller(["--folds", "1,2,3"])
    assert controller_on_agent(pipe).folds == [1, 2, 3]


def test_the_controllers_args_are_exactly_the_pipeline_parameters(offline_controller):
    """The web UI's NEW RUN dialog offers the controller task's Args/: they must be the parameters a rerun can
    change (not --offline, --output-dir, the queues or --source), and every other argument is kept where the
    controller on an agent finds it."""
    _, pipe = offline_controller(["--folds", "9,10", "--width", "8", "--steps-queue", "cpu-q", "--project", "P",
                                  "--output-dir", "/somewhere/local"])
    controller_on_agent(pipe)
    args_section = {k.split("/", 1)[1] for k in pipe.task.get_parameters() if k.startswith("Args/")}
    assert args_section == {"num_clips", "seed", "model", "epochs", "width", "device"}
    fixed = pipe.task.get_configuration_object_as_dict(pipeline.FIXED_CONFIG)
    assert fixed["folds"] == [9, 10] and fixed["steps_queue"] == "cpu-q" and fixed["project"] == "P"
    assert "output_dir" not in fixed and "offline" not in fixed, "what only the launching machine uses stays there"


def test_a_real_source_has_no_clip_count_parameter(offline_controller):
    _, pipe = offline_controller(["--source", "urbansound8k"])
    controller_on_agent(pipe)
    assert "Args/num_clips" not in pipe.task.get_parameters()


def test_a_new_run_from_the_ui_with_other_parameters_reaches_the_agent(offline_controller, capsys):
    _, pipe = offline_controller(["--epochs", "3", "--width", "8", "--folds", "9,10"])
    agent = controller_on_agent(pipe, epochs="5", width="16", seed="7", device="cpu")
    assert (agent.epochs, agent.width, agent.seed, agent.device, agent.folds) == (5, 16, 7, "cpu", [9, 10])
    with pytest.raises(SystemExit) as exc:
        controller_on_agent(pipe, epochs="0")
    assert exc.value.code == 2
    assert "pipeline parameter epochs='0'" in capsys.readouterr().err


@pytest.fixture
def launch(monkeypatch):
    pipe = create_autospec(PipelineController, instance=True)
    checked = []

    def check_queues(queues):
        checked.append(list(queues))
        return [], ["queue 'gpu' has no agent listening: start one with: clearml-agent daemon --queue gpu --gpus 0"]

    pipe.task = create_autospec(Task, instance=True)
    pipe.task.get_output_log_web_page.return_value = "https://app.example/projects/p/tasks/ctrl/output/log"
    results = {"pipeline": {"status": "completed", "url": "https://app.example/tasks/ctrl/"},
               "get_data": {"dataset_id": "raw-1", "status": "completed", "url": "u1"},
               "preprocessing": {"dataset_id": "feat-1", "status": "completed", "url": "u2"},
               "training": {"test_fold": 10, "test": {"accuracy": 0.5, "f1_macro": 0.4}, "model_id": "m-1",
                            "status": "completed", "url": "u3"}}
    monkeypatch.setattr(pipeline, "build_controller", lambda args, parser=None: pipe)
    monkeypatch.setattr(enqueue, "check_queues", check_queues)
    # The code check needs a pushed repository: tests/test_enqueue_checks.py has it.
    monkeypatch.setattr(enqueue.repository, "check_before_enqueue", lambda root, what: [])
    monkeypatch.setattr(pipeline, "online_results", lambda p: results)
    monkeypatch.setattr(tracking, "decide_offline", lambda flag: (False, ONLINE_REASON))
    return SimpleNamespace(pipe=pipe, checked=checked, results=results)


def test_run_online_local_runs_the_controller_here_and_ends_with_a_summary(launch, capsys):
    """Issue 35: with no --queue the controller runs here (as --queue means in every script), steps on agents."""
    assert pipeline.main([]) == launch.results
    launch.pipe.start_locally.assert_called_once_with(run_pipeline_steps_locally=False)
    launch.pipe.start.assert_not_called()
    assert launch.checked == [["default", "gpu"]], "no controller queue is needed without --queue"
    captured = capsys.readouterr()
    assert "warning: queue 'gpu' has no agent listening" in captured.err
    summary = captured.out.split("=== pipeline summary ===")[1]
    assert "raw-1" in summary and "feat-1" in summary and "accuracy 0.5000" in summary and "m-1" in summary


def test_run_online_local_fails_when_a_step_failed(launch, capsys):
    launch.results["training"] = {"status": "failed", "url": "u3"}
    with pytest.raises(SystemExit) as stopped:
        pipeline.main([])
    assert stopped.value.code == 1 and "training failed" in capsys.readouterr().err


def test_run_online_enqueues_the_controller(launch, capsys):
    pipeline.main(["--queue", "svc"])
    launch.pipe.start.assert_called_once_with(queue="svc")
    launch.pipe.start_locally.assert_not_called()
    assert launch.checked == [["default", "gpu", "svc"]]
    captured = capsys.readouterr()
    assert "clearml-agent daemon --queue gpu" in captured.err and "svc" in captured.out
    assert "follow it at https://app.example/projects/p/tasks/ctrl/output/log" in captured.out


def test_run_online_launches_even_when_the_queue_check_fails(launch, monkeypatch, capsys):
    def broken(queues):
        raise ConnectionError("server went away")

    monkeypatch.setattr(enqueue, "check_queues", broken)
    pipeline.main(["--queue", "services"])
    launch.pipe.start.assert_called_once_with(queue="services")
    assert "could not check the queues (ConnectionError: server went away)" in capsys.readouterr().err


def test_run_online_refuses_a_queue_that_does_not_exist_before_any_task_exists(launch, monkeypatch, capsys):
    """Issue 34, item 6: the steps on a queue that does not exist would never start; refused before the
    controller's task is created, naming the command that creates the queue."""
    missing = "queue 'gpu' does not exist: create it in the web UI (Orchestration > Queues) or start an agent with: " \
              "clearml-agent daemon --queue gpu --create-queue"
    monkeypatch.setattr(enqueue, "check_queues", lambda queues: ([missing], []))
    built = []
    monkeypatch.setattr(pipeline, "build_controller", lambda args: built.append(args))
    with pytest.raises(SystemExit) as exc:
        pipeline.main([])
    assert exc.value.code == 2 and not built
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {missing}"]


def test_run_locally_runs_the_controller_and_the_steps_here_from_the_repository(launch, monkeypatch, tmp_path,
                                                                               capsys):
    """Issue 30, item 6: --run-locally: every step in this process's machine, reporting to the server."""
    monkeypatch.chdir(tmp_path)  # started from elsewhere: the steps still run from the repository root
    assert pipeline.main(["--run-locally", "--output-dir", "rel-out"]) == launch.results
    launch.pipe.start_locally.assert_called_once_with(run_pipeline_steps_locally=True)
    launch.pipe.start.assert_not_called()
    assert launch.checked == [], "no agent queue is involved"
    assert Path.cwd() == REPO
    assert "the steps run here too" in capsys.readouterr().out


def test_run_locally_needs_a_server(monkeypatch, capsys):
    monkeypatch.setattr(tracking, "decide_offline", lambda flag: (True, "no ClearML credentials are configured"))
    with pytest.raises(SystemExit) as exc:
        pipeline.main(["--run-locally"])
    assert exc.value.code == 2 and "--run-locally reports to a ClearML server" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pipeline.main(["--run-locally", "--queue", "svc"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_pipeline_passes_stage_flags_to_its_steps(offline_controller):
    """Issue 30, item 6: --get-data-args, --preprocessing-args, --training-args become each step's Args/."""
    args, pipe = offline_controller(["--folds", "9,10", "--get-data-args", "--workers 3",
                                     "--preprocessing-args", "--pad zero --n-mels=32",
                                     "--training-args", "--lr 0.003 --no-amp --select=best-val"])
    dag = pipe.get_pipeline_dag()
    assert dag["get_data"].parameters["Args/workers"] == "3"
    assert {k: dag["preprocessing"].parameters[k] for k in ("Args/pad", "Args/n_mels")} == {
        "Args/pad": "zero", "Args/n_mels": "32"}
    for name in ("training_fold9", "training_fold10"):
        params = dag[name].parameters
        assert (params["Args/lr"], params["Args/no_amp"], params["Args/select"]) == ("0.003", "True", "best-val")
    # Offline, the same flags end each step's command line.
    argv = pipeline.step_arguments(args)
    assert argv["preprocessing"][argv["preprocessing"].index("--pad") + 1] == "zero"
    assert "--no-amp" in argv["training"] and "--select=best-val" in argv["training"]
    parsed = preprocessing.build_parser().parse_args(argv["preprocessing"] + ["--dataset-id", "x"])
    assert (parsed.pad, parsed.n_mels) == ("zero", 32)


@pytest.mark.parametrize("argv, phrase", [
    (["--training-args", "--epochs 3"], "--training-args: --epochs is set by the pipeline; use pipeline.py --epochs"),
    (["--training-args", "--test-fold 2"], "use pipeline.py --folds"),
    (["--preprocessing-args", "--pad hmm"], "--preprocessing-args: argument --pad: invalid choice: 'hmm'"),
    (["--preprocessing-args=--n-mels"], "--preprocessing-args: --n-mels needs a value"),
    (["--training-args", "--nope 1"], "--training-args: '--nope' is not a flag of"),
    (["--get-data-args", "--source esc50"], "use pipeline.py --source"),
    (["--training-args", "--queue gpu"], "use --steps-queue / --gpu-queue"),
])
def test_pipeline_refuses_bad_stage_flags_before_anything_runs(argv, phrase, capsys, clearml_cache_dir, tmp_path):
    before = set((clearml_cache_dir / "offline").glob("offline-*"))
    with pytest.raises(SystemExit) as exc:
        pipeline.main([*argv, "--offline", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and phrase in err and "Traceback" not in err
    assert set((clearml_cache_dir / "offline").glob("offline-*")) == before and not (tmp_path / "runs").exists()


# =====================================================================================================
# 6. check_queues against a fake APIClient
# =====================================================================================================

def _with_client(monkeypatch, queues, workers):
    client_cls, client = fakes.fake_api_client(queues, workers)
    monkeypatch.setattr(api_client_module, "APIClient", client_cls)
    return client


def test_check_queues_missing_queue(monkeypatch):
    client = _with_client(monkeypatch, queues=[("default", "q-default")], workers=[["q-default"]])
    missing, unserved = enqueue.check_queues(["default", "gpu"])
    assert len(missing) == 1 and unserved == []
    assert "'gpu' does not exist" in missing[0]
    assert "clearml-agent daemon --queue gpu --create-queue" in missing[0]
    assert client.queues.get_all.call_args_list == [call(name="^default$"), call(name="^gpu$")]


def test_check_queues_queue_without_worker(monkeypatch):
    _with_client(monkeypatch, queues=[("default", "q1"), ("gpu", "q2"), ("services", "q3")], workers=[["q1"]])
    missing, warnings = enqueue.check_queues(["default", "gpu", "services"])
    assert len(warnings) == 2 and missing == []
    assert "'gpu' has no agent listening" in warnings[0] and "clearml-agent daemon --queue gpu --gpus 0" in warnings[0]
    assert "clearml-agent daemon --queue services --services-mode" in warnings[1]


def test_check_queues_served_queues_give_no_warning(monkeypatch):
    _with_client(monkeypatch, queues=[("default", "q1"), ("gpu", "q2")], workers=[["q1"], ["q2", "q1"]])
    assert enqueue.check_queues(["default", "gpu", "default"]) == ([], [])


def test_check_queues_matches_names_exactly(monkeypatch):
    # The server filters by regex: 'gpu' also matches 'gpu-big', and 'a.b' matches 'aXb'.
    _with_client(monkeypatch, queues=[("gpu-big", "q-big"), ("gpu", "q-gpu"), ("aXb", "q-axb"), ("a.b", "q-ab")],
                 workers=[["q-big", "q-axb"]])
    missing, warnings = enqueue.check_queues(["gpu", "a.b"])
    assert len(warnings) == 2 and missing == []
    assert "'gpu' has no agent" in warnings[0] and "'a.b' has no agent" in warnings[1]


# =====================================================================================================
# 7. Cross-validation
# =====================================================================================================

def _fold(fold, accuracy, f1, num_test=10):
    return {"test_fold": fold, "test": {"accuracy": accuracy, "f1_macro": f1}, "num_test": num_test}


def test_summarize_folds_mean_population_std_and_summed_matrix():
    per_fold = [_fold(3, 0.5, 0.4), _fold(1, 1.0, 0.8, 4)]
    matrices = [np.array([[3, 1], [0, 6]]), np.array([[2, 0], [0, 2]])]
    table, summary, total = crossval.summarize_folds(per_fold, matrices)
    assert table["test_fold"].tolist() == [1, 3] and table["num_test"].tolist() == [4, 10]
    assert summary["folds"] == [1, 3]
    assert summary["accuracy_mean"] == pytest.approx(0.75) and summary["accuracy_std"] == pytest.approx(0.25)
    assert summary["f1_macro_mean"] == pytest.approx(0.6) and summary["f1_macro_std"] == pytest.approx(0.2)
    assert np.array_equal(total, [[5, 1], [0, 8]])


@pytest.mark.parametrize("per_fold, matrices, message", [
    ([], [], "no folds"),
    ([_fold(1, 1, 1), _fold(1, 0, 0)], [np.eye(2), np.eye(2)], "twice"),
    ([_fold(1, 1, 1), _fold(2, 0, 0)], [np.eye(2)], "2 fold results but 1"),
    ([_fold(1, 1, 1), _fold(2, 0, 0)], [np.eye(2), np.eye(3)], "differ in shape"),
], ids=["empty", "duplicate-fold", "lengths", "shapes"])
def test_summarize_folds_rejects_bad_input(per_fold, matrices, message):
    with pytest.raises(UserError, match=message):
        crossval.summarize_folds(per_fold, matrices)


def test_cross_validation_offline_on_two_training_runs(offline_runs, tmp_path):
    run_dirs = [t["run_dir"] for t in offline_runs.trainings]
    result = cross_validation.main(["--run-dirs", *run_dirs, "--offline", "--output-dir", str(tmp_path)])
    out = Path(result["run_dir"])
    saved = json.loads((out / "cross_validation.json").read_text())
    assert saved["folds"] == [9, 10] == result["folds"]
    per_fold = pd.read_csv(out / "per_fold.csv")
    assert per_fold["test_fold"].tolist() == [9, 10]
    accuracies = {t["test_fold"]: t["test"]["accuracy"] for t in offline_runs.trainings}
    assert per_fold["accuracy"].tolist() == pytest.approx([accuracies[9], accuracies[10]])
    assert saved["accuracy_mean"] == pytest.approx(np.mean(list(accuracies.values())))
    total = pd.read_csv(out / "confusion_matrix_all_folds.csv", index_col=0).to_numpy()
    folds_sum = sum(pd.read_csv(Path(d) / "confusion_matrix.csv", index_col=0).to_numpy() for d in run_dirs)
    assert np.array_equal(total, folds_sum)
    assert (out / "confusion_matrix_all_folds.png").stat().st_size > 1000
    heatmaps = [json.loads(e["plot_str"]) for e in session_events(result["session_dir"])
                if e["type"] == "plot" and e["metric"] == "Confusion matrix"]
    assert heatmaps and heatmaps[0]["data"][0]["type"] == "heatmap"
    assert np.array_equal(np.array(heatmaps[0]["data"][0]["z"]), folds_sum)
    task = json.loads((Path(result["session_dir"]) / "task.json").read_text())
    assert {"cross_validation", "confusion_matrix_all_folds"} <= {a["key"] for a in task["execution"]["artifacts"]}


def test_load_tasks_reads_metrics_and_confusion_artifacts(monkeypatch):
    getter = create_autospec(Task)
    made = {}

    def get_task(task_id=None, **_):
        task = create_autospec(Task, instance=True)
        metrics = create_autospec(Artifact, instance=True)
        confusion = create_autospec(Artifact, instance=True)
        metrics.get.return_value = _fold(int(task_id[-1]), 0.5, 0.5)
        confusion.get.return_value = pd.DataFrame(np.eye(3, dtype=int) * int(task_id[-1]),
                                                  index=list("xyz"), columns=list("xyz"))
        task.artifacts = {"metrics": metrics, "confusion_matrix": confusion}
        made[task_id] = task
        return task

    getter.get_task.side_effect = get_task
    monkeypatch.setattr(clearml, "Task", getter)
    per_fold, matrices, class_names = crossval.load_tasks(["task-2", "task-5"])
    assert getter.get_task.call_args_list == [call(task_id="task-2"), call(task_id="task-5")]
    assert [m["test_fold"] for m in per_fold] == [2, 5]
    assert [m.dtype for m in matrices] == [np.int64, np.int64]
    assert np.array_equal(matrices[1], np.eye(3) * 5) and class_names == ["x", "y", "z"]
    for task in made.values():
        task.artifacts["metrics"].get.assert_called_once_with()


# =====================================================================================================
# 8. Offline -> server: sync.push_datasets, import_sessions, push_offline.py
# =====================================================================================================

@pytest.fixture
def local_store(offline_runs, tmp_path):
    """A private copy of the offline store (push writes clearml_ids.json into it)."""
    import shutil

    root = tmp_path / "outputs" / "datasets"
    shutil.copytree(offline_runs.store.root, root, symlinks=True)
    return LocalStore(root)


@pytest.fixture
def pushed_to(monkeypatch, tmp_path):
    server = fakes.FakeDatasetServer(tmp_path / "server", id_prefix="srv")
    monkeypatch.setattr(clearml, "Dataset", server.Dataset)
    return server


def test_push_datasets_keeps_the_lineage_and_uploads_each_file_once(local_store, pushed_to, offline_runs):
    raw_local, feat_local = offline_runs.raw["dataset_id"], offline_runs.features["dataset_id"]
    id_map = sync.push_datasets(local_store)

    raw_rec, feat_rec = pushed_to.created()
    assert id_map == {raw_local: raw_rec.id, feat_local: feat_rec.id}
    create_calls = pushed_to.Dataset.create.call_args_list
    assert create_calls[0].kwargs["parent_datasets"] is None
    assert create_calls[1].kwargs["parent_datasets"] == [raw_rec.id]
    assert create_calls[0].kwargs["dataset_name"] == f"UrbanSound8K raw (synthetic, {NUM_CLIPS} clips, seed 1)"
    assert "imported-from-offline" in create_calls[1].kwargs["dataset_tags"]
    assert raw_local in create_calls[0].kwargs["description"]
    adds = [e for e in pushed_to.events if e[0] == "add_files"]
    assert [(e[1], e[2]) for e in adds] == [(raw_rec.id, str(local_store.root / raw_local / "files")),
                                           (feat_rec.id, str(local_store.root / feat_local / "files"))]
    per_dataset = [[e[0] for e in pushed_to.events if e[1] == rec.id] for rec in (raw_rec, feat_rec)]
    assert per_dataset == [["create", "add_files", "upload", "finalize"]] * 2
    assert pushed_to.own_files(feat_rec.id) == set(local_store.get(feat_local).list_files(added_only=True))
    assert not [f for f in pushed_to.own_files(feat_rec.id) if f.endswith(".wav")]
    assert set(feat_rec.files) == set(local_store.get(feat_local).list_files())
    assert json.loads((local_store.root / sync.ID_MAP_FILE).read_text()) == id_map

    assert sync.push_datasets(local_store) == id_map
    assert pushed_to.Dataset.create.call_count == 2, "a rerun pushes nothing twice"


def test_push_selected_dataset_brings_its_ancestors_only(local_store, pushed_to, offline_runs):
    raw_local = offline_runs.raw["dataset_id"]
    assert list(sync.push_datasets(local_store, [raw_local])) == [raw_local]
    assert len(pushed_to.created()) == 1
    id_map = sync.push_datasets(local_store, [offline_runs.features["dataset_id"]])
    assert len(id_map) == 2 and len(pushed_to.created()) == 2


def test_the_model_file_of_an_offline_training_session_is_found_in_its_folder_and_its_zip(offline_runs):
    """Issue 34, item 2: what push_offline.py registers as the imported task's output model (the registration
    itself needs a server: tests/integration/test_serving_online.py)."""
    training_run = offline_runs.trainings[0]
    session = Path(training_run["session_dir"])
    model_file = Path(training_run["model_path"]).read_bytes()
    (name, (path, fold)), = sync.session_models(session).items()
    assert (name, fold) == ("model", None) and path.read_bytes() == model_file
    # Registered as training.py registers it online: named after the run's settings, tagged, published.
    wanted = sync.session_model_settings(session)["model"]
    assert wanted["name"].startswith("audio classifier cnn fold ") and wanted["publish"] is True
    assert tracking.SERVING_TAG in wanted["tags"] and "cnn" in wanted["tags"]
    with sync._session_folder(session.with_name(session.name + ".zip")) as extracted:
        assert extracted != session
        (path,) = [p for p, _ in sync.session_models(extracted).values()]
        assert path.read_bytes() == model_file
    assert not extracted.exists(), "the zip's temporary folder is removed"
    assert sync.session_models(session.parent / "no-such-session") == {}


def test_import_sessions_imports_each_session(monkeypatch, tmp_path):
    task_cls = create_autospec(Task)
    task_cls.import_offline_session.side_effect = ["task-a", "task-b"]
    monkeypatch.setattr(clearml, "Task", task_cls)
    sessions = [tmp_path / "offline-1", tmp_path / "offline-2.zip"]
    assert sync.import_sessions(sessions) == {str(sessions[0]): "task-a", str(sessions[1]): "task-b"}
    assert task_cls.import_offline_session.call_args_list == [call(session_folder_zip=str(s)) for s in sessions]


def test_push_offline_main_with_credentials(local_store, pushed_to, monkeypatch, tmp_path):
    for name in ("CLEARML_OFFLINE_MODE", "CLEARML_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "key")
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "secret")
    task_cls = create_autospec(Task)
    task_cls.import_offline_session.return_value = "task-imported"
    monkeypatch.setattr(clearml, "Task", task_cls)
    session = tmp_path / "offline-abc"
    session.mkdir()
    result = push_offline.main(["--output-dir", str(local_store.root.parent), "--sessions", str(session)])
    assert len(result["datasets"]) == 2 and result["sessions"] == {str(session): "task-imported"}
    result = push_offline.main(["--output-dir", str(local_store.root.parent), "--no-datasets",
                                "--sessions", str(session)])
    assert result["datasets"] == {} and pushed_to.Dataset.create.call_count == 2


def test_push_offline_without_credentials_exits_2(tmp_path):
    env = clean_subprocess_env(tmp_path)
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    env["CLEARML_CONFIG_FILE"] = str(empty)
    done = subprocess.run([sys.executable, str(REPO / "push_offline.py"), "--output-dir", str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "no ClearML server is configured" in done.stderr and "clearml-init" in done.stderr
    assert "Traceback" not in done.stderr


def test_push_offline_refuses_when_offline_mode_is_forced(local_store, pushed_to, monkeypatch):
    monkeypatch.setenv("CLEARML_OFFLINE_MODE", "1")
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "key")
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "secret")
    with pytest.raises(SystemExit) as exc:
        push_offline.main(["--output-dir", str(local_store.root.parent)])
    assert exc.value.code == 2
    pushed_to.Dataset.create.assert_not_called()
    assert not (local_store.root / sync.ID_MAP_FILE).exists()


def test_checking_stage_flags_leaves_the_pipeline_arguments_its_own(offline_controller):
    """The stage parsers that check --training-args (and --model) must not be what the controller's task records
    as its Args/: an agent running the controller would read training's --folds and --project back."""
    parser = pipeline.build_parser()
    args = cli.parse_quietly(parser, ["--folds", "9,10", "--project", "P", "--training-args", "--lr 0.002"])
    pipeline.check_arguments(parser, args)
    pipe = pipeline.build_controller(args, parser)
    agent = controller_on_agent(pipe, parser)
    recorded = {k: v for k, v in pipe.task.get_parameters().items() if k.startswith("Args/")}
    assert "Args/lr" not in recorded and "Args/dataset_id" not in recorded and "Args/project" not in recorded
    assert agent.folds == [9, 10] and agent.project == "P" and agent.training_args == "--lr 0.002"
