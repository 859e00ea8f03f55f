"""Classify new audio with a trained model: any rate, format, channel count and length.

    from audioclf.inference import load_classifier
    clf = load_classifier("outputs/runs/training-.../model.pt")        # or a ClearML model/task id
    result = clf.classify_file("recording.flac", window_s=4.0, hop_s=2.0)
    result.top(3)                      # aggregate: mean of the window probabilities
    result.probabilities               # (windows, classes), one row per window of the timeline

The command line is ``predict.py`` at the top of the repository.

No feature parameter is declared here: every one comes from the FeatureConfig
stored in the model file (copied there by training from the features dataset),
and each window goes through the steps preprocessing applied to the training
clips, in the same order and with the same code:

1. decode (libsndfile), mix to mono with the same weighted sum, resample with
   libsoxr HQ to the config's rate (streamed in blocks; soxr's stream gives the
   same samples as its one-shot resampler, so a long file never sits in memory
   whole);
2. cut windows (default: the model's clip duration, hop half of it); each window
   is fit to the model's clip length like a training clip (zero-padded at the
   end when shorter, e.g. a short file or the last window);
3. LogMel on the device, then rounded to float16 and back, because the
   features dataset stores float16: a training clip gives exactly the
   spectrogram, and so the probabilities, that training tested.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .audio import OVERFLOW, AudioDecodeError, fit_length
from .device import resolve_device
from .errors import UserError
from .features import FeatureConfig, LogMel
from .models import AudioClassifier, load_model

# Extensions picked up when a folder is given; kept only where this libsndfile can decode the format.
_EXTENSION_FORMATS = {".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG",
                      ".opus": "OGG", ".aiff": "AIFF", ".aif": "AIFF", ".aifc": "AIFF", ".mp3": "MP3"}
DECODE_BLOCK_S = 30.0  # seconds of source audio decoded and resampled at a time
AGGREGATE = "mean of the window probabilities"


class ModelNotFound(UserError):
    """MODEL is neither a model file nor a ClearML model or task id that could be fetched."""


# ----------------------------------------------------------------------------- finding things
def audio_extensions() -> set[str]:
    """Folder scan extensions whose format this soundfile/libsndfile build can read."""
    available = set(sf.available_formats())
    return {ext for ext, fmt in _EXTENSION_FORMATS.items() if fmt in available}


def find_audio_files(paths: Iterable[Path | str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files as given (whatever their extension) and audio files found recursively in folders.

    Returns (files in a stable order, [(path, reason)] for arguments that name nothing usable)."""
    extensions = audio_extensions()
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for item in map(Path, paths):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
            if not found:
                problems.append((str(item), f"no audio files ({', '.join(sorted(extensions))}) in this folder"))
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            problems.append((str(item), "no such file or folder"))
    return list(dict.fromkeys(files)), problems  # a file named twice is classified once


def resolve_model(ref: str | Path, offline: bool = False) -> Path:
    """MODEL -> a local model file: a file, a run folder holding model.pt, or (online) a ClearML id.

    A ClearML id is tried as a model id (``InputModel``), then as a task id (its last output
    model, else its 'model' artifact, which is where an offline training session keeps it)."""
    path = Path(ref)
    if path.is_dir() and (path / "model.pt").is_file():
        return path / "model.pt"
    if path.is_file():
        return path
    if path.is_dir():
        raise ModelNotFound(f"model {str(ref)!r}: a folder without model.pt (a cross-validation run keeps one "
                            "per fold_<k>/ folder)")
    if "/" in str(ref) or os.sep in str(ref) or path.suffix:
        raise ModelNotFound(f"model {str(ref)!r}: no such file")  # a path, not a ClearML id
    from . import tracking  # imports clearml: only when MODEL is not a local file

    is_offline, why = tracking.decide_offline(offline)
    if is_offline:
        raise ModelNotFound(f"model {str(ref)!r}: no such file or run folder (not looked up as a ClearML "
                            f"model or task id: offline, because {why})")
    return _fetch_from_clearml(str(ref))


