"""predict.py and audioclf.inference on generated audio: no train/serve skew, timelines, bad files, MODEL lookup.

    python -m pytest -q tests/test_predict.py
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from unittest import mock

import clearml
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import get_data
import predict
import preprocessing
import training
from audioclf import inference
from audioclf.audio import load_for_features
from audioclf.features import FeatureConfig, LogMel
from audioclf.inference import ModelNotFound, iter_windows, load_classifier
from audioclf.models import AudioClassifier, load_model, save_model
from audioclf.store import LocalStore
from audioclf.synthetic import CLASS_NAMES, synthesize_clip

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The three stages on 100 generated clips, offline, as a user runs them (3 short epochs)."""
    out = tmp_path_factory.mktemp("outputs")
    common = ["--offline", "--output-dir", str(out)]
    raw = get_data.main(["--num-clips", "100", "--data-seed", "3", "--workers", "1"] + common)
    feats = preprocessing.main(["--dataset-id", raw["dataset_id"], "--device", "cpu", "--workers", "1"] + common)
    train = training.main(["--dataset-id", feats["dataset_id"], "--epochs", "3", "--batch-size", "16",
                           "--device", "cpu"] + common)
    store = LocalStore(out / "datasets")
    return {"store": store, "raw": store.get(raw["dataset_id"]), "features": store.get(feats["dataset_id"]),
            "training": train, "model": Path(train["model_path"])}


# Two classes that sound nothing alike, and features unlike the defaults (16 kHz, 1 s, 32 mels): prediction
# must take every parameter from the model file.
TWO_CLASSES = (5, 8)  # engine_idling, siren
TWO_CLASS_FEATURES = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=32, duration_s=1.0)


@pytest.fixture(scope="module")
def two_class_model(tmp_path_factory) -> Path:
    """A compact CNN trained in a few seconds on 160 generated 1 s clips of two classes; deterministic."""
    rng = np.random.default_rng(0)
    labels = np.arange(160) % 2  # every sound family of both classes (motorcycles, trucks, ...) several times
    waves = np.stack([synthesize_clip(TWO_CLASSES[i], 1.0, 16000, 1, 1, rng)[:, 0] for i in labels])
    with torch.no_grad():
        x = LogMel(TWO_CLASS_FEATURES)(torch.from_numpy(waves)).half().float()
    y = torch.from_numpy(labels)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AudioClassifier("compact", 2)
        model.set_normalization(x.mean().item(), x.std().item())
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for _ in range(15):
            order = torch.randperm(len(y))
            for start in range(0, len(y), 16):
                idx = order[start:start + 16]
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    path = tmp_path_factory.mktemp("two_class") / "model.pt"
    save_model(path, model.eval(), [CLASS_NAMES[c] for c in TWO_CLASSES], TWO_CLASS_FEATURES.to_dict(), {}, {})
    return path


@pytest.fixture(scope="module")
def mixed_30s(tmp_path_factory) -> Path:
    """30 s, stereo, 48 kHz, PCM_24: 15 s of engine idling, then 15 s of siren (1 s events back to back)."""
    rng = np.random.default_rng(2)
    halves = [np.concatenate([synthesize_clip(c, 1.0, 48000, 2, 1, rng) for _ in range(15)]) for c in TWO_CLASSES]
    path = tmp_path_factory.mktemp("mixed") / "engine_then_siren.wav"
    sf.write(path, np.concatenate(halves), 48000, subtype="PCM_24")
    return path


def _good_clip(path: Path, seconds: float = 1.5) -> Path:
    sf.write(path, synthesize_clip(8, seconds, 44100, 1, 1, np.random.default_rng(7)), 44100, subtype="PCM_16")
    return path


