"""The raw dataset's audio report: per-clip headers (durations, rates, channels, formats), a 4-panel figure on
the ClearML session and as a PNG, a printed summary that names unreadable clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

import get_data
from audioclf import audio_stats, metadata
from audioclf.features import FeatureConfig
from audioclf.store import LocalStore
from audioclf.synthetic import generate_dataset

NUM_CLIPS = 40
BROKEN = {"not_audio": "cannot decode", "empty": "empty file"}


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.repeat((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None], channels, axis=1)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The built-in data (varied rates, channels and WAV subtypes, real durations), with three clips replaced
    by formats it lacks (FLAC, u-law, 6 channels) and two by broken files. Returns the folder and
    {filepath: expected reason prefix} of the broken ones."""
    root = tmp_path_factory.mktemp("audio-stats") / "UrbanSound8K"
    table = generate_dataset(root, num_clips=NUM_CLIPS, seed=2, workers=1, progress=False)
    (root / ".synthetic.json").unlink()  # a user's folder now: get_data copies it and never touches it
    paths = [f"audio/fold{r.fold}/{r.slice_file_name}" for r in table.itertuples()]
    sf.write(root / paths[0], _tone(1.5, 22050), 22050, format="FLAC")  # FLAC bytes under a .wav name
    sf.write(root / paths[1], _tone(0.7, 8000), 8000, subtype="ULAW", format="WAV")
    sf.write(root / paths[2], _tone(2.0, 16000, channels=6), 16000, subtype="PCM_16", format="WAV")
    (root / paths[3]).write_text("this is a text file with a .wav name\n")
    (root / paths[4]).write_bytes(b"")
    return root, {paths[3]: BROKEN["not_audio"], paths[4]: BROKEN["empty"]}


@pytest.fixture(scope="module")
def run(source, tmp_path_factory):
    root, _ = source
    out = tmp_path_factory.mktemp("outputs")
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = get_data.main(["--source", str(root), "--workers", "2", "--offline", "--output-dir", str(out)])
    return {"result": result, "out": out, "printed": printed.getvalue()}


def _session_events(session_dir: str) -> list[dict]:
    events = []
    for line in (Path(session_dir) / "metrics.jsonl").read_text().splitlines():
        if line.strip():
            events.extend(json.loads(line))
    return events


def test_table_holds_what_soundfile_says_for_every_kept_clip(source, run):
    root, broken = source
    result = run["result"]
    dataset = LocalStore(run["out"] / "datasets").get(result["dataset_id"])
    stored = dataset.read_table(audio_stats.INFO_FILE)
    local = pd.read_csv(result["audio_info"])
    pd.testing.assert_frame_equal(stored, local)
    assert Path(result["audio_info"]).parent == Path(result["run_dir"])
    assert list(stored.columns) == list(audio_stats.INFO_COLUMNS)
    # exactly the clips of the dataset, in its metadata order; the broken ones are not in it
    assert stored["filepath"].tolist() == dataset.read_table(metadata.METADATA_FILE)["filepath"].tolist()
    assert len(stored) == NUM_CLIPS - len(broken) and not set(broken) & set(stored["filepath"])
    for row in stored.itertuples():
        info = sf.info(str(root / row.filepath))
        assert (row.samplerate, row.channels, row.frames, row.format, row.subtype) == (
            info.samplerate, info.channels, info.frames, info.format, info.subtype), row.filepath
        assert row.duration_s == pytest.approx(info.duration)
    # the variety the report is for
    assert stored["samplerate"].nunique() >= 3 and {1, 2, 6} <= set(stored["channels"])
    assert {"WAV", "FLAC"} <= set(stored["format"]) and {"ULAW", "PCM_16"} <= set(stored["subtype"])
    assert stored["duration_s"].min() < 1.0 and stored["duration_s"].max() == pytest.approx(4.0)


def test_png_in_the_run_folder_is_a_real_image(run):
    png = Path(run["result"]["audio_report"])
    assert png == Path(run["result"]["run_dir"]) / audio_stats.PNG_NAME
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 600 and image.size[1] > 400
        assert len(set(np.asarray(image.convert("L")).ravel().tolist())) > 10  # drawn on, not blank


