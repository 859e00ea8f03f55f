"""Resumable, verified downloads into a cache folder (standard library + tqdm).

A download is streamed to ``<name>.part`` beside its final name, with a
progress bar. When the connection drops, the next attempt (a retry here, or a
later run) asks for the rest with an HTTP ``Range`` header and appends to the
partial file, with ``If-Range`` (the ETag or Last-Modified of the first
response) so that a file changed on the server in between comes back whole
rather than spliced; a server that ignores ranges sends the whole file again
and the partial file is restarted. A complete file is checked against its md5 or
sha256 when one is known and only then renamed into place, so a file under the
final name is always whole. A mismatch deletes the partial file and says so.

The cache is keyed by file name: a file already in place is used without a
request (its checksum is verified once and the result remembered in
``<name>.verified.json``, so a 6 GB archive is not hashed on every run).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from . import atomic, locks
from .errors import UserError

CHUNK = 1 << 20
RETRY_WAIT = 2.0  # seconds before the first retry; the n-th waits n times as long
USER_AGENT = "audioclf-get-data/1.0 (+urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
# Errors after which a retry (with Range) makes sense: the connection, not the request, failed.
_TRANSIENT = (ConnectionError, TimeoutError, socket.timeout, http.client.HTTPException, urllib.error.URLError)


class DownloadError(UserError):
    """A download failed; the message names the URL, the file and what to do."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the expected checksum (the partial file was deleted)."""


@dataclass(frozen=True)
class Remote:
    """A file to download: where from, the name it gets in the cache, and its checksums when known."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    description: str = ""


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _marker_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".verified.json")


def file_digest(path: Path, algorithm: str, progress: bool = False) -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                      desc=f"{algorithm} {path.name}", disable=not progress, leave=False) as bar:
        while block := fh.read(CHUNK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _expected(md5: str | None, sha256: str | None) -> tuple[str, str] | None:
    """The strongest known checksum as (algorithm, lowercase hex)."""
    if sha256:
        return "sha256", sha256.lower()
    if md5:
        return "md5", md5.lower()
    return None


def _verify(path: Path, expected: tuple[str, str] | None, progress: bool) -> str | None:
    """None when the file matches (or nothing is known), else the digest found."""
    if expected is None:
        return None
    algorithm, want = expected
    found = file_digest(path, algorithm, progress)
    return None if found == want else found


def _cached_ok(dest: Path, expected: tuple[str, str] | None, progress: bool) -> bool:
    """True when ``dest`` is a complete, verified file; a cached file that fails verification is deleted."""
    if not dest.is_file():
        return False
    if expected is None:
        return True  # only complete files are ever renamed into place
    stat = dest.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "algorithm": expected[0], "digest": expected[1]}
    marker = _marker_path(dest)
    try:
        if json.loads(marker.read_text()) == stamp:
            return True
    except (OSError, ValueError):
        pass
    found = _verify(dest, expected, progress)
    if found is None:
        atomic.write_json(marker, stamp, fsync=False)
        return True
    print(f"cached {dest} does not match its {expected[0]} ({found}, expected {expected[1]}): deleted, "
          "downloading it again")
    dest.unlink()
    marker.unlink(missing_ok=True)
    return False


def download(url: str, dest: Path | str, md5: str | None = None, sha256: str | None = None, *,
             progress: bool = True, retries: int = 5, retry_wait: float | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (resuming, verifying) unless a complete copy is already there.

    Raises ChecksumError on a checksum mismatch (the partial file is deleted) and DownloadError when
    the server refuses or the connection keeps failing (the partial file is kept: a rerun resumes it).
    """
    dest = Path(dest)
    with locks.hold(dest, f"the download of {url}"):  # two runs never append to one .part file
        return _download(url, dest, _expected(md5, sha256), progress, retries, retry_wait, timeout)


