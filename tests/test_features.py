"""audioclf.features: FeatureConfig validation/serialization/fingerprint and the per-clip LogMel transform."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re

import pytest
import torch
import torchaudio

from audioclf.errors import UserError
from audioclf.features import FeatureConfig, LogMel

# A small config keeps the transforms fast: 0.5 s at 8 kHz -> 4000 samples, 32 mels x 32 frames.
SMALL = FeatureConfig(sample_rate=8000, n_fft=256, hop_length=128, n_mels=32, duration_s=0.5)


# --- helpers -------------------------------------------------------------------------------------

def bad_fields(exc: ValueError) -> set[str]:
    """The field names listed in 'invalid feature config values for a, b: FeatureConfig(...)'."""
    match = re.search(r"invalid feature config values for (.*?): FeatureConfig\(", str(exc))
    assert match, f"unexpected message: {exc}"
    return {name.strip() for name in match.group(1).split(",")}


def tone_then_silence(config: FeatureConfig, amplitude: float) -> torch.Tensor:
    """A 440 Hz tone for the first half, exact silence after: a dynamic range far above 80 dB."""
    n = config.num_samples
    t = torch.arange(n, dtype=torch.float32) / config.sample_rate
    wave = amplitude * torch.sin(2 * math.pi * 440.0 * t)
    wave[n // 2:] = 0.0
    return wave


def loud_and_quiet_batch(config: FeatureConfig) -> torch.Tensor:
    return torch.stack([tone_then_silence(config, 1.0), tone_then_silence(config, 1e-2)])


# --- FeatureConfig -------------------------------------------------------------------------------

def test_defaults():
    cfg = FeatureConfig()
    assert (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels) == (22050, 1024, 512, 64)
    assert (cfg.f_min, cfg.f_max, cfg.duration_s, cfg.top_db) == (0.0, None, 4.0, 80.0)
    assert cfg.num_samples == 88200
    assert cfg.num_frames == 173


def test_config_is_frozen():
    cfg = FeatureConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_mels = 128


@pytest.mark.parametrize("config", [
    FeatureConfig(),
    SMALL,
    FeatureConfig(sample_rate=16000, n_fft=400, hop_length=160, n_mels=40, duration_s=1.0),
    FeatureConfig(sample_rate=8000, n_fft=256, hop_length=100, n_mels=24, duration_s=0.37),  # hop does not divide
    FeatureConfig(sample_rate=44100, n_fft=2048, hop_length=441, n_mels=128, duration_s=0.5, f_max=8000.0),
    FeatureConfig(sample_rate=11025, n_fft=512, hop_length=256, n_mels=96, duration_s=0.3, top_db=None),
], ids=["default", "small", "16k", "odd-hop", "44k-fmax", "11k-no-floor"])
def test_num_samples_and_num_frames_match_the_logmel_output(config):
    waves = torch.randn(2, config.num_samples, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = LogMel(config)(waves)
    assert config.num_samples == round(config.sample_rate * config.duration_s)
    assert out.shape == (2, config.n_mels, config.num_frames)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("field,overrides", [
    ("sample_rate", {"sample_rate": 0}),
    ("sample_rate", {"sample_rate": -8000}),
    ("n_fft", {"n_fft": 0, "n_mels": 1}),
    ("hop_length", {"hop_length": 0}),
    ("hop_length", {"hop_length": -1}),
    ("n_mels", {"n_mels": 0}),
    ("n_mels", {"n_fft": 64, "n_mels": 34}),  # more mels than the 33 frequency bins
    ("duration_s", {"duration_s": 0.0}),
    ("duration_s", {"duration_s": -1.0}),
    ("f_max", {"f_max": 11025.5}),  # above Nyquist of 22050
    ("f_max", {"f_min": 500.0, "f_max": 500.0}),
    ("f_max", {"f_min": 500.0, "f_max": 100.0}),
    ("top_db", {"top_db": 0.0}),
    ("top_db", {"top_db": -10.0}),
])
def test_invalid_values_raise_a_user_error_naming_the_field(field, overrides):
    with pytest.raises(UserError) as info:
        FeatureConfig(**overrides)
    assert bad_fields(info.value) == {field}


def test_every_invalid_field_is_named():
    with pytest.raises(UserError) as info:
        FeatureConfig(sample_rate=0, hop_length=0, top_db=-1.0)
    assert {"sample_rate", "hop_length", "top_db"} <= bad_fields(info.value)


@pytest.mark.parametrize("overrides", [
    {"n_fft": 64, "n_mels": 33},  # exactly n_fft // 2 + 1
    {"f_max": 11025.0},  # exactly Nyquist
    {"top_db": None},
    {"f_min": 20.0, "f_max": 20.5},
])
def test_boundary_values_are_accepted(overrides):
    cfg = FeatureConfig(**overrides)
    for key, value in overrides.items():
        assert getattr(cfg, key) == value


@pytest.mark.parametrize("f_min", [-100.0, 11025.0, 20000.0])
def test_invalid_f_min_is_rejected(f_min):
    with pytest.raises(UserError) as info:
        FeatureConfig(f_min=f_min)  # sample_rate 22050, f_max None -> Nyquist 11025
    assert "f_min" in bad_fields(info.value)


@pytest.mark.parametrize("duration_s", [1e-6, 0.01])
def test_an_accepted_config_can_always_be_computed(duration_s):
    try:
        cfg = FeatureConfig(duration_s=duration_s)  # 0 and 220 samples with n_fft 1024
    except UserError:
        return
    out = LogMel(cfg)(torch.zeros(1, cfg.num_samples))
    assert out.shape == (1, cfg.n_mels, cfg.num_frames)


def test_to_dict_lists_every_field():
    data = FeatureConfig().to_dict()
    assert set(data) == {f.name for f in dataclasses.fields(FeatureConfig)}
    assert data["n_mels"] == 64 and data["f_max"] is None


@pytest.mark.parametrize("config", [FeatureConfig(), SMALL,
                                    FeatureConfig(f_min=20.0, f_max=8000.0, top_db=None, duration_s=2.5)])
def test_to_dict_from_dict_round_trip_including_json(config):
    assert FeatureConfig.from_dict(config.to_dict()) == config
    through_json = FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert through_json == config
    assert through_json.fingerprint() == config.fingerprint()


def test_from_dict_uses_defaults_for_absent_keys_but_zero_padding_for_configs_from_before_pad():
    cfg = FeatureConfig.from_dict({"n_mels": 32})
    assert cfg == dataclasses.replace(FeatureConfig(), n_mels=32, pad="zero")
    assert FeatureConfig.from_dict({"n_mels": 32, "pad": "loop"}) == dataclasses.replace(FeatureConfig(), n_mels=32)


def test_from_dict_rejects_unknown_keys():
    data = {**FeatureConfig().to_dict(), "n_mfcc": 13}
    with pytest.raises(UserError, match="n_mfcc"):
        FeatureConfig.from_dict(data)


def test_from_dict_validates_values():
    with pytest.raises(UserError) as info:
        FeatureConfig.from_dict({**FeatureConfig().to_dict(), "hop_length": 0})
    assert bad_fields(info.value) == {"hop_length"}


def test_fingerprint_is_stable():
    a, b = FeatureConfig(), FeatureConfig()
    assert a.fingerprint() == b.fingerprint() == a.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{12}", a.fingerprint())


# A different valid value for every field.
CHANGES = {"sample_rate": 16000, "n_fft": 2048, "hop_length": 256, "n_mels": 128, "f_min": 20.0,
           "f_max": 8000.0, "duration_s": 5.0, "top_db": None, "pad": "zero"}


def test_changes_cover_every_field():
    assert set(CHANGES) == {f.name for f in dataclasses.fields(FeatureConfig)}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_fingerprint_changes_when_a_field_changes(field):
    base = FeatureConfig()
    changed = dataclasses.replace(base, **{field: CHANGES[field]})
    assert changed.fingerprint() != base.fingerprint()


def test_fingerprint_of_a_zero_padded_config_is_the_one_it_had_before_the_pad_field():
    # Feature folders and results keyed by the fingerprint of a config from before "pad" stay valid: the hash of
    # {"v": 1, the eight older fields} as it was computed then.
    zero = FeatureConfig(pad="zero")
    older = {k: v for k, v in zero.to_dict().items() if k != "pad"}
    payload = json.dumps({"v": 1, **older}, sort_keys=True)
    assert zero.fingerprint() == hashlib.sha256(payload.encode()).hexdigest()[:12]
    assert FeatureConfig(pad="loop").fingerprint() != zero.fingerprint()


def test_pad_must_be_a_known_mode():
    with pytest.raises(UserError) as info:
        FeatureConfig(pad="mirror")
    assert bad_fields(info.value) == {"pad"}


def test_fingerprints_of_single_field_changes_are_all_distinct():
    base = FeatureConfig()
    prints = {base.fingerprint()} | {dataclasses.replace(base, **{k: v}).fingerprint() for k, v in CHANGES.items()}
    assert len(prints) == len(CHANGES) + 1


# --- LogMel --------------------------------------------------------------------------------------

def test_logmel_output_shape_for_a_batch():
    out = LogMel(SMALL)(torch.randn(3, SMALL.num_samples, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (3, SMALL.n_mels, SMALL.num_frames) == (3, 32, 32)


def test_logmel_floors_each_clip_at_its_own_max_minus_top_db():
    logmel = LogMel(SMALL)
    batch = loud_and_quiet_batch(SMALL)

    out = logmel(batch)

    peaks = out.amax(dim=(1, 2))
    assert peaks[0] - peaks[1] > 35  # 1e-2 amplitude: 40 dB quieter
    for i in range(2):
        floor = peaks[i] - 80.0
        assert out[i].min() >= floor - 1e-4
        # The silent half reaches the floor: the floor really is applied, per clip.
        assert torch.isclose(out[i].min(), floor, atol=1e-4)


def test_logmel_equals_amplitude_to_db_applied_to_each_clip_alone():
    logmel = LogMel(SMALL)
    batch = loud_and_quiet_batch(SMALL)
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80)

    out = logmel(batch)

    for i in range(len(batch)):
        expected = to_db(logmel.mel(batch[i:i + 1]))
        torch.testing.assert_close(out[i:i + 1], expected, atol=1e-4, rtol=0)
    # torchaudio's transform on the packed batch would floor the quiet clip at the loud clip's level instead.
    packed = to_db(logmel.mel(batch))
    assert (packed[1] - out[1]).abs().max() > 1.0


def test_logmel_batch_equals_per_clip_results():
    logmel = LogMel(SMALL)
    gen = torch.Generator().manual_seed(3)
    batch = torch.cat([loud_and_quiet_batch(SMALL), 1e-2 * torch.randn(2, SMALL.num_samples, generator=gen)])

    together = logmel(batch)
    alone = torch.cat([logmel(batch[i:i + 1]) for i in range(len(batch))])
    reversed_batch = logmel(batch.flip(0)).flip(0)

    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(together, reversed_batch, atol=1e-5, rtol=0)


def test_logmel_without_top_db_has_no_floor():
    cfg = dataclasses.replace(SMALL, top_db=None)
    logmel = LogMel(cfg)
    batch = loud_and_quiet_batch(cfg)

    out = logmel(batch)

    # Silence reaches the -100 dB clamp (power 1e-10), well below max - 80 dB for both clips.
    for i in range(2):
        assert out[i].amax() - out[i].amin() > 80.0
        assert torch.isclose(out[i].amin(), torch.tensor(-100.0), atol=1e-3)
    expected = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)(logmel.mel(batch))
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_logmel_is_power_in_decibels():
    logmel = LogMel(SMALL)
    wave = tone_then_silence(SMALL, 1.0)[None]
    out = logmel(wave)
    power = logmel.mel(wave)
    louder = logmel(2.0 * wave)  # twice the amplitude: +6.02 dB everywhere above the floor
    above = out > out.amax() - 60
    torch.testing.assert_close(out[above], 10 * torch.log10(power[above]), atol=1e-4, rtol=0)
    torch.testing.assert_close((louder - out)[above], torch.full_like(out[above], 20 * math.log10(2)),
                               atol=1e-3, rtol=0)
