"""Files that another stage or a person reads are never seen half written.

Each is written to a temporary name in the same folder (unique to the process,
so two writers never share one), flushed and fsync'ed, then renamed into place:
a rename within one file system is atomic, so a reader sees the old file or the
new one, and a kill or a full disk leaves at most a stray ``.*.tmp-*`` file that
nothing reads. A full disk becomes a ``DiskFullError`` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".tmp-"  # temporary names contain this; readers and cleanups skip them


class DiskFullError(OSError):
    """No space left while writing ``path``."""

    def __init__(self, path: Path | str):
        folder = Path(path).parent
        super().__init__(errno.ENOSPC, f"no space left on device while writing {path}: free space in {folder} "
                                       "(or pass an --output-dir on another disk) and rerun; the stage resumes",
                         str(path))


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(3)}")


def is_temporary(path: Path | str) -> bool:
    return TMP_MARK in Path(path).name


def remove_temporaries(folder: Path | str) -> list[Path]:
    """Remove the temporary files under ``folder`` (those of writers that were killed) and return them; only
    for a folder no other process writes to."""
    removed = []
    for path in Path(folder).rglob(f"*{TMP_MARK}*") if Path(folder).is_dir() else ():
        if path.is_file() and is_temporary(path):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path | str, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on failure it is removed.

    ``fsync=False`` skips the flush to the disk (for many small files whose loss in a power cut a rerun
    detects and repairs); a kill still never leaves a half file under the final name."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(path) from exc
        raise
    if fsync:
        fsync_dir(path.parent)


def write_bytes(path: Path | str, payload: bytes, fsync: bool = True) -> None:
    with atomic_path(path, fsync=fsync) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(payload)


def write_text(path: Path | str, text: str, fsync: bool = True) -> None:
    write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_json(path: Path | str, data, fsync: bool = True) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", fsync=fsync)


def write_csv(path: Path | str, table, fsync: bool = True, **to_csv) -> None:
    """A pandas DataFrame as CSV (``to_csv`` keywords as pandas takes them; index=False unless given)."""
    to_csv.setdefault("index", False)
    write_text(path, table.to_csv(**to_csv), fsync=fsync)


def save_torch(path: Path | str, obj) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_npy(path: Path | str, array, fsync: bool = False) -> None:
    import numpy as np

    with atomic_path(path, fsync=fsync) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