# ----------------------------------------------------------------------------- no train/serve skew
def test_held_out_clips_are_predicted_at_the_accuracy_training_reported(trained, tmp_path):
    metrics = json.loads((trained["model"].parent / "metrics.json").read_text())
    fold10 = trained["raw"].path("metadata.csv").parent / "audio" / "fold10"  # <store>/<raw id>/files/audio/fold10
    assert fold10.is_dir()
    out = tmp_path / "predictions.json"
    report = predict.main([str(trained["model"].parent), str(fold10), "--format", "json", "--output", str(out),
                           "--device", "cpu", "--top-k", "10"])
    assert json.loads(out.read_text()) == report  # the JSON written is the report returned
    table = trained["raw"].read_table("metadata.csv")
    truth = {Path(p).name: c for p, c in zip(table["filepath"], table["class"])}
    predicted = {Path(f["path"]).name: f["top"][0]["class"] for f in report["files"]}
    assert len(predicted) == metrics["num_test"] and not report["errors"]
    accuracy = np.mean([predicted[name] == truth[name] for name in predicted])
    assert accuracy == metrics["test"]["accuracy"]

    # Clip by clip: the probabilities are those of the model on the stored training features.
    model, _ = load_model(trained["model"])
    index = trained["features"].read_table("features.csv").set_index("filepath")
    for rec in report["files"]:
        rel = Path(rec["path"]).relative_to(fold10.parents[1]).as_posix()
        stored = torch.from_numpy(np.load(trained["features"].path(index.loc[rel, "feature_path"])).astype(np.float32))
        with torch.no_grad():
            want = torch.softmax(model(stored[None]), dim=1)[0].numpy()
        got = np.zeros(len(want))
        for entry in rec["top"]:
            got[metrics["class_names"].index(entry["class"])] = entry["probability"]
        np.testing.assert_allclose(got, want, atol=1e-6)
        assert rec["num_windows"] == 1  # clips are at most the model's 4 s


def test_every_training_clip_gives_exactly_its_stored_spectrogram(trained):
    clf = load_classifier(trained["model"], "cpu")
    assert clf.config == FeatureConfig.from_dict(trained["features"].read_json("features.json")["feature_config"])
    index = trained["features"].read_table("features.csv")
    for row in index.itertuples():
        windows = list(clf.file_windows(trained["raw"].path(row.filepath)))
        assert len(windows) == 1
        spec = clf.spectrograms(windows[0][2][None])[0].numpy()
        stored = np.load(trained["features"].path(row.feature_path)).astype(np.float32)
        assert np.array_equal(spec, stored), row.filepath


# ----------------------------------------------------------------------------- timelines
def _change_point(classes: np.ndarray, centers: np.ndarray, first: int, second: int) -> float:
    """The boundary time that best explains a first-then-second timeline (fewest windows on the wrong side)."""
    candidates = (centers[:-1] + centers[1:]) / 2
    errors = [np.sum(classes[centers < t] != first) + np.sum(classes[centers > t] != second) for t in candidates]
    return float(candidates[int(np.argmin(errors))])


def test_a_30s_file_mixing_two_classes_switches_near_the_boundary(two_class_model, mixed_30s):
    report = predict.main([str(two_class_model), str(mixed_30s), "--format", "json", "--device", "cpu",
                           "--output", str(mixed_30s.with_suffix(".json"))])
    rec = report["files"][0]
    assert (rec["sample_rate"], rec["channels"], rec["format"]) == (48000, 2, "WAV/PCM_24")
    assert rec["duration_s"] == pytest.approx(30.0)
    # The model's own clip duration (1 s) sets the default window, hop half of it.
    assert report["settings"]["window_s"] == 1.0 and report["settings"]["hop_s"] == 0.5
    windows = rec["windows"]
    assert len(windows) == 59 and windows[0]["start_s"] == 0.0 and windows[-1]["end_s"] == pytest.approx(30.0)
    names = report["model"]["class_names"]
    classes = np.array([names.index(w["top"][0]["class"]) for w in windows])
    centers = np.array([(w["start_s"] + w["end_s"]) / 2 for w in windows])
    timeline = "".join(map(str, classes))
    # Nearly every window fully inside a half has that half's class...
    assert np.mean(classes[centers < 14.5] == 0) >= 0.9, timeline
    assert np.mean(classes[centers > 15.5] == 1) >= 0.9, timeline
    # ...and the timeline switches from the first class to the second within one hop of 15 s.
    assert abs(_change_point(classes, centers, 0, 1) - 15.0) <= report["settings"]["hop_s"], timeline
    # The aggregate (mean of the window probabilities) holds both classes about equally.
    assert {t["class"] for t in rec["top"]} == set(names)
    assert all(0.3 < t["probability"] < 0.7 for t in rec["top"])


