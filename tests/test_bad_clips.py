"""Broken and odd clips: each broken one is skipped with its reason, odd but valid ones are used.

The acceptance run: a folder in UrbanSound8K layout salted with broken clips, a missing file and a stray
one goes through get_data -> preprocessing -> training; the run finishes, lists each broken clip with its
reason, trains on the rest, and the folder's bytes are unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import get_data
import preprocessing
import training
from audioclf.metadata import MISSING, UNLISTED, check_clips, probe_clip
from audioclf.store import LocalStore

RATE = 8000
CLASSES = ("air_conditioner", "car_horn", "children_playing")


def tone(seconds: float = 0.25, rate: int = RATE, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def _wav_bytes(path: Path, data: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    sf.write(path, data, rate, subtype=subtype, format="WAV")
    return path.read_bytes()


# Odd but valid: every one must be used.
def write_odd(path: Path, kind: str) -> None:
    if kind == "ulaw":
        sf.write(path, tone(), RATE, subtype="ULAW", format="WAV")
    elif kind == "ima_adpcm":
        sf.write(path, tone(), RATE, subtype="IMA_ADPCM", format="WAV")
    elif kind == "six_channels":
        sf.write(path, tone(channels=6), RATE, subtype="PCM_16", format="WAV")
    elif kind == "192khz_24bit":
        sf.write(path, tone(0.1, 192_000), 192_000, subtype="PCM_24", format="WAV")
    elif kind == "50ms":
        sf.write(path, tone(0.05), RATE, subtype="PCM_16", format="WAV")
    elif kind == "silence":
        sf.write(path, np.zeros((RATE // 4, 1), np.float32), RATE, subtype="PCM_16", format="WAV")
    elif kind == "flac_named_wav":
        sf.write(path, tone(), RATE, format="FLAC")  # FLAC bytes under a .wav name
    elif kind == "float_stereo":
        sf.write(path, tone(channels=2), RATE, subtype="FLOAT", format="WAV")
    elif kind == "pcm_u8":
        sf.write(path, tone(), RATE, subtype="PCM_U8", format="WAV")
    else:
        raise ValueError(kind)


ODD = ("ulaw", "ima_adpcm", "six_channels", "192khz_24bit", "50ms", "silence", "flac_named_wav", "float_stereo",
       "pcm_u8")


# Broken: (kind, expected start of the reason).
def write_broken(path: Path, kind: str) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        whole = _wav_bytes(path, tone(1.0))
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "truncated_flac":
        sf.write(path, tone(1.0) + 0.01 * np.random.default_rng(0).standard_normal((RATE, 1)).astype(np.float32),
                 RATE, format="FLAC")
        whole = path.read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "not_audio":
        path.write_text("this is a text file with a .wav name\n")
    elif kind == "zero_frames":
        sf.write(path, np.zeros((0, 1), np.float32), RATE, subtype="PCM_16", format="WAV")
    elif kind in ("nan", "inf"):
        data = tone()
        data[100, 0] = np.nan if kind == "nan" else np.inf
        sf.write(path, data, RATE, subtype="FLOAT", format="WAV")
    elif kind == "riff_garbage":
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    else:
        raise ValueError(kind)


BROKEN = {
    "empty": "empty file",
    "truncated": "truncated",
    "truncated_flac": "cannot decode",
    "not_audio": "cannot decode",
    "zero_frames": "zero frames",
    "nan": "NaN or Inf",
    "inf": "NaN or Inf",
    "riff_garbage": "cannot decode",
}


@pytest.mark.parametrize("kind", ODD)
def test_odd_but_valid_clips_pass(tmp_path, kind):
    path = tmp_path / f"{kind}.wav"
    write_odd(path, kind)
    assert probe_clip(path) is None


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_clips_get_a_reason(tmp_path, kind):
    path = tmp_path / f"{kind}.wav"
    write_broken(path, kind)
    reason = probe_clip(path)
    assert reason is not None and reason.startswith(BROKEN[kind]), reason


def test_missing_clip(tmp_path):
    assert probe_clip(tmp_path / "nope.wav") == MISSING


# --- the acceptance run --------------------------------------------------------------------------

def write_tone_folder(root: Path, takes: int) -> pd.DataFrame:
    """UrbanSound8K layout, 3 classes x 10 folds x ``takes`` clips of a class's tone; returns the table."""
    rows = [{"slice_file_name": f"{100 + class_id}-{class_id}-{take}-{fold}.wav", "fsID": 100 + class_id,
             "start": 0.0, "end": 0.25, "salience": 1, "fold": fold, "classID": class_id, "class": name}
            for fold in range(1, 11) for class_id, name in enumerate(CLASSES) for take in range(takes)]
    table = pd.DataFrame(rows)
    for row in table.itertuples():
        path = root / "audio" / f"fold{row.fold}" / row.slice_file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(freq=300.0 * (row.classID + 1)), RATE, subtype="PCM_16")
    (root / "metadata").mkdir()
    table.to_csv(root / "metadata" / "UrbanSound8K.csv", index=False)
    return table