def _download(url: str, dest: Path, expected: tuple[str, str] | None, progress: bool, retries: int,
              retry_wait: float | None, timeout: float) -> Path:
    if _cached_ok(dest, expected, progress):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    failures = 0
    while True:
        try:
            if _fetch(url, part, timeout, progress):
                break
            reason = "the connection closed before the end of the file"
        except _TRANSIENT as exc:  # HTTP errors were turned into DownloadError by _fetch
            reason = f"{type(exc).__name__}: {exc}"
            unreachable = isinstance(exc, urllib.error.URLError)  # no connection at all (DNS, refused, offline)
        else:
            unreachable = False
        failures += 1
        allowed = min(retries, 2) if unreachable else retries
        have = part.stat().st_size if part.exists() else 0
        if failures > allowed:
            raise DownloadError(_give_up_message(url, part, failures, reason, have))
        what = "cannot connect" if unreachable else f"interrupted at {have} bytes"
        print(f"download of {url}: {what} ({reason}); retrying ({failures}/{allowed})")
        time.sleep((RETRY_WAIT if retry_wait is None else retry_wait) * failures)
    found = _verify(part, expected, progress)
    if found is not None:
        part.unlink()
        _validator_path(part).unlink(missing_ok=True)
        raise ChecksumError(
            f"{url}: the downloaded file's {expected[0]} is {found}, expected {expected[1]}; deleted {part}. "
            "Run again to download it afresh; if it fails again, the file on the server has changed")
    _validator_path(part).unlink(missing_ok=True)
    os.replace(part, dest)  # only a complete, verified file gets the final name
    if expected is not None:
        stat = dest.stat()
        atomic.write_json(_marker_path(dest), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                                "algorithm": expected[0], "digest": expected[1]})
    return dest


def _give_up_message(url: str, part: Path, failures: int, reason: str, have: int) -> str:
    kept = (f"; the {have} bytes received are kept in {part} and the next run resumes from there" if have
            else "")
    return (f"downloading {url} failed {failures} times ({reason}){kept}. Check the network; or download the file "
            "yourself and pass it (or its unpacked folder) with --source PATH")


def fetch_remote(remote: Remote, cache_dir: Path, progress: bool = True, **kwargs) -> Path:
    """Download a known file into the cache folder (or reuse it) and return its path."""
    return download(remote.url, Path(cache_dir) / remote.filename, md5=remote.md5, sha256=remote.sha256,
                    progress=progress, **kwargs)


def _http_error(url: str, exc: urllib.error.HTTPError) -> DownloadError:
    return DownloadError(f"{url}: the server answered HTTP {exc.code} {exc.reason}; check the URL "
                         "(or download the file yourself and pass it with --source PATH)")


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> bool:
    """One request appending to ``part`` from its current size. True when the file is complete."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = _read_validator(part)
        if validator:  # the rest of the same version, or (200) the whole new version
            headers["If-Range"] = validator
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left past the end: the partial file may already be whole
            total = _total_from_content_range(exc.headers.get("Content-Range", ""))
            if total == offset:
                return True
            part.unlink()  # larger than the file, or unknown: start over
            return False
        raise _http_error(url, exc) from exc
    with response:
        start, total = _resume_point(response, offset)
        if start == 0:
            _write_validator(part, response.headers)
        mode = "ab" if start else "wb"
        with open(part, mode) as fh, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                          unit_divisor=1024, desc=part.name[:-len(".part")],
                                          disable=not progress) as bar:
            while block := response.read(CHUNK):
                fh.write(block)
                bar.update(len(block))
        size = part.stat().st_size
    if total is None:
        return True  # no length announced: the end of the stream is the end of the file
    return size == total


def _resume_point(response, offset: int) -> tuple[int, int | None]:
    """(byte where this response's body starts, total file size or None) for a 200 or 206 response."""
    if response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            total = None if match.group(3) == "*" else int(match.group(3))
            return offset, total
        raise DownloadError(f"{response.url}: the server sent a range that was not asked for "
                            f"({response.headers.get('Content-Range')!r} for bytes={offset}-)")
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None  # 200: the whole file again


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_validator(part: Path) -> str | None:
    try:
        return json.loads(_validator_path(part).read_text()).get("if_range")
    except (OSError, ValueError, AttributeError):
        return None


def _write_validator(part: Path, headers) -> None:
    """Remember the version being downloaded (a strong ETag, else Last-Modified) for If-Range on resume."""
    etag = headers.get("ETag")
    value = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
    path = _validator_path(part)
    if value:
        atomic.write_json(path, {"if_range": value}, fsync=False)
    else:
        path.unlink(missing_ok=True)


def _total_from_content_range(value: str) -> int | None:
    match = re.match(r"bytes\s+\*/(\d+)", value)
    return int(match.group(1)) if match else None
