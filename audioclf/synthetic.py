"""Deterministic synthetic stand-in for UrbanSound8K (demo data and test fixture), as hard as field recordings.

Design
------
* **Metadata is real.** :func:`select_rows` samples rows of the genuine UrbanSound8K
  table, stratified by (fold, class) with largest-remainder rounding, so fold sizes,
  class balance, fsID grouping, salience and clip durations (``end - start``; some far
  shorter than 4 s) match the real corpus. A handful of real fsIDs appear in two folds;
  their minority-fold rows are left out of the pool, so each fsID lives in exactly one
  fold (hence :data:`MAX_CLIPS` is slightly below 8732).
* **A clip is a field recording, not a clean event.** Every fsID is one recording
  (:mod:`audioclf.acoustics`): one source of its class (a *voice*, :mod:`audioclf.sound_generators`:
  this dog, this siren), one room, one microphone colouring, one recorder (level, noise
  floor, sometimes clipping or a codec-like band limit), one file format, and a background
  scene that persists through the recording: OTHER classes' sources and the street around
  them (talk, birds, wind, rain, traffic: :mod:`audioclf.street_sounds`, sounds of no
  class). Each slice renders the voice's events over that scene plus passing events of
  other classes and passing sounds of no class (steps, a door, a bell, clatter), at a
  target-to-background ratio set by the real salience (1: 0..15 dB, 2: the source in the
  background at -6..4 dB), then through the room and the microphone. Slices of one
  recording are alike and recordings differ, so a model must generalise across
  recordings (folds), as on the real corpus.
* **Calibrated on the real thing.** On a held-out set of real recordings in this layout
  the old compact-CNN defaults scored 0.57 on fold 10, the seed's ResNet-18 config 0.55
  and a 4-block CNN 0.79; benchmarks/README.md lists what the same configs score here.
* **Determinism.** A clip's randomness comes from ``numpy.random.default_rng([seed, row])``
  (``row``: its row number in the real metadata table) and its recording's from
  ``[seed, tag, fsID]``, so the bytes of a clip do not depend on worker count,
  scheduling order or ``num_clips``.

:func:`synthesize_clip` renders one clean event of a class (a random voice over coloured
noise) for tests that need a short clip of a known class.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import fft as sfft
from tqdm import tqdm

from . import atomic, stopping, street_sounds
from .acoustics import Recording, capture, draw_recording, room_impulse_response
from .errors import UserError
from .sound_generators import CLASS_NAMES, NYQ as _NYQ, draw_voice, noise as _noise, render_event

COLUMNS = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
MIN_CLIPS = 10
GENERATOR_VERSION = 4
MARKER_NAME = ".synthetic.json"
METADATA_PATH = Path(__file__).parent / "resources" / "UrbanSound8K.csv"

# Target-to-background ratio (dB, target active RMS over background RMS) by salience.
_TBR_DB = {1: (0.0, 15.0), 2: (-6.0, 4.0)}
# Tags of the random streams drawn per recording (with the seed and the fsID).
_RECORDING, _VOICE, _SCENE = 1, 2, 3


# ----------------------------------------------------------------------------- metadata
@cache
def _pool() -> pd.DataFrame:
    """Real metadata minus rows of an fsID that fall outside that fsID's main fold."""
    df = pd.read_csv(METADATA_PATH)
    counts = df.groupby(["fsID", "fold"]).size().reset_index(name="n")
    counts = counts.sort_values(["fsID", "n", "fold"], ascending=[True, False, True])
    home = counts.drop_duplicates("fsID").set_index("fsID")["fold"]
    return df[df["fold"] == df["fsID"].map(home)][COLUMNS]


MAX_CLIPS = 8690  # == len(_pool()); a literal so that importing reads no file


def select_rows(num_clips: int, seed: int) -> pd.DataFrame:
    """Pick ``num_clips`` real metadata rows mirroring the (fold, class) distribution.

    Quotas are proportional to the real cell counts (largest remainder, ties broken by
    ``seed``); with ``num_clips >= 100`` every (fold, class) cell gets at least one row.
    The returned frame keeps the real row numbers as its index.
    """
    pool = _pool()
    if not MIN_CLIPS <= num_clips <= len(pool):
        raise UserError(f"num_clips must be between {MIN_CLIPS} and {len(pool)}, got {num_clips}")
    rng = np.random.default_rng(seed)
    cells = pool.groupby(["fold", "classID"]).size()
    base = 1 if num_clips >= len(cells) else 0  # one per cell first, so no fold lacks a class
    weights = cells.to_numpy() - base
    extra = num_clips - base * len(cells)
    quota = extra * weights / weights.sum()
    alloc = np.floor(quota).astype(int)
    order = np.lexsort((rng.random(len(cells)), -(quota - alloc)))  # remainder desc, random ties
    alloc[order[: extra - alloc.sum()]] += 1
    alloc += base
    picked: list[np.ndarray] = []
    groups = pool.groupby(["fold", "classID"]).groups
    for cell, k in zip(cells.index, alloc):
        picked.append(rng.choice(np.asarray(groups[cell]), size=k, replace=False))
    return pool.loc[np.sort(np.concatenate(picked))].copy()


