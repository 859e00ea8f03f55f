"""Comparing runs in the ClearML web UI: what the server holds for the pages a user reads, asserted as the UI
reads it (the tasks table's names, tags and metric columns, the compare view's first scalars, the console, the
model's page, the NEW RUN dialog of a pipeline, and a NEW RUN started as the UI starts it, on real agents).

    python -m pytest -q tests/integration/test_web_ui_online.py
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from audioclf.tracking import SERVING_TAG
from clearml_env import output_of, task_id_in

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import web_ui  # noqa: E402

TRAIN = ["--epochs", "2", "--width", "4", "--batch-size", "8", "--device", "cpu"]
LRS = ("0.003", "0.001")


@pytest.fixture(scope="module")
def two_trainings(user, datasets):
    """Two training runs of one features dataset that differ only in --lr, as a user compares them."""
    runs = []
    for lr in LRS:
        done = user.run("training.py", "--dataset-id", datasets["features"], *TRAIN, "--lr", lr, *datasets["common"])
        runs.append({"task": task_id_in(done), "output": done.stdout, "lr": lr})
    return runs


def test_two_trainings_say_what_differs_in_the_tasks_table(user, two_trainings):
    tasks = user.read(*[{"task": run["task"]} for run in two_trainings])
    for run, task in zip(two_trainings, tasks):
        assert task["name"] == f"training cnn fold 10 width=4 epochs=2 batch-size=8 lr={run['lr']}", task["name"]
        assert {"cnn", "fold 10"} <= set(task["tags"]), task["tags"]
        # The folds it used, not empty: a clone reruns them.
        assert (task["parameters"]["Args/test_fold"], task["parameters"]["Args/val_fold"]) == ("10", "9")
        # The tasks table's metric columns: the test results (rounded), as single values (Summary).
        accuracy = task["last_metrics"]["Summary/test_accuracy"]
        assert accuracy == round(accuracy, 4) and 0.0 <= accuracy <= 1.0
        assert "Summary/test_f1_macro" in task["last_metrics"]
        assert f"test fold 10: accuracy {accuracy:.4f}" in run["output"]
    assert tasks[0]["name"] != tasks[1]["name"]


def test_the_compare_view_shows_every_series_the_learning_rate_included(user, two_trainings):
    (series,) = user.read({"compare_scalars": [run["task"] for run in two_trainings]})
    series = {tuple(s) for s in series if not s[0].startswith(":monitor:")}  # the resource monitor goes last
    shown = web_ui.compare_scalars_shown(series)
    assert ("lr", "lr") in shown and ("Summary", "test_accuracy") in shown and ("accuracy", "val") in shown
    assert set(shown) == series, web_ui.compare_scalars_order(series)


def test_each_trainings_console_ends_with_the_lines_its_terminal_ended_with(user, two_trainings):
    for run in two_trainings:
        (log,) = user.read({"task_log": run["task"]})
        terminal = [line for line in run["output"].splitlines() if line.strip()]
        first = next(i for i, line in enumerate(terminal) if line.startswith("test fold 10: accuracy"))
        printed_last = terminal[first:first + 4]  # test fold ... accuracy, model: ..., model id: ..., results: ...
        assert printed_last[2].startswith("model id:") and printed_last[3].startswith("results:"), printed_last
        console = [line for line in log.splitlines() if line.strip()]
        for line in printed_last:
            assert line in console, (line, console[-12:])
        assert console.index(printed_last[-1]) > console.index(printed_last[0])


def test_each_model_says_what_it_is_and_the_final_one_is_published(user, two_trainings, datasets):
    tasks = user.read(*[{"task": run["task"]} for run in two_trainings])
    models = user.read(*[{"model": task["output_models"][0]["id"]} for task in tasks])
    assert models[0]["name"] != models[1]["name"]
    for run, task, model in zip(two_trainings, tasks, models):
        assert model["name"] == f"audio classifier cnn fold 10 width=4 epochs=2 batch-size=8 lr={run['lr']}"
        assert {"cnn", "fold 10", SERVING_TAG} <= set(model["tags"])
        assert model["published"] is True, "a run's final model, fit to serve, is published"
        meta = {k: v["value"] for k, v in model["metadata"].items()}
        assert float(meta["test_accuracy"]) == task["last_metrics"]["Summary/test_accuracy"]
        assert meta["classes"].split(", ") == sorted(model["labels"], key=model["labels"].get)
        assert meta["features.n_mels"] == "64" and meta["train.lr"] == run["lr"]
        assert meta["dataset_id"] == datasets["features"] and meta["test_fold"] == "10"
        # Nothing local on the server: the model's description and the metrics artifact.
        assert str(datasets["out"]) not in (model["comment"] or "") and "/" not in (model["comment"] or "")
        assert task["id"] in model["comment"]
        assert "model_path" not in task["artifacts"]["metrics"]["preview"]
        assert str(datasets["out"]) not in task["artifacts"]["metrics"]["preview"]


def test_figures_and_samples_fit_and_tables_appear_once(user, datasets, two_trainings):
    (task,) = user.read({"task": two_trainings[0]["task"]})
    (heatmap,) = [p for p in task["plots"] if p["metric"] == "Confusion matrix"]
    assert heatmap["layout"]["margin"]["l"] > 70 and heatmap["layout"]["yaxis"]["automargin"] is True
    samples = task["debug_samples"]
    assert {s["title"] for s in samples} == {"train", "test"}
    assert all(len(s["series"]) <= web_ui.SAMPLE_CARD_CHARS for s in samples)
    header = task["artifacts"]["confusion_matrix"]["preview"].splitlines()[0]
    assert "air_conditioner" in header and "street_music" in header, "the preview reads as the whole table"
    raw, features = user.read({"dataset": datasets["raw"]}, {"dataset": datasets["features"]})
    for dataset in (raw, features):
        assert "Tables" not in {p["metric"] for p in dataset["plots"]}, "each table once, under its own title"
    (props,) = [p for p in raw["plots"] if p["metric"] == "Audio properties"]
    assert props["variant"] != "clips" and "duration" in props["variant"]


def test_datasets_are_named_after_their_data(user, datasets):
    raw, features = user.read({"dataset": datasets["raw"]}, {"dataset": datasets["features"]})
    assert raw["name"] == "UrbanSound8K raw (synthetic, 20 clips, seed 4)"
    assert features["name"] == "UrbanSound8K features (synthetic, 20 clips, seed 4)"
    (raw_task,) = user.read({"task": datasets["raw_task"]})
    assert raw_task["name"] == "get_data synthetic num-clips=20 data-seed=4"
    (log,) = user.read({"task_log": datasets["raw_task"]})
    assert f"raw dataset id: {datasets['raw']}" in log, log[-2000:]


# --- the pipeline: its NEW RUN dialog, and a NEW RUN as the UI starts it, on real agents --------------------

NEW_RUN = textwrap.dedent("""
    # What the web UI's NEW RUN does (clearml-web: run-pipeline-controller-dialog lists the controller's Args,
    # then common-experiments-menu.effects startPipeline$ sends pipelines.start_pipeline with every listed
    # parameter as {name, value}, the edited ones changed, and the queue chosen in the dialog).
    import json, sys
    from clearml.backend_api.session.client import APIClient

    controller, queue_name, changes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    session = APIClient().session
    task = session.send_request("tasks", "get_all_ex", json={"id": [controller], "only_fields": ["hyperparams"]})
    listed = [p for p in task.json()["data"]["tasks"][0]["hyperparams"]["Args"].values()
              if not p["name"].startswith("_")]
    args = [{"name": p["name"], "value": changes.get(p["name"], p.get("value", ""))} for p in listed]
    queues = session.send_request("queues", "get_all", json={"name": "^" + queue_name + "$"}).json()["data"]["queues"]
    answer = session.send_request("pipelines", "start_pipeline", json={
        "task": controller, "queue": queues[0]["id"], "args": args, "verify_watched_queue": True})
    print("new run:", answer.json()["data"]["pipeline"])
