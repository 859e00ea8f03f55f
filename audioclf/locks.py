"""Work folders that two runs could share are held under a lock.

Two runs that would write the same work folder (two preprocessing runs of one
raw dataset and config, two get_data runs generating the same data into one
--output-dir) take an exclusive ``fcntl.flock`` on ``<folder>.lock`` for as long
as they use it: the second waits, saying for whom, and then starts on the
folder as the first left it. The kernel drops the lock when its holder exits,
however it exits, so a killed run never blocks the next one (it leaves only
the small lock file, which the next holder reuses and removes).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path


def lock_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".lock")


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another run"
    started = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return f"{info.get('what', 'another run')} (pid {info.get('pid')} on {info.get('host')}, since {started})"


def _open_locked(path: Path, wait: bool, folder: Path) -> int:
    """An fd holding the lock on ``path``. After the lock is won, the path must still name the locked file: a
    holder removes the file when it is done, so a waiter that won the lock on the removed file tries again."""
    announced = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise BlockingIOError(f"{folder} is in use by {_holder(path)}") from None
                if not announced:
                    print(f"waiting for {_holder(path)} to finish with {folder} (Ctrl-C to stop) ...", flush=True)
                    announced = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            if announced:
                print(f"... {folder} is free; going on", flush=True)
            return fd
        os.close(fd)


@contextlib.contextmanager
def hold(folder: Path | str, what: str, wait: bool = True) -> Iterator[None]:
    """Hold the lock of ``folder`` (its parent is created if needed). With ``wait=False`` a held lock
    raises BlockingIOError at once instead of waiting. The lock file is removed on release."""
    folder = Path(folder)
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_locked(path, wait, folder)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"what": what, "pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.time()}).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding it: a waiter then sees the file is gone and tries again
        os.close(fd)


def is_free(folder: Path | str) -> bool:
    """True when nobody holds the lock of ``folder`` (a lock left by a killed run is free)."""
    path = lock_path(Path(folder))
    if not path.is_file():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
