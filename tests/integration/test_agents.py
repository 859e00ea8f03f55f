"""Work enqueued on real clearml-agents: a single script with --queue, and the pipeline (controller here, and
controller on a services agent), asserting on what the server holds afterwards.

    python -m pytest -q tests/integration/test_agents.py
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from clearml_env import task_id_in

TRAIN = ["--epochs", "2", "--width", "4", "--device", "cpu"]


def pipeline_args(agents, names, out, *extra: str) -> list[str]:
    """The controller here unless ``extra`` has --queue (issue 35: --queue enqueues the script it is given to)."""
    return ["--project", names["project"], "--steps-queue", agents["cpu"], "--gpu-queue", agents["gpu"],
            "--num-clips", "30", "--data-seed", "4", "--seed", "4", "--output-dir", str(out),
            "--device", "cpu", *TRAIN, *extra]


def test_queue_runs_a_stage_on_an_agent_whose_model_lands_on_the_files_server(user, agents, datasets, fresh_user,
                                                                               tmp_path):
    done = user.run("training.py", "--dataset-id", datasets["features"], "--queue", agents["gpu"], *TRAIN,
                    "--batch-size", "8", *datasets["common"])
    assert "remote" in (done.stdout + done.stderr).lower()
    task = user.wait_for(task_id_in(done) if "/tasks/" in done.stdout else
                         re.findall(r"/tasks/([0-9a-f]{32})/", done.stderr)[-1])
    assert task["status"] == "completed", (task["status"], task["status_reason"])
    (model,) = task["output_models"]
    # Under an agent Task.init(output_uri=...) is ignored: the weights must still be uploaded, not left on the
    # agent's disk as a file:// path.
    assert not model["url"].startswith("file://"), model["url"]
    (loaded,) = fresh_user.read({"model": model["id"], "load": True})
    assert loaded["loaded"]["class_names"] == sorted(model["labels"], key=model["labels"].get)


def test_queue_that_does_not_exist_is_refused_before_any_task_exists(user, names, agents):
    """Issue 34, item 6: the run would have waited in a queue nobody serves, or failed to enqueue after its task
    was made; refused naming the command that creates the queue (the project's commit is on its remote here)."""
    queue = agents["gpu"] + "-no-such-queue"
    done = user.run("training.py", "--dataset-id", "x", "--queue", queue, "--device", "cpu", "--project",
                    names["project"], check=False, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert line == (f"error: queue '{queue}' does not exist: create it in the web UI (Orchestration > Queues) or start "
                    f"an agent with: clearml-agent daemon --queue {queue} --create-queue"), line
    assert "Traceback" not in done.stderr and "/tasks/" not in done.stdout + done.stderr  # no task was created


@pytest.fixture(scope="module")
def local_pipeline(user, agents, names, tmp_path_factory):
    """pipeline.py with no --queue: the controller here, every step on the agents."""
    out = tmp_path_factory.mktemp("pipeline-local")
    done = user.run("pipeline.py", *pipeline_args(agents, names, out), timeout=900)
    return {"done": done, "out": out}


def _summary_ids(stdout: str) -> dict:
    ids = {}
    for line in stdout.split("=== pipeline summary ===")[-1].splitlines():
        for label, key in (("raw dataset:", "raw"), ("features dataset:", "features")):
            if line.startswith(label):
                ids[key] = line[len(label):].split()[0]
    return ids


def test_pipeline_local_completes_and_ends_with_a_summary(user, local_pipeline, names):
    stdout = local_pipeline["done"].stdout
    summary = stdout.split("=== pipeline summary ===")[-1]
    assert "pipeline:" in summary and "test accuracy:" in summary and "/tasks/" in summary
    ids = _summary_ids(stdout)
    controller = re.search(r"pipeline:\s+(\w+)\s+\S*/tasks/([0-9a-f]{32})/", summary)
    assert controller and controller.group(1) == "completed"
    step_ids = re.findall(r"\((completed): \S*/tasks/([0-9a-f]{32})/", summary)
    assert len(step_ids) >= 3, summary
    steps = user.read(*[{"task": t} for _, t in step_ids])
    by_name = {s["name"].split()[0]: s for s in steps}  # each step's task is named after its settings
    assert {"get_data", "preprocessing", "training"} <= set(by_name)
    assert by_name["get_data"]["parameters"]["General/dataset_id"] == ids["raw"]
    assert by_name["preprocessing"]["parameters"]["Args/dataset_id"] == ids["raw"]
    assert by_name["training"]["parameters"]["Args/dataset_id"] == ids["features"]
    # Under an agent Task.init ignores tags: get_data adds them itself; the raw dataset has them too.
    assert {"raw", "audio"} <= set(by_name["get_data"]["tags"])
    (raw,) = user.read({"dataset": ids["raw"]})
    assert {"raw", "audio"} <= set(raw["tags"])
    # The steps live next to the pipeline (the controller's project), not in --project itself.
    (controller_task,) = user.read({"task": controller.group(2)})
    assert all(s["project"] == controller_task["project"] for s in steps), [s["project"] for s in steps]
    required = [line.split(">")[0].split("=")[0].strip() for line in controller_task["requirements"].splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert required == ["clearml", "optuna"] and "torch" not in controller_task["requirements"], required
    local_pipeline["training"] = by_name["training"]


def test_a_model_from_a_pipeline_step_predicts_from_another_home(local_pipeline, fresh_user, tmp_path):
    training = local_pipeline.get("training")
    if training is None:
        pytest.skip("the local pipeline did not complete")
    (model,) = training["output_models"]
    assert not model["url"].startswith("file://"), model["url"]
    clip = tmp_path / "clip.wav"
    sf.write(clip, 0.1 * np.random.default_rng(0).standard_normal(32000).astype(np.float32), 16000)
    fresh_user.run("predict.py", model["id"], str(clip), "--format", "json", "--output", str(tmp_path / "p.json"))
    assert json.loads((tmp_path / "p.json").read_text())["files"][0]["top"]


def test_pipeline_on_a_services_agent_fans_out_folds_and_reuses_the_cached_data_steps(user, agents, names,
                                                                                       local_pipeline, tmp_path):
    first = _summary_ids(local_pipeline["done"].stdout)
    done = user.run("pipeline.py", *pipeline_args(agents, names, tmp_path, "--folds", "9,10", "--queue",
                                                 agents["services"]))
    link = re.findall(r"follow it at \S*/tasks/([0-9a-f]{32})/", done.stdout)
    assert link, done.stdout
    controller = user.wait_for(link[-1], timeout=900)
    (steps,) = user.read({"project_tasks": controller["project"]})
    mine = [s for s in steps if s["id"] != controller["id"]]
    details = user.read(*[{"task": s["id"], "log": 30} for s in mine])
    launched = [d for d in details if d["parent"] == controller["id"]]
    failed = {d["name"]: (d["status_reason"], d["log"]) for d in launched if d["status"] != "completed"}
    assert controller["status"] == "completed", (controller["status"], controller["status_reason"], failed)
    names_run = {d["name"] for d in launched}
    assert {"training cnn fold 9 width=4 epochs=2 seed=4", "training cnn fold 10 width=4 epochs=2 seed=4",
            "cross_validation"} <= names_run, names_run
    # get_data and preprocessing were not run again: the cached tasks of the first pipeline were reused.
    assert not any(n.startswith(("get_data", "preprocessing")) for n in names_run), names_run
    for d in launched:
        assert d["status"] == "completed", (d["name"], d["status"])
        if d["name"].startswith("training"):
            assert d["parameters"]["Args/dataset_id"] == first["features"]
    (cv,) = [d for d in launched if d["name"] == "cross_validation"]
    assert 0.0 <= float(cv["parameters"]["General/accuracy_mean"]) <= 1.0
    assert {"cross_validation", "confusion_matrix_all_folds"} <= set(cv["artifacts"])
