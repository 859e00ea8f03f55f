"""The run: one place decides what is live.

Every stage gets a ``Run`` holding
- a ClearML task: online when credentials are configured, otherwise a real
  offline session (importable later with ``Task.import_offline_session``);
- a local run folder for the files a person opens (PNG, CSV, JSON, the model);
- a TensorBoard writer (created on demand) whose scalars ClearML also captures.

Offline is chosen by ``--offline``, by ``CLEARML_OFFLINE_MODE=1``, or
automatically when no credentials exist. With credentials but an unreachable
server the SDK would retry for hours (api.http.retries defaults), so the
retries are capped and the error names the host and the way to run offline.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

# Imported here, before any stage parses its arguments: clearml patches argparse on import, and
# Task.connect(parser) then records exactly the arguments that this parser parsed (under Args/).
from clearml import Task
from clearml.config import config_obj

from . import atomic, clearml_internals, stopping
from .errors import UserError

if TYPE_CHECKING:  # pandas is not imported at run time here: the pipeline controller needs only clearml
    import pandas as pd

_OFFLINE_BANNER_SHOWN = False
REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "requirements.txt"

# The tag training puts on the model it registers (not on cross-validation fold models): what serve.py
# --auto-update follows, so that a new training run becomes a new endpoint version (docs/serving.md).
SERVING_TAG = "audioclf-serving"

PREVIEW_ROWS = 60  # rows of a table artifact's preview (its file has them all)

# Retry settings that turn "unreachable server" into an error in seconds rather than hours.
_FAST_FAIL_HTTP = {"retries": {"total": 2, "connect": 2, "read": 2, "backoff_factor": 0.5, "backoff_max": 2}}


def default_output_dir() -> Path:
    """Where datasets and run folders go unless --output-dir says otherwise."""
    return Path(os.environ.get("AUDIOCLF_HOME", "outputs"))


def add_tracking_args(parser: argparse.ArgumentParser, stage: str) -> argparse.Action:
    """The arguments every stage shares: where it reports and where it writes. Returns --queue's action (the flag
    that enqueues the script itself), for an old name of it (cli.alias)."""
    group = parser.add_argument_group("tracking and storage")
    group.add_argument("--project", default="Audio Classification",
                       help="ClearML project of the task and datasets (default: %(default)s)")
    group.add_argument("--task-name", default=None,
                       help=f"ClearML task name (default: '{stage}' and what this run sets that differs from the "
                            "defaults, e.g. 'training cnn fold 10 lr=0.001', so that runs can be told apart)")
    group.add_argument("--offline", action="store_true",
                       help="run without a ClearML server: record an offline session and use the local "
                            "dataset store (default: automatic when no ClearML credentials are configured)")
    queue = group.add_argument("--queue", dest="queue", default=None,
                       help="enqueue this script on a ClearML agent queue instead of running it here "
                            "(needs a server; default: run here)")
    group.add_argument("--storage", default=None,
                       help="where ClearML stores models and dataset files: s3://..., gs://..., azure://... or a "
                            "shared path (default: the ClearML files server)")
    group.add_argument("--verify", action="store_true",
                       help="also check the sha256 of every dataset file this stage reads (sizes are always "
                            "checked; default: only when AUDIOCLF_VERIFY=1)")
    group.add_argument("--output-dir", type=Path, default=default_output_dir(),
                       help="folder for the local dataset store and run folders "
                            "(default: $AUDIOCLF_HOME or ./outputs, now %(default)s)")
    return queue


def queue_flag_of(parser: argparse.ArgumentParser) -> str:
    """The spelling of the flag that enqueues this script (--queue), for errors."""
    return next((action.option_strings[0] for action in parser._actions if action.dest == "queue"), "--queue")


def clearml_configured() -> bool:
    """True when ClearML credentials exist (env vars or a config file). Makes no network call."""
    from clearml.backend_api.session.defs import ENV_ACCESS_KEY, ENV_AUTH_TOKEN, ENV_SECRET_KEY

    if ENV_AUTH_TOKEN.get():
        return True
    key = ENV_ACCESS_KEY.get() or config_obj.get("api.credentials.access_key", None)
    secret = ENV_SECRET_KEY.get() or config_obj.get("api.credentials.secret_key", None)
    return bool(key and secret)


def decide_offline(offline_flag: bool) -> tuple[bool, str]:
    """(offline?, why) from the flag, the environment and the configured credentials."""
    if offline_flag:
        return True, "--offline was given"
    if os.environ.get("CLEARML_OFFLINE_MODE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return True, "CLEARML_OFFLINE_MODE is set"
    if not clearml_configured():
        return True, "no ClearML credentials are configured (clearml.conf or CLEARML_API_* variables)"
    return False, "ClearML credentials are configured"


def _api_host() -> str:
    from clearml.backend_api import Session

    return str(Session.get_api_server_host())


class Run:
    """A stage's live reporting: ClearML task, TensorBoard and a local folder."""

    def __init__(self, task, offline: bool, run_dir: Path, output_dir: Path, storage: str | None = None,
                 user_name: str | None = None):
        self.task = task
        self.user_name = user_name  # --task-name, when given: the task keeps that name
        self.offline = offline
        self.run_dir = run_dir
        self.output_dir = output_dir
        self.logger = task.get_logger()
        self.storage = storage  # output URI for ClearML models and datasets (None: the files server)
        self._tb = None
        self._closed = False

    # --- where things are ---------------------------------------------------
    @property
    def session_dir(self) -> Path | None:
        """The offline session folder (None online)."""
        return Path(self.task.get_offline_mode_folder()) if self.offline else None

    def identity(self) -> dict:
        """The task id and where its session lives, for a stage's result."""
        return {"task_id": self.task.id, "offline": self.offline,
                "session_dir": str(self.session_dir) if self.offline else None}

    @property
    def upload_destination(self) -> str | None:
        """Where models and artifacts are uploaded online: --storage, else the files server."""
        if self.offline:
            return None
        if self.storage:
            return self.storage
        from clearml.backend_api import Session

        return str(Session.get_files_server_host())

    def web_url(self) -> str | None:
        return None if self.offline else self.task.get_output_log_web_page()

    def where(self) -> str:
        if self.offline:
            return f"run folder {self.run_dir}; ClearML offline session {self.session_dir}"
        return f"run folder {self.run_dir}; ClearML {self.web_url()}"

    # --- reporting ----------------------------------------------------------
    @property
    def tensorboard(self):
        """A SummaryWriter in <run_dir>/tensorboard; ClearML captures what it writes."""
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        return self._tb

    def scalar(self, tag: str, value: float, step: int) -> None:
        """One scalar to TensorBoard ('loss/train' becomes ClearML title 'loss', series 'train')."""
        self.tensorboard.add_scalar(tag, value, step)

    def table(self, title: str, table: pd.DataFrame, csv_name: str | None = None) -> Path | None:
        self.logger.report_table(title=title, series=title, iteration=0, table_plot=table)
        if csv_name:
            path = self.run_dir / csv_name
            atomic.write_csv(path, table)
            return path
        return None

    def single_value(self, name: str, value: float) -> None:
        """A run's result (ClearML "Summary", which the server also keeps as the task's last metric: the tasks
        table shows it as a column), rounded to 4 decimals: 0.1053, not 0.10526315789473684."""
        self.logger.report_single_value(name, round(float(value), 4))

    def confusion_matrix(self, series: str, matrix, class_names: list[str], iteration: int = 0) -> None:
        """A confusion matrix (rows: true class) as a heatmap whose class names and axis titles fit."""
        from . import figures

        self.logger.report_plotly(title="Confusion matrix", series=series, iteration=iteration,
                                  figure=figures.confusion_matrix(matrix, class_names))

    def output(self, name: str, value: str) -> None:
        """Publish a value the next pipeline step reads (``${step.parameters.General/<name>}``)."""
        self.task.set_parameter(f"General/{name}", value)

    def artifact(self, name: str, obj, preview: str | None = None, metadata: dict | None = None) -> None:
        """``preview``: what the web UI shows for it (default for a table: its text with every column and its
        row and column names, not pandas' repr, which elides the middle columns; a long one's first and last
        rows). ``metadata``: string keys and values kept with it (the artifact's display_data)."""
        if preview is None and hasattr(obj, "to_string"):
            preview = obj.to_string(max_rows=PREVIEW_ROWS)
        self.task.upload_artifact(name=name, artifact_object=obj, wait_on_upload=self.offline, preview=preview,
                                  metadata=metadata)

    def name_as(self, name: str) -> None:
        """Name the task ``name``, or the --task-name the user gave (also under an agent, where Task.init keeps
        the name the task was created with)."""
        name = self.user_name or name
        if self.task.name != name:
            self.task.set_name(name)

    @property
    def user_named(self) -> bool:
        return bool(self.user_name)

    def record_args(self, **values) -> None:
        """Write values this run resolved (a default that depends on the data) back to its Args/, so that the
        task shows what was used and a clone reruns it."""
        self.task.update_parameters({f"Args/{name}": value for name, value in values.items()})

    def add_tags(self, tags: list[str]) -> None:
        """Add ``tags`` to the task (also under an agent, where Task.init ignores its ``tags``)."""
        missing = [t for t in tags if t not in (self.task.get_tags() or [])]
        if missing:
            self.task.add_tags(missing)

    def close(self, status: str = "completed", reason: str | None = None) -> None:
        """Flush and close everything; safe to call twice. ``status``: completed, failed or stopped.

        Task.close() alone would mark a task completed while an exception is in flight (the SDK decides from
        its exit hook, which never sees an exception we catch), so a failed or interrupted run is marked
        after closing. The argparse binding is released too: the SDK keeps the closed task as the one the
        next parse_args connects to (binding/args.py), which would write the next stage's arguments into
        this session."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._tb is not None:
                self._tb.flush()
                self._tb.close()
                self._tb = None
            self.task.flush(wait_for_uploads=True)
            self.task.close()
        finally:
            clearml_internals.forget_current_task()
        if status == "failed":
            self.task.mark_failed(status_reason=(reason or "failed")[:250], force=True)
        elif status == "stopped":
            self.task.mark_stopped(force=True, status_message=reason)
        if status != "completed":
            remove_if_empty(self.run_dir)
            if self.offline and status == "failed" and not self.run_dir.exists():
                # Failed before it wrote anything: its session would hold only the arguments and the error, and
                # push_offline.py's glob would pick it up. Three typos must not leave three sessions behind.
                self.discard_session()
            elif self.offline:  # the offline session records no status: say it here, for push_offline.py
                with contextlib.suppress(OSError):
                    atomic.write_json(self.session_dir / SESSION_STATUS_FILE, {"status": status, "reason": reason})

    def discard_session(self) -> None:
        """Delete this run's offline session (its folder and the zip the SDK writes on close)."""
        folder = self.session_dir
        # The SDK's reporting thread can outlive close() (seen in a process that had run other tasks before): stopped
        # first, or it dies writing metrics.jsonl into the deleted folder. (A private attribute, clearml 2.1.12.)
        reporter = getattr(self.task, "_Task__reporter", None)
        if reporter is not None:
            with contextlib.suppress(Exception):
                reporter.stop()
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.with_name(folder.name + ".zip").unlink()
        print(f"ClearML: offline session {folder.name} removed: the run failed before it wrote anything", flush=True)


