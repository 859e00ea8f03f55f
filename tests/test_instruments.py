"""benchmarks/instruments.py: the real-recordings set (Debian's instrument samples through fluidsynth).

The plan and the MIDI files are checked everywhere; the rendering tests need fluidsynth and the soundfonts
(`.ci/run` installs them; elsewhere they are skipped, saying so)."""

import hashlib
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import instruments  # noqa: E402

from audioclf import metadata  # noqa: E402
from audioclf.sources import detect_layout  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMALL_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"  # 6 MB: fast enough for the determinism test
needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not Path(SMALL_SOUNDFONT).is_file(),
    reason=f"needs fluidsynth and the soundfonts: {instruments.APT_LINE}")
needs_all_soundfonts = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not all(Path(p).is_file() for p, _ in instruments.SOUNDFONTS),
    reason=f"needs fluidsynth and the three soundfonts: {instruments.APT_LINE}")


def test_plan_has_every_class_in_every_fold_and_each_recording_in_one_fold():
    table = instruments.plan(1200, seed=0)
    assert len(table) == 1200
    cells = table.groupby(["fold", "classID"]).size()
    assert len(cells) == 100 and set(cells) == {12}
    assert (table.groupby("fsID")["fold"].nunique() == 1).all()
    assert (table.groupby("fsID")["classID"].nunique() == 1).all()
    durations = table["end"] - table["start"]
    assert durations.max() <= instruments.CLIP_S + 1e-9 and durations.min() >= 0.5 - 1e-9
    short = (durations < instruments.CLIP_S - 1e-6).mean()
    assert 0.35 < short < 0.65  # "many shorter": about half, as in the maintainers' held-out set
    for _, group in table.groupby("fsID"):  # consecutive slices of one recording never overlap
        starts, ends = group["start"].to_numpy(), group["end"].to_numpy()
        assert (starts[1:] >= ends[:-1]).all()
    slices = table.groupby("fsID").size()
    assert slices.max() > 3 and slices.min() == 1  # recordings of several slices, and single ones
    assert table["slice_file_name"].is_unique
    assert list(table.columns) == ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]


def test_plan_is_deterministic_for_a_seed_and_differs_between_seeds():
    pd.testing.assert_frame_equal(instruments.plan(300, seed=3), instruments.plan(300, seed=3))
    assert not instruments.plan(300, seed=3).equals(instruments.plan(300, seed=4))
    assert len(instruments.plan(123, seed=0)) == 123  # the remainder goes to some cells
    with pytest.raises(ValueError, match="at least 100"):
        instruments.plan(99, seed=0)


