"""Sounds of a street that belong to NONE of the ten classes: speech, birds, footsteps, doors, wind,
rain, passing traffic, bells and phones, clatter.

Field recordings are full of them, and a classifier has to learn to ignore every one, which is a large
part of what makes real audio hard to fit. Some overlap a class on purpose: a bicycle bell or a phone
rings like a short horn, a door slam thuds like a shot, footsteps tick like slow jackhammer strokes,
speech has the formants of children's voices an octave lower. Every ``render`` takes ``(n, sr, rng)``,
draws its own parameters (these are passing sounds, not a recording's source) and returns unit active
RMS, silence staying silent. Tones stay below ``NYQ * sample_rate``; what envelopes splatter above it the
recording chain removes (:func:`audioclf.acoustics.capture`), as for the classes' sounds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .sound_generators import NYQ, active_rms, harmonics, jitter, loguniform, noise, place, ramp, rolloff, times


def speech(n, sr, rng):
    """An adult talking: syllables at 3-6 per second, a falling pitch, two moving formants."""
    out, pos = np.zeros(n), int(rng.uniform(0, 0.5) * sr)
    pitch, k = loguniform(rng, 85, 240), np.arange(1, 31)
    rate = rng.uniform(3, 6)
    while pos < n:
        length = max(2, int(rng.uniform(0.08, 0.3) * sr))
        t = times(length, sr)
        f = jitter(rng, pitch, 0.1) * (1 - rng.uniform(0, 0.2) * t / max(t[-1], 1e-3))
        f1, f2 = rng.uniform(300, 850), rng.uniform(900, 2400)
        amps = np.exp(-(((k * pitch - f1) / 200) ** 2)) + 0.5 * np.exp(-(((k * pitch - f2) / 300) ** 2)) + 0.05
        seg = harmonics(f, sr, amps, rng) * np.sin(np.pi * np.linspace(0, 1, length)) ** 0.8
        if rng.random() < 0.3:  # a fricative
            seg += 0.4 * noise(length, sr, rng, 0.0, 3000, 8000) * np.exp(-t / 0.05)
        place(out, seg, pos)
        pos += length + int(sr / rate * rng.uniform(0.3, 1.0)) + (int(rng.uniform(0.2, 0.8) * sr)
                                                                  if rng.random() < 0.15 else 0)
    return out


def birds(n, sr, rng):
    """Chirps and trills: fast frequency sweeps at 2-7 kHz."""
    out, base = np.zeros(n), loguniform(rng, 2000, 6000)
    for _ in range(int(rng.integers(2, 14))):
        length = max(2, int(rng.uniform(0.02, 0.15) * sr))
        t = times(length, sr)
        sweep = rng.uniform(-0.5, 0.5)
        f = jitter(rng, base, 0.15) * (1 + sweep * t / max(t[-1], 1e-3))
        f *= 1 + rng.uniform(0, 0.08) * np.sin(2 * np.pi * rng.uniform(20, 60) * t)  # trill
        seg = harmonics(np.minimum(f, 0.9 * NYQ * sr), sr, (1, 0.15), rng) * np.sin(np.pi * np.linspace(0, 1, length))
        place(out, seg, int(rng.integers(0, n)))
    return out


def footsteps(n, sr, rng):
    """Steps at 1.5-2.5 per second: a low thud and a scuff."""
    out, period = np.zeros(n), sr / rng.uniform(1.5, 2.5)
    pos, hard = rng.uniform(0, period), rng.uniform(0.1, 1.0)
    klen = max(2, int(0.08 * sr))
    t = times(klen, sr)
    while pos < n:
        step = noise(klen, sr, rng, 1.5, 40, 1200) * np.exp(-t / 0.02)
        step += hard * noise(klen, sr, rng, 0.3, 1500, 9000) * np.exp(-t / 0.006)
        place(out, step * rng.uniform(0.6, 1.0), int(pos))
        pos += jitter(rng, period, 0.08)
    return out


def door(n, sr, rng):
    """A door slam or a dropped object: one low broadband thud with a short ring."""
    out, length = np.zeros(n), max(2, min(n, int(0.4 * sr)))
    t = times(length, sr)
    thud = noise(length, sr, rng, 1.2, 30, loguniform(rng, 800, 6000)) * np.exp(-t / rng.uniform(0.02, 0.08))
    ring = harmonics(np.full(length, rng.uniform(80, 400)), sr, (1, 0.5, 0.2), rng) * np.exp(-t / 0.1)
    place(out, (thud + rng.uniform(0, 0.5) * ring) * ramp(length, sr, 0.001, 0.0), int(rng.integers(0, n)))
    return out


def wind(n, sr, rng):
    """Wind on the microphone: low rumble in slow gusts."""
    t = times(n, sr)
    gust = 0.3 + 0.7 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.8) * t + rng.uniform(0, 6))) ** 2
    return noise(n, sr, rng, rng.uniform(1.5, 2.5), 20, loguniform(rng, 150, 800)) * gust


def rain(n, sr, rng):
    """Rain or a fountain: dense random droplets, bright."""
    drops = np.zeros(n)
    k = int(rng.uniform(100, 800) * n / sr)
    drops[rng.integers(0, n, k)] = rng.uniform(0.2, 1, k)
    klen = max(2, int(0.004 * sr))
    kernel = noise(klen, sr, rng, 0.0, 2000, 12000) * np.exp(-times(klen, sr) / 0.001)
    return np.convolve(drops, kernel)[:n] + 0.3 * noise(n, sr, rng, 0.5, 1000, 10000)


def traffic(n, sr, rng):
    """A car passing by: broadband tyre noise swelling and fading, its tone falling (Doppler)."""
    t = times(n, sr)
    centre, width = rng.uniform(-0.5, 1.5) * t[-1], rng.uniform(0.6, 3.0)
    swell = 1 / (1 + ((t - centre) / width) ** 2)
    f = rng.uniform(60, 200) * (1 + rng.uniform(0.02, 0.08) * np.tanh((centre - t) / width))
    tone = harmonics(f, sr, rolloff(6, 1.0), rng)
    return (noise(n, sr, rng, rng.uniform(0.5, 1.5), 50, 6000) + rng.uniform(0, 0.5) * tone) * swell


def bell(n, sr, rng):
    """A bicycle bell, a phone or a shop-door chime: inharmonic partials, struck or rung repeatedly."""
    out, f = np.zeros(n), loguniform(rng, 500, 3000)
    ratios = np.concatenate([[1.0], rng.uniform(1.3, 4.5, int(rng.integers(1, 4)))])
    length = max(2, min(n, int(rng.uniform(0.1, 0.8) * sr)))
    t = times(length, sr)
    ring = sum(np.sin(2 * np.pi * f * r * t + rng.uniform(0, 6)) / (1 + i) for i, r in enumerate(ratios)
               if f * r < NYQ * sr)
    ring = ring * np.exp(-t / rng.uniform(0.05, 0.4))
    if rng.random() < 0.5:  # a phone: a buzzing tremolo
        ring *= 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * rng.uniform(10, 25) * t))
    pos = int(rng.integers(0, n))
    for _ in range(int(rng.integers(1, 4))):
        place(out, ring, pos)
        pos += length + int(rng.uniform(0.05, 0.5) * sr)
    return out


def clatter(n, sr, rng):
    """Dishes, tools or a shopping trolley: a handful of short metallic knocks at random times."""
    out = np.zeros(n)
    for _ in range(int(rng.integers(2, 12))):
        klen = max(2, int(rng.uniform(0.02, 0.12) * sr))
        t = times(klen, sr)
        knock = noise(klen, sr, rng, 0.5, 300, 9000) * np.exp(-t / 0.005)
        fk = loguniform(rng, 800, 6000)
        if fk < NYQ * sr:
            knock += rng.uniform(0.2, 1) * np.sin(2 * np.pi * fk * t) * np.exp(-t / rng.uniform(0.01, 0.05))
        place(out, knock, int(rng.integers(0, n)))
    return out


SOUNDS: tuple[Callable[[int, int, np.random.Generator], np.ndarray], ...] = (
    speech, birds, footsteps, door, wind, rain, traffic, bell, clatter,
)
# Those that last (an ambience of the recording) rather than pass.
AMBIENT: tuple[int, ...] = (0, 1, 4, 5, 6)


def render(kind: int, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of street sound ``kind`` (an index into SOUNDS), scaled to unit active RMS."""
    out = SOUNDS[kind](n, sr, rng)
    return out / active_rms(out, sr) if np.any(out) else out