def test_figure_is_reported_on_the_offline_session(source, run):
    result = run["result"]
    stored = pd.read_csv(result["audio_info"])
    plots = [e for e in _session_events(result["session_dir"])
             if e["type"] == "plot" and e["metric"] == audio_stats.PLOT_TITLE]
    assert len(plots) == 1 and plots[0]["variant"] == audio_stats.PLOT_SERIES
    figure = json.loads(plots[0]["plot_str"])
    durations, rates, channels, formats = figure["data"]
    assert [t["type"] for t in figure["data"]] == ["bar"] * 4
    for trace in figure["data"]:  # every panel counts every clip once
        assert sum(trace["y"]) == len(stored)
    assert dict(zip(rates["x"], rates["y"])) == {
        audio_stats.rate_label(r): n for r, n in stored["samplerate"].value_counts().items()}
    assert dict(zip(channels["x"], channels["y"])) == {
        audio_stats.channel_label(c): n for c, n in stored["channels"].value_counts().items()}
    assert dict(zip(formats["x"], formats["y"]))["FLAC PCM_16"] == 1
    # the duration histogram: bin centres and counts as numpy bins them, a line at the feature duration
    width = durations["width"]
    edges = np.arange(len(durations["x"]) + 1) * width  # bins from 0, past the longest clip
    assert durations["x"] == pytest.approx(((edges[:-1] + edges[1:]) / 2).tolist())
    assert edges[-1] >= stored["duration_s"].max() and len(edges) - 1 <= audio_stats.MAX_DURATION_BINS
    assert durations["y"] == np.histogram(stored["duration_s"], bins=edges)[0].tolist()
    (line,) = figure["layout"]["shapes"]
    assert line["x0"] == line["x1"] == FeatureConfig().duration_s
    task = json.loads((Path(result["session_dir"]) / "task.json").read_text())
    assert "audio_info" in [a["key"] for a in task["execution"]["artifacts"]]


def test_summary_is_printed_and_names_each_unreadable_clip(source, run):
    _, broken = source
    result, printed = run["result"], run["printed"]
    summary = result["audio_summary"]
    assert f"audio: {summary}" in printed
    stored = pd.read_csv(result["audio_info"])
    assert summary.startswith(f"{len(stored)} clips: {stored['duration_s'].min():.2f}-")
    short = int((stored["duration_s"] < 4.0 - audio_stats.DURATION_TOLERANCE_S).sum())
    assert f"{100 * short / len(stored):.0f} % shorter than 4 s" in summary
    assert f"{len(broken)} listed clips could not be read" in summary
    for path, reason in broken.items():
        assert f"{path} ({reason}" in summary
    assert result["num_skipped"] == len(broken)


def test_summary_counts_and_shares():
    kept = pd.DataFrame({"filepath": [f"a/{i}.wav" for i in range(4)], "fold": 1, "class": "dog_bark"})
    info = pd.DataFrame({"filepath": kept["filepath"], "duration_s": [1.0, 4.0, 4.0, 5.0],
                         "samplerate": [8000, 44100, 44100, 44100], "channels": [1, 2, 2, 2],
                         "frames": [8000, 176400, 176400, 220500], "format": "WAV",
                         "subtype": ["PCM_16", "PCM_16", "PCM_24", "PCM_16"]})
    skipped = pd.DataFrame({"filepath": [f"b/{i}.wav" for i in range(7)] + ["stray.wav"],
                            "reason": ["empty file (0 bytes)"] * 7 + [metadata.UNLISTED]})
    stats = audio_stats.describe(kept, info, skipped, reference_s=4.0)
    text = audio_stats.summary(stats)
    assert text.startswith("4 clips: 1.00-5.00 s (median 4.00 s, 25 % shorter than 4 s: padded; 25 % longer: "
                           "trimmed)")
    assert "8-44.1 kHz (44.1 kHz 75 %, 8 kHz 25 %)" in text
    assert "stereo 75 %, mono 25 %" in text and "WAV PCM_16 75 %, WAV PCM_24 25 %" in text
    # the unlisted file is not a clip of the dataset; seven unreadable ones: five named, two counted
    assert "7 listed clips could not be read" in text and "b/4.wav (empty file (0 bytes))" in text
    assert "b/5.wav" not in text and "and 2 more" in text and "stray.wav" not in text


def test_describe_refuses_a_kept_clip_without_a_header():
    kept = pd.DataFrame({"filepath": ["a.wav", "b.wav"], "fold": 1, "class": "siren"})
    info = pd.DataFrame([("a.wav", 1.0, 8000, 1, 8000, "WAV", "PCM_16")], columns=metadata.AUDIO_INFO_COLUMNS)
    with pytest.raises(RuntimeError, match="b.wav"):
        audio_stats.describe(kept, info, pd.DataFrame(columns=["filepath", "reason"]), 4.0)


@pytest.mark.parametrize("kind", ["ulaw_wav", "flac", "float_stereo", "pcm24_96k"])
def test_the_integrity_probe_reads_the_header_soundfile_reads(tmp_path, kind):
    path = tmp_path / f"{kind}.wav"
    if kind == "ulaw_wav":
        sf.write(path, _tone(0.5, 8000), 8000, subtype="ULAW", format="WAV")
    elif kind == "flac":
        sf.write(path, _tone(0.5, 22050), 22050, format="FLAC")
    elif kind == "float_stereo":
        sf.write(path, _tone(0.5, 48000, 2), 48000, subtype="FLOAT", format="WAV")
    else:
        sf.write(path, _tone(0.1, 96000), 96000, subtype="PCM_24", format="WAV")
    reason, header = metadata.inspect_clip(path)
    info = sf.info(str(path))
    assert reason is None
    assert (header.samplerate, header.channels, header.frames, header.format, header.subtype) == (
        info.samplerate, info.channels, info.frames, info.format, info.subtype)
    assert header.duration_s == pytest.approx(info.duration)
    assert metadata.inspect_clip(tmp_path / "absent.wav") == (metadata.MISSING, None)