def _fetch_from_clearml(ref: str) -> Path:
    import clearml
    from clearml.config import config_obj

    from .tracking import _FAST_FAIL_HTTP

    # As in tracking.start_run: an unreachable server is an error in seconds, not hours of retries.
    config_obj.set_overrides({"api": {"http": _FAST_FAIL_HTTP}})
    reasons = []
    try:
        local = clearml.InputModel(model_id=ref).get_local_copy(raise_on_error=True)
        if local:
            return Path(local)
        reasons.append("as a model id: no weights file to download")
    except Exception as exc:  # the SDK raises ValueError, ResourceNotFound... for an unknown id
        reasons.append(f"as a model id: {type(exc).__name__}: {exc}")
    try:
        task = clearml.Task.get_task(task_id=ref)
        for model in reversed(list(task.models.get("output", []))):
            local = model.get_local_copy(raise_on_error=True)
            if local:
                return Path(local)
        artifact = task.artifacts.get("model")
        if artifact is not None:
            local = artifact.get_local_copy()
            if local:
                return Path(local)
        reasons.append("as a task id: the task has no output model and no 'model' artifact")
    except Exception as exc:
        reasons.append(f"as a task id: {type(exc).__name__}: {exc}")
    raise ModelNotFound(f"model {ref!r}: not a local file, and ClearML could not provide it "
                        f"({'; '.join(reasons)})")


# ----------------------------------------------------------------------------- decoding and windows
@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: Path | str) -> AudioInfo:
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        raise AudioDecodeError(path, f"cannot decode: {exc}") from exc
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), info.format, info.subtype)