# Written into a failed or stopped run's offline session folder: push_offline.py leaves such sessions out (an
# imported session would show the run as completed: the SDK does not record a status offline).
SESSION_STATUS_FILE = "audioclf_status.json"


def remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when it holds no file at all (only, maybe, empty folders)."""
    with contextlib.suppress(OSError):
        if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
            shutil.rmtree(folder)
            folder.parent.rmdir()  # runs/ too, when this was its only run (fails, harmlessly, otherwise)


def start_run(
    stage: str,
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    task_type: str = "data_processing",
    tags: list[str] | None = None,
    name: Callable[[], str] | None = None,
) -> Run:
    """Start the ClearML task (online or offline) and make the run folder.

    Call it first thing in main(), right after parsing: ClearML records the
    parsed arguments under ``Args/`` and, under an agent, replaces them in
    ``args`` with the values set in the UI or by the pipeline. ``name``: makes the task's name from ``args``
    unless --task-name is given (default: the stage's name); called again once an agent has replaced them.
    """
    global _OFFLINE_BANNER_SHOWN
    forget_parent_task()  # before any Task call: Task.set_offline already looks the current task up
    offline, why = decide_offline(args.offline)
    if args.queue and offline:  # a user error like any other: one line, exit 2, before any session or folder
        flag = queue_flag_of(parser)
        fail(f"{flag} {args.queue} needs a ClearML server, but this run is offline ({why}); drop {flag} to run "
             "here, or configure a server")
    from clearml.config import running_remotely

    if args.queue and not running_remotely():  # before any task exists: the queue, the code the agent clones
        from .enqueue import before_enqueue

        try:
            before_enqueue(f"{parser.prog} {queue_flag_of(parser)} {args.queue}", [args.queue])
        except UserError as exc:
            fail(str(exc))
    # Thread reporting instead of a subprocess: offline close() drops from ~10 s to 0 s and the
    # git repository-detection hang goes away (clearml 2.1.12, Task.close / report subprocess).
    overrides: dict = {"sdk": {"development": {"report_use_subprocess": False}}}
    if offline:
        Task.set_offline(True)
        if not _OFFLINE_BANNER_SHOWN:
            print(f"ClearML: OFFLINE, because {why}. Nothing is sent to a server. Each stage records an "
                  "offline session you can import later (docs/clearml.md: 'From offline to a server'); datasets go "
                  f"to the local store under {args.output_dir.resolve()}.", flush=True)
            _OFFLINE_BANNER_SHOWN = True
    else:
        Task.set_offline(False)
        overrides["api"] = {"http": _FAST_FAIL_HTTP}
        # An agent installs what the task lists; Task.init alone would list only the imports it detects.
        Task.force_requirements_env_freeze(force=True, requirements_file=str(REQUIREMENTS_FILE))
    config_obj.set_overrides(overrides)
    clearml_internals.disable_report_subprocess()  # the deferred config above may already be resolved
    run_dir = make_run_dir(args.output_dir, stage)  # first: an unwritable --output-dir stops here, in one line
    try:
        task = Task.init(
            project_name=args.project,
            task_name=args.task_name or (name() if name else stage),
            task_type=getattr(Task.TaskTypes, task_type),
            tags=tags,
            reuse_last_task_id=False,
            auto_connect_arg_parser=False,  # connected explicitly below: only this stage's parser
            # Models are registered explicitly (OutputModel auto-capture is broken offline);
            # figures are reported explicitly too. TensorBoard stays captured.
            auto_connect_frameworks={"pytorch": False, "matplotlib": False},
            auto_resource_monitoring=not offline,
            output_uri=None if offline else (args.storage or True),
        )
    except Exception as exc:  # the SDK raises LoginError, ValueError, ConnectionError...
        remove_if_empty(run_dir)
        if offline:
            raise
        raise SystemExit(
            f"error: cannot reach the ClearML server at {_api_host()} ({type(exc).__name__}: {exc}).\n"
            "Check the server and your clearml.conf / CLEARML_API_* settings, or run without a server: "
            "add --offline (or set CLEARML_OFFLINE_MODE=1)."
        ) from exc
    stopping.install()  # again: Task.init's exit hook replaced our handlers and swallows SIGTERM (stopping.py)
    # The parser and the namespace it produced, connected explicitly (recorded under Args/; under an agent,
    # parse_args already returned the values set in the UI or by the pipeline). Not task.connect(parser): it
    # looks the namespace up by pairing parsers with parsed namespaces deduplicated by equality, so a second
    # identical command line in one process (tests, the offline pipeline) is paired with the wrong one.
    clearml_internals.connect_parsed_args(task, parser, args)
    if args.queue and task.running_locally():
        # Stops here and exits; an agent on that queue runs main() again with the recorded arguments (there,
        # execute_remotely does nothing and the stage goes on).
        remove_if_empty(run_dir)
        task.execute_remotely(queue_name=args.queue, exit_process=True)
    run = Run(task, offline=offline, run_dir=run_dir, output_dir=args.output_dir.resolve(), storage=args.storage,
              user_name=args.task_name or None)
    # Under an agent Task.init ignores ``tags`` and the name (the task exists already): set them here.
    if tags:
        run.add_tags(list(tags))
    run.name_as(name() if name else stage)
    return run


def forget_parent_task() -> None:
    """Drop a CLEARML_PROC_MASTER_ID inherited from another process that used ClearML (a notebook or test
    runner that called Task.init, then started this script). Task.init takes such a process for a worker of
    that parent: it attaches to the parent's task, or returns a stub whose every call does nothing (clearml
    2.1.12, Task.init / Task.__is_subprocess), so this stage would record nothing or write into another
    run. A stage run as a script always owns its task; the variable set by this process itself (an earlier
    stage in the same process, the offline pipeline) is kept."""
    for variable in ("CLEARML_PROC_MASTER_ID", "TRAINS_PROC_MASTER_ID"):  # the SDK reads either
        inherited = os.environ.get(variable, "")
        if inherited and inherited.partition(":")[0] != str(os.getpid()):
            del os.environ[variable]


def make_run_dir(output_dir: Path, stage: str) -> Path:
    """A new, unique run folder (two runs started in the same second never share one)."""
    run_dir = (output_dir / "runs" / f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}").resolve()
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


@contextlib.contextmanager
def stage(name: str, args: argparse.Namespace, parser: argparse.ArgumentParser, task_type: str = "data_processing",
          tags: list[str] | None = None, task_name: Callable[[], str] | None = None,
          kept: Callable[[Run], str] | None = None) -> Iterator[Run]:
    """A stage's run, closed however the body ends.

    Success: the task is completed. A user error (a ``UserError``: bad input, a damaged dataset; a full disk,
    a folder that cannot be written; see ``user_message``): one line on stderr, no traceback, the task marked
    failed, exit status 2. Ctrl-C, SIGINT or SIGTERM (stopping.py): the task marked stopped with the reason,
    one line saying what was kept and how to resume (``kept(run)``, the stage's own words), exit status 130 or
    143. Any other exception is a bug: the task is marked failed and the traceback shown. A failed run's empty
    run folder is removed, and offline its session too."""
    try:
        run = start_run(name, args, parser, task_type=task_type, tags=tags, name=task_name)
    except KeyboardInterrupt as exc:
        print(f"interrupted: {name} stopped by {stopping.describe(exc)} before it started; nothing was done",
              file=sys.stderr)
        raise SystemExit(stopping.exit_status(exc)) from None
    except OSError as exc:
        message = user_message(exc, args.output_dir)
        if message is None:
            raise
        fail(message)
    try:
        yield run
    except KeyboardInterrupt as exc:  # Ctrl-C, and SIGINT or SIGTERM as stopping.Interrupted
        how = stopping.describe(exc)
        stopping.close_progress_bars()
        run.close("stopped", f"stopped by {how}")
        what = kept(run) if kept else "finished work is kept: rerun the same command to resume"
        print(f"interrupted: {name} stopped by {how}; its ClearML task is closed as stopped; {what}",
              file=sys.stderr, flush=True)
        raise SystemExit(stopping.exit_status(exc)) from None
    except SystemExit as exc:  # fail() inside the body, or execute_remotely handing over to an agent
        failed = exc.code not in (None, 0)
        run.close("failed" if failed else "completed", "bad input" if failed else None)
        raise
    except BaseException as exc:
        if getattr(exc, "stops_run", False):  # asked to stop (a pruned search trial): not a failure
            run.close("stopped", str(exc) or type(exc).__name__)
            raise
        message = user_message(exc, run.output_dir)
        run.close("failed", message or f"{type(exc).__name__}: {exc}")
        if message is None:
            raise
        fail(message)
    else:
        run.close("completed")


def user_message(exc: BaseException, output_dir: Path | None = None) -> str | None:
    """The one-line message for an error the user can fix, or None for a bug (whose traceback is shown)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        if exc.filename:
            return f"no space left on device while writing {exc.filename}: free space there and rerun"
        where = f" under {output_dir}" if output_dir else ""
        return (f"no space left on device while writing{where}: free space (or pass an --output-dir on another "
                "disk) and rerun; finished work is kept and reused")
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = exc.filename or output_dir
        return (f"cannot write {what}: {os.strerror(exc.errno).lower()}; pass an --output-dir you can write to "
                "(or fix its permissions)")
    if isinstance(exc, UserError):
        return str(exc)  # bad input, unknown ids, damaged datasets, failed downloads
    return None


def open_store(run: Run):
    """The dataset store that matches the run: local offline, ClearML Datasets online."""
    if run.offline:
        from .store import LocalStore

        return LocalStore(run.output_dir / "datasets")
    from .clearml_store import ClearMLStore

    return ClearMLStore(output_uri=run.storage, scratch_root=run.output_dir / "staging")


def fail(message: str) -> None:
    """Exit with a one-line error on stderr (for bad input the user can fix)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
