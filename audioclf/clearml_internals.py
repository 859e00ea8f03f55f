"""Every use of ClearML's private API, behind one door.

Each function here does one thing the SDK has no public call for (clearml 2.1.12, the version requirements.txt
allows: >=2.1.12,<2.2). tests/test_clearml_internals.py pins the behaviour each one relies on against the
installed SDK, so an upgrade that changes it fails a test, not a user's run. Where the SDK has a public call
(``PipelineController.task``, ``Task.get_projects``) the code uses that instead and is not here.

Imports clearml only when called: the pipeline controller on a services agent runs with clearml alone, and
``cli.parse_quietly`` must work without it.
"""

from __future__ import annotations

import argparse

PINNED_VERSION = "2.1.12"


def connect_parsed_args(task, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Record ``args`` (parsed by ``parser``) as the task's ``Args/`` section; under an agent, ``args`` already holds
    the values set in the UI or by the pipeline. Not the public ``task.connect(parser)``: it looks the namespace up
    by pairing parsers with parsed namespaces deduplicated by equality, so a second identical command line in one
    process (tests, the offline pipeline) is paired with the wrong namespace."""
    task._connect_argparse(parser=parser, parsed_args=args, name="Args")


def disable_report_subprocess() -> None:
    """Report from a thread, not a subprocess (offline close() ~10 s -> 0 s, no repository-detection hang). The
    config key ``sdk.development.report_use_subprocess`` is read once into this class attribute (a deferred
    config): setting the key after the first Task in a process changes nothing without this."""
    from clearml import Task

    Task._report_subprocess_enabled = False


def forget_current_task() -> None:
    """Detach ClearML's argparse binding from a closed task: otherwise the next parse_args in this process (the
    next stage of an offline pipeline, a test) records its arguments into the closed task."""
    from clearml.binding.args import argparser_update_currenttask

    argparser_update_currenttask(None)


def original_parse_known_args():
    """argparse's own ``parse_known_args`` from before ClearML patched it, or None when ClearML never did: a parse
    through it is unseen by ClearML (which otherwise records every parse in the process into the next task)."""
    try:
        from clearml.binding.args import PatchArgumentParser
    except ImportError:
        return None
    return getattr(PatchArgumentParser, "_original_parse_known_args", None)


def wait_for_repo_detection(task, timeout: float) -> None:
    """Wait for the SDK's repository detection (a background thread started by Task.init) so that the task's
    recorded script (repository, commit, diff) is complete when read."""
    task._wait_for_repo_detection(timeout=timeout)