def test_the_model_files_feature_config_is_applied_as_preprocessing_applies_it(two_class_model, mixed_30s):
    """Not the defaults (22050 Hz, 4 s, 64 mels): the model's 16 kHz, 1 s, 32 mels, through preprocessing's code."""
    clf = load_classifier(two_class_model, "cpu")
    start, end, wave = next(clf.file_windows(mixed_30s))
    assert (start, end, wave.shape) == (0, 16000, (16000,))
    want = load_for_features(mixed_30s, sample_rate=16000, num_samples=16000, pad="loop")  # preprocessing's decoding
    assert np.array_equal(wave, want)
    spec = clf.spectrograms(wave[None])
    assert spec.shape == (1, 32, TWO_CLASS_FEATURES.num_frames)
    with torch.no_grad():
        assert torch.equal(spec, LogMel(TWO_CLASS_FEATURES)(torch.from_numpy(want)[None]).half().float())


def test_window_and_hop_set_the_timeline_and_csv_parses_back(two_class_model, mixed_30s, tmp_path):
    out = tmp_path / "timeline.csv"
    report = predict.main([str(two_class_model), str(mixed_30s), "--window", "0.5", "--hop", "0.25", "--timeline",
                           "--format", "csv", "--output", str(out), "--device", "cpu", "--top-k", "1"])
    windows = report["files"][0]["windows"]
    assert len(windows) == 1 + math.ceil((30 - 0.5) / 0.25)
    assert [w["start_s"] for w in windows[:3]] == [0.0, 0.25, 0.5] and windows[0]["end_s"] == 0.5
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ["file", "window", "start_s", "end_s", "class_1", "prob_1", "error"]
    assert len(table) == 1 + len(windows) and table["window"].iloc[0] == "all"
    assert table["class_1"].iloc[1:].tolist() == [w["top"][0]["class"] for w in windows]
    np.testing.assert_allclose(table["prob_1"].iloc[1:].astype(float), [w["top"][0]["probability"] for w in windows],
                               atol=1e-6)
    with pytest.raises(SystemExit) as exc:  # longer than the model's 1 s clips: refused, not silently trimmed
        predict.main([str(two_class_model), str(mixed_30s), "--window", "2"])
    assert exc.value.code == 2


def test_windows_cover_a_streamed_signal_whatever_the_pieces():
    signal = np.arange(1003, dtype=np.float32)
    for piece in (1, 64, 5000):
        pieces = [signal[i:i + piece] for i in range(0, signal.size, piece)]
        windows = list(iter_windows(pieces, window=100, hop=50))
        assert [s for s, _, _ in windows] == list(range(0, 951, 50))
        assert all(np.array_equal(w, signal[s:e]) for s, e, w in windows)
        assert windows[-1][1] == 1003 and windows[-1][2].size == 53  # the last one is short: padded later


# ----------------------------------------------------------------------------- bad input
def test_broken_files_are_reported_and_the_good_ones_predicted(two_class_model, tmp_path, capsys):
    folder = tmp_path / "inbox"
    folder.mkdir()
    good = _good_clip(folder / "good.wav")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("this is not audio\n" * 50)
    (folder / "truncated.wav").write_bytes(good.read_bytes()[:30])
    sf.write(folder / "silent.aiff", np.zeros((0, 1), np.float32), 16000)  # a valid file with zero frames
    (folder / "readme.txt").write_text("not picked up from a folder: not an audio extension")
    out = tmp_path / "report.csv"
    report = predict.main([str(two_class_model), str(folder), str(tmp_path / "missing.wav"), "--format", "csv",
                           "--output", str(out), "--device", "cpu"])
    assert [Path(f["path"]).name for f in report["files"]] == ["good.wav"]
    reasons = {Path(e["path"]).name: e["reason"] for e in report["errors"]}
    assert set(reasons) == {"empty.wav", "notes.wav", "truncated.wav", "silent.aiff", "missing.wav"}
    assert reasons["silent.aiff"] == "zero frames" and reasons["missing.wav"] == "no such file or folder"
    assert all(reasons[n].startswith("cannot decode") for n in ("empty.wav", "notes.wav", "truncated.wav"))
    assert predict.exit_code(report) == 0
    err = capsys.readouterr().err
    assert all(name in err for name in reasons)
    table = pd.read_csv(out, keep_default_na=False)
    assert table.set_index("file")["error"].rename(lambda p: Path(p).name).to_dict() == {"good.wav": "", **reasons}


