"""Issue 34, item 1, online: a task aborted through the server's API while a real clearml-agent runs it ends
within seconds (its processes gone) and reads stopped.

    python -m pytest -q tests/integration/test_stop_online.py
"""

from __future__ import annotations

import subprocess
import time

import psutil
import pytest

from clearml_env import PYTHON, task_id_in

BOUND_S = 30.0  # the agent polls the task's status every 5 s (its default), then ends the process tree


def _processes_of(task_id: str) -> list[psutil.Process]:
    """The processes running the task: the agent's `execute --id` and the script it started (its environment
    names the task)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if task_id in " ".join(process.info["cmdline"] or []) or \
                    process.environ().get("CLEARML_TASK_ID") == task_id:
                found.append(process)
        except psutil.Error:
            continue
    return found


def _alive(process: psutil.Process) -> bool:
    """Running (an ended process stays a zombie until its parent, the agent, reaps it)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stop_through_the_api(user, task_id: str) -> None:
    """What the web UI's Abort does: tasks.stop (for a task an agent runs, the server sets it 'stopping')."""
    script = ("import sys\nfrom clearml.backend_api.session.client import APIClient\n"
              "APIClient().tasks.stop(task=sys.argv[1])\n")
    subprocess.run([PYTHON, "-c", script, task_id], cwd=user.project, env=user.env(), check=True,
                   capture_output=True, text=True, timeout=120)


def test_a_training_aborted_through_the_server_ends_within_seconds_and_reads_stopped(user, agents, datasets):
    done = user.run("training.py", "--dataset-id", datasets["features"], "--queue", agents["gpu"], "--epochs", "500",
                    "--width", "4", "--batch-size", "8", "--device", "cpu", *datasets["common"])
    task_id = task_id_in(done)
    deadline = time.monotonic() + 600
    while True:  # running, and past its first epoch (a validation accuracy reported)
        (task,) = user.read({"task": task_id})
        if task["status"] == "in_progress" and "accuracy" in task["scalars"]:
            break
        if task["status"] not in ("created", "queued", "in_progress") or time.monotonic() > deadline:
            pytest.fail(f"task {task_id} did not start training: {task['status']} {task['status_reason']}")
        time.sleep(3)
    running = _processes_of(task_id)
    assert running, "the agent's processes for the task were expected on this machine"

    stopped_at = time.monotonic()
    _stop_through_the_api(user, task_id)
    while [p for p in running if _alive(p)] and time.monotonic() - stopped_at < BOUND_S * 2:
        time.sleep(0.5)
    elapsed = time.monotonic() - stopped_at
    assert not [p for p in running if _alive(p)], f"still running {BOUND_S * 2:.0f} s later"
    assert elapsed < BOUND_S, f"the task's processes took {elapsed:.1f} s to end"
    task = user.wait_for(task_id, timeout=120)
    assert task["status"] == "stopped", (task["status"], task["status_reason"])
    assert not task["output_models"], "a stopped run registers no model"
