"""Issue 35, item 4: ClearML's private API is used in audioclf/clearml_internals.py only, and what each use relies on
is pinned here against the installed SDK (clearml 2.1.12), so that an upgrade which changes it fails a test.

    python -m pytest -q tests/test_clearml_internals.py
"""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path

import clearml
import pytest
from clearml import PipelineController, Task
from clearml.binding.args import PatchArgumentParser, patch_argparse

from audioclf import cli, clearml_internals, tracking

REPO = Path(__file__).resolve().parents[1]
PRIVATE = ("_connect_argparse", "_report_subprocess_enabled", "argparser_update_currenttask",
           "_original_parse_known_args", "_wait_for_repo_detection", "_get_project_name", "PatchArgumentParser",
           "pipe._task", "._task.")


def test_private_clearml_calls_live_in_one_module():
    product = [*REPO.glob("*.py"), *(REPO / "audioclf").glob("*.py"), *(REPO / "serving").glob("*.py")]
    found = []
    for path in product:
        if path.name == "clearml_internals.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            found += [f"{path.relative_to(REPO)}:{number}: {name}" for name in PRIVATE if name in code]
    assert found == []


def test_the_pinned_version_is_the_installed_one():
    assert clearml.__version__ == clearml_internals.PINNED_VERSION, (
        "a new clearml: check each function of audioclf/clearml_internals.py against it, then update the pin")
    pins = [line for line in (REPO / "requirements.txt").read_text().splitlines() if line.startswith("clearml")]
    assert pins and f">={clearml_internals.PINNED_VERSION}" in pins[0]


def test_connect_argparse_takes_the_parser_and_its_namespace():
    params = inspect.signature(Task._connect_argparse).parameters
    assert {"parser", "parsed_args", "name"} <= set(params)


def test_connect_parsed_args_records_that_namespace_and_not_an_equal_one():
    """The reason for the private call: two parses of the same command line in one process, the second namespace
    then changed; the task records the namespace it is given."""
    Task.set_offline(True)
    clearml_internals.disable_report_subprocess()  # as tracking does: a reporting subprocess makes close() slow
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--name", default="x")
    parser.parse_args(["--lr", "0.5"])
    args = parser.parse_args(["--lr", "0.5"])
    args.name = "mine"
    task = Task.init(project_name="internals", task_name="connect", reuse_last_task_id=False,
                     auto_connect_arg_parser=False, auto_connect_frameworks=False, auto_resource_monitoring=False)
    try:
        clearml_internals.connect_parsed_args(task, parser, args)
        params = task.get_parameters()
        assert params["Args/lr"] == "0.5" and params["Args/name"] == "mine", params
    finally:
        task.close()
        clearml_internals.forget_current_task()


def test_report_subprocess_is_a_class_attribute_that_turns_it_off():
    from clearml.backend_interface.task.task import Task as BackendTask

    assert "_report_subprocess_enabled" in vars(BackendTask)
    saved = vars(Task).get("_report_subprocess_enabled", None)
    try:
        clearml_internals.disable_report_subprocess()
        assert Task._report_subprocess_enabled is False
    finally:
        if saved is None and "_report_subprocess_enabled" in vars(Task):
            delattr(Task, "_report_subprocess_enabled")


def test_forget_current_task_clears_the_argparse_binding():
    PatchArgumentParser._current_task = object()
    clearml_internals.forget_current_task()
    assert PatchArgumentParser._current_task is None


def test_a_quiet_parse_is_unseen_by_the_argparse_binding():
    patch_argparse()  # what Task.init does: argparse patched, the original kept
    original = clearml_internals.original_parse_known_args()
    assert original is not None and original is not argparse.ArgumentParser.parse_known_args
    parser = argparse.ArgumentParser()
    parser.add_argument("--quiet-flag", default="a")
    before = list(PatchArgumentParser._last_arg_parser or [])
    assert cli.parse_quietly(parser, ["--quiet-flag", "b"]).quiet_flag == "b"
    assert parser not in (PatchArgumentParser._last_arg_parser or []) and before is not None


def test_repo_detection_wait_returns_when_no_detection_runs():
    params = inspect.signature(Task._wait_for_repo_detection).parameters
    assert "timeout" in params
    task = Task.__new__(Task)
    task._detect_repo_async_thread = None
    assert clearml_internals.wait_for_repo_detection(task, timeout=1) is None


def test_the_public_calls_used_instead():
    """PipelineController.task (not pipe._task) and Task.get_projects(id=...) (not Task._get_project_name)."""
    assert isinstance(inspect.getattr_static(PipelineController, "task"), property)
    assert "kwargs" in inspect.signature(Task.get_projects).parameters


@pytest.mark.parametrize("module", ["pipeline", "serve"])
def test_scripts_reach_the_internals_through_the_module(module):
    text = (REPO / f"{module}.py").read_text()
    assert not re.search(r"\bpipe\._task\b|Task\._get_project_name", text)
    assert tracking.clearml_internals is clearml_internals