def test_every_file_failing_exits_1_and_lists_them(two_class_model, tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    done = subprocess.run([sys.executable, str(REPO / "predict.py"), str(two_class_model), str(tmp_path / "a.wav"),
                           "--device", "cpu"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "a.wav" in done.stderr and "FAILED" in done.stdout and "0 file(s) classified" in done.stdout


def test_help_states_the_defaults():
    done = subprocess.run([sys.executable, str(REPO / "predict.py"), "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for phrase in ("(default: 3)", "(default: table)", "(default: standard output)", "(default: half the window)",
                   "(default: auto)", "MEAN OF ITS WINDOW PROBABILITIES", "--export"):
        assert phrase in text, phrase


def test_a_missing_model_is_a_clear_error(tmp_path, capsys):
    clip = _good_clip(tmp_path / "clip.wav")
    missing = tmp_path / "no_such_model.pt"
    with pytest.raises(SystemExit) as exc:
        predict.main([str(missing), str(clip), "--offline"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "no such file" in err
    with pytest.raises(SystemExit):  # not a path: it could be a ClearML id, but this run is offline
        predict.main(["d41d8cd98f00b204e9800998ecf8427e", str(clip), "--offline"])
    err = capsys.readouterr().err
    assert "d41d8cd98f00b204e9800998ecf8427e" in err and "offline, because --offline was given" in err
    with pytest.raises(SystemExit):  # an audio file is not a model
        predict.main([str(clip), str(clip), "--offline"])
    assert "not a model file of this project" in capsys.readouterr().err


# ----------------------------------------------------------------------------- MODEL as a ClearML id
@pytest.fixture
def online():
    with mock.patch("audioclf.tracking.decide_offline", return_value=(False, "credentials (mocked)")):
        yield


def test_a_clearml_model_id_is_downloaded(two_class_model, online):
    input_model = mock.create_autospec(clearml.InputModel)
    input_model.return_value.get_local_copy.return_value = str(two_class_model)
    with mock.patch.object(clearml, "InputModel", input_model):
        clf = load_classifier("0123abcd-model", device="cpu")
    input_model.assert_called_once_with(model_id="0123abcd-model")
    assert clf.source == str(two_class_model) and clf.config == TWO_CLASS_FEATURES


def test_a_clearml_task_id_gives_its_output_model_or_model_artifact(two_class_model, online):
    input_model = mock.create_autospec(clearml.InputModel)
    input_model.return_value.get_local_copy.side_effect = ValueError("no such model")
    output_model = mock.create_autospec(clearml.Model, instance=True)
    output_model.get_local_copy.return_value = str(two_class_model)
    task = mock.create_autospec(clearml.Task, instance=True)
    task.models = {"input": [], "output": [output_model]}
    task_cls = mock.create_autospec(clearml.Task)
    task_cls.get_task.return_value = task
    with mock.patch.object(clearml, "InputModel", input_model), mock.patch.object(clearml, "Task", task_cls):
        assert inference.resolve_model("task-123") == two_class_model
        task_cls.get_task.assert_called_with(task_id="task-123")
        # An offline training session that was imported keeps the model as the 'model' artifact.
        artifact = mock.Mock()
        artifact.get_local_copy.return_value = str(two_class_model)
        task.models = {"input": [], "output": []}
        task.artifacts = {"model": artifact}
        assert inference.resolve_model("task-123") == two_class_model
        # Neither: one error naming the id and both attempts.
        task.artifacts = {}
        with pytest.raises(ModelNotFound, match="task-123.*as a model id.*no such model.*as a task id"):
            inference.resolve_model("task-123")


@pytest.mark.parametrize("case", ["an input file", "a file in an input folder", "the model", "the model (export)",
                                  "a folder"])
def test_output_never_overwrites_an_input_or_the_model(two_class_model, tmp_path, capsys, case):
    model = tmp_path / "model.pt"
    model.write_bytes(two_class_model.read_bytes())
    clips = tmp_path / "clips"
    clips.mkdir()
    clip = _good_clip(clips / "clip.wav")
    before = {p: p.read_bytes() for p in (model, clip)}
    argv = {"an input file": [str(model), str(clip), "--output", str(clip)],
            "a file in an input folder": [str(model), str(clips), "--output", str(clips / "." / "clip.wav")],
            "the model": [str(model), str(clip), "--output", str(model)],
            "the model (export)": [str(model), "--export", "torchscript", "--output", str(model)],
            "a folder": [str(model), str(clip), "--output", str(clips)]}[case]
    with pytest.raises(SystemExit) as exc:
        predict.main(argv + ["--offline"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--output" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in clips.iterdir()) == ["clip.wav"]
