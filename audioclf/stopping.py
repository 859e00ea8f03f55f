"""SIGTERM and SIGINT stop a run the way Ctrl-C does: the signal becomes an ``Interrupted`` exception in the main
thread, the run closes its ClearML task as stopped with the reason, worker processes are ended, and the
process exits with 128 + the signal's number (143 for SIGTERM, 130 for SIGINT) after one line saying what was
kept and how to resume (``tracking.stage``; ``run_script`` for what happens outside a stage).

Why a handler of our own: ``Task.init`` installs ClearML's exit hook (clearml 2.1.12,
clearml/utilities/process/exit_hooks.py, ``ExitHooks.signal_handler``), which returns at once when the handler
it replaced was SIG_DFL, so SIGTERM did nothing at all in a process that called Task.init: ``kill PID``,
``timeout``, systemd, SLURM and Kubernetes could not stop a stage. ``install`` is called when a script starts
and again after every Task.init (the hook replaces ours; ``Task.close`` puts back what it replaced).

Under a clearml-agent, a task aborted from the server is killed by the agent itself (it polls the task's
status every few seconds and kills the process tree, then marks the task stopped), so nothing more is
needed there; the atomic writes keep every file whole.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.pool
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from . import atomic
from .errors import Interrupted, signal_name

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_stopping = False
_sigint_ignored: bool | None = None  # as the process was started: a background job (`cmd &`) ignores Ctrl-C


def _handler(signum, frame) -> None:
    global _stopping
    if _stopping:  # a second signal while the run closes: leave now (atomic writes keep every file whole)
        os._exit(128 + signum)
    _stopping = True
    raise Interrupted(signum)


def install() -> None:
    """SIGTERM and SIGINT raise ``Interrupted`` in the main thread (a no-op elsewhere: only the main thread may
    set handlers, and only it gets them). SIGINT stays ignored in a process started with it ignored."""
    global _stopping, _sigint_ignored
    if threading.current_thread() is not threading.main_thread():
        return
    if _sigint_ignored is None:
        _sigint_ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    _stopping = False
    for sig in SIGNALS:
        if not (sig == signal.SIGINT and _sigint_ignored):
            signal.signal(sig, _handler)


@contextlib.contextmanager
def worker_pool(workers: int, writes_in: Path) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of ``workers`` processes for the block, which write their files (atomically) under ``writes_in``.

    When the block ends normally the workers are told there is no more work and exit on their own; when it
    ends by an exception (a stop, an error) they are killed at once, without finishing the queued jobs, and
    the temporary files they leave under ``writes_in`` are removed: the caller must hold that folder alone.

    The workers come from a fork server, not forked from this process: a process running a ClearML task must
    not fork workers. ClearML (2.1.12, clearml/binding/environ_bind.py, ``PatchOsFork``) turns every forked
    child into a copy of the task that shuts it down again when the child exits, over multiprocessing locks and
    events the child shares with this process; with forked workers get_data hung for ever closing its own task,
    blocked on such a lock (``Artifacts.stop`` -> ``SafeEvent.set``), in about one run in ten on a loaded
    machine. The fork server is a fresh interpreter that imports the script once; it and its workers never hold
    the task. No signal ends a pool that finished: with ``Pool.terminate`` at the end of every block, a worker
    waiting for its next job once outlived the SIGTERM that a handler was to turn into SystemExit (1 run in 39),
    and the parent waited for it for ever; in a worker SIGTERM now keeps its default action (``worker_init``)."""
    start = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"  # Windows: spawn
    pool = multiprocessing.get_context(start).Pool(workers, initializer=worker_init)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        atomic.remove_temporaries(writes_in)
        raise
    pool.close()
    pool.join()


def worker_init() -> None:
    """Initializer of a worker process: Ctrl-C in a terminal reaches every process of the group, and only the
    main process decides (it ends the workers); SIGTERM, which ``Pool.terminate`` sends, ends a worker at once
    wherever it is (the kernel's default action; a file it was writing is left under a temporary name, which
    ``worker_pool`` removes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def exit_status(exc: BaseException) -> int:
    """128 + the signal's number for an interruption (a KeyboardInterrupt with no signal: Ctrl-C, 130)."""
    return 128 + getattr(exc, "signal_number", signal.SIGINT)


def describe(exc: BaseException) -> str:
    """'SIGTERM' / 'Ctrl-C (SIGINT)': what stopped the run, for its one line and the task's status reason."""
    number = getattr(exc, "signal_number", signal.SIGINT)
    return "Ctrl-C (SIGINT)" if number == signal.SIGINT else signal_name(number)


def run_script(main: Callable[[list[str]], object], name: str, argv: list[str] | None = None):
    """A script's entry point: signals installed first, then ``main(argv)``; an interruption that no stage
    handled (between the pipeline's steps, before a session started) ends in one line and 128 + its number."""
    install()
    try:
        return main(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt as exc:
        close_progress_bars()
        print(f"interrupted: {name} stopped by {describe(exc)}; finished work is kept: rerun the same command to "
              "resume", file=sys.stderr, flush=True)
        raise SystemExit(exit_status(exc)) from None


@contextlib.contextmanager
def cancelled_on_error(pool) -> Iterator[None]:
    """Inside ``with ThreadPoolExecutor() as pool``: when the block stops (an interruption, an error), the queued
    work is cancelled, so that leaving the pool waits only for what its threads are running (by default it
    would first run every queued item: a Ctrl-C during check_clips probed every remaining clip)."""
    try:
        yield
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise


def end_children(timeout: float = 10.0) -> None:
    """SIGTERM to this process's child processes (the steps ``pipeline.py --run-locally`` runs as subprocesses),
    which stop as any run does; SIGKILL to those still there after ``timeout`` seconds."""
    import psutil  # a clearml dependency

    children = psutil.Process().children()
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


def close_progress_bars() -> None:
    """End the progress bars still open (a stopped loop leaves its bar mid-line), so that the line saying what
    was kept starts a line of its own."""
    tqdm = getattr(sys.modules.get("tqdm"), "tqdm", None)
    for bar in list(getattr(tqdm, "_instances", None) or ()):
        with contextlib.suppress(Exception):
            bar.close()
