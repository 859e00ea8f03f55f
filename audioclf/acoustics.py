"""How a field recording colours its sound: the room, the microphone, the recorder.

A ``Recording`` is drawn once per UrbanSound8K recording (fsID) and shared by
all of its slices, as the slices of one Freesound upload share one place, one
device and one upload chain:

* the room: outdoors (a ground reflection and a short tail) or a street canyon,
  yard or hall (reverberation time 0.3-1.6 s, high frequencies decaying faster),
  at a random direct-to-reverberant ratio;
* the microphone: a smooth random EQ (a tilt and one to three resonances of +-6 dB), a
  high-pass (wind shield, handling) and, on about a quarter of the recordings, a
  codec-like band limit (3.4-11 kHz, steep);
* the recorder: a level (peak -35 to -1 dBFS), its own noise floor, and on
  about one recording in eight clipping (2-14 dB of overdrive, hard or soft);
* the file format: sample rate, channel count and WAV subtype, drawn with the
  frequencies of the real corpus.

So part of each clip's spectrum is explained by the recording, not the class:
a model that learns a recording's colour instead of its source does not carry
over to recordings in other folds, as on the real dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft

from .sound_generators import NYQ, band, loguniform

# Per-recording format draws, roughly the frequencies found in the real corpus.
RATES = (44100, 48000, 96000, 24000, 22050, 16000, 11025, 8000, 32000)
RATE_P = (0.55, 0.25, 0.07, 0.03, 0.03, 0.03, 0.02, 0.01, 0.01)
SUBTYPES = ("PCM_16", "PCM_24", "PCM_U8", "FLOAT")
SUBTYPE_P = (0.60, 0.25, 0.05, 0.10)
STEREO_P = 0.65


@dataclass
class Recording:
    sample_rate: int
    channels: int
    subtype: str
    outdoor: bool
    rt60: float  # seconds of 60 dB decay of the room's tail (low frequencies)
    drr_db: float  # direct-to-reverberant energy ratio
    tilt_db: float  # microphone spectral tilt, dB per octave around 1 kHz
    resonances: list[tuple[float, float, float]]  # (centre Hz, width in octaves, gain dB)
    highpass_hz: float
    lowpass_hz: float | None  # codec-like band limit, or None
    clip_db: float | None  # overdrive above full scale, or None
    soft_clip: bool
    level_dbfs: float  # peak level of the recording
    noise_floor_db: float  # recorder self-noise, dB below the peak level
    rir_seed: int  # the room's impulse responses are drawn from this (one per channel)
    extra: dict = field(default_factory=dict)


def draw_recording(rng: np.random.Generator) -> Recording:
    outdoor = rng.random() < 0.4
    return Recording(
        sample_rate=int(rng.choice(RATES, p=RATE_P)),
        channels=2 if rng.random() < STEREO_P else 1,
        subtype=str(rng.choice(SUBTYPES, p=SUBTYPE_P)),
        outdoor=outdoor,
        rt60=rng.uniform(0.05, 0.25) if outdoor else loguniform(rng, 0.3, 1.6),
        drr_db=rng.uniform(4, 18) if outdoor else rng.uniform(-4, 10),
        tilt_db=rng.uniform(-4, 3),
        resonances=[(loguniform(rng, 150, 8000), rng.uniform(0.3, 1.5), rng.uniform(-6, 6))
                    for _ in range(int(rng.integers(1, 4)))],
        highpass_hz=loguniform(rng, 30, 400),
        lowpass_hz=loguniform(rng, 3400, 11000) if rng.random() < 0.25 else None,
        clip_db=rng.uniform(2, 14) if rng.random() < 0.12 else None,
        soft_clip=bool(rng.random() < 0.5),
        level_dbfs=rng.uniform(-35, -1),
        noise_floor_db=rng.uniform(45, 80),
        rir_seed=int(rng.integers(2**31)),
    )


def room_impulse_response(rec: Recording, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A direct path, a few early reflections and an exponentially decaying noise tail whose high band
    decays about twice as fast, scaled to the recording's direct-to-reverberant ratio."""
    length = int(min(1.2 * rec.rt60, 1.0) * sr) + 1
    t = np.arange(length) / sr
    lowband = band(rng.standard_normal(length), sr, None, 2000.0)
    highband = band(rng.standard_normal(length), sr, 2000.0, None)
    tail = lowband * np.exp(-6.91 * t / rec.rt60) + highband * np.exp(-6.91 * t / (0.45 * rec.rt60))
    onset = min(length - 1, int(0.002 * sr))  # the tail builds up after the direct sound
    tail[:onset] = 0
    tail *= math.sqrt(10 ** (-rec.drr_db / 10) / (np.sum(tail**2) + 1e-12))
    rir = tail
    rir[0] += 1.0
    for _ in range(1 if rec.outdoor else int(rng.integers(2, 7))):  # ground / wall reflections
        delay = int(rng.uniform(0.002, 0.035) * sr)
        if delay < length:
            rir[delay] += rng.uniform(0.2, 0.7) * (1 if rng.random() < 0.7 else -1)
    return rir


def microphone_response(rec: Recording, f: np.ndarray, sr: int) -> np.ndarray:
    """Linear magnitude of the recording chain at frequencies ``f`` (zero above NYQ * sr)."""
    octaves = np.log2(np.maximum(f, 20.0) / 1000.0)
    db = rec.tilt_db * octaves
    for centre, width, gain in rec.resonances:
        db = db + gain * np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / centre) / width) ** 2)
    mag = 10 ** (db / 20)
    mag /= np.sqrt(1 + (rec.highpass_hz / np.maximum(f, 1e-3)) ** 4)
    if rec.lowpass_hz is not None:
        mag /= np.sqrt(1 + (f / rec.lowpass_hz) ** 16)
    mag[f > NYQ * sr] = 0
    return mag


def capture(scene: np.ndarray, rec: Recording, channel_rirs: list[np.ndarray], rng: np.random.Generator
            ) -> np.ndarray:
    """The scene (n,) as the recording's device captured it: (n, channels) float32 in [-0.99, 0.99].

    Each channel: the room (its own impulse response) and the microphone in one FFT, then the level,
    clipping and the recorder's noise floor."""
    n, sr = scene.size, rec.sample_rate
    out = np.empty((n, len(channel_rirs)))
    for c, rir in enumerate(channel_rirs):
        size = sfft.next_fast_len(n + rir.size)
        f = np.fft.rfftfreq(size, 1.0 / sr)
        spectrum = sfft.rfft(scene, size) * sfft.rfft(rir, size) * microphone_response(rec, f, sr)
        out[:, c] = sfft.irfft(spectrum, size)[:n]
    peak = float(np.abs(out).max())
    if peak <= 0:
        return np.zeros((n, len(channel_rirs)), dtype=np.float32)
    if rec.clip_db is not None:  # overdriven: the recorder's full scale cuts the peaks
        out *= 10 ** (rec.clip_db / 20) / peak
        out = np.tanh(out) if rec.soft_clip else np.clip(out, -1.0, 1.0)
        peak = float(np.abs(out).max())
    level = 10 ** (min(-0.1, rec.level_dbfs + rng.normal(0, 1.5)) / 20)
    out *= level / peak
    out += level * 10 ** (-rec.noise_floor_db / 20) * rng.standard_normal(out.shape)
    return np.clip(out, -0.99, 0.99).astype(np.float32)
