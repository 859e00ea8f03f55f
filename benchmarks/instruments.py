"""Real recordings anyone can rebuild: Debian's recorded instrument samples, played as random phrases and
cut into clips in UrbanSound8K's layout, so that every script and benchmark reads them unchanged.

    sudo apt-get install fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont-small
    python benchmarks/instruments.py                       # 1200 clips, seed 0 -> outputs/instruments-n1200-seed0
    python get_data.py --source outputs/instruments-n1200-seed0
    python benchmarks/cv_sweep.py --make-pack instruments.npz --source outputs/instruments-n1200-seed0

What it is (docs/real-recordings.md says why):

* 10 classes, the General MIDI instrument families whose samples are recordings of real instruments
  (piano, mallets, organ, guitar, bass, strings, brass, reed, pipe, drums); each class draws from several GM
  programs (a trumpet, a tuba, a muted trumpet... are all "brass").
* One recording per fsID: a random phrase (a melody, chords, arpeggios, a bass line or a drum pattern, by
  class) in a random key, tempo, register and dynamics, rendered by fluidsynth from one of three soundfonts
  (FluidR3 GM, TimGM6mb, MuseScore General Lite: three different sets of instrument recordings), with the
  synthesizer's reverb and chorus on or off, then mixed with background noise (coloured, at 8-40 dB SNR,
  sometimes mains hum) at a random level, and written in a random format (sample rate, channels, WAV
  subtype or FLAC, drawn as in audioclf.acoustics).
* Each recording is cut into consecutive slices of at most 4 s (half of them shorter), listed with their
  start and end in metadata/UrbanSound8K.csv. Every slice of a recording is in one fold; every fold holds
  every class, with the same number of clips per (fold, class).
* Deterministic for a seed: a recording's draws come from ``numpy.random.default_rng([seed, fsID])`` and
  fluidsynth renders in float, without dither. The soundfonts' checksums and fluidsynth's version are in
  the folder's ``.instruments.json``: the same seed with the same files gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audioclf.acoustics import RATE_P, RATES, STEREO_P, SUBTYPE_P, SUBTYPES  # noqa: E402
from audioclf.sound_generators import noise  # noqa: E402
from audioclf.synthetic import wav_bytes  # noqa: E402

VERSION = 1  # bump when a change alters the bytes of the set
MARKER_NAME = ".instruments.json"
APT_LINE = ("sudo apt-get install fluidsynth fluid-soundfont-gm timgm6mb-soundfont "
            "musescore-general-soundfont-small")
# (path, Debian package) of the three soundfonts: three different recorded sample sets.
SOUNDFONTS = (
    ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
    ("/usr/share/sounds/sf2/TimGM6mb.sf2", "timgm6mb-soundfont"),
    ("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "musescore-general-soundfont-small"),
)
CLIP_S = 4.0  # the longest slice, as in UrbanSound8K
FOLDS = 10


@dataclass(frozen=True)
class InstrumentClass:
    name: str
    programs: tuple[int, ...]  # General MIDI programs (0-based); for drums, the kits of bank 128
    low: int  # MIDI note range of the phrases
    high: int
    style: str  # keys, melody, bass, strings, drums


CLASSES = (
    InstrumentClass("piano", (0, 1, 2, 3, 4, 5), 36, 96, "keys"),
    InstrumentClass("mallets", (8, 9, 10, 11, 12, 13, 14), 55, 96, "keys"),
    InstrumentClass("organ", (16, 17, 18, 19, 20), 36, 84, "keys"),
    InstrumentClass("guitar", (24, 25, 26, 27, 28, 29, 30), 40, 79, "guitar"),
    InstrumentClass("bass", (32, 33, 34, 35, 36, 37), 28, 55, "bass"),
    InstrumentClass("strings", (40, 41, 42, 44, 45, 48, 49), 40, 88, "strings"),
    InstrumentClass("brass", (56, 57, 58, 59, 60, 61), 40, 82, "melody"),
    InstrumentClass("reed", (64, 65, 66, 67, 68, 69, 70, 71), 45, 84, "melody"),
    InstrumentClass("pipe", (72, 73, 74, 75, 79), 60, 96, "melody"),
    InstrumentClass("drums", (0, 8, 16, 24, 25, 32, 40), 35, 81, "drums"),
)
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "pentatonic": (0, 2, 4, 7, 9),
          "dorian": (0, 2, 3, 5, 7, 9, 10), "blues": (0, 3, 5, 6, 7, 10)}
# GM percussion notes (channel 10): kick, snare, closed/open hi-hat, toms, crash, ride, clap, rim, tambourine
KICK, SNARE, HAT, OPEN_HAT = (35, 36), (38, 40), 42, 46
TOMS, CYMBALS, EXTRA = (41, 43, 45, 47, 48, 50), (49, 51, 57, 59), (37, 39, 54, 56, 70)


# ----------------------------------------------------------------------------- the plan
def plan(num_clips: int, seed: int) -> pd.DataFrame:
    """Every recording and slice, without rendering: one row per clip in UrbanSound8K's columns.

    Each (fold, class) cell gets ``num_clips / 100`` clips (the remainder spread over the first cells); a
    cell's recordings are drawn until they hold its quota, the last one cut short when needed."""
    cells = FOLDS * len(CLASSES)
    if num_clips < cells:
        raise ValueError(f"--num-clips must be at least {cells} (every fold holds every class), got {num_clips}")
    quota = np.full(cells, num_clips // cells)
    quota[: num_clips % cells] += 1
    rows, fsid = [], 0
    for cell, count in enumerate(quota):
        fold, class_id = cell // len(CLASSES) + 1, cell % len(CLASSES)
        left = int(count)
        while left > 0:
            fsid += 1
            rng = np.random.default_rng([seed, fsid, 0])  # the slicing: apart from the recording's other draws
            slices = int(rng.choice((1, 2, 3, 4, 5, 6), p=(0.15, 0.2, 0.25, 0.2, 0.12, 0.08)))
            t = float(rng.uniform(0.2, 1.0))  # the phrase starts before the first slice
            for k in range(min(slices, left)):
                length = CLIP_S if rng.random() < 0.5 else float(rng.uniform(0.5, CLIP_S))
                rows.append({"slice_file_name": f"{fsid}-{class_id}-0-{k}.wav", "fsID": fsid,
                             "start": round(t, 4), "end": round(t + length, 4), "salience": 1, "fold": fold,
                             "classID": class_id, "class": CLASSES[class_id].name})
                t += length + float(rng.uniform(0.0, 0.8))
                left -= 1
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Recording:
    fsid: int
    class_id: int
    soundfont: int  # index into the soundfont list
    program: int
    sample_rate: int
    channels: int
    subtype: str  # a WAV subtype, or "FLAC"
    reverb: bool
    chorus: bool
    gain: float  # fluidsynth's master gain
    snr_db: float  # the phrase's RMS over the background noise's
    noise_slope: float  # the noise's spectral slope (power ~ f**-slope)
    hum_db: float | None  # mains hum below the phrase's RMS, or None
    hum_hz: float
    level_dbfs: float  # the recording's peak level


def draw_recording(seed: int, fsid: int, class_id: int, soundfonts: int) -> Recording:
    rng = np.random.default_rng([seed, fsid, 1])
    subtype = str(rng.choice(SUBTYPES, p=SUBTYPE_P))
    if rng.random() < 0.1:
        subtype = "FLAC"
    return Recording(
        fsid=fsid, class_id=class_id, soundfont=int(rng.integers(soundfonts)),
        program=int(rng.choice(CLASSES[class_id].programs)),
        sample_rate=int(rng.choice(RATES, p=RATE_P)), channels=2 if rng.random() < STEREO_P else 1,
        subtype=subtype, reverb=bool(rng.random() < 0.6), chorus=bool(rng.random() < 0.3),
        gain=float(rng.uniform(0.2, 0.6)), snr_db=float(rng.uniform(8, 40)), noise_slope=float(rng.uniform(0, 2)),
        hum_db=float(rng.uniform(15, 40)) if rng.random() < 0.15 else None,
        hum_hz=50.0 if rng.random() < 0.5 else 60.0, level_dbfs=float(rng.uniform(-30, -1)))


# ----------------------------------------------------------------------------- phrases
Note = tuple[float, float, int, int, int]  # (start s, duration s, channel, MIDI note, velocity)


def phrase(cls: InstrumentClass, duration_s: float, rng: np.random.Generator) -> list[Note]:
    """Random notes of the class's style covering ``duration_s`` seconds."""
    beat = 60.0 / rng.uniform(60, 160)
    if cls.style == "drums":
        return _drums(duration_s, beat, rng)
    scale = SCALES[str(rng.choice(list(SCALES)))]
    root = int(rng.integers(0, 12))
    # The phrase's register: a window of about two octaves inside the class's range.
    span = min(cls.high - cls.low, 24)
    low = int(rng.integers(cls.low, cls.high - span + 1))
    pitches = [p for p in range(low, low + span + 1) if (p - root) % 12 in scale]
    loudness = rng.uniform(50, 115)
    notes: list[Note] = []
    t, i = 0.0, int(rng.integers(len(pitches)))
    style = cls.style
    chordal = style in ("keys", "guitar") and rng.random() < 0.5
    while t < duration_s:
        if style == "bass":
            length = beat * float(rng.choice((0.5, 1.0, 1.0, 2.0)))
        elif style == "strings":
            length = beat * float(rng.choice((0.5, 1.0, 2.0, 3.0, 4.0)))
        else:
            length = beat * float(rng.choice((0.25, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0)))
        if rng.random() < 0.1:  # a rest
            t += length
            continue
        i = int(np.clip(i + rng.integers(-3, 4), 0, len(pitches) - 1))  # a random walk on the scale
        velocity = int(np.clip(rng.normal(loudness, 12), 20, 127))
        played = [pitches[i]]
        if chordal:  # a triad of the scale, strummed on a guitar
            played += [pitches[j] for j in (i + 2, i + 4) if j < len(pitches)]
        for k, pitch in enumerate(played):
            strum = k * rng.uniform(0.01, 0.03) if style == "guitar" else 0.0
            gate = rng.uniform(0.6, 1.0) if style != "strings" else rng.uniform(0.9, 1.05)
            notes.append((t + strum, length * gate, 0, pitch, velocity))
        t += length
    return notes


def _drums(duration_s: float, beat: float, rng: np.random.Generator) -> list[Note]:
    """A 16-step pattern (kick, snare, hats, sometimes extra percussion) repeated with fills."""
    step = beat / 4
    pattern = {KICK[int(rng.integers(2))]: rng.random(16) < 0.25, SNARE[int(rng.integers(2))]: rng.random(16) < 0.15,
               (HAT if rng.random() < 0.7 else int(rng.choice(CYMBALS))): rng.random(16) < rng.uniform(0.3, 0.9)}
    pattern[next(iter(pattern))][0] = True  # the bar starts with a kick
    if rng.random() < 0.5:
        pattern[int(rng.choice(EXTRA))] = rng.random(16) < 0.2
    if rng.random() < 0.3:
        pattern[OPEN_HAT] = rng.random(16) < 0.1
    loudness = rng.uniform(60, 120)
    notes: list[Note] = []
    n_steps = int(math.ceil(duration_s / step))
    for s in range(n_steps):
        fill = (s // 16) % 4 == 3 and s % 16 >= 12 and rng.random() < 0.6
        hits = [int(rng.choice(TOMS))] if fill else [note for note, on in pattern.items() if on[s % 16]]
        for note in hits:
            velocity = int(np.clip(rng.normal(loudness, 15), 20, 127))
            notes.append((s * step + rng.normal(0, 0.004), 0.1, 9, note, velocity))
    return [n for n in notes if n[0] >= 0]


# ----------------------------------------------------------------------------- MIDI and rendering
def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


def midi_file(notes: list[Note], program: int, end_s: float, pan: int, drums: bool) -> bytes:
    """A format-0 standard MIDI file: 480 ticks per quarter at 120 bpm (960 ticks a second)."""
    ticks = 960
    channel = 9 if drums else 0
    events: list[tuple[int, int, bytes]] = []  # (tick, order, bytes): note-offs before note-ons at one tick
    # program (on channel 10 fluidsynth takes it from the drum bank 128: the kit), pan, channel volume
    setup = [bytes([0xC0 | channel, program]), bytes([0xB0 | channel, 10, pan]), bytes([0xB0 | channel, 7, 110])]
    for data in setup:
        events.append((0, 0, data))
    for start, length, _, note, velocity in notes:
        on, off = int(round(start * ticks)), int(round((start + length) * ticks))
        events.append((on, 2, bytes([0x90 | channel, note, velocity])))
        events.append((max(off, on + 1), 1, bytes([0x80 | channel, note, 0])))
    # A last event (reset controllers) at the end or after the last note-off: fluidsynth renders up to it.
    events.append((max([int(round(end_s * ticks))] + [e[0] for e in events]), 3, bytes([0xB0 | channel, 121, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track, last = bytearray(), 0
    track += _varlen(0) + bytes([0xFF, 0x51, 0x03]) + (500000).to_bytes(3, "big")  # 120 bpm
    for tick, _, data in events:
        track += _varlen(tick - last) + data
        last = tick
    track += _varlen(0) + bytes([0xFF, 0x2F, 0x00])
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def render(midi: bytes, soundfont: str, rec: Recording, work: Path) -> np.ndarray:
    """fluidsynth's float rendering of a MIDI file: (frames, 2) at the recording's rate."""
    mid, wav = work / f"{rec.fsid}.mid", work / f"{rec.fsid}.wav"
    mid.write_bytes(midi)
    cmd = ["fluidsynth", "-n", "-i", "-q", "-F", str(wav), "-T", "wav", "-O", "float", "-r", str(rec.sample_rate),
           "-g", f"{rec.gain:.4f}", "-R", "1" if rec.reverb else "0", "-C", "1" if rec.chorus else "0",
           # load only the samples the program uses: the same samples, 4x faster on a compressed .sf3
           "-o", "synth.cpu-cores=1", "-o", "synth.dynamic-sample-loading=1", soundfont, str(mid)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not wav.is_file():
        raise RuntimeError(f"fluidsynth failed on recording {rec.fsid} ({soundfont}): "
                           f"{(done.stderr or done.stdout).strip()[-500:]}")
    audio, rate = sf.read(wav, dtype="float64", always_2d=True)
    mid.unlink()
    wav.unlink()
    if rate != rec.sample_rate:
        raise RuntimeError(f"fluidsynth rendered at {rate} Hz, asked {rec.sample_rate}")
    return audio


def record(rec: Recording, slices: pd.DataFrame, soundfonts: list[str], seed: int, out: Path, work: Path) -> None:
    """Render one recording and write its slices under ``out/audio/fold<N>/``."""
    rng = np.random.default_rng([seed, rec.fsid, 2])
    cls = CLASSES[rec.class_id]
    end = float(slices["end"].max()) + 0.05
    pan = int(np.clip(rng.normal(64, 20), 0, 127))
    notes = phrase(cls, end, rng)
    audio = render(midi_file(notes, rec.program, end + 0.5, pan, cls.style == "drums"), soundfonts[rec.soundfont],
                   rec, work)
    sr = rec.sample_rate
    n = int(math.ceil(end * sr))
    audio = np.pad(audio, ((0, max(0, n - len(audio))), (0, 0)))[:n]
    audio = audio.mean(axis=1, keepdims=True) if rec.channels == 1 else audio
    active = audio[np.abs(audio).max(axis=1) > 1e-4]
    rms = float(np.sqrt(np.mean(active**2))) if len(active) else 1e-3
    background = noise(n, sr, rng, slope=rec.noise_slope) * rms * 10 ** (-rec.snr_db / 20)
    if rec.hum_db is not None:
        t = np.arange(n) / sr
        hum = sum(np.sin(2 * np.pi * rec.hum_hz * h * t + rng.uniform(0, 2 * np.pi)) / h for h in (1, 2, 3, 5)
                  if rec.hum_hz * h < 0.45 * sr)
        background = background + hum * rms * 10 ** (-rec.hum_db / 20)
    audio = audio + background[:, None] * np.where(np.arange(audio.shape[1]) == 0, 1.0, 0.9)
    peak = float(np.abs(audio).max()) or 1.0
    audio *= 10 ** (rec.level_dbfs / 20) / peak
    for row in slices.itertuples():
        clip = audio[int(round(row.start * sr)):int(round(row.end * sr))].astype(np.float32)
        path = out / "audio" / f"fold{row.fold}" / row.slice_file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        if rec.subtype == "FLAC":  # its file name ends in .flac (build)
            sf.write(path, clip, sr, format="FLAC", subtype="PCM_16")
        else:
            path.write_bytes(wav_bytes(clip, sr, rec.subtype))


def _record_job(args: tuple) -> int:
    rec, slices, soundfonts, seed, out, work = args
    record(rec, slices, soundfonts, seed, out, work)
    return len(slices)


# ----------------------------------------------------------------------------- the set
def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fluidsynth_version() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise SystemExit(f"error: fluidsynth is not installed. On Debian or Ubuntu: {APT_LINE}")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def check_soundfonts(paths: list[str]) -> None:
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        packages = {p: pkg for p, pkg in SOUNDFONTS}
        hint = " ".join(sorted({packages[p] for p in missing if p in packages}))
        raise SystemExit(f"error: soundfont(s) not found: {', '.join(missing)}. "
                         + (f"Install them: sudo apt-get install {hint}" if hint else "Pass existing files."))


def build(out: Path, num_clips: int, seed: int, soundfonts: list[str], workers: int, progress: bool = True
          ) -> pd.DataFrame:
    """Build the set into ``out`` (through a temporary folder beside it, renamed when complete)."""
    version = fluidsynth_version()
    check_soundfonts(soundfonts)
    marker = {"generator": "benchmarks/instruments.py", "version": VERSION, "seed": seed, "num_clips": num_clips,
              "fluidsynth": version,
              "soundfonts": [{"path": p, "sha256": file_digest(p)} for p in soundfonts]}
    if (out / MARKER_NAME).is_file():
        found = json.loads((out / MARKER_NAME).read_text())
        if found == marker:
            print(f"{out} is already built ({num_clips} clips, seed {seed}): nothing to do")
            return pd.read_csv(out / "metadata" / "UrbanSound8K.csv")
        raise SystemExit(f"error: {out} holds another build ({ {k: found.get(k) for k in ('seed', 'num_clips')} }); "
                         "pass another --output or delete it")
    if out.exists():
        raise SystemExit(f"error: {out} exists and is not a build of this script; pass another --output")
    table = plan(num_clips, seed)
    first = table.drop_duplicates("fsID")
    drawn = {int(f): draw_recording(seed, int(f), int(c), len(soundfonts)) for f, c in zip(first["fsID"], first["classID"])}
    table["slice_file_name"] = [name[:-4] + ".flac" if drawn[fsid].subtype == "FLAC" else name  # the name says so
                                for name, fsid in zip(table["slice_file_name"], table["fsID"])]
    recordings = [(drawn[int(fsid)], group) for fsid, group in table.groupby("fsID", sort=True)]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        work = partial / ".render"
        work.mkdir()
        jobs = [(rec, group, soundfonts, seed, partial, work) for rec, group in recordings]
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            for _ in tqdm(pool.map(_record_job, jobs), total=len(jobs), desc="recordings", unit="rec",
                          disable=not progress):
                pass
        work.rmdir()
        (partial / "metadata").mkdir()
        table.to_csv(partial / "metadata" / "UrbanSound8K.csv", index=False)
        (partial / MARKER_NAME).write_text(json.dumps(marker, indent=1))
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-clips", type=int, default=1200, help="clips in all (default: %(default)s)")
    parser.add_argument("--data-seed", type=int, default=0, help="the set's seed (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=None,
                        help="the folder to build (default: outputs/instruments-n<clips>-seed<seed>)")
    parser.add_argument("--soundfonts", default=",".join(p for p, _ in SOUNDFONTS),
                        help="comma-separated soundfont files (default: the three Debian GM soundfonts)")
    parser.add_argument("--workers", type=int, default=2, help="recordings rendered at once (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    out = args.output or Path("outputs") / f"instruments-n{args.num_clips}-seed{args.data_seed}"
    try:
        table = build(out, args.num_clips, args.data_seed, [s for s in args.soundfonts.split(",") if s],
                      args.workers)
    except ValueError as exc:
        parser.error(str(exc))
    short = float(((table["end"] - table["start"]) < CLIP_S - 1e-6).mean())
    print(f"{len(table)} clips of {table['fsID'].nunique()} recordings, {table['class'].nunique()} classes, "
          f"{short:.0%} shorter than {CLIP_S:g} s -> {out}")
    print(f"next: python get_data.py --source {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
