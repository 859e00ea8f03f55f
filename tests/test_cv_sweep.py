"""benchmarks/cv_sweep.py on a small generated set: packs, configs on packs, folds x seeds in parallel, resume."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import cv_sweep  # noqa: E402

from audioclf.errors import UserError  # noqa: E402
from audioclf.synthetic import generate_dataset  # noqa: E402


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    """The same 60 generated clips with short clips zero-padded and looped, and with about half the clips short."""
    work = tmp_path_factory.mktemp("work")
    out = {}
    for name, extra in {"zero": ["--pad", "zero"], "loop": ["--pad", "loop"],
                        "short": ["--pad", "loop", "--shorten", "0.42"]}.items():
        out[name] = work / f"{name}.npz"
        assert cv_sweep.main(["--make-pack", str(out[name]), "--num-clips", "60", "--work-dir", str(work), *extra]) == 0
    return out


def test_packs_hold_the_features_of_every_clip_and_pad_as_asked(packs):
    zero, loop, short = (np.load(packs[k]) for k in ("zero", "loop", "short"))
    assert zero["x"].shape == (60, 64, 173) and zero["x"].dtype == np.float16
    np.testing.assert_array_equal(zero["y"], loop["y"])
    np.testing.assert_array_equal(zero["folds"], loop["folds"])
    assert sorted(set(zero["folds"].tolist())) == list(range(1, 11))
    assert "'pad': 'zero'" in str(zero["feature_config"]) and "'pad': 'loop'" in str(loop["feature_config"])
    differ = (zero["x"] != loop["x"]).any(axis=(1, 2))
    assert 0 < differ.sum() < 60  # the short clips, and only they, are filled differently
    # a short zero-padded clip ends on its dB floor; the same clip looped does not
    i = int(np.flatnonzero(differ)[0])
    assert (zero["x"][i][:, -5:] == zero["x"][i].min()).all()
    assert not (loop["x"][i][:, -5:] == loop["x"][i].min()).all()
    # --shorten: more short clips, the rest byte-identical to the same seed's data
    changed = (short["x"] != loop["x"]).any(axis=(1, 2))
    assert 5 < changed.sum() < 60


def test_configs_on_packs_over_folds_and_seeds_then_resume(packs, tmp_path, capsys):
    results = tmp_path / "sweep.csv"
    argv = ["--pack", str(packs["zero"]), "--pack", f"loop={packs['loop']}",
            "--config", "base=defaults:epochs=2,width=8", "--config", "looped=defaults:epochs=2,width=8@loop",
            "--config", "picked=defaults:epochs=2,width=8,select=best-val",
            "--configs", "base,looped,picked", "--folds", "9,10", "--seeds", "0,1", "--jobs", "2",
            "--device", "cpu", "--results", str(results), "--baseline", "base"]
    assert cv_sweep.main(argv) == 0
    rows = pd.read_csv(results)
    assert len(rows) == 12
    assert set(map(tuple, rows[["test_fold", "seed"]].drop_duplicates().to_numpy())) == {(9, 0), (9, 1), (10, 0), (10, 1)}
    assert set(rows.loc[rows["config"] == "looped", "pack"]) == {"loop"}
    assert (rows["epochs"] == 2).all() and rows["accuracy"].between(0, 1).all()
    base = rows[rows["config"] == "base"]
    assert (base["accuracy"] == base["acc_last"]).all()  # select=last: the tested weights are the last epoch's
    assert (rows.loc[rows["config"] == "picked", "val_fold"] == rows.loc[rows["config"] == "picked", "test_fold"] - 1).all()
    epochs = pd.read_csv(tmp_path / "sweep-epochs.csv")
    assert len(epochs) == 12 * 2 and {"val_accuracy", "test_accuracy", "val_loss"} <= set(epochs.columns)
    last = epochs[epochs["epoch"] == 2].set_index(["config", "test_fold", "seed"])["test_accuracy"]
    np.testing.assert_allclose(rows.set_index(["config", "test_fold", "seed"])["acc_last"].sort_index(),
                               last.sort_index())
    table = capsys.readouterr().out
    assert "vs base" in table and "(4 pairs)" in table

    assert cv_sweep.main(argv) == 0  # a rerun skips what is done
    assert pd.read_csv(results).equals(rows)
    assert "0 runs to do" in capsys.readouterr().out


def test_unknown_pack_or_config_is_a_clear_error(packs, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cv_sweep.main(["--pack", str(packs["zero"]), "--config", "x=defaults:epochs=1@nope", "--configs", "x",
                       "--results", str(tmp_path / "r.csv")])
    assert info.value.code == 2 and "no --pack named 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cv_sweep.main(["--pack", str(packs["zero"]), "--config", "x=defaults:wings=2", "--configs", "x"])
    assert "unknown TrainConfig field 'wings'" in capsys.readouterr().err


def test_shorten_makes_about_half_the_clips_short_and_keeps_the_others():
    from audioclf.synthetic import select_rows, shorten_rows

    table = select_rows(1200, 0)
    short = shorten_rows(table, 0.42, 0)
    durations = short["end"] - short["start"]
    assert 0.45 < (durations < 3.99).mean() < 0.6
    same = (table["end"] - table["start"]) < 3.99
    pd.testing.assert_frame_equal(short[same], table[same])  # short rows stay as they were
    assert durations.min() >= min(0.5, (table["end"] - table["start"]).min())
    with pytest.raises(ValueError, match="fraction"):
        shorten_rows(table, 1.5, 0)


def test_a_shortened_dataset_is_not_mistaken_for_the_plain_one(tmp_path):
    root = tmp_path / "data"
    generate_dataset(root, num_clips=60, seed=0, progress=False)
    with pytest.raises(UserError, match="shorten=0.42"):
        generate_dataset(root, num_clips=60, seed=0, progress=False, shorten=0.42)


def test_the_regularization_preset_is_every_knob_of_the_recipe_once(packs, tmp_path, capsys):
    # benchmarks/sweeps/regularization.args: the grid that re-chooses the regularization of the defaults.
    preset = Path(cv_sweep.__file__).parent / "sweeps" / "regularization.args"
    assert cv_sweep.main(["--pack", str(packs["loop"]), f"@{preset}", "--folds", "1", "--seeds", "0,1",
                          "--deadline", "0", "--device", "cpu", "--results", str(tmp_path / "r.csv")]) == 0
    out = capsys.readouterr().out
    assert "30 runs to do (15 configs x 1 folds x 2 seeds" in out
    changed = {}
    lines = preset.read_text().splitlines()
    for flag, value in zip(lines, lines[1:]):
        if flag == "--config":
            name, _, cfg = cv_sweep.parse_spec(value)
            changed[name] = {k for k, v in cfg.to_dict().items() if v != getattr(cv_sweep.BASES["defaults"], k)}
    assert set().union(*changed.values()) == {"mixup", "masks", "ema", "weight_decay", "dropout",
                                              "label_smoothing", "epochs"}
