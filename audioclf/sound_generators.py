"""Synthetic sound generators: one parametric model per UrbanSound8K class (the built-in data's sources).

Each class has two halves:

* ``voice(rng)``: WHAT the source is (this dog's pitch and bark shape, this
  siren's sweep, this engine's firing rate). A voice is drawn once per
  recording (fsID), so the slices of one recording share it, as the slices of
  one Freesound recording share the same dog or siren in UrbanSound8K; clips of
  the same class in other folds come from other voices.
* ``render(voice, n, sr, rng)``: what the source DOES in one clip (onsets,
  counts, small pitch and rate drifts).

Several classes have sub-kinds, as the real classes do: barks, growls and
whines; car horns, truck air horns and short beeps; whining and hammer drills;
cars, trucks and motorcycles idling; shots with and without an echo; an
instrument, a drum group or a singer as street music. A class is then several
sound families, and a model needs the capacity to learn all of them.

The ranges are wide and overlap across classes on purpose (horns and sirens
share pitches, drills and sirens share whines, engines, air conditioners and
jackhammer compressors share low hums), as field recordings do.
Every component stays below ``NYQ * sample_rate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import fft as sfft
from scipy.signal import fftconvolve

CLASS_NAMES: tuple[str, ...] = (
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
    "engine_idling", "gun_shot", "jackhammer", "siren", "street_music",
)
NYQ = 0.45  # highest allowed component, as a fraction of the sample rate

Voice = dict


# ----------------------------------------------------------------------------- DSP helpers
def noise(n: int, sr: int, rng: np.random.Generator, slope: float = 0.0,
          lo: float = 20.0, hi: float = math.inf) -> np.ndarray:
    """Unit-RMS Gaussian noise with power ~ f**-slope inside [lo, min(hi, NYQ sr)]."""
    # exactly n points (no fast-length padding): truncating would leak above the band
    m = max(n, 2)
    f = np.fft.rfftfreq(m, 1.0 / sr)
    band = (f >= lo) & (f <= min(hi, NYQ * sr))
    gain = np.zeros_like(f)
    gain[band] = f[band] ** (-slope / 2)
    spec = rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)
    x = sfft.irfft(spec * gain, m)[:n]
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def band(x: np.ndarray, sr: int, lo: float | None, hi: float | None) -> np.ndarray:
    """``x`` through a gentle high-pass at ``lo`` and low-pass at ``hi`` Hz (either may be None)."""
    f = np.fft.rfftfreq(x.size, 1.0 / sr)
    gain = np.ones_like(f)
    if lo is not None:
        gain *= 1 / np.sqrt(1 + (lo / np.maximum(f, 1e-3)) ** 4)
    if hi is not None:
        gain *= 1 / np.sqrt(1 + (f / hi) ** 4)
    return sfft.irfft(sfft.rfft(x) * gain, x.size)


def harmonics(f0: np.ndarray, sr: int, amps, rng: np.random.Generator) -> np.ndarray:
    """Additive synthesis of harmonics of an f0 track; partials above NYQ sr are dropped."""
    phase = 2 * np.pi * np.cumsum(f0) / sr + rng.uniform(0, 2 * np.pi)
    kmax = min(len(amps), int(NYQ * sr / max(float(np.max(f0)), 1.0)))
    s_prev, s = np.zeros_like(phase), np.sin(phase)
    c2, out = 2 * np.cos(phase), np.zeros_like(phase)
    for k in range(1, kmax + 1):  # Chebyshev recurrence: sin(kx) without k sin() calls
        out += amps[k - 1] * s
        s_prev, s = s, c2 * s - s_prev
    return out


def ramp(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Trapezoid envelope with linear attack/release (seconds)."""
    i = np.arange(n, dtype=float)
    up = np.clip(i / max(attack * sr, 1.0), 0, 1)
    return up * np.clip((n - 1 - i) / max(release * sr, 1.0), 0, 1)