def build_salted_folder(root: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """UrbanSound8K layout, 3 classes x 10 folds x 2 clips; folds 1..8 salted. Returns the table and
    {filepath: expected reason prefix} for every file that must be skipped."""
    table = write_tone_folder(root, takes=2)

    salt = [r for r in table.itertuples() if r.fold <= 8]
    expected: dict[str, str] = {}
    for row, kind in zip(salt, ODD):  # odd but valid: used
        write_odd(root / "audio" / f"fold{row.fold}" / row.slice_file_name, kind)
    for row, kind in zip(salt[len(ODD):], sorted(BROKEN)):  # broken: skipped
        rel = f"audio/fold{row.fold}/{row.slice_file_name}"
        write_broken(root / rel, kind)
        expected[rel] = BROKEN[kind]
    gone = salt[len(ODD) + len(BROKEN)]
    rel = f"audio/fold{gone.fold}/{gone.slice_file_name}"
    (root / rel).unlink()
    expected[rel] = MISSING
    sf.write(root / "audio" / "fold1" / "stray.wav", tone(), RATE)
    expected["audio/fold1/stray.wav"] = UNLISTED
    (root / "audio" / "fold1" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: ignored
    return table, expected


def tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_check_clips_lists_each_bad_file_and_keeps_the_rest(tmp_path):
    from audioclf.metadata import read_urbansound8k

    table, expected = build_salted_folder(tmp_path)
    report = check_clips(read_urbansound8k(tmp_path), tmp_path, workers=2, progress=False)
    got = dict(zip(report.skipped["filepath"], report.skipped["reason"]))
    assert set(got) == set(expected)
    for rel, prefix in expected.items():
        assert got[rel].startswith(prefix), (rel, got[rel])
    assert len(report.kept) == len(table) - (len(expected) - 1)  # the stray file was never a row


def test_salted_folder_run_finishes_reports_and_trains_on_the_rest(tmp_path):
    source, out = tmp_path / "UrbanSound8K", tmp_path / "outputs"
    source.mkdir()
    table, expected = build_salted_folder(source)
    before = tree_digest(source)
    common = ["--offline", "--output-dir", str(out)]

    raw = get_data.main(["--source", str(source), "--workers", "2"] + common)
    skipped = pd.read_csv(raw["skipped_report"])
    got = dict(zip(skipped["filepath"], skipped["reason"]))
    assert set(got) == set(expected)
    assert all(got[rel].startswith(prefix) for rel, prefix in expected.items()), got
    assert raw["num_skipped"] == len(expected)
    assert raw["num_clips"] == len(table) - (len(expected) - 1)
    dataset = LocalStore(out / "datasets").get(raw["dataset_id"])
    registered = dataset.read_table("metadata.csv")
    assert sorted(dataset.list_files("audio/*")) == sorted(registered["filepath"])
    assert not set(expected) & set(registered["filepath"])
    assert "metadata/UrbanSound8K.csv" in dataset.list_files()

    feats = preprocessing.main(["--dataset-id", raw["dataset_id"], "--device", "cpu", "--workers", "2"] + common)
    assert feats["num_skipped"] == 0 and feats["num_clips"] == raw["num_clips"]
    train = training.main(["--dataset-id", feats["dataset_id"], "--epochs", "1", "--device", "cpu"] + common)
    assert 0.0 <= train["test"]["accuracy"] <= 1.0
    assert tree_digest(source) == before, "the source folder must not change"


# --- finite samples so large that the spectrogram overflows ---------------------------------------

OVERFLOW = "samples too large: the spectrogram overflows; re-export the file as normalized PCM"


def write_huge(path: Path, rate: int = RATE, seconds: float = 1.0) -> None:
    """Finite float samples far above full scale: they pass the NaN/Inf checks, their power spectrum is Inf."""
    sf.write(path, np.full(int(rate * seconds), 3e38, np.float32), rate, subtype="FLOAT", format="WAV")


def test_a_clip_whose_spectrogram_overflows_is_skipped_in_its_batch_and_the_rest_written(tmp_path):
    import torch

    from audioclf.features import FeatureConfig
    from audioclf.preprocess import extract_features

    clips = []
    for i in range(5):
        wav = tmp_path / f"clip{i}.wav"
        if i == 2:
            write_huge(wav)
        else:
            sf.write(wav, tone(freq=300.0 * (i + 1)), RATE, subtype="PCM_16")
        clips.append((wav.name, wav, tmp_path / "out" / f"clip{i}.npy"))
    seen = []
    report = extract_features(clips, FeatureConfig(n_mels=32, duration_s=0.5), torch.device("cpu"), batch_size=16,
                              workers=1, progress=False, on_skip=lambda name, reason: seen.append((name, reason)))
    assert report.skipped == seen == [("clip2.wav", OVERFLOW)]
    assert report.computed == 4
    assert not (tmp_path / "out" / "clip2.npy").exists()
    for i in (0, 1, 3, 4):
        assert np.isfinite(np.load(tmp_path / "out" / f"clip{i}.npy")).all()


def test_preprocessing_skips_and_reports_an_overflowing_clip_and_processes_the_others(tmp_path):

    source, out = tmp_path / "UrbanSound8K", tmp_path / "outputs"
    table = write_tone_folder(source, takes=1)
    huge = f"audio/fold3/{table.iloc[7].slice_file_name}"
    write_huge(source / huge)
    common = ["--offline", "--output-dir", str(out)]

    raw = get_data.main(["--source", str(source), "--workers", "1"] + common)
    assert raw["num_clips"] == len(table)  # its samples are finite: the clip checks let it through
    feats = preprocessing.main(["--dataset-id", raw["dataset_id"], "--device", "cpu", "--workers", "1"] + common)

    skipped = pd.read_csv(Path(feats["run_dir"]) / "skipped_clips.csv")
    assert dict(zip(skipped["filepath"], skipped["reason"])) == {huge: OVERFLOW}
    assert feats["num_skipped"] == 1 and feats["num_clips"] == len(table) - 1
    dataset = LocalStore(out / "datasets").get(feats["dataset_id"])
    index = dataset.read_table("features.csv")
    assert huge not in set(index["filepath"]) and len(index) == len(table) - 1
    npys = [f for f in dataset.list_files() if f.endswith(".npy")]
    assert len(npys) == len(table) - 1
    assert not [f for f in npys if Path(f).stem == Path(huge).stem]
    assert not [p for p in out.rglob(f"{Path(huge).stem}*.npy")]
    assert all(np.isfinite(np.load(dataset.path(f))).all() for f in npys)


def test_predict_reports_an_overflowing_file_as_bad_and_classifies_the_others(tmp_path, capsys):
    import predict
    from audioclf.features import FeatureConfig
    from audioclf.models import AudioClassifier, save_model

    config = FeatureConfig(sample_rate=RATE, n_fft=256, hop_length=128, n_mels=16, duration_s=0.5)
    model_path = tmp_path / "model.pt"
    save_model(model_path, AudioClassifier("compact", 2), list(CLASSES[:2]), config.to_dict(), {}, {})
    folder = tmp_path / "inbox"
    folder.mkdir()
    sf.write(folder / "good.wav", tone(1.0), RATE, subtype="PCM_16")
    write_huge(folder / "huge.wav")
    out = tmp_path / "report.csv"

    report = predict.main([str(model_path), str(folder), "--format", "csv", "--output", str(out), "--device", "cpu"])
    assert [Path(f["path"]).name for f in report["files"]] == ["good.wav"]
    assert [(Path(e["path"]).name, e["reason"]) for e in report["errors"]] == [("huge.wav", OVERFLOW)]
    assert predict.exit_code(report) == 0
    assert f"huge.wav: {OVERFLOW}" in capsys.readouterr().err
    table = pd.read_csv(out, keep_default_na=False).set_index("file").rename(lambda p: Path(p).name)
    assert table.loc["huge.wav", "error"] == OVERFLOW and table.loc["good.wav", "error"] == ""
    assert np.isfinite(pd.to_numeric(table.loc[["good.wav"], "prob_1"])).all()
    assert "nan" not in out.read_text().lower()

    alone = predict.main([str(model_path), str(folder / "huge.wav"), "--format", "json", "--device", "cpu"])
    assert alone["files"] == [] and alone["errors"][0]["reason"] == OVERFLOW
    assert predict.exit_code(alone) == 1  # as when every file fails to decode
    printed = capsys.readouterr().out
    assert json.loads(printed)["errors"][0]["reason"] == OVERFLOW and "NaN" not in printed
