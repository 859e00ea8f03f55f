"""Clips -> log-mel spectrograms, in bounded chunks, skipping what is already done.

Per chunk of ``batch_size`` clips: decode + mono + resample + fit length in a
thread pool (libsndfile and libsoxr release the GIL), a chunk or two ahead of
one batched mel transform on the device, then one float16 ``.npy`` per clip. Each file is
written under a temporary name and renamed, so an interrupted run leaves only
whole files, and a rerun into the same folder skips them. Memory holds one
chunk, whatever the dataset's size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .audio import AudioDecodeError, load_for_features
from .features import FeatureConfig, LogMel


@dataclass
class ExtractReport:
    computed: int
    reused: int
    skipped: list[tuple[str, str]]  # (clip, reason)


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


IN_FLIGHT = 2  # chunks being decoded while one is transformed


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


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

    Undecodable clips are skipped and listed in the report, never fatal.
    """
    todo = [c for c in clips if not c[2].is_file()]
    report = ExtractReport(computed=0, reused=len(clips) - len(todo), skipped=[])
    transform = LogMel(config).to(device)

    def load(clip: tuple[str, Path, Path]) -> np.ndarray | AudioDecodeError:
        try:
            return load_for_features(clip[1], config.sample_rate, config.num_samples)
        except AudioDecodeError as exc:
            return exc

    bar = tqdm(total=len(clips), initial=report.reused, unit="clip", desc="log-mel", disable=not progress)
    chunks = _chunks(todo, batch_size)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, torch.inference_mode():
        # Decoding runs IN_FLIGHT chunks ahead of the mel transform, so the cores never wait for
        # each other, and at most IN_FLIGHT + 1 chunks of audio are held in memory.
        pending: deque = deque()
        for chunk in islice(chunks, IN_FLIGHT):
            pending.append((chunk, [pool.submit(load, clip) for clip in chunk]))
        while pending:
            chunk, futures = pending.popleft()
            for nxt in islice(chunks, 1):
                pending.append((nxt, [pool.submit(load, clip) for clip in nxt]))
            waves, kept = [], []
            for clip, future in zip(chunk, futures):
                wave = future.result()
                if isinstance(wave, AudioDecodeError):
                    report.skipped.append((clip[0], wave.reason))
                    if on_skip:
                        on_skip(clip[0], wave.reason)
                else:
                    waves.append(wave)
                    kept.append(clip)
            if kept:
                batch = torch.from_numpy(np.stack(waves)).to(device)  # (B, samples)
                specs = transform(batch).to(torch.float16).cpu().numpy()  # (B, n_mels, frames)
                for clip, spec in zip(kept, specs):
                    _save_npy(clip[2], spec)
                report.computed += len(kept)
            bar.update(len(chunk))
    bar.close()
    return report
