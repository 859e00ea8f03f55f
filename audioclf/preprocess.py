"""Clips -> log-mel spectrograms, in bounded chunks, skipping what is already done.

Clips go through a thread pool in chunks (libsndfile, libsoxr and torch release
the GIL): decode + mono + resample + fit length, then one batched mel transform,
on the CPU inside the worker, with a GPU on the device in the main thread; then
one float16 ``.npy`` per clip. Each file is written under a temporary name and
renamed, so an interrupted run leaves only whole files, and a rerun into the
same folder skips them. Memory holds a few chunks per worker, whatever the
dataset's size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import atomic
from .audio import OVERFLOW, AudioDecodeError, load_for_features
from .features import FeatureConfig, LogMel
from .stopping import cancelled_on_error


@dataclass
class ExtractReport:
    computed: int
    reused: int
    skipped: list[tuple[str, str]]  # (clip, reason)


def _save_npy(path: Path, array: np.ndarray) -> None:
    """Through a temporary name unique to this process: a kill leaves no half file under the final name,
    and two writers never share a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.save_npy(path, array)


def is_complete(path: Path, shape: tuple[int, int]) -> bool:
    """A finished spectrogram from an earlier run: a float16 .npy of ``shape`` with all its bytes (the
    header is read, not the data). Anything else is computed again."""
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError):
        return False
    return array.dtype == np.float16 and array.shape == tuple(shape)


IN_FLIGHT = 2  # chunks queued per worker
CPU_CHUNK = 16  # clips per chunk on the CPU: big enough for an efficient batched STFT, small enough to share


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _drop_overflow(kept: list, out: torch.Tensor, failed: list) -> tuple[list, torch.Tensor]:
    """The clips whose spectrogram is all finite, and their rows of ``out``; the others go to ``failed`` with
    :data:`OVERFLOW` (a finite but huge float sample overflows the power spectrum). One isfinite per batch."""
    finite = torch.isfinite(out).flatten(1).all(dim=1)
    if bool(finite.all()):
        return kept, out
    flags = finite.tolist()
    failed.extend((clip[0], OVERFLOW) for clip, ok in zip(kept, flags) if not ok)
    return [clip for clip, ok in zip(kept, flags) if ok], out[finite]


def extract_features(
    clips: list[tuple[str, Path, Path]],
    config: FeatureConfig,
    device: torch.device,
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = True,
    on_skip: Callable[[str, str], None] | None = None,
) -> ExtractReport:
    """Compute the spectrogram of each (name, audio path, output .npy path); existing outputs are reused.

    Undecodable clips, and clips whose spectrogram is not finite, are skipped and listed in the report, never
    fatal: nothing is written for them.
    """
    shape = (config.n_mels, config.num_frames)
    todo = [c for c in clips if not (c[2].is_file() and is_complete(c[2], shape))]
    report = ExtractReport(computed=0, reused=len(clips) - len(todo), skipped=[])
    transform = LogMel(config).to(device)
    on_cpu = device.type == "cpu"
    workers = max(1, workers)

    def work(chunk: list) -> tuple[list, list, np.ndarray | torch.Tensor | None]:
        """Decode a chunk; on the CPU also transform it here, in this worker thread."""
        kept, waves, failed = [], [], []
        for clip in chunk:
            try:
                waves.append(load_for_features(clip[1], config.sample_rate, config.num_samples, config.pad))
                kept.append(clip)
            except AudioDecodeError as exc:
                failed.append((clip[0], exc.reason))
        if not kept:
            return failed, kept, None
        batch = torch.from_numpy(np.stack(waves))  # (B, samples)
        if on_cpu:
            with torch.inference_mode():
                kept, out = _drop_overflow(kept, transform(batch).to(torch.float16), failed)
            return failed, kept, out.numpy()  # (B, n_mels, frames)
        return failed, kept, batch

    # On the CPU every worker runs the whole chain on small chunks with one torch thread each, so all
    # cores stay busy; with a GPU the workers decode and this thread runs big batches on the device.
    chunk_size = min(batch_size, CPU_CHUNK) if on_cpu else batch_size
    threads_before = torch.get_num_threads()
    if on_cpu:
        torch.set_num_threads(max(1, threads_before // workers))
    bar = tqdm(total=len(clips), initial=report.reused, unit="clip", desc="log-mel", disable=not progress)
    chunks = _chunks(todo, chunk_size)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool, cancelled_on_error(pool):
            # Up to IN_FLIGHT chunks per worker are queued: the cores never wait for each other,
            # and memory holds a bounded number of chunks whatever the dataset's size.
            pending = deque(pool.submit(work, c) for c in islice(chunks, IN_FLIGHT * workers))
            while pending:
                failed, kept, out = pending.popleft().result()
                pending.extend(pool.submit(work, c) for c in islice(chunks, 1))
                if kept and not on_cpu:
                    with torch.inference_mode():
                        spec = transform(out.to(device)).to(torch.float16)
                        kept, spec = _drop_overflow(kept, spec, failed)
                    out = spec.cpu().numpy()
                for name, reason in failed:
                    report.skipped.append((name, reason))
                    if on_skip:
                        on_skip(name, reason)
                if kept:
                    for clip, spec in zip(kept, out):
                        _save_npy(clip[2], spec)
                    report.computed += len(kept)
                bar.update(len(kept) + len(failed))
    finally:
        torch.set_num_threads(threads_before)
        bar.close()  # also when stopped: the bar's line ends, and the next message starts a line of its own
    return report
