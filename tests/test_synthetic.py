"""Tests for the synthetic UrbanSound8K-shaped dataset generator."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.signal import welch

from audioclf import synthetic
from audioclf.errors import UserError
from audioclf.synthetic import (
    CLASS_NAMES, COLUMNS, MAX_CLIPS, METADATA_PATH, clip_duration, generate_dataset,
    select_rows, synthesize_clip,
)

NAME_RE = re.compile(r"^(\d+)-(\d)-(\d+)-(\d+)\.wav$")


def _clip_path(root: Path, row) -> Path:
    return root / "audio" / f"fold{row.fold}" / row.slice_file_name


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("synthetic") / "us8k"
    table = generate_dataset(root, num_clips=120, seed=0, workers=2, progress=False)
    return root, table


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return pd.read_csv(METADATA_PATH)


def test_layout_names_and_columns(dataset):
    root, table = dataset
    csv = pd.read_csv(root / "metadata" / "UrbanSound8K.csv")
    assert list(csv.columns) == COLUMNS
    assert list(table.columns) == COLUMNS
    pd.testing.assert_frame_equal(csv, table)
    assert len(table) == 120 and table["slice_file_name"].is_unique
    assert sorted(p.name for p in (root / "audio").iterdir()) == sorted(f"fold{i}" for i in range(1, 11))
    listed = {str(_clip_path(root, r).relative_to(root)) for r in table.itertuples()}
    on_disk = {str(p.relative_to(root)) for p in (root / "audio").rglob("*") if p.is_file()}
    assert listed == on_disk
    for r in table.itertuples():
        m = NAME_RE.match(r.slice_file_name)
        assert m, r.slice_file_name
        assert (int(m[1]), int(m[2])) == (r.fsID, r.classID)
    assert (table["class"] == table["classID"].map(dict(enumerate(CLASS_NAMES)))).all()
    assert set(table["fold"]) == set(range(1, 11)) and set(table["salience"]) == {1, 2}
    assert (root / synthetic.MARKER_NAME).is_file()


def test_rows_are_real_and_fsids_stay_in_one_fold(dataset, real):
    _, table = dataset
    merged = table.merge(real, on=COLUMNS, how="left", indicator=True)
    assert (merged["_merge"] == "both").all()  # every row is a genuine metadata row
    assert (table.groupby("fsID")["fold"].nunique() == 1).all()
    full = select_rows(MAX_CLIPS, seed=0)
    assert len(full) == MAX_CLIPS
    assert (full.groupby("fsID")["fold"].nunique() == 1).all()


def test_files_decode_with_expected_duration(dataset):
    root, table = dataset
    for r in table.itertuples():
        data, sr = sf.read(_clip_path(root, r), always_2d=True)
        expected = clip_duration(r.start, r.end)
        assert abs(len(data) - expected * sr) <= 1, (r.slice_file_name, len(data), sr, expected)
        assert np.isfinite(data).all() and 0 < np.abs(data).max() <= 1.0
    short = table[(table["end"] - table["start"]) < 3.9]
    assert len(short) > 0  # real durations, not all 4 s


def test_file_formats_are_heterogeneous(dataset):
    root, table = dataset
    infos = [sf.info(str(_clip_path(root, r))) for r in table.itertuples()]
    assert len({i.samplerate for i in infos}) >= 3
    assert {i.channels for i in infos} == {1, 2}
    assert len({i.subtype for i in infos}) >= 3
    assert {i.format for i in infos} == {"WAV"}
    assert sum(i.samplerate in (44100, 48000) for i in infos) > len(infos) / 2


def test_clip_bytes_depend_only_on_seed_and_row(dataset, tmp_path):
    # Re-rendering a row in this process reproduces the file written by the pool,
    # including float WAVs whose PEAK chunk would otherwise carry a timestamp.
    root, table = dataset
    rows = select_rows(120, seed=0)
    float_rows = [i for i, r in zip(rows.index, rows.itertuples())
                  if sf.info(str(_clip_path(root, r))).subtype == "FLOAT"]
    picks = list(rows.index[:3]) + float_rows[:2]
    assert float_rows, "expected at least one FLOAT file among 120 clips"
    for idx in picks:
        r = rows.loc[idx]
        out = tmp_path / r["slice_file_name"]
        synthetic._render((str(out), int(r["classID"]), clip_duration(r["start"], r["end"]),
                           int(r["salience"]), 0, int(idx), int(r["fsID"])))
        assert out.read_bytes() == _clip_path(root, r).read_bytes()


def test_workers_do_not_change_output_and_seed_does(tmp_path):
    one = generate_dataset(tmp_path / "w1", num_clips=10, seed=3, workers=1, progress=False)
    two = generate_dataset(tmp_path / "w2", num_clips=10, seed=3, workers=2, progress=False)
    pd.testing.assert_frame_equal(one, two)
    assert _tree_bytes(tmp_path / "w1") == _tree_bytes(tmp_path / "w2")
    other = generate_dataset(tmp_path / "s4", num_clips=10, seed=4, workers=1, progress=False)
    assert set(other["slice_file_name"]) != set(one["slice_file_name"])


def test_rerun_is_noop_and_foreign_roots_are_refused(dataset, tmp_path):
    root, table = dataset
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    again = generate_dataset(root, num_clips=120, seed=0, progress=False)
    pd.testing.assert_frame_equal(again, table)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before
    with pytest.raises(UserError, match="not empty"):
        generate_dataset(root, num_clips=120, seed=1, progress=False)
    with pytest.raises(UserError, match="not empty"):
        generate_dataset(root, num_clips=100, seed=0, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        generate_dataset(foreign, num_clips=10, seed=0, progress=False)


def test_select_rows_mirrors_real_distribution(real):
    rows = select_rows(1000, seed=0)
    assert len(rows) == 1000 and rows.index.is_unique
    real_share = real["fold"].value_counts(normalize=True).sort_index()
    share = rows["fold"].value_counts(normalize=True).sort_index()
    assert np.abs(share - real_share).max() < 0.01
    real_cls = real["classID"].value_counts(normalize=True).sort_index()
    cls = rows["classID"].value_counts(normalize=True).sort_index()
    assert np.abs(cls - real_cls).max() < 0.015
    assert rows.groupby(["fold", "classID"]).size().min() >= 1
    assert len(rows.groupby(["fold", "classID"])) == 100
    hundred = select_rows(100, seed=5)
    assert (hundred.groupby(["fold", "classID"]).size() == 1).all()
    assert len(select_rows(37, seed=1)) == 37


def test_select_rows_is_deterministic_in_seed():
    pd.testing.assert_frame_equal(select_rows(200, seed=7), select_rows(200, seed=7))
    assert not select_rows(200, seed=7).index.equals(select_rows(200, seed=8).index)


@pytest.mark.parametrize("bad", [-1, 0, 9, MAX_CLIPS + 1, 8733])
def test_bad_num_clips_raises(bad, tmp_path):
    with pytest.raises(UserError, match=f"between 10 and {MAX_CLIPS}"):
        select_rows(bad, seed=0)
    with pytest.raises(UserError):
        generate_dataset(tmp_path / "x", num_clips=bad, progress=False)
    assert not (tmp_path / "x").exists()


def test_max_clips_matches_pool():
    assert MAX_CLIPS == len(synthetic._pool())


@pytest.mark.parametrize("class_id", range(len(CLASS_NAMES)))
def test_synthesize_clip_contract(class_id):
    sr = 8000
    x = synthesize_clip(class_id, 0.77, sr, 2, 1, np.random.default_rng(class_id))
    assert x.dtype == np.float32 and x.shape == (round(0.77 * sr), 2)
    assert 0 < np.abs(x).max() <= 0.99
    assert not np.allclose(x[:, 0], x[:, 1])  # stereo channels differ
    power = np.abs(np.fft.rfft(x.astype(np.float64), axis=0)) ** 2
    above = np.fft.rfftfreq(len(x), 1 / sr) > 0.45 * sr
    assert power[above].sum() < 1e-6 * power.sum()  # nothing above 0.45 * sample rate
    again = synthesize_clip(class_id, 0.77, sr, 2, 1, np.random.default_rng(class_id))
    assert np.array_equal(x, again)
    mono = synthesize_clip(class_id, 0.05, 96000, 1, 2, np.random.default_rng(1))
    assert mono.shape == (4800, 1)


def test_classes_are_distinguishable():
    # Nearest class centroid on a coarse log spectrum should beat chance (10 %) clearly,
    # while the task stays far from trivial for such a crude classifier.
    sr, edges = 16000, np.geomspace(100, 7200, 21)

    def features(x: np.ndarray) -> np.ndarray:
        f, p = welch(x[:, 0], sr, nperseg=1024)
        bands = np.log10([p[(f >= lo) & (f < hi)].mean() + 1e-12 for lo, hi in zip(edges[:-1], edges[1:])])
        return bands - bands.mean()  # loudness-invariant

    X, y = [], []
    for c in range(len(CLASS_NAMES)):
        for i in range(20):
            X.append(features(synthesize_clip(c, 1.0, sr, 1, 1, np.random.default_rng([99, c, i]))))
            y.append(c)
    X, y = np.array(X), np.array(y)
    train = np.tile(np.arange(20) < 10, len(CLASS_NAMES))
    centroids = np.stack([X[train & (y == c)].mean(axis=0) for c in range(len(CLASS_NAMES))])
    pred = np.argmin(((X[~train][:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == y[~train]).mean() > 0.3
