"""Where raw audio comes from.

A source resolves to a folder in one of the known layouts
(:data:`audioclf.metadata.LAYOUTS`): UrbanSound8K (``metadata/UrbanSound8K.csv``
and ``audio/fold*/``) or ESC-50 (``meta/esc50.csv`` and ``audio/``).

- ``synthetic``: generated here in UrbanSound8K layout (the built-in data);
- ``urbansound8k``: the official archive (Zenodo record 1203745, md5-checked);
- ``clearml-subset``: ClearML's hosted subset (the seed's UrbanSound8K.zip),
  through ClearML's StorageManager when online, else through our downloader;
- ``esc50``: the ESC-50 GitHub archive (master branch);
- a folder or a .zip/.tar/.tar.gz archive on disk, in either layout (found at
  its top or up to two folders down); a folder is only ever read;
- an ``http(s)://`` URL of such an archive.

Downloads are cached (:mod:`audioclf.download`); archives are extracted safely
(:mod:`audioclf.archive`) into ``<staging>/<name>``, a folder this program owns
(``SourceFolder.owned``): the stage moves the files out of it into the dataset
and removes it, and a rerun extracts the cached archive again.
"""

from __future__ import annotations

import contextlib
import hashlib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from . import archive as archives
from . import locks
from .download import DownloadError, Remote, download, fetch_remote
from .layouts import URBANSOUND8K, Layout, SourceError, detect_layout, source_folds

BUILTIN_SOURCES = ("synthetic",)
REMOTES: dict[str, Remote] = {
    "urbansound8k": Remote(
        url="https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz",
        filename="UrbanSound8K.tar.gz", md5="9aa69802bbf37fb986f71ec1483a196e",
        description="UrbanSound8K, official archive (Zenodo record 1203745)"),
    "clearml-subset": Remote(
        url="https://allegro-datasets.s3.amazonaws.com/clearml/UrbanSound8K.zip",
        filename="clearml-UrbanSound8K.zip",
        description="ClearML's hosted UrbanSound8K subset"),
    "esc50": Remote(
        url="https://github.com/karolpiczak/ESC-50/archive/master.zip",
        filename="ESC-50-master.zip",
        description="ESC-50 (GitHub karolpiczak/ESC-50, master)"),
}
DOWNLOAD_SOURCES = tuple(REMOTES)


@dataclass
class SourceFolder:
    root: Path
    owned: bool  # True: this program staged the folder and may move files out of it
    description: str
    layout: Layout = URBANSOUND8K
    workdir: Path | None = None  # the folder this program created (root or one above it); removed after use
    lock: contextlib.ExitStack | None = field(default=None, repr=False)  # held on a staged folder until release()

    @property
    def staged(self) -> Path:
        """What to remove once the files are in the dataset (owned sources only)."""
        return self.workdir or self.root

    def release(self) -> None:
        """Let another run use the staged folder (call when done with it)."""
        if self.lock is not None:
            self.lock.close()
            self.lock = None


@contextlib.contextmanager
def _held(folder: Path, what: str):
    """The lock on a staging folder, handed to the SourceFolder on success and released on failure."""
    stack = contextlib.ExitStack()
    stack.enter_context(locks.hold(folder, what))
    try:
        yield stack
    except BaseException:
        stack.close()
        raise


def known_sources() -> str:
    return ", ".join(BUILTIN_SOURCES + DOWNLOAD_SOURCES)


def resolve_source(source: str, staging: Path, num_clips: int = 1000, seed: int = 0, workers: int = 1, *,
                   cache_dir: Path | None = None, online: bool = False, progress: bool = True) -> SourceFolder:
    """Turn a --source value into a folder in a known layout (downloading and extracting as needed)."""
    staging = Path(staging)
    cache_dir = Path(cache_dir) if cache_dir is not None else staging.parent / "downloads"
    if source == "synthetic":
        return _synthetic(staging, num_clips, seed, workers, progress)
    if source in REMOTES:
        remote = REMOTES[source]
        local = _fetch_named(source, remote, cache_dir, online, progress)
        return from_archive(local, staging / source, f"{remote.description}: {remote.url}", progress)
    if source.startswith(("http://", "https://")):
        local = download(source, cache_dir / _url_filename(source), progress=progress)
        return from_archive(local, staging / f"url-{archives.archive_stem(local)}", f"archive from {source}",
                            progress)
    return _local(source, staging, progress)


def _synthetic(staging: Path, num_clips: int, seed: int, workers: int, progress: bool) -> SourceFolder:
    from .synthetic import generate_dataset

    root = staging / f"synthetic-n{num_clips}-seed{seed}"
    with _held(root, f"get_data generating {root.name}") as lock:
        generate_dataset(root, num_clips=num_clips, seed=seed, workers=workers, progress=progress)
        return SourceFolder(root, owned=True, lock=lock,
                            description=f"synthetic UrbanSound8K layout, {num_clips} clips, seed {seed}")


def _local(source: str, staging: Path, progress: bool) -> SourceFolder:
    path = Path(source).expanduser()
    if not path.exists():
        raise SourceError(f"--source {source!r} is neither a known source ({known_sources()}) nor an existing "
                          "folder or archive")
    path = path.resolve()
    if path.is_dir():
        root, layout = detect_layout(path)
        return SourceFolder(root, owned=False, description=f"local copy at {root}", layout=layout)
    if archives.is_archive(path):
        return from_archive(path, staging / f"archive-{archives.archive_stem(path)}", f"local archive {path}",
                            progress)
    raise SourceError(f"--source {path} is a file but not a zip or tar archive; pass a folder in UrbanSound8K or "
                      "ESC-50 layout, or its .zip/.tar/.tar.gz archive")


def _url_filename(url: str) -> str:
    """A cache name for an arbitrary URL: a short hash (different URLs never share a file) and its base name."""
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:8]}-{name}"


def _fetch_named(name: str, remote: Remote, cache_dir: Path, online: bool, progress: bool) -> Path:
    """The archive of a named source: from the cache, through ClearML (clearml-subset online), or downloaded."""
    if name == "clearml-subset" and online:
        local = clearml_local_copy(remote.url)
        if local is not None:
            return local
        print(f"ClearML's StorageManager could not fetch {remote.url}; downloading it directly")
    return fetch_remote(remote, cache_dir, progress=progress)


def clearml_local_copy(url: str) -> Path | None:
    """The archive through ClearML's StorageManager (its cache; not extracted: extraction is ours, safely)."""
    from clearml import StorageManager

    try:
        local = StorageManager.get_local_copy(remote_url=url, extract_archive=False)
    except Exception as exc:  # the SDK raises many kinds; the direct download is the fallback
        print(f"StorageManager.get_local_copy({url}) failed: {type(exc).__name__}: {exc}")
        return None
    return Path(local) if local and Path(local).is_file() else None


def from_archive(path: Path, target: Path, description: str, progress: bool = True) -> SourceFolder:
    """Extract an archive (never modified) into ``target`` and find the layout inside."""
    with _held(target, f"get_data extracting {path.name}") as lock:
        extracted = archives.extract(path, target, progress=progress)
        root, layout = detect_layout(extracted, origin=path)
        return SourceFolder(root, owned=True, description=description, layout=layout, workdir=extracted, lock=lock)


__all__ = ["BUILTIN_SOURCES", "DOWNLOAD_SOURCES", "REMOTES", "DownloadError", "SourceError", "SourceFolder",
           "detect_layout", "from_archive", "resolve_source", "source_folds"]
