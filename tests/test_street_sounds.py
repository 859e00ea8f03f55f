"""The street sounds of no class that the built-in data mixes into its backgrounds."""

import numpy as np
import pytest

from audioclf import street_sounds, synthetic
from audioclf.sound_generators import NYQ, active_rms


@pytest.mark.parametrize("kind", range(len(street_sounds.SOUNDS)))
@pytest.mark.parametrize("sr,seconds", [(8000, 4.0), (22050, 1.3), (96000, 0.05)])
def test_every_sound_is_finite_unit_level_and_seeded(kind, sr, seconds):
    n = round(sr * seconds)
    x = street_sounds.render(kind, n, sr, np.random.default_rng([kind, sr]))
    assert x.shape == (n,) and np.isfinite(x).all()
    assert np.array_equal(x, street_sounds.render(kind, n, sr, np.random.default_rng([kind, sr])))
    if np.any(x):  # a sound may start after a very short clip ends: then it stays silent
        assert active_rms(x, sr) == pytest.approx(1.0, rel=1e-6)
        assert not np.array_equal(x, street_sounds.render(kind, n, sr, np.random.default_rng([kind, sr, 1])))
    else:
        assert seconds < 1


@pytest.mark.parametrize("kind", range(len(street_sounds.SOUNDS)))
def test_tones_stay_below_the_band_limit(kind):
    # At 8 kHz (the lowest rate of a recording) most of the energy lies below NYQ * sr; what an envelope
    # splatters above it is small and the recording chain removes it.
    sr = 8000
    x = street_sounds.render(kind, 4 * sr, sr, np.random.default_rng(kind))
    power = np.abs(np.fft.rfft(x)) ** 2
    above = np.fft.rfftfreq(x.size, 1 / sr) > NYQ * sr
    assert power[above].sum() < 0.2 * power.sum()


def test_ambient_kinds_are_sounds_that_last():
    assert set(street_sounds.AMBIENT) <= set(range(len(street_sounds.SOUNDS)))
    names = {street_sounds.SOUNDS[k].__name__ for k in street_sounds.AMBIENT}
    assert names == {"speech", "birds", "wind", "rain", "traffic"}


def test_recordings_carry_street_ambience():
    scenes = [synthetic.scene_of(0, fsid, 3) for fsid in range(200)]
    counts = [len(s["ambient"]) for s in scenes]
    assert set(counts) == {0, 1, 2}  # some recordings have none, some one, some two
    assert all(k in street_sounds.AMBIENT for s in scenes for k, _ in s["ambient"])
    x, rec = synthetic.field_clip(3, 1.0, 1, 0, 7, np.random.default_rng(7))
    assert np.isfinite(x).all() and 0 < np.abs(x).max() <= 0.99
    assert np.array_equal(x, synthetic.field_clip(3, 1.0, 1, 0, 7, np.random.default_rng(7))[0])
