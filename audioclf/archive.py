"""Safe, idempotent extraction of .zip and .tar(.gz/.bz2/.xz) archives.

No member may land outside the target folder: a member with an absolute path
or a ``..`` component, a symlink or hardlink that points outside, and device
files are refused, the whole extraction stops, and the error names the member.
Tar archives go through tarfile's ``data`` filter as a second line of defence
(Python 3.11.4+, 3.12+); zip members are checked here and written by this code
(never through a symlink: zip symlinks pointing inside are skipped).

Extraction goes to ``<target>.partial`` and is renamed to ``target`` when
complete, with a marker naming the archive; extracting the same archive again
returns at once, and an interrupted extraction starts afresh.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from .errors import UserError

MARKER = ".extracted.json"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")
HAS_DATA_FILTER = hasattr(tarfile, "data_filter")
_FILTER_ERRORS = getattr(tarfile, "FilterError", ())  # an empty tuple catches nothing on older Pythons
_SKIPPED_PREFIXES = ("__MACOSX/",)  # macOS resource forks in zips made by Finder


class ArchiveError(UserError):
    """An archive that cannot or must not be extracted; the message names the archive and the member."""


def is_archive(path: Path) -> bool:
    """True for a file that is a zip or tar archive (by content, not by name)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)
    except OSError:
        return False


def archive_stem(path: Path) -> str:
    """The archive's name without its archive suffix: UrbanSound8K.tar.gz -> UrbanSound8K."""
    name = Path(path).name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def extract(archive: Path | str, target: Path | str, progress: bool = True) -> Path:
    """Extract ``archive`` into ``target`` (created; replaced if it holds another extraction)."""
    archive, target = Path(archive), Path(target)
    stamp = _stamp(archive)
    if _marker_matches(target, stamp):
        return target
    work = target.with_name(target.name + ".partial")
    for stale in (work, target):
        shutil.rmtree(stale, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, work, progress)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, work, progress)
        else:
            raise ArchiveError(f"{archive} is neither a zip nor a tar archive (or it is damaged): pass a .zip, "
                               ".tar or .tar.gz, or a folder; a damaged download: delete it and run again (your "
                               "own copy: replace it with an intact one)")
        (work / MARKER).write_text(json.dumps(stamp))
        os.replace(work, target)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, (gzip.BadGzipFile, zipfile.BadZipFile)):
            raise  # disk full, permissions: not the archive's fault
        raise ArchiveError(f"{archive} is damaged ({type(exc).__name__}: {exc}); a download: delete it and run "
                           "again to download it afresh; your own copy: replace it with an intact one") from exc
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def _stamp(archive: Path) -> dict:
    st = archive.stat()
    return {"archive": str(archive.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _marker_matches(target: Path, stamp: dict) -> bool:
    try:
        return json.loads((target / MARKER).read_text()) == stamp
    except (OSError, ValueError):
        return False


def _refuse(archive: Path, member: str, why: str) -> ArchiveError:
    return ArchiveError(f"{archive}: refused member {member!r}: {why}. The archive is damaged or malicious; "
                        "nothing was extracted. Download it again from a trusted source")


def safe_parts(name: str) -> tuple[str, ...] | None:
    """The path components of a member name, or None when it is absolute or climbs with '..'."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        return None
    parts = tuple(p for p in PurePosixPath(clean).parts if p not in ("", "."))
    return None if ".." in parts else parts


def _inside(link_from_dir: str, link: str) -> bool:
    """Whether a relative link target, resolved lexically from a member's folder, stays in the root."""
    if link.startswith("/") or re.match(r"^[A-Za-z]:", link):
        return False
    resolved = posixpath.normpath(posixpath.join(link_from_dir or ".", link.replace("\\", "/")))
    return resolved != ".." and not resolved.startswith("../") and not resolved.startswith("/")


def _skipped(name: str) -> bool:
    return name.replace("\\", "/").startswith(_SKIPPED_PREFIXES)


# ----------------------------------------------------------------------------- tar
def check_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Raise ArchiveError for a member that could write outside the target folder."""
    parts = safe_parts(member.name)
    if parts is None:
        raise _refuse(archive, member.name, "absolute path or '..' in the path")
    if member.issym() and not _inside(posixpath.dirname("/".join(parts)), member.linkname):
        raise _refuse(archive, member.name, f"symlink pointing outside the target ({member.linkname!r})")
    if member.islnk() and not _inside("", member.linkname):
        raise _refuse(archive, member.name, f"hardlink pointing outside the target ({member.linkname!r})")
    if member.isdev() or not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise _refuse(archive, member.name, "device, fifo or other special file")


class _CountingFile(io.FileIO):
    """A file whose read position drives a progress bar (tar archives stream; sizes are compressed bytes)."""

    def __init__(self, path: Path, bar: tqdm):
        super().__init__(path, "rb")
        self._bar = bar

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self._bar.update(self.tell() - self._bar.n)
        return data

    def readinto(self, buffer) -> int:
        count = super().readinto(buffer)
        self._bar.update(self.tell() - self._bar.n)
        return count


def _extract_tar(archive: Path, work: Path, progress: bool) -> None:
    with tqdm(total=archive.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"extracting {archive.name}", disable=not progress) as bar, \
            _CountingFile(archive, bar) as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
        for member in tar:
            check_tar_member(archive, member)
            if _skipped(member.name):
                continue
            try:
                if HAS_DATA_FILTER:
                    tar.extract(member, work, filter="data")
                else:  # checked above; no ownership or special bits from the archive
                    tar.extract(member, work, set_attrs=False)
            except _FILTER_ERRORS as exc:  # the data filter's refusal: name the member
                raise _refuse(archive, member.name, str(exc)) from exc


# ----------------------------------------------------------------------------- zip
def _zip_symlink_target(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    if stat.S_ISLNK(info.external_attr >> 16):
        return zf.read(info).decode("utf-8", "replace")
    return None


def _extract_zip(archive: Path, work: Path, progress: bool) -> None:
    root = os.path.realpath(work)
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # check every member before writing any
            parts = safe_parts(info.filename)
            if parts is None:
                raise _refuse(archive, info.filename, "absolute path or '..' in the path")
            link = _zip_symlink_target(zf, info)
            if link is not None and not _inside(posixpath.dirname("/".join(parts)), link):
                raise _refuse(archive, info.filename, f"symlink pointing outside the target ({link!r})")
        total = sum(i.file_size for i in infos)
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=f"extracting {archive.name}", disable=not progress) as bar:
            for info in infos:
                _write_zip_member(zf, info, archive, work, root)
                bar.update(info.file_size)


def _write_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: Path, work: Path, root: str) -> None:
    parts = safe_parts(info.filename)
    if not parts or _skipped(info.filename) or _zip_symlink_target(zf, info) is not None:
        return  # the root itself, macOS forks, and symlinks (never followed or created)
    dest = work.joinpath(*parts)
    if os.path.commonpath([root, os.path.realpath(dest)]) != root:
        raise _refuse(archive, info.filename, "would be written outside the target")
    if info.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