def _parse_midi(data: bytes) -> list[tuple[int, int, int, int]]:
    """(tick, status, data1, data2) of the channel events of a format-0 file written by midi_file."""
    assert data[:4] == b"MThd" and struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, 480)
    assert data[14:18] == b"MTrk"
    length = struct.unpack(">I", data[18:22])[0]
    track, pos, tick, events = data[22:22 + length], 0, 0, []
    assert len(track) == length
    while pos < len(track):
        delta = 0
        while True:
            byte = track[pos]
            pos += 1
            delta = (delta << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        tick += delta
        status = track[pos]
        if status == 0xFF:  # meta: type, length, data
            meta_len = track[pos + 2]
            pos += 3 + meta_len
            continue
        size = 2 if status & 0xF0 == 0xC0 else 3
        events.append((tick, status, track[pos + 1], track[pos + 2] if size == 3 else 0))
        pos += size
    return events


def test_midi_file_plays_every_note_on_its_channel_and_lasts_to_the_end():
    rng = np.random.default_rng(0)
    for cls in instruments.CLASSES:
        notes = instruments.phrase(cls, 6.0, rng)
        assert notes, cls.name
        drums = cls.style == "drums"
        events = _parse_midi(instruments.midi_file(notes, cls.programs[0], 6.5, 64, drums))
        channel = 9 if drums else 0
        assert {status & 0x0F for _, status, _, _ in events} == {channel}
        ons = [e for e in events if e[1] & 0xF0 == 0x90]
        offs = [e for e in events if e[1] & 0xF0 == 0x80]
        assert len(ons) == len(offs) == len(notes)
        assert all(cls.low <= note <= cls.high for _, _, note, _ in ons), cls.name
        assert (0, 0xC0 | channel, cls.programs[0], 0) in events  # the program is set first
        # a last event at the end (or after the last note-off) keeps fluidsynth rendering the tails
        assert events[-1][1:3] == (0xB0 | channel, 121)
        assert events[-1][0] == max(round(6.5 * 960), max(t for t, _, _, _ in offs))
        assert max(t for t, _, _, _ in ons) < 6.1 * 960  # the last onset (a strum may end just after)


@needs_fluidsynth
def test_build_is_byte_identical_for_a_seed_and_reads_as_urbansound8k(tmp_path):
    one = instruments.build(tmp_path / "one", 100, seed=5, soundfonts=[SMALL_SOUNDFONT], workers=2, progress=False)
    two = instruments.build(tmp_path / "two", 100, seed=5, soundfonts=[SMALL_SOUNDFONT], workers=1, progress=False)
    pd.testing.assert_frame_equal(one, two)

    def digest(root: Path) -> dict:
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((root / "audio").rglob("*")) if p.is_file()}

    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    assert not list(tmp_path.glob(".*partial*"))  # the temporary folder is gone
    root, layout = detect_layout(tmp_path / "one")
    table = metadata.read_table(root, layout)
    assert len(table) == 100 and table["class"].nunique() == 10
    formats = set()
    for row in table.itertuples():
        info = sf.info(root / row.filepath)
        audio, rate = sf.read(root / row.filepath, always_2d=True)
        formats.add((info.format, info.subtype, info.samplerate, info.channels))
        expected = round(row.end * rate) - round(row.start * rate)
        assert len(audio) == expected, row.filepath
        assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-4, row.filepath  # sound, not silence
    assert len(formats) > 5  # rates, channels and subtypes vary between recordings


@needs_fluidsynth
def test_a_second_build_into_the_same_folder_does_nothing_and_another_seed_is_refused(tmp_path, capsys):
    out = tmp_path / "set"
    instruments.build(out, 100, seed=1, soundfonts=[SMALL_SOUNDFONT], workers=2, progress=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    instruments.build(out, 100, seed=1, soundfonts=[SMALL_SOUNDFONT], workers=2, progress=False)
    assert "already built" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    with pytest.raises(SystemExit, match="another build"):
        instruments.build(out, 100, seed=2, soundfonts=[SMALL_SOUNDFONT], workers=2, progress=False)


def test_missing_fluidsynth_or_soundfont_names_the_apt_line(tmp_path):
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}  # no fluidsynth on this PATH
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "instruments.py"), "--output",
                           str(tmp_path / "x")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "fluidsynth is not installed" in done.stderr and "apt-get install fluidsynth" in done.stderr
    if shutil.which("fluidsynth"):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "instruments.py"), "--output",
                               str(tmp_path / "y"), "--soundfonts", str(tmp_path / "none.sf2")],
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert "none.sf2" in done.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@needs_all_soundfonts
def test_the_default_set_registers_with_get_data_offline(tmp_path):
    """The documented route: the builder's default soundfonts, then get_data.py --source FOLDER."""
    out = tmp_path / "instruments"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "instruments.py"), "--num-clips", "100",
                           "--output", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "100 clips" in done.stdout
    used = {instruments.draw_recording(0, int(f), 0, 3).soundfont for f in range(1, 101)}
    assert used == {0, 1, 2}  # all three sample sets appear
    done = subprocess.run([sys.executable, str(ROOT / "get_data.py"), "--source", str(out), "--offline",
                           "--output-dir", str(tmp_path / "outputs")], capture_output=True, text=True, cwd=tmp_path,
                          env={**__import__("os").environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(next((tmp_path / "outputs").rglob("metadata.csv")))
    assert len(table) == 100 and table["class"].nunique() == 10
