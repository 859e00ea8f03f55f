"""pipeline.py --run-locally against a real ClearML server with no agent at all: the controller and every step run
on this machine and report to the server; the stage flags passed through reach the steps.

    python -m pytest -q tests/integration/test_pipeline_run_locally.py
"""

from __future__ import annotations

import re


def test_run_locally_runs_every_step_here_and_reports_to_the_server(user, names, tmp_path):
    # No `agents` fixture: a step enqueued on an agent queue would never start, and the run would time out.
    done = user.run("pipeline.py", "--run-locally", "--project", names["project"], "--pipeline-name",
                    "run-locally pipeline", "--num-clips", "20", "--seed", "4", "--epochs", "1", "--width", "4",
                    "--device", "cpu", "--output-dir", str(tmp_path / "out"), "--no-cache",
                    "--get-data-args=--workers 1", "--preprocessing-args", "--pad zero --workers 1",
                    "--training-args", "--batch-size 8 --select best-val", timeout=900)
    summary = done.stdout.split("=== pipeline summary ===")[-1]
    controller = re.search(r"pipeline:\s+(\w+)\s+\S*/tasks/([0-9a-f]{32})/", summary)
    assert controller and controller.group(1) == "completed", done.stdout[-3000:] + done.stderr[-3000:]
    # The controller records the pipeline's own arguments (not those of the stage parsers that checked the
    # pass-through flags): the pipeline parameters as its Args/, the rest in its fixed configuration.
    (controller_task,) = user.read({"task": controller.group(2)})
    args = {k.split("/", 1)[1] for k in controller_task["parameters"] if k.startswith("Args/")}
    assert args == {"num_clips", "seed", "model", "epochs", "width", "device"}, args
    fixed = controller_task["configuration"]["pipeline.py arguments"]
    assert names["project"] in fixed and "--pad zero --workers 1" in fixed, fixed
    assert "the steps run here too" in done.stdout
    step_ids = re.findall(r"\((completed): \S*/tasks/([0-9a-f]{32})/", summary)
    steps = {s["name"].split()[0]: s for s in user.read(*[{"task": t} for _, t in step_ids])}
    assert {"get_data", "preprocessing", "training"} <= set(steps), summary
    assert all(s["status"] == "completed" for s in steps.values())
    # The pass-through flags are each step's arguments on the server.
    assert steps["get_data"]["parameters"]["Args/workers"] == "1"
    assert steps["preprocessing"]["parameters"]["Args/pad"] == "zero"
    assert (steps["training"]["parameters"]["Args/select"], steps["training"]["parameters"]["Args/batch_size"]) == (
        "best-val", "8")
    # And they took effect: the features were zero-padded, the model registered on the server.
    assert '"pad": "zero"' in steps["preprocessing"]["configuration"]["Features"]
    assert steps["training"]["output_models"], "the training step registered its model"