def mono_stream(path: Path | str, sample_rate: int, block_s: float = DECODE_BLOCK_S) -> Iterator[np.ndarray]:
    """The file as consecutive float32 pieces of its mono signal at ``sample_rate``.

    Same arithmetic as preprocessing (audio.load_for_features): channels mixed by one
    matrix-vector product with weights 1/channels, NaN/Inf rejected, libsoxr HQ."""
    try:
        fh = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        raise AudioDecodeError(path, f"cannot decode: {exc}") from exc
    with fh:
        rate, channels = int(fh.samplerate), int(fh.channels)
        weights = np.full(channels, 1.0 / channels, dtype=np.float32)
        stream = (None if rate == sample_rate
                  else soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ"))
        block, total = max(1, int(block_s * rate)), 0
        while True:
            try:
                data = fh.read(block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
                raise AudioDecodeError(path, f"cannot decode after {total} frames: {exc}") from exc
            total += data.shape[0]
            last = data.shape[0] < block
            mono = data[:, 0] if channels == 1 else data @ weights
            if not np.isfinite(mono).all():
                raise AudioDecodeError(path, "NaN or Inf samples")
            if last and total == 0:
                raise AudioDecodeError(path, "zero frames")
            mono = np.ascontiguousarray(mono, dtype=np.float32)
            piece = mono if stream is None else stream.resample_chunk(mono, last=last)
            if piece.size:
                yield piece
            if last:
                return


def num_windows(total: int, window: int, hop: int) -> int:
    """Windows starting every ``hop`` samples until the signal is covered (at least one)."""
    return 1 + max(0, math.ceil((total - window) / hop))


def iter_windows(pieces: Iterable[np.ndarray], window: int, hop: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, end, samples) of each window over a streamed signal; ``end`` stops at the signal's end,
    so the last window (or the only one of a short signal) can hold fewer than ``window`` samples."""
    buf, buf_start, total, k = np.zeros(0, np.float32), 0, 0, 0
    for piece in pieces:
        buf = np.concatenate([buf, piece])
        total += piece.size
        while k * hop + window <= total:
            start = k * hop
            yield start, start + window, buf[start - buf_start:start - buf_start + window].copy()
            k += 1
        drop = min(k * hop, total) - buf_start  # nothing before the next window's start is needed again
        if drop > 0:
            buf, buf_start = buf[drop:], buf_start + drop
    if total == 0:
        return
    for k in range(k, num_windows(total, window, hop)):
        start = k * hop
        if start >= total:  # a hop longer than the window can step past the end
            return
        yield start, min(start + window, total), buf[start - buf_start:start - buf_start + window].copy()


# ----------------------------------------------------------------------------- the classifier
@dataclass
class FileResult:
    """One file's timeline: window times in seconds and the class probabilities of each window."""

    path: str
    info: AudioInfo
    class_names: list[str]
    starts_s: np.ndarray  # (windows,)
    ends_s: np.ndarray  # (windows,)
    probabilities: np.ndarray  # (windows, classes), softmax

    @property
    def aggregate(self) -> np.ndarray:
        """The file's class probabilities: the mean of the window probabilities."""
        return self.probabilities.mean(axis=0)

    def top(self, k: int, probabilities: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The k most likely classes with their probabilities (aggregate unless given a row)."""
        probs = self.aggregate if probabilities is None else probabilities
        order = np.argsort(-probs, kind="stable")[:k]
        return [(self.class_names[i], float(probs[i])) for i in order]


@dataclass
class Classifier:
    """A trained model with its own feature config, ready to classify waveforms and files."""

    model: AudioClassifier
    config: FeatureConfig
    class_names: list[str]
    device: torch.device
    source: str = ""
    bundle: dict = field(default_factory=dict, repr=False)  # the model file without the weights

    def __post_init__(self) -> None:
        self.model = self.model.to(self.device).eval()
        self.transform = LogMel(self.config).to(self.device)

    # --- arrays -------------------------------------------------------------
    @torch.inference_mode()
    def spectrograms(self, waves: np.ndarray) -> torch.Tensor:
        """(B, config.num_samples) waveforms -> (B, n_mels, frames) float32 dB, rounded through float16
        exactly like the stored training features."""
        batch = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)).to(self.device)
        return self.transform(batch).to(torch.float16).float()

    @torch.inference_mode()
    def probabilities(self, waves: np.ndarray, path: Path | str = "the audio") -> np.ndarray:
        """(B, config.num_samples) waveforms -> (B, classes) softmax probabilities. AudioDecodeError(path,
        OVERFLOW) when a spectrogram is not finite (samples far above full scale), rather than NaN."""
        spec = self.spectrograms(waves)
        if not bool(torch.isfinite(spec).all()):
            raise AudioDecodeError(path, OVERFLOW)
        return torch.softmax(self.model(spec).float(), dim=1).cpu().numpy()

    # --- files --------------------------------------------------------------
    def window_samples(self, window_s: float | None, hop_s: float | None) -> tuple[int, int]:
        """(window, hop) in samples at the model's rate; defaults: the model's duration and half of it."""
        window_s = self.config.duration_s if window_s is None else window_s
        hop_s = window_s / 2 if hop_s is None else hop_s
        if not 0 < window_s <= self.config.duration_s + 1e-9:
            raise UserError(f"--window {window_s}: must be > 0 and at most the model's clip duration "
                            f"({self.config.duration_s} s); longer windows would be trimmed to it")
        window = round(window_s * self.config.sample_rate)
        hop = round(hop_s * self.config.sample_rate)
        if window < 1 or hop < 1:
            raise UserError(f"--window {window_s} / --hop {hop_s}: must each span at least one sample "
                            f"at {self.config.sample_rate} Hz")
        return window, hop

    def file_windows(self, path: Path | str, window_s: float | None = None,
                     hop_s: float | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, end, waveform fit to the model's clip length) per window, samples at the model's rate."""
        window, hop = self.window_samples(window_s, hop_s)
        for start, end, samples in iter_windows(mono_stream(path, self.config.sample_rate), window, hop):
            yield start, end, fit_length(samples, self.config.num_samples, self.config.pad).astype(np.float32, copy=False)

    def classify_file(self, path: Path | str, window_s: float | None = None, hop_s: float | None = None,
                      batch_size: int = 64) -> FileResult:
        """The per-window timeline of one file. Raises AudioDecodeError for a file that does not decode, or whose
        spectrogram overflows."""
        info = audio_info(path)
        self.window_samples(window_s, hop_s)  # bad settings fail before any decoding
        starts, ends, probs, batch = [], [], [], []
        for start, end, wave in self.file_windows(path, window_s, hop_s):
            starts.append(start)
            ends.append(end)
            batch.append(wave)
            if len(batch) == batch_size:
                probs.append(self.probabilities(np.stack(batch), path))
                batch = []
        if batch:
            probs.append(self.probabilities(np.stack(batch), path))
        rate = self.config.sample_rate
        return FileResult(path=str(path), info=info, class_names=list(self.class_names),
                          starts_s=np.asarray(starts) / rate, ends_s=np.asarray(ends) / rate,
                          probabilities=np.concatenate(probs))


def load_classifier(ref: str | Path, device: str | torch.device = "auto", offline: bool = False) -> Classifier:
    """A Classifier from a model file, a run folder or (online) a ClearML model or task id."""
    path = resolve_model(ref, offline=offline)
    device = resolve_device(device) if isinstance(device, str) else device
    model, bundle = load_model(path)
    config = FeatureConfig.from_dict(bundle["feature_config"])
    info = {k: v for k, v in bundle.items() if k != "state_dict"}
    return Classifier(model, config, list(bundle["class_names"]), device, source=os.fspath(path), bundle=info)
