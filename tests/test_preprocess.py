"""extract_features: the same output serial or parallel, interrupted or not, on CPU or GPU; resumable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import audioclf.preprocess as preprocess
from audioclf.features import FeatureConfig, LogMel
from audioclf.audio import load_for_features
from audioclf.synthetic import generate_dataset

CONFIG = FeatureConfig(n_mels=32, duration_s=1.5)


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    generate_dataset(root, num_clips=24, seed=5, workers=1, progress=False)
    return root


def _clips(root: Path, out: Path) -> list[tuple[str, Path, Path]]:
    wavs = sorted(root.rglob("*.wav"))
    return [(w.name, w, out / w.relative_to(root).with_suffix(".npy")) for w in wavs]


def _read_all(clips) -> list[np.ndarray]:
    return [np.load(c[2]) for c in clips]


def test_serial_and_parallel_give_identical_files(clips_dir, tmp_path):
    serial = _clips(clips_dir, tmp_path / "serial")
    parallel = _clips(clips_dir, tmp_path / "parallel")
    preprocess.extract_features(serial, CONFIG, torch.device("cpu"), batch_size=5, workers=1, progress=False)
    preprocess.extract_features(parallel, CONFIG, torch.device("cpu"), batch_size=16, workers=4, progress=False)
    for a, b in zip(_read_all(serial), _read_all(parallel)):
        assert a.dtype == np.float16 and a.shape == (CONFIG.n_mels, CONFIG.num_frames)
        np.testing.assert_array_equal(a, b)


def test_batched_output_matches_one_clip_at_a_time(clips_dir, tmp_path):
    clips = _clips(clips_dir, tmp_path / "batched")
    preprocess.extract_features(clips, CONFIG, torch.device("cpu"), batch_size=8, workers=2, progress=False)
    transform = LogMel(CONFIG)
    for name, wav, npy in clips[:6]:
        wave = torch.from_numpy(load_for_features(wav, CONFIG.sample_rate, CONFIG.num_samples, CONFIG.pad))[None]
        alone = transform(wave)[0].to(torch.float16).numpy()
        np.testing.assert_allclose(np.load(npy).astype(np.float32), alone.astype(np.float32), atol=0.07, rtol=0)


def test_an_interrupted_run_resumes_with_only_the_rest(clips_dir, tmp_path, monkeypatch):
    reference = _clips(clips_dir, tmp_path / "reference")
    preprocess.extract_features(reference, CONFIG, torch.device("cpu"), batch_size=4, workers=2, progress=False)

    clips = _clips(clips_dir, tmp_path / "interrupted")
    real_save, saved = preprocess._save_npy, []

    def dying_save(path, array):
        if len(saved) == 10:
            raise KeyboardInterrupt  # the user pressed Ctrl-C in the middle of a chunk
        real_save(path, array)
        saved.append(path)

    monkeypatch.setattr(preprocess, "_save_npy", dying_save)
    with pytest.raises(KeyboardInterrupt):
        preprocess.extract_features(clips, CONFIG, torch.device("cpu"), batch_size=4, workers=2, progress=False)
    monkeypatch.setattr(preprocess, "_save_npy", real_save)
    assert sum(c[2].is_file() for c in clips) == 10
    assert not list((tmp_path / "interrupted").rglob("*.tmp")), "no half-written file may remain"

    report = preprocess.extract_features(clips, CONFIG, torch.device("cpu"), batch_size=4, workers=2, progress=False)
    assert (report.reused, report.computed) == (10, len(clips) - 10)
    for a, b in zip(_read_all(reference), _read_all(clips)):
        np.testing.assert_array_equal(a, b)

    again = preprocess.extract_features(clips, CONFIG, torch.device("cpu"), workers=2, progress=False)
    assert (again.reused, again.computed) == (len(clips), 0)


def test_a_partial_file_from_a_crash_is_not_taken_for_a_result(clips_dir, tmp_path):
    clips = _clips(clips_dir, tmp_path / "crash")[:3]
    leftover = clips[0][2].with_name(clips[0][2].name + ".tmp")
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"\x93NUMPY half")  # a write that died before its rename
    report = preprocess.extract_features(clips, CONFIG, torch.device("cpu"), workers=1, progress=False)
    assert report.computed == 3
    assert np.load(clips[0][2]).shape == (CONFIG.n_mels, CONFIG.num_frames)


def test_undecodable_clips_are_skipped_and_reported(clips_dir, tmp_path):
    clips = _clips(clips_dir, tmp_path / "bad")[:4]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")  # a header cut short
    clips.append(("broken.wav", broken, tmp_path / "bad" / "broken.npy"))
    seen = []
    report = preprocess.extract_features(clips, CONFIG, torch.device("cpu"), workers=2, progress=False,
                                         on_skip=lambda name, reason: seen.append(name))
    assert report.computed == 4 and [s[0] for s in report.skipped] == ["broken.wav"] == seen
    assert not (tmp_path / "bad" / "broken.npy").exists()


def test_reading_only_the_needed_frames_matches_a_full_decode(clips_dir):
    """load_for_features decodes only duration + 100 ms; the waveform equals the full-decode path."""
    from audioclf.audio import fit_length, load_audio, resample, to_mono

    for wav in sorted(clips_dir.rglob("*.wav"))[:12]:
        audio, rate = load_audio(wav)
        full = fit_length(resample(to_mono(audio), rate, CONFIG.sample_rate), CONFIG.num_samples, CONFIG.pad)
        fast = load_for_features(wav, CONFIG.sample_rate, CONFIG.num_samples, CONFIG.pad)
        np.testing.assert_allclose(fast, full, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_output_matches_cpu_to_float16_rounding(clips_dir, tmp_path):
    cpu = _clips(clips_dir, tmp_path / "cpu")
    gpu = _clips(clips_dir, tmp_path / "gpu")
    preprocess.extract_features(cpu, CONFIG, torch.device("cpu"), workers=2, progress=False)
    preprocess.extract_features(gpu, CONFIG, torch.device("cuda"), workers=2, progress=False)
    for a, b in zip(_read_all(cpu), _read_all(gpu)):
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=0.07, rtol=0)
