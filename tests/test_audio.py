"""audioclf.audio: decoding real files written with soundfile, mono mixing, resampling, length fitting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioclf.audio import AudioDecodeError, fit_length, load_audio, load_for_features, resample, to_mono

CLIP_SECONDS = 0.05

# Largest error expected after a float -> integer -> float round trip (a couple of quantization steps).
QUANT_TOL = {"PCM_16": 2 / 2**15, "PCM_24": 2 / 2**23, "PCM_U8": 2 / 2**7, "FLOAT": 1e-7}


# --- helpers -------------------------------------------------------------------------------------

def tone(rate: int, seconds: float, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """(frames, channels) float32: a different frequency and amplitude per channel, all within +-0.9."""
    t = np.arange(round(rate * seconds)) / rate
    cols = [(0.9 - 0.1 * c) * np.sin(2 * np.pi * freq * (c + 1) * t + c) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def write(path: Path, data: np.ndarray, rate: int, subtype: str = "PCM_16", fmt: str = "WAV") -> Path:
    sf.write(str(path), data, rate, subtype=subtype, format=fmt)
    return path


def dominant_frequency(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[np.argmax(spectrum)])


def valid_wav_bytes(tmp_path: Path) -> bytes:
    return write(tmp_path / "valid.wav", tone(8000, 0.1), 8000).read_bytes()


# --- load_audio on good files --------------------------------------------------------------------

@pytest.mark.parametrize("rate", [8000, 44100, 96000])
@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_U8", "FLOAT"])
def test_load_audio_shape_rate_dtype_and_values(tmp_path, subtype, channels, rate):
    written = tone(rate, CLIP_SECONDS, channels)
    path = write(tmp_path / f"clip_{subtype}_{channels}ch_{rate}.wav", written, rate, subtype)

    audio, got_rate = load_audio(path)

    assert got_rate == rate
    assert audio.dtype == np.float32
    assert audio.shape == (channels, round(rate * CLIP_SECONDS))
    assert audio.flags["C_CONTIGUOUS"]
    # Channel c of the result is channel c of the file (each channel has its own tone).
    np.testing.assert_allclose(audio, written.T, rtol=0, atol=QUANT_TOL[subtype])


def test_load_audio_accepts_str_path(tmp_path):
    path = write(tmp_path / "a.wav", tone(8000, CLIP_SECONDS), 8000)
    audio, rate = load_audio(str(path))
    assert (audio.shape, rate) == ((1, 400), 8000)


@pytest.mark.parametrize("subtype", ["ULAW", "ALAW", "IMA_ADPCM", "MS_ADPCM"])
def test_load_audio_decodes_compressed_wav_encodings(tmp_path, subtype):
    written = tone(8000, 0.25, channels=1)
    path = write(tmp_path / f"{subtype}.wav", written, 8000, subtype)

    audio, rate = load_audio(path)

    assert rate == 8000 and audio.dtype == np.float32 and audio.shape[0] == 1
    # ADPCM pads to whole blocks; compare the overlapping part, loosely (lossy codecs).
    n = min(audio.shape[1], written.shape[0])
    assert n >= written.shape[0] * 0.9
    assert np.corrcoef(audio[0, :n], written[:n, 0])[0, 1] > 0.95


def test_flac_content_under_a_wav_name_decodes_by_content(tmp_path):
    written = tone(44100, CLIP_SECONDS, channels=2)
    path = write(tmp_path / "actually_flac.wav", written, 44100, "PCM_16", fmt="FLAC")
    assert path.read_bytes()[:4] == b"fLaC"

    audio, rate = load_audio(path)

    assert rate == 44100
    assert audio.shape == (2, written.shape[0])
    np.testing.assert_allclose(audio, written.T, rtol=0, atol=QUANT_TOL["PCM_16"])


def test_wav_cut_inside_its_data_decodes_the_frames_present(tmp_path):
    written = tone(8000, 0.1)  # 800 frames of PCM_16 after a 44-byte header
    whole = write(tmp_path / "whole.wav", written, 8000).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[:44 + 2 * 300])

    audio, rate = load_audio(cut)

    assert rate == 8000 and audio.shape == (1, 300)
    np.testing.assert_allclose(audio[0], written[:300, 0], rtol=0, atol=QUANT_TOL["PCM_16"])


# --- load_audio on bad files ---------------------------------------------------------------------

def _empty(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    return path


def _text(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    return path


def _header_only(tmp_path):
    path = tmp_path / "header_only.wav"
    path.write_bytes(valid_wav_bytes(tmp_path)[:44])
    return path


def _cut_in_fmt_chunk(tmp_path):
    path = tmp_path / "cut_in_header.wav"
    path.write_bytes(valid_wav_bytes(tmp_path)[:20])
    return path


def _cut_before_data_chunk(tmp_path):
    path = tmp_path / "cut_before_data.wav"
    path.write_bytes(valid_wav_bytes(tmp_path)[:30])
    return path


def _zero_frames(tmp_path):
    return write(tmp_path / "zero_frames.wav", np.zeros((0, 1), np.float32), 8000)


def _float_with_nan(tmp_path):
    data = tone(8000, CLIP_SECONDS)
    data[17, 0] = np.nan
    return write(tmp_path / "nan.wav", data, 8000, "FLOAT")


def _float_with_inf(tmp_path):
    data = tone(8000, CLIP_SECONDS, channels=2)
    data[3, 1] = -np.inf
    return write(tmp_path / "inf.wav", data, 8000, "FLOAT")


def _missing(tmp_path):
    return tmp_path / "does_not_exist.wav"


BAD_FILES = {
    "empty file": (_empty, "cannot decode"),
    "text named .wav": (_text, "cannot decode"),
    "header only": (_header_only, "zero frames"),
    "cut in the fmt chunk": (_cut_in_fmt_chunk, "cannot decode"),
    "cut before the data chunk": (_cut_before_data_chunk, "cannot decode"),
    "zero frames": (_zero_frames, "zero frames"),
    "float with NaN": (_float_with_nan, "NaN"),
    "float with Inf": (_float_with_inf, "Inf"),
    "missing file": (_missing, "cannot decode"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_raise_audio_decode_error_naming_the_file(tmp_path, case):
    make, reason_part = BAD_FILES[case]
    path = make(tmp_path)

    with pytest.raises(AudioDecodeError) as info:
        load_audio(path)

    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert reason_part in info.value.reason


@pytest.mark.parametrize("case", ["text named .wav", "zero frames", "float with NaN"])
def test_load_for_features_propagates_audio_decode_error(tmp_path, case):
    path = BAD_FILES[case][0](tmp_path)
    with pytest.raises(AudioDecodeError) as info:
        load_for_features(path, 22050, 1000, pad="zero")
    assert info.value.path == str(path)


# --- to_mono -------------------------------------------------------------------------------------

def test_to_mono_averages_channels():
    audio = np.array([[1.0, 2.0, -4.0], [3.0, 6.0, 0.0]], dtype=np.float32)
    mono = to_mono(audio)
    assert mono.shape == (3,)
    assert mono.dtype == np.float32
    np.testing.assert_array_equal(mono, [2.0, 4.0, -2.0])


def test_to_mono_of_six_channels_is_their_mean():
    audio = np.arange(6 * 5, dtype=np.float32).reshape(6, 5)
    np.testing.assert_allclose(to_mono(audio), audio.mean(axis=0))


def test_to_mono_of_mono_is_the_single_channel():
    audio = np.array([[0.5, -0.25, 0.0]], dtype=np.float32)
    mono = to_mono(audio)
    assert mono.shape == (3,)
    np.testing.assert_array_equal(mono, audio[0])


def test_to_mono_of_a_decoded_stereo_file(tmp_path):
    written = tone(44100, CLIP_SECONDS, channels=2)
    audio, _ = load_audio(write(tmp_path / "stereo.wav", written, 44100, "FLOAT"))
    np.testing.assert_allclose(to_mono(audio), written.mean(axis=1), atol=1e-6)


# --- resample ------------------------------------------------------------------------------------

@pytest.mark.parametrize("orig,new", [(8000, 22050), (44100, 22050), (96000, 22050), (22050, 16000), (48000, 44100)])
@pytest.mark.parametrize("seconds", [CLIP_SECONDS, 0.0371])
def test_resample_length(orig, new, seconds):
    n = round(orig * seconds)
    signal = np.random.default_rng(0).standard_normal(n).astype(np.float32)

    out = resample(signal, orig, new)

    assert out.ndim == 1
    assert out.dtype == np.float32
    assert abs(len(out) - round(n * new / orig)) <= 1


def test_resample_same_rate_is_a_no_op():
    signal = np.random.default_rng(1).standard_normal(123).astype(np.float32)
    np.testing.assert_array_equal(resample(signal, 22050, 22050), signal)


@pytest.mark.parametrize("orig", [8000, 44100, 96000])
def test_resample_preserves_a_440_hz_tone(orig):
    new = 22050
    signal = tone(orig, 0.25)[:, 0]

    out = resample(signal, orig, new)

    assert abs(dominant_frequency(out, new) - 440.0) <= 2 * new / len(out)  # within two FFT bins
    # Amplitude is kept as well (0.9 peak; ignore the filter's edge transients).
    middle = out[len(out) // 4: 3 * len(out) // 4]
    assert 0.8 < np.abs(middle).max() < 1.0


def test_resample_of_a_strided_view_matches_a_contiguous_copy():
    stereo = tone(44100, CLIP_SECONDS, channels=2)  # (frames, 2): a column is a strided view
    column = stereo[:, 0]
    assert not column.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(resample(column, 44100, 22050), resample(column.copy(), 44100, 22050))


# --- fit_length ----------------------------------------------------------------------------------

def test_fit_length_pads_with_zeros_at_the_end():
    signal = np.array([1.0, -2.0, 3.0], dtype=np.float32)
    out = fit_length(signal, 6)
    np.testing.assert_array_equal(out, [1.0, -2.0, 3.0, 0.0, 0.0, 0.0])
    assert out.dtype == np.float32


def test_fit_length_trims_the_end():
    signal = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(signal, 4), [0.0, 1.0, 2.0, 3.0])


def test_fit_length_loop_repeats_the_signal_from_its_start():
    signal = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    out = fit_length(signal, 8, pad="loop")
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(fit_length(signal, 2, pad="loop"), [1.0, 2.0])  # trimming is the same
    np.testing.assert_array_equal(fit_length(signal, 3, pad="loop"), signal)


def test_fit_length_rejects_an_unknown_pad_mode():
    with pytest.raises(ValueError, match="mirror"):
        fit_length(np.zeros(3, np.float32), 5, pad="mirror")


def test_load_for_features_loop_fills_a_short_clip_with_itself(tmp_path):
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(700)).astype(np.float32)
    path = tmp_path / "short.wav"
    sf.write(path, clip, 22050, subtype="FLOAT")
    wave = load_for_features(path, 22050, 2000, pad="loop")
    np.testing.assert_allclose(wave[:700], clip, atol=1e-7)
    np.testing.assert_allclose(wave[700:1400], clip, atol=1e-7)
    np.testing.assert_allclose(wave[1400:], clip[:600], atol=1e-7)


def test_fit_length_exact_length_is_unchanged():
    signal = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(signal, 5), signal)


# --- load_for_features ---------------------------------------------------------------------------

@pytest.mark.parametrize("rate,channels,subtype", [(8000, 1, "PCM_16"), (44100, 2, "PCM_24"),
                                                    (96000, 6, "FLOAT"), (22050, 1, "PCM_U8")])
@pytest.mark.parametrize("num_samples", [500, 1103, 4000])
def test_load_for_features_length_and_dtype(tmp_path, rate, channels, subtype, num_samples):
    path = write(tmp_path / "clip.wav", tone(rate, CLIP_SECONDS, channels), rate, subtype)

    wave = load_for_features(path, 22050, num_samples, pad="zero")

    assert wave.shape == (num_samples,)
    assert wave.dtype == np.float32


def test_load_for_features_mixes_and_pads_without_resampling(tmp_path):
    written = tone(22050, CLIP_SECONDS, channels=2)  # 1102 frames, already at the target rate
    path = write(tmp_path / "stereo.wav", written, 22050, "FLOAT")

    wave = load_for_features(path, 22050, 2000, pad="zero")

    np.testing.assert_allclose(wave[:1102], written.mean(axis=1), atol=1e-6)
    np.testing.assert_array_equal(wave[1102:], np.zeros(2000 - 1102, np.float32))


def test_load_for_features_trims_long_clips(tmp_path):
    written = tone(22050, 0.2)  # 4410 frames
    path = write(tmp_path / "long.wav", written, 22050, "FLOAT")

    wave = load_for_features(path, 22050, 1000, pad="zero")

    np.testing.assert_allclose(wave, written[:1000, 0], atol=1e-7)


def test_load_for_features_resamples_before_fitting(tmp_path):
    # 0.05 s at 44.1 kHz -> ~1102 samples at 22.05 kHz, then zero padding up to 3000.
    path = write(tmp_path / "clip.wav", tone(44100, CLIP_SECONDS), 44100, "FLOAT")
    wave = load_for_features(path, 22050, 3000, pad="zero")
    assert np.abs(wave[:1000]).max() > 0.5
    np.testing.assert_array_equal(wave[1110:], 0.0)
