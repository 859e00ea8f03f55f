"""Decoding, mono mixing and resampling.

Decoding goes through soundfile (libsndfile): it reads 8/16/24/32-bit PCM,
float, u-law, A-law, IMA/MS ADPCM and FLAC, which covers every encoding found
in UrbanSound8K (torchaudio >= 2.9 cannot decode without torchcodec).
Resampling uses libsoxr (python-soxr).
"""

from __future__ import annotations

import math
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


# The reason for a clip whose samples are finite but so large (a float file far above full scale) that its
# spectrogram overflows to Inf/NaN: found on the computed features, per clip, not by a sample threshold.
OVERFLOW = "samples too large: the spectrogram overflows; re-export the file as normalized PCM"


def _read(path: Path | str, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """float32 (frames, channels) and the rate; with ``seconds``, only the frames needed for that long
    plus 100 ms (so the resampler's filter sees the same signal around the cut as with a full read)."""
    try:
        with sf.SoundFile(str(path)) as fh:
            rate = int(fh.samplerate)
            frames = -1 if seconds is None else math.ceil(seconds * rate) + rate // 10
            data = fh.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        raise AudioDecodeError(path, f"cannot decode: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioDecodeError(path, "zero frames")
    return data, rate


def load_audio(path: Path | str) -> tuple[np.ndarray, int]:
    """Decode a file to float32 of shape (channels, frames) and its sample rate.

    Raises AudioDecodeError for files that decode to nothing usable (not audio,
    truncated, zero frames, NaN or Inf samples), so callers can skip and report.
    """
    data, rate = _read(path)
    if not np.isfinite(data).all():
        raise AudioDecodeError(path, "NaN or Inf samples")
    return np.ascontiguousarray(data.T), rate


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


PAD_MODES = ("zero", "loop")
PAD_WORDS = {"zero": "zero-padded at the end", "loop": "repeated from its start until it is long enough"}


def fit_length(signal: np.ndarray, num_samples: int, pad: str = "zero") -> np.ndarray:
    """Trim the end of a 1-D signal to exactly num_samples, or fill it up to that: with zeros after it
    (``pad="zero"``), or with the signal repeated from its start (``pad="loop"``)."""
    if pad not in PAD_MODES:
        raise ValueError(f"unknown pad mode {pad!r}; choose one of {', '.join(PAD_MODES)}")
    length = signal.shape[0]
    if length >= num_samples:
        return signal[:num_samples]
    if pad == "loop" and length > 0:
        return np.tile(signal, -(-num_samples // length))[:num_samples]
    return np.pad(signal, (0, num_samples - length))


def load_for_features(path: Path | str, sample_rate: int, num_samples: int, pad: str) -> np.ndarray:
    """Decode, mix to mono, resample and fit to length: the waveform the mel transform sees.

    The hot path of preprocessing: it decodes only the frames the features use, and mixes channels
    with one matrix-vector product on the decoded (frames, channels) array (half the time of a
    transposed copy and a mean)."""
    data, rate = _read(path, seconds=num_samples / sample_rate)
    channels = data.shape[1]
    mono = data[:, 0] if channels == 1 else data @ np.full(channels, 1.0 / channels, dtype=np.float32)
    if not np.isfinite(mono).all():  # NaN and Inf survive the mix (inf - inf is NaN)
        raise AudioDecodeError(path, "NaN or Inf samples")
    return fit_length(resample(mono, rate, sample_rate), num_samples, pad).astype(np.float32, copy=False)
