"""The log-mel feature config and transform.

One ``FeatureConfig`` is the single source of truth for how a clip becomes a
spectrogram. preprocessing writes it into the features dataset
(``features.json``), training copies it into the model file, and prediction
reads it from there, so no parameter is declared twice (no train/serve skew).

The steps follow the seed: resample to 22050 Hz, mix to mono, MelSpectrogram,
AmplitudeToDB, with the clip trimmed to a fixed duration or, when shorter,
repeated from its start until it fills it (``pad="loop"``; the seed padded with
silence, ``pad="zero"``). The defaults
differ from the seed where the seed's were a poor fit for 4 s UrbanSound8K
clips: n_fft 1024 / hop 512 (torchaudio's defaults are 400 / 200, a 18 ms
window that wastes frequency resolution at 22 kHz) and 4 s (the longest clip),
giving 64 mels x 173 frames.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

import torch
import torchaudio

from .audio import PAD_MODES
from .errors import UserError

FEATURE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float | None = None  # None: the Nyquist frequency
    duration_s: float = 4.0
    top_db: float | None = 80.0  # floor each clip at (its max - top_db) dB; None: no floor
    pad: str = "loop"  # a clip shorter than duration_s: "loop" (repeated from its start) or "zero" (silence
    #                    after it, the seed's); "loop" won by cross-validation where many clips are short
    #                    (docs/choosing-defaults.md, "Which evidence decided each default")

    def __post_init__(self) -> None:
        checks = {
            "sample_rate": self.sample_rate > 0,
            "n_fft": self.n_fft > 0,
            "hop_length": 0 < self.hop_length,
            "n_mels": 0 < self.n_mels <= self.n_fft // 2 + 1,
            # The STFT pads by n_fft // 2 on each side and needs more samples than that.
            "duration_s": self.duration_s > 0
            and (self.sample_rate <= 0 or round(self.sample_rate * self.duration_s) > self.n_fft // 2),
            "f_min": 0 <= self.f_min < self.sample_rate / 2 or self.sample_rate <= 0,
            "f_max": self.f_max is None or self.f_min < self.f_max <= self.sample_rate / 2,
            "top_db": self.top_db is None or self.top_db > 0,
            "pad": self.pad in PAD_MODES,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise UserError(f"invalid feature config values for {', '.join(bad)}: {self}")

    @property
    def num_samples(self) -> int:
        return round(self.sample_rate * self.duration_s)

    @property
    def num_frames(self) -> int:
        # torch.stft with center=True gives 1 + floor(samples / hop) frames.
        return 1 + self.num_samples // self.hop_length

    def to_dict(self) -> dict:
        values = asdict(self)
        for name in ("f_min", "f_max", "duration_s", "top_db"):  # 4 and 4.0 are one config
            if values[name] is not None:
                values[name] = float(values[name])
        return values

    @classmethod
    def from_dict(cls, values: dict) -> FeatureConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UserError(f"unknown feature config keys {sorted(unknown)}; known: {sorted(known)}")
        # A config written before "pad" existed (features.json, a model file) was made with silence after
        # the clip: it keeps "zero", whatever today's default, so a model is served as it was trained.
        return cls(**{"pad": "zero", **values})

    def fingerprint(self) -> str:
        """A short hash that changes whenever any parameter (or the format) changes."""
        values = self.to_dict()
        if values["pad"] == "zero":  # the fill of every config from before the field: their hash is kept
            del values["pad"]
        payload = json.dumps({"v": FEATURE_FORMAT_VERSION, **values}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


class LogMel(torch.nn.Module):
    """(batch, samples) waveforms at config.sample_rate -> (batch, n_mels, frames) dB."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_mels,
            power=2.0,
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        # MelSpectrogram(power=2) computed by hand: re^2 + im^2 of the STFT is a third of the cost of
        # torchaudio's |z|.pow(2), and the mel filterbank is the same module.
        stft = self.mel.spectrogram
        spec = torchaudio.functional.spectrogram(
            waveforms, pad=stft.pad, window=stft.window, n_fft=stft.n_fft, hop_length=stft.hop_length,
            win_length=stft.win_length, power=None, normalized=stft.normalized, center=stft.center,
            pad_mode=stft.pad_mode, onesided=stft.onesided)  # (B, n_fft // 2 + 1, frames), complex
        power = self.mel.mel_scale(spec.real.square() + spec.imag.square())  # (B, n_mels, frames)
        # AmplitudeToDB(stype="power") with top_db, applied per clip: torchaudio's
        # transform clamps against the max of a whole packed batch instead.
        db = 10.0 * torch.log10(torch.clamp(power, min=1e-10))
        if self.config.top_db is not None:
            floor = db.amax(dim=(-2, -1), keepdim=True) - self.config.top_db
            db = torch.maximum(db, floor)
        return db