def place(buf: np.ndarray, seg: np.ndarray, start: int) -> None:
    """Add ``seg`` into ``buf`` at ``start`` (clipped to the buffer)."""
    start = int(start)
    end = min(buf.size, start + seg.size)
    if end > start >= 0:
        buf[start:end] += seg[: end - start]


def times(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def span(n: int, rng: np.random.Generator, lo: float) -> tuple[int, int]:
    """Random (start, length) covering at least fraction ``lo`` of the clip; often all of it."""
    if rng.random() < 0.5:
        return 0, n
    length = max(1, int(n * rng.uniform(lo, 1.0)))
    return int(rng.integers(0, n - length + 1)), length


def rolloff(k: int, power: float) -> np.ndarray:
    return 1.0 / np.arange(1, k + 1) ** power


def loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def jitter(rng: np.random.Generator, value: float, spread: float) -> float:
    """``value`` times a small random factor (log-normal, ``spread`` ~ relative std)."""
    return float(value * math.exp(spread * rng.standard_normal()))


def active_rms(x: np.ndarray, sr: int) -> float:
    """RMS over 10 ms frames within 20 dB of the loudest, so short events are not diluted."""
    hop = max(1, sr // 100)
    frames = np.pad(x, (0, -x.size % hop)).reshape(-1, hop)
    power = np.mean(frames**2, axis=1)
    active = power[power >= 0.01 * power.max()]
    return float(np.sqrt(active.mean())) if active.size and power.max() > 0 else 1.0


# ----------------------------------------------------------------------------- the ten classes
# Each voice_* draws a recording's source; each render_* one clip of it (n samples at sr).

def voice_air_conditioner(rng):
    return {"slope": rng.uniform(0.3, 1.8), "hi": loguniform(rng, 300, 5000), "hum_f0": rng.uniform(40, 130),
            "hum_amps": rng.uniform(0.2, 1, 8) * rolloff(8, rng.uniform(0.3, 1.2)),
            "hum_level": loguniform(rng, 0.03, 0.8), "blade_hz": rng.uniform(80, 600),
            "blade_level": loguniform(rng, 0.01, 0.4), "wobble_hz": rng.uniform(0.2, 3),
            "wobble": rng.uniform(0.02, 0.3)}


def render_air_conditioner(v, n, sr, rng):
    t = times(n, sr)
    hiss = noise(n, sr, rng, slope=v["slope"], hi=v["hi"])
    hum = harmonics(np.full(n, jitter(rng, v["hum_f0"], 0.02)), sr, v["hum_amps"], rng)
    blade = harmonics(np.full(n, jitter(rng, v["blade_hz"], 0.02)), sr, (1, 0.3), rng)
    wobble = 1 + v["wobble"] * np.sin(2 * np.pi * v["wobble_hz"] * t + rng.uniform(0, 6))
    return (hiss + v["hum_level"] * hum + v["blade_level"] * blade) * wobble


def voice_car_horn(rng):
    kind = int(rng.choice(3, p=(0.5, 0.25, 0.25)))  # car horn, truck air horn, short beeps
    k = int(rng.integers(3, 10)) if kind != 1 else int(rng.integers(10, 25))
    f0 = loguniform(rng, 230, 700) if kind != 1 else loguniform(rng, 110, 300)
    lengths = ((0.1, 2.0), (0.6, 3.0), (0.05, 0.18))[kind]
    return {"kind": kind, "f0": f0, "detune": rng.uniform(1.0, 1.07), "amps": rolloff(k, rng.uniform(0.4, 1.4)),
            "second": rng.uniform(0.0, 1.0), "buzz": rng.uniform(0, 0.3) if kind != 1 else rng.uniform(0.2, 0.6),
            "max_blasts": int(rng.integers(1, 5)) if kind != 2 else int(rng.integers(2, 7)), "lengths": lengths}


def render_car_horn(v, n, sr, rng):
    out, f0 = np.zeros(n), jitter(rng, v["f0"], 0.01)
    pos = int(rng.integers(0, max(1, n // 2)))
    for _ in range(int(rng.integers(1, v["max_blasts"] + 1))):
        lo, hi = v["lengths"]
        if v["kind"] == 2:  # beep-beep: a regular train of short blasts
            start, pos = pos, pos + int(rng.uniform(0.12, 0.3) * sr)
        else:
            start = int(rng.integers(0, max(1, n - int(0.1 * sr))))
        if start >= n:
            break
        length = min(int(rng.uniform(lo, hi) * sr), n - start)
        if length < 2:
            continue
        f = np.full(length, f0)
        seg = harmonics(f, sr, v["amps"], rng) + v["second"] * harmonics(f * v["detune"], sr, v["amps"], rng)
        seg += v["buzz"] * noise(length, sr, rng, 0.5, 200, 4000) * (0.5 + 0.5 * np.sign(seg))
        place(out, seg * ramp(length, sr, 0.01, 0.03), start)
    return out


def voice_children_playing(rng):
    return {"f1": rng.uniform(600, 1200), "f2": rng.uniform(1500, 3200), "pitch": loguniform(rng, 200, 560),
            "babble": loguniform(rng, 0.02, 0.5), "voices": int(rng.integers(2, 10)), "shout": rng.uniform(0, 0.5)}


def render_children_playing(v, n, sr, rng):
    out = v["babble"] * noise(n, sr, rng, slope=1.0, lo=300, hi=4000)  # distant chatter
    k = np.arange(1, 13)
    for _ in range(int(rng.integers(1, v["voices"] + 1))):  # overlapping voices with random onsets
        length = int(rng.uniform(0.15, 0.9) * sr)
        t = times(length, sr)
        fs = v["pitch"] * rng.uniform(0.7, 1.4) * (1.3 if rng.random() < v["shout"] else 1.0)
        f = fs * rng.uniform(0.7, 1.4) ** (t / t[-1] if length > 1 else t)
        f *= 1 + 0.02 * np.sin(2 * np.pi * rng.uniform(5, 7) * t)
        amps = (np.exp(-(((k * fs - v["f1"]) / 300) ** 2)) + 0.6 * np.exp(-(((k * fs - v["f2"]) / 400) ** 2))
                + 0.1 / k)
        env = np.sin(np.pi * np.linspace(0, 1, length)) ** rng.uniform(0.5, 1.5)
        place(out, rng.uniform(0.3, 1) * harmonics(f, sr, amps, rng) * env, int(rng.integers(0, n)))
    return out


def voice_dog_bark(rng):
    kind = int(rng.choice(3, p=(0.65, 0.2, 0.15)))  # barks, a growl before/among barks, yelps and whines
    return {"kind": kind, "f_hi": loguniform(rng, 250, 1300), "drop": rng.uniform(0.45, 0.8),
            "fall": rng.uniform(0.02, 0.09), "amps": rolloff(10, rng.uniform(0.5, 1.2)) * rng.uniform(0.3, 1, 10),
            "rasp": rng.uniform(0.2, 1.2), "length": rng.uniform(0.08, 0.35), "max_barks": int(rng.integers(1, 7)),
            "growl_f0": rng.uniform(70, 180), "growl_am": rng.uniform(18, 45), "whine_f0": loguniform(rng, 600, 1800)}


def _growl(v, length, sr, rng):
    """A low, rough, noisy voiced sound: a harmonic tone amplitude-modulated at the growl rate."""
    t = times(length, sr)
    f = jitter(rng, v["growl_f0"], 0.08) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
    am = 0.4 + 0.6 * (0.5 + 0.5 * np.sin(2 * np.pi * v["growl_am"] * t)) ** 2
    tone = harmonics(f, sr, rolloff(20, 0.6), rng) + v["rasp"] * noise(length, sr, rng, 1.0, 100, 2500)
    return tone * am * ramp(length, sr, 0.05, 0.1)


def _whine(v, length, sr, rng):
    """A yelp or whine: a high, nearly pure tone that rises and falls."""
    t = times(length, sr)
    contour = 1 + rng.uniform(0.1, 0.4) * np.sin(np.pi * t / t[-1]) ** 2 if length > 1 else np.ones(length)
    f = jitter(rng, v["whine_f0"], 0.08) * contour
    return harmonics(f, sr, (1, 0.3, 0.1), rng) * np.sin(np.pi * np.linspace(0, 1, length)) ** 0.7


def render_dog_bark(v, n, sr, rng):
    out, pos = np.zeros(n), int(rng.uniform(0, 0.5) * n)
    if v["kind"] == 1:  # a growl, barks after it when it leaves room
        length = max(2, min(n, int(rng.uniform(0.4, 1.6) * sr)))
        place(out, _growl(v, length, sr, rng) * rng.uniform(0.5, 1.0), int(rng.integers(0, max(1, n - length + 1))))
        if rng.random() < 0.5:
            return out
    elif v["kind"] == 2:  # yelps and whines
        for _ in range(int(rng.integers(1, 4))):
            length = max(2, int(rng.uniform(0.15, 0.9) * sr))
            place(out, _whine(v, length, sr, rng), int(rng.integers(0, max(1, n))))
        if rng.random() < 0.6:
            return out
    for _ in range(int(rng.integers(1, v["max_barks"] + 1))):
        length = max(2, int(jitter(rng, v["length"], 0.2) * sr))
        t = times(length, sr)
        f = jitter(rng, v["f_hi"], 0.06) * (v["drop"] + (1 - v["drop"]) * np.exp(-t / v["fall"]))
        seg = harmonics(f, sr, v["amps"], rng) * ramp(length, sr, 0.005, 0.0) * np.exp(-t / (length / sr / 3))
        seg += v["rasp"] * noise(length, sr, rng, 0.5, 300, 6000) * np.exp(-t / 0.015)  # noisy attack
        place(out, seg, pos)
        pos += length + int(rng.uniform(0.1, 0.7) * sr)
    return out


def voice_drilling(rng):
    impact = bool(rng.random() < 0.35)  # a hammer drill: strong blows at 20-50 Hz under the motor whine
    return {"impact": impact, "blow_hz": rng.uniform(20, 50), "blow": rng.uniform(0.5, 1.5) if impact else 0.0,
            "f": loguniform(rng, 450, 4000), "vib": rng.uniform(0.003, 0.04), "vib_hz": rng.uniform(3, 9),
            "am_hz": rng.uniform(15, 90), "depth": rng.uniform(0.2, 0.9), "amps": rng.uniform(0.1, 1, 5) * rolloff(5, 0.8),
            "grit": loguniform(rng, 0.05, 0.8), "grit_lo": rng.uniform(500, 3000)}


def render_drilling(v, n, sr, rng):
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 3))):  # the drill stops and starts
        start, length = span(n, rng, 0.3)
        if length < 2:
            continue
        t = times(length, sr)
        f = jitter(rng, v["f"], 0.05) * (1 + v["vib"] * np.sin(2 * np.pi * v["vib_hz"] * t))
        am = 1 - v["depth"] + v["depth"] * (0.5 + 0.5 * np.sin(2 * np.pi * v["am_hz"] * t)) ** 2
        seg = (harmonics(f, sr, v["amps"], rng)
               + v["grit"] * noise(length, sr, rng, 0.0, v["grit_lo"], v["grit_lo"] * 3)) * am
        if v["impact"]:  # blows: broadband pulses at the blow rate
            pulse = (0.5 + 0.5 * np.sin(2 * np.pi * jitter(rng, v["blow_hz"], 0.05) * t)) ** 12
            seg += v["blow"] * noise(length, sr, rng, 0.7, 150, 7000) * pulse
        place(out, seg * ramp(length, sr, 0.05, 0.05), start)
    return out


def voice_engine_idling(rng):
    kind = int(rng.choice(3, p=(0.55, 0.25, 0.2)))  # car or van, truck or bus (low, diesel knock), motorcycle
    fire = (rng.uniform(15, 60), rng.uniform(8, 20), rng.uniform(10, 40))[kind]
    k = max(2, min(30, int(rng.uniform(300, 1500) / fire)))
    return {"kind": kind, "fire": fire, "amps": rolloff(k, rng.uniform(0.3, 1.0)) * rng.uniform(0.3, 1, k),
            "rumble": loguniform(rng, 0.1, 1.0), "rumble_hi": rng.uniform(150, 1200), "drift": rng.uniform(0.0, 0.05),
            "knock": loguniform(rng, 0.2, 1.0) if kind == 1 else loguniform(rng, 0.01, 0.5),
            "uneven": rng.uniform(0.3, 0.8) if kind == 2 else 0.0}


def render_engine_idling(v, n, sr, rng):
    t = times(n, sr)
    fr = jitter(rng, v["fire"], 0.03) * (1 + v["drift"] * np.sin(2 * np.pi * rng.uniform(0.1, 1) * t))
    tone = harmonics(fr, sr, v["amps"], rng)
    if v["uneven"]:  # a V-twin's uneven firing: the tone pulses at half the firing rate
        tone *= 1 - v["uneven"] * (0.5 + 0.5 * np.sin(np.pi * np.cumsum(fr) / sr))
    knock = noise(n, sr, rng, 0.5, 200, 3000) * (0.5 + 0.5 * np.sin(2 * np.pi * np.cumsum(fr) / sr)) ** 8
    return tone + v["rumble"] * noise(n, sr, rng, slope=1.0, hi=v["rumble_hi"]) + v["knock"] * knock


def voice_gun_shot(rng):
    return {"tau": loguniform(rng, 0.01, 0.25), "slope": rng.uniform(0, 1.3), "hi": loguniform(rng, 1500, 12000),
            "max_shots": int(rng.integers(1, 6)), "rate": rng.uniform(0.06, 0.6), "boom": rng.uniform(0, 1),
            "echo_s": rng.uniform(0.08, 0.5) if rng.random() < 0.4 else 0.0, "echo": rng.uniform(0.2, 0.6)}


def render_gun_shot(v, n, sr, rng):
    out = np.zeros(n)
    pos = int(rng.integers(0, max(1, n - sr // 10)))
    for _ in range(int(rng.integers(1, v["max_shots"] + 1))):
        tau = jitter(rng, v["tau"], 0.15)
        length = min(n, int(5 * tau * sr) + 1)
        t = times(length, sr)
        burst = noise(length, sr, rng, v["slope"], 40, v["hi"])
        burst += v["boom"] * noise(length, sr, rng, 2.0, 30, 300)
        shot = burst * np.exp(-t / tau) * ramp(length, sr, 0.001, 0.0)
        place(out, shot, pos)
        if v["echo_s"]:  # an echo off a building: later, duller, quieter
            place(out, v["echo"] * band(shot, sr, None, 2000.0), pos + int(jitter(rng, v["echo_s"], 0.1) * sr))
        pos += int(jitter(rng, v["rate"], 0.2) * sr)
    return out


def voice_jackhammer(rng):
    klen = 0.06
    return {"rate": rng.uniform(8, 28), "partials": [(rng.uniform(600, 4500), rng.uniform(0.3, 1), rng.uniform(0.008, 0.04))
                                                    for _ in range(int(rng.integers(2, 6)))],
            "click": rng.uniform(0.3, 1.5), "klen": klen, "compressor": loguniform(rng, 0.01, 0.6),
            "compressor_f0": rng.uniform(25, 70)}


def render_jackhammer(v, n, sr, rng):
    start, length = span(n, rng, 0.4)
    period = sr / jitter(rng, v["rate"], 0.05)
    hits = np.arange(0, length, period)
    hits = start + hits + rng.normal(0, 0.03 * period, hits.size)  # slightly uneven strokes
    train = np.zeros(n)
    train[np.clip(hits.astype(int), 0, n - 1)] = rng.uniform(0.7, 1, hits.size)
    klen = max(2, int(v["klen"] * sr))
    t = times(klen, sr)
    kernel = v["click"] * noise(klen, sr, rng, 0.5, 100, 8000) * np.exp(-t / 0.004)
    for fk, amp, decay in v["partials"]:  # metallic ringing partials
        if fk < NYQ * sr:
            kernel += amp * np.sin(2 * np.pi * fk * t) * np.exp(-t / decay)
    out = fftconvolve(train, kernel * ramp(klen, sr, 0.0005, 0.0))[:n]
    hum = harmonics(np.full(n, v["compressor_f0"]), sr, rolloff(8, 0.7), rng)
    return out / (active_rms(out, sr) + 1e-12) + v["compressor"] * hum / (active_rms(hum, sr) + 1e-12)


def voice_siren(rng):
    lo = loguniform(rng, 420, 950)
    return {"lo": lo, "hi": lo * rng.uniform(1.4, 2.6), "mode": int(rng.integers(0, 3)),  # wail, yelp, hi-lo
            "rate": rng.uniform(0.08, 0.45) if rng.random() < 0.5 else rng.uniform(2.0, 7.0),
            "amps": rolloff(int(rng.integers(2, 7)), rng.uniform(0.8, 2.2)), "doppler": rng.uniform(0, 0.06)}


def render_siren(v, n, sr, rng):
    start, length = span(n, rng, 0.6)
    t = times(length, sr)
    phase = rng.uniform(0, 1)
    rate = jitter(rng, v["rate"], 0.05)
    if v["mode"] == 0:  # wail: smooth sweep
        sweep = 0.5 - 0.5 * np.cos(2 * np.pi * (rate * t + phase))
    elif v["mode"] == 1:  # yelp: rising saw sweeps
        sweep = np.mod(rate * t + phase, 1.0) ** 0.7
    else:  # hi-lo: two alternating tones
        sweep = (np.mod(rate * t / 2 + phase, 1.0) < 0.5).astype(float)
    doppler = 1 + v["doppler"] * np.linspace(0.5, -0.5, length) * (1 if rng.random() < 0.5 else 0)
    f = (v["lo"] + (v["hi"] - v["lo"]) * sweep) * doppler
    seg = harmonics(f, sr, v["amps"], rng) * ramp(length, sr, 0.05, 0.05) * np.linspace(*rng.uniform(0.4, 1, 2), length)
    out = np.zeros(n)
    place(out, seg, start)
    return out


def voice_street_music(rng):
    kind = int(rng.choice(3, p=(0.6, 0.2, 0.2)))  # an instrument, a drum group, a singer over an instrument
    return {"kind": kind, "beat": 60 / rng.uniform(70, 170), "root": loguniform(rng, 90, 420),
            "hat": rng.uniform(0.1, 0.6), "snare": rng.uniform(0.3, 1.0), "vibrato": rng.uniform(4.5, 6.5),
            "scale": np.array((0, 2, 4, 7, 9) if rng.random() < 0.5 else (0, 3, 5, 7, 10)),
            "plucked": rng.random() < 0.5, "amps": rolloff(10, rng.uniform(0.7, 1.8)),
            "chords": rng.uniform(0, 0.6), "drums": rng.uniform(0, 1) if rng.random() < 0.5 else 0.0}


def _drum_pattern(v, n, sr, beat, rng):
    """Kick on the beat, snare on the off-beats, hi-hat on eighths: a drum group."""
    out, pos, count = np.zeros(n), rng.uniform(0, beat), 0
    kick = max(2, sr // 8)
    tk = times(kick, sr)
    while pos * sr < n:
        at = int(pos * sr)
        if count % 2 == 0:
            place(out, np.sin(2 * np.pi * 55 * tk * (1 + np.exp(-tk / 0.02))) * np.exp(-tk / 0.06), at)
        else:
            place(out, v["snare"] * noise(kick, sr, rng, 0.3, 300, 8000) * np.exp(-tk / 0.04), at)
        place(out, v["hat"] * noise(kick // 2, sr, rng, 0.0, 5000, 12000) * np.exp(-tk[: kick // 2] / 0.01),
              at + int(beat / 2 * sr))
        pos, count = pos + beat, count + 1
    return out


def render_street_music(v, n, sr, rng):
    out, beat = np.zeros(n), jitter(rng, v["beat"], 0.02)
    if v["kind"] == 1:
        return _drum_pattern(v, n, sr, beat, rng)
    pos = rng.uniform(0, beat)
    if v["kind"] == 2:  # a sung line: long notes with vibrato and vowel formants over the accompaniment
        k = np.arange(1, 16)
        while pos * sr < n:
            length = max(2, int(beat * rng.choice((1, 2, 3)) * sr))
            t = times(length, sr)
            f0 = 2 * v["root"] * 2 ** (int(rng.choice(v["scale"])) / 12)
            f = f0 * (1 + 0.015 * np.sin(2 * np.pi * v["vibrato"] * t))
            formant = rng.uniform(500, 900)
            amps = np.exp(-(((k * f0 - formant) / 400) ** 2)) + 0.4 * np.exp(-(((k * f0 - 2500) / 500) ** 2)) + 0.05
            place(out, harmonics(f, sr, amps, rng) * ramp(length, sr, 0.05, 0.1), int(pos * sr))
            pos += length / sr
        pos = rng.uniform(0, beat)
        v = {**v, "amps": v["amps"] * 0.4}  # the accompaniment below the voice
    while pos * sr < n:
        dur = beat * rng.choice((0.5, 1, 2))
        length = max(2, int(dur * sr))
        t = times(length, sr)
        env = np.exp(-t / rng.uniform(0.1, 0.5)) if v["plucked"] else ramp(length, sr, 0.03, 0.1)
        note = int(rng.choice(v["scale"])) + 12 * int(rng.integers(0, 2))
        for iv in (0, 4, 7) if rng.random() < v["chords"] else (0,):
            f = np.full(length, v["root"] * 2 ** ((note + iv) / 12))
            place(out, harmonics(f, sr, v["amps"], rng) * env, int(pos * sr))
        if v["drums"]:
            kick = min(length, sr // 8)
            tk = times(kick, sr)
            place(out, v["drums"] * np.sin(2 * np.pi * 60 * tk * (1 + np.exp(-tk / 0.02))) * np.exp(-tk / 0.05),
                  int(pos * sr))
        pos += dur
    return out


VOICES: tuple[Callable[[np.random.Generator], Voice], ...] = (
    voice_air_conditioner, voice_car_horn, voice_children_playing, voice_dog_bark, voice_drilling,
    voice_engine_idling, voice_gun_shot, voice_jackhammer, voice_siren, voice_street_music,
)
RENDERERS: tuple[Callable[[Voice, int, int, np.random.Generator], np.ndarray], ...] = (
    render_air_conditioner, render_car_horn, render_children_playing, render_dog_bark, render_drilling,
    render_engine_idling, render_gun_shot, render_jackhammer, render_siren, render_street_music,
)


def draw_voice(class_id: int, rng: np.random.Generator) -> Voice:
    """One source of class ``class_id`` (a recording's dog, siren, engine...)."""
    return VOICES[class_id](rng)


def render_event(class_id: int, voice: Voice, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``voice`` at ``sr``, scaled to unit active RMS (silence stays silent)."""
    out = RENDERERS[class_id](voice, n, sr, rng)
    return out / active_rms(out, sr) if np.any(out) else out