# ----------------------------------------------------------------------------- clean clips (tests)
def _colour(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Random microphone/distance EQ (spectral tilt, sometimes muffled) plus a brick-wall
    low-pass at 0.45 sr, since envelopes and clicks splatter upwards."""
    f = np.fft.rfftfreq(x.size, 1.0 / sr)
    octaves = np.log2(np.maximum(f, 20.0) / 1000.0)
    gain = 10 ** (rng.uniform(-3, 3) * octaves / 20)  # +-3 dB per octave around 1 kHz
    if rng.random() < 0.3:
        gain /= np.sqrt(1 + (f / rng.uniform(1500, 6000)) ** 4)
    gain[f > _NYQ * sr] = 0
    return sfft.irfft(sfft.rfft(x) * gain, x.size)


def synthesize_clip(class_id: int, duration_s: float, sample_rate: int, channels: int,
                    salience: int, rng: np.random.Generator) -> np.ndarray:
    """One clean event of a class: float32 audio of shape (frames, channels) in [-1, 1].

    A random voice of the class, under a random EQ, over coloured background noise at an SNR that
    depends on salience (1: 0..20 dB, else -10..5 dB); nothing above ``0.45 * sample_rate``.
    ``frames = round(duration_s * sample_rate)``. The dataset generator renders field recordings
    instead (:func:`field_clip`); this is for tests that need a short clip of a known class.
    """
    if not (0 <= class_id < len(CLASS_NAMES) and channels >= 1 and sample_rate > 0 and duration_s > 0):
        raise ValueError(f"bad clip spec: class_id={class_id}, duration_s={duration_s}, "
                         f"sample_rate={sample_rate}, channels={channels}")
    n, sr = max(1, round(duration_s * sample_rate)), sample_rate
    event = _colour(render_event(class_id, draw_voice(class_id, rng), n, sr, rng), sr, rng)
    snr_db = rng.uniform(0, 20) if salience == 1 else rng.uniform(-10, 5)
    background = _noise(n, sr, rng, slope=rng.uniform(0.8, 2.0), hi=rng.uniform(0.3, 1) * _NYQ * sr)
    background *= 10 ** (-snr_db / 20)
    out = np.empty((n, channels))
    for c in range(channels):  # extra channels: small delay, pan gain, partly decorrelated noise
        if c == 0:
            out[:, 0] = event + background
            continue
        d = int(rng.integers(0, int(0.0007 * sr) + 1))
        rho = rng.uniform(0.3, 0.9)
        other = np.roll(background, int(rng.integers(n // 3, 2 * n // 3 + 1)))
        # circular shifts keep every channel strictly band-limited
        out[:, c] = rng.uniform(0.6, 1.4) * np.roll(event, d) + rho * background + math.sqrt(1 - rho**2) * other
    peak = float(np.abs(out).max())
    target = min(0.99, 10 ** (rng.uniform(-24, -1) / 20))  # random overall loudness
    return (out * (target / peak if peak > 0 else 0.0)).astype(np.float32)


# ----------------------------------------------------------------------------- field recordings
@lru_cache(maxsize=64)
def recording_of(seed: int, fsid: int) -> Recording:
    """The recording (room, microphone, recorder, file format) of one fsID."""
    return draw_recording(np.random.default_rng([seed, _RECORDING, fsid]))


@lru_cache(maxsize=64)
def _room(seed: int, fsid: int) -> tuple[np.ndarray, ...]:
    """One room impulse response per channel (the channels' tails differ, and their gains a little)."""
    rec = recording_of(seed, fsid)
    rirs = []
    for c in range(rec.channels):
        rng = np.random.default_rng([rec.rir_seed, c])
        rir = room_impulse_response(rec, rec.sample_rate, rng)
        rirs.append(rir * (1.0 if c == 0 else rng.uniform(0.7, 1.3)))
    return tuple(rirs)


@lru_cache(maxsize=64)
def voice_of(seed: int, fsid: int, class_id: int) -> dict:
    """The recording's source: the same dog, siren or engine in every slice of the recording."""
    return draw_voice(class_id, np.random.default_rng([seed, _VOICE, fsid, class_id]))


@lru_cache(maxsize=64)
def scene_of(seed: int, fsid: int, class_id: int) -> dict:
    """The recording's background: street ambience, 0-2 sources of OTHER classes and 0-2 street sounds of
    no class that persist through the recording (each with its level relative to the ambience, in dB)."""
    rng = np.random.default_rng([seed, _SCENE, fsid])
    others = [c for c in range(len(CLASS_NAMES)) if c != class_id]
    count = int(rng.choice((0, 1, 2), p=(0.4, 0.4, 0.2)))
    sources = [(int(c), draw_voice(int(c), rng), rng.uniform(-14, 0))
               for c in rng.choice(others, size=count, replace=False)]
    count = int(rng.choice((0, 1, 2), p=(0.3, 0.45, 0.25)))
    ambient = [(int(k), rng.uniform(-10, 2)) for k in rng.choice(street_sounds.AMBIENT, size=count, replace=False)]
    return {"slope": rng.uniform(0.8, 2.2), "hi": rng.uniform(0.25, 1.0), "sources": sources,
            "presence": rng.uniform(0.5, 1.0), "ambient": ambient}


def field_clip(class_id: int, duration_s: float, salience: int, seed: int, fsid: int,
               rng: np.random.Generator) -> tuple[np.ndarray, Recording]:
    """One slice of recording ``fsid``: float32 (frames, channels) at the recording's rate, and the recording.

    Target events of the recording's voice, over its background scene (ambience, its persistent
    sources when they sound in this slice, 0-3 passing events of other classes with fresh voices,
    its street sounds, 0-3 passing sounds of no class),
    mixed at a target-to-background ratio drawn for the salience, then through the room and the
    microphone (:func:`audioclf.acoustics.capture`)."""
    rec = recording_of(seed, fsid)
    n, sr = max(1, round(duration_s * rec.sample_rate)), rec.sample_rate
    target = render_event(class_id, voice_of(seed, fsid, class_id), n, sr, rng)
    scene = scene_of(seed, fsid, class_id)
    background = _noise(n, sr, rng, slope=scene["slope"], hi=scene["hi"] * _NYQ * sr)
    for other, voice, level_db in scene["sources"]:
        if rng.random() < scene["presence"]:
            background += render_event(other, voice, n, sr, rng) * 10 ** ((level_db + rng.normal(0, 2)) / 20)
    others = [c for c in range(len(CLASS_NAMES)) if c != class_id]
    for other in rng.choice(others, size=int(rng.choice((0, 1, 2, 3), p=(0.5, 0.3, 0.15, 0.05))), replace=False):
        event = render_event(int(other), draw_voice(int(other), rng), n, sr, rng)
        background += event * 10 ** (rng.uniform(-16, -2) / 20)
    for kind, level_db in scene["ambient"]:  # the street around the recording: talk, birds, wind, rain, cars
        background += street_sounds.render(kind, n, sr, rng) * 10 ** ((level_db + rng.normal(0, 2)) / 20)
    kinds = rng.choice(len(street_sounds.SOUNDS), size=int(rng.choice((0, 1, 2, 3), p=(0.3, 0.35, 0.25, 0.1))),
                       replace=False)
    for kind in kinds:  # passing sounds of no class: a voice, steps, a door, a bell, clatter
        background += street_sounds.render(int(kind), n, sr, rng) * 10 ** (rng.uniform(-12, 2) / 20)
    background /= np.sqrt(np.mean(background**2)) + 1e-12
    low, high = _TBR_DB[1 if salience == 1 else 2]
    mix = target * 10 ** (rng.uniform(low, high) / 20) + background
    return capture(mix, rec, list(_room(seed, fsid)), rng), rec


# ----------------------------------------------------------------------------- files
def _zero_peak_timestamp(wav: bytearray) -> None:
    """libsndfile stamps the wall clock into the PEAK chunk of float WAVs; zero it for
    byte-reproducible output."""
    pos = 12
    while pos + 8 <= len(wav):
        cid, size = bytes(wav[pos:pos + 4]), int.from_bytes(wav[pos + 4:pos + 8], "little")
        if cid == b"PEAK":
            wav[pos + 12:pos + 16] = bytes(4)
        if cid in (b"PEAK", b"data"):
            return
        pos += 8 + size + (size & 1)


def wav_bytes(audio: np.ndarray, sample_rate: int, subtype: str) -> bytes:
    """``audio`` as a WAV file's bytes, the same bytes for the same samples (no wall-clock stamp)."""
    buf = io.BytesIO()
    sf.write(buf, audio, sample_rate, subtype=subtype, format="WAV")
    data = bytearray(buf.getvalue())
    _zero_peak_timestamp(data)
    return bytes(data)


def _render(job: tuple[str, int, float, int, int, int, int]) -> None:
    """Synthesise and write one clip; top-level so a process pool can pickle it."""
    path, class_id, duration, salience, seed, row, fsid = job
    rng = np.random.default_rng([seed, row])
    audio, rec = field_clip(class_id, duration, salience, seed, fsid, rng)
    # a new file under the final name, never a half one
    atomic.write_bytes(path, wav_bytes(audio, rec.sample_rate, rec.subtype), fsync=False)


def clip_duration(start: float, end: float) -> float:
    """Duration written for a metadata row: end - start, clamped to [0.05, 4.0] s."""
    return min(4.0, max(0.05, end - start))


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def shorten_rows(table: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """The table with each 4-s row shortened, with probability ``fraction`` and whatever its class, to a
    duration drawn uniformly from 0.5-3.9 s (its ``end`` moved). UrbanSound8K has 16 % of its clips
    shorter than 4 s, mostly gun shots and car horns; recordings cut otherwise have many more
    (``fraction`` 0.42 gives about half): a test of what padding does, not a change to the default data."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"the fraction of clips to shorten must be in [0, 1], got {fraction}")
    table = table.copy()
    rng = np.random.default_rng(SHORTEN_SEED + seed)
    full = (table["end"] - table["start"]) >= 3.99
    pick = full & (rng.random(len(table)) < fraction)
    table.loc[pick, "end"] = table.loc[pick, "start"] + rng.uniform(0.5, 3.9, int(pick.sum()))
    return table


SHORTEN_SEED = 1234


def generate_dataset(root: Path | str, num_clips: int = 1000, seed: int = 0, workers: int = 1,
                     progress: bool = True, shorten: float = 0.0) -> pd.DataFrame:
    """Write an UrbanSound8K-shaped dataset under ``root`` and return its metadata table.

    ``shorten``: the fraction of 4-s rows made shorter (:func:`shorten_rows`); the other clips are
    byte-identical to those of the same seed without it.

    Idempotent: a root already holding a complete dataset with the same ``num_clips``,
    ``seed`` and generator version is left alone. Any other non-empty root is refused
    (ValueError) rather than mixed with foreign files.
    """
    root = Path(root)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    table = select_rows(num_clips, seed)
    wanted = {"generator": "audioclf.synthetic", "version": GENERATOR_VERSION,
              "num_clips": int(num_clips), "seed": int(seed)}
    if shorten:
        table = shorten_rows(table, shorten, seed)
        wanted["shorten"] = float(shorten)
    marker, csv_path = root / MARKER_NAME, root / "metadata" / "UrbanSound8K.csv"
    if root.is_dir() and any(root.iterdir()):
        found = _read_marker(marker) or {}
        same = ({k: v for k, v in found.items() if k not in ("version", "complete")}
                == {k: v for k, v in wanted.items() if k != "version"})
        if not same:
            raise UserError(
                f"{root} is not empty and is not a synthetic dataset with num_clips={num_clips}, "
                f"seed={seed}{f', shorten={shorten}' if shorten else ''}; use an empty or new directory")
        if found.get("version") == GENERATOR_VERSION and found.get("complete") and csv_path.is_file():
            return pd.read_csv(csv_path)
        if found.get("version") != GENERATOR_VERSION:  # made by an older generator: made again from scratch
            shutil.rmtree(root)
        # same parameters but interrupted: regenerate over it (same file set, each file replaced whole)
    root.mkdir(parents=True, exist_ok=True)
    atomic.write_text(marker, json.dumps({**wanted, "complete": False}, indent=2))
    for fold in range(1, 11):
        (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
    jobs = [(str(root / "audio" / f"fold{r.fold}" / r.slice_file_name), int(r.classID),
             clip_duration(r.start, r.end), int(r.salience), int(seed), int(row), int(r.fsID))
            for row, r in zip(table.index, table.itertuples())]
    bar = tqdm(total=len(jobs), desc="synthesising clips", unit="clip", disable=not progress)
    with bar:
        if workers > 1:
            # a stop or an error ends the workers at once; they leave Ctrl-C to this process (stopping.worker_pool)
            with stopping.worker_pool(workers, writes_in=root / "audio") as pool:
                for _ in pool.imap(_render, jobs, chunksize=4):
                    bar.update()
        else:
            for job in jobs:
                _render(job)
                bar.update()
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_csv(csv_path, table)
    atomic.write_text(marker, json.dumps({**wanted, "complete": True}, indent=2))  # last: marks completion
    return pd.read_csv(csv_path)