""")


@pytest.fixture(scope="module")
def pipeline_run(user, agents, names, tmp_path_factory):
    """pipeline.py with its controller on the services agent, steps on the steps agent (24 clips: no other
    module's pipeline has data steps of these settings to reuse from the cache)."""
    out = tmp_path_factory.mktemp("pipeline-ui")
    done = user.run("pipeline.py", "--project", names["project"], "--pipeline-name", "ui pipeline",
                    "--steps-queue", agents["cpu"], "--gpu-queue", agents["gpu"], "--queue",
                    agents["services"], "--num-clips", "24", "--data-seed", "4", "--seed", "4", "--epochs", "1", "--width", "4",
                    "--device", "cpu", "--output-dir", str(out), "--training-args", "--batch-size 8")
    link = re.findall(r"follow it at \S*/tasks/([0-9a-f]{32})/", done.stdout)
    assert link, done.stdout
    controller = user.wait_for(link[-1], timeout=900)
    assert controller["status"] == "completed", (controller["status"], controller["status_reason"])
    return {"controller": controller, "out": out}


def _steps_of(user, controller: dict) -> dict[str, dict]:
    (tasks,) = user.read({"project_tasks": controller["project"]})
    details = user.read(*[{"task": t["id"]} for t in tasks if t["id"] != controller["id"]])
    return {d["name"].split()[0]: d for d in details if d["parent"] == controller["id"]}


def test_the_new_run_dialog_offers_exactly_the_pipeline_parameters(user, pipeline_run):
    (listed,) = user.read({"run_dialog": pipeline_run["controller"]["id"]})
    assert {p["name"] for p in listed} == {"num_clips", "seed", "model", "epochs", "width", "device"}, listed
    values = {p["name"]: p["value"] for p in listed}
    assert (values["epochs"], values["num_clips"], values["width"]) == ("1", "24", "4")


def test_the_pipelines_data_is_a_dataset_of_its_own_not_a_version_of_other_data(user, pipeline_run, datasets):
    steps = _steps_of(user, pipeline_run["controller"])
    raw_id = steps["get_data"]["parameters"]["General/dataset_id"]
    (raw,) = user.read({"dataset": raw_id})
    assert raw["name"] == "UrbanSound8K raw (synthetic, 24 clips, seed 4)"
    assert raw["version"] == "1.0.0", "24 generated clips are not the next version of the 20-clip dataset"
    assert steps["get_data"]["name"] == "get_data synthetic num-clips=24 data-seed=4"
    assert steps["training"]["name"] == "training cnn fold 10 width=4 epochs=1 batch-size=8 seed=4"


def test_a_new_run_from_the_ui_with_other_epochs_trains_with_them_on_the_agent(user, agents, pipeline_run,
                                                                              tmp_path):
    script = tmp_path / "new_run.py"
    script.write_text(NEW_RUN)
    done = user.run(str(script), pipeline_run["controller"]["id"], agents["services"], json.dumps({"epochs": "2"}))
    new_id = output_of(done, "new run:")
    controller = user.wait_for(new_id, timeout=900)
    steps = _steps_of(user, controller)
    failed = {n: (s["status"], s["status_reason"]) for n, s in steps.items() if s["status"] != "completed"}
    assert controller["status"] == "completed", (controller["status"], controller["status_reason"], failed)
    assert controller["parameters"]["Args/epochs"] == "2"
    training = steps["training"]
    assert training["parameters"]["Args/epochs"] == "2"
    assert training["scalars"]["accuracy"]["val"]["x"] == [1, 2], "it trained 2 epochs, not the first run's 1"
    assert training["name"] == "training cnn fold 10 width=4 epochs=2 batch-size=8 seed=4"
    # The data steps were cached: the same get_data and preprocessing as the first run (not run again).
    assert "get_data" not in steps and "preprocessing" not in steps, sorted(steps)
