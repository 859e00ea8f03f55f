"""benchmarks/accuracy.py on a small generated set: equal wall time per fold, resume, bad arguments."""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import accuracy  # noqa: E402

from audioclf.trainer import TrainConfig  # noqa: E402


@pytest.fixture
def short_defaults(monkeypatch):
    """The defaults' recipe with 2 epochs, so that a fold takes seconds."""
    monkeypatch.setitem(accuracy.BASES, "defaults", replace(TrainConfig(), epochs=2))


def test_budget_defaults_gives_every_config_the_defaults_wall_time_and_resumes(tmp_path, short_defaults, capsys):
    argv = ["--num-clips", "60", "--work-dir", str(tmp_path / "work"), "--folds", "1,2", "--budget", "defaults",
            "--configs", "old-defaults,seed,defaults"]  # the defaults run first all the same: they set the budget
    rows = accuracy.main(argv)
    csv_path = tmp_path / "work" / "accuracy.csv"
    written = pd.read_csv(csv_path)
    assert len(written) == len(rows) == 6
    assert set(written["data"]) == {f"synthetic-n60-seed0-v{accuracy.GENERATOR_VERSION}|features-"
                                    f"{accuracy.FeatureConfig().fingerprint()}"}
    for fold, group in written.groupby("test_fold"):
        assert list(group["config"]) == ["defaults", "old-defaults", "seed"]
        by = group.set_index("config")
        assert by.loc["defaults", "epochs"] == 2
        assert by.loc["defaults", "budget_s"] == pytest.approx(by.loc["defaults", "wall_s"])
        # the others get the wall time the defaults took on this fold
        assert by.loc["old-defaults", "budget_s"] == pytest.approx(by.loc["defaults", "budget_s"])
        assert by.loc["seed", "budget_s"] == pytest.approx(by.loc["defaults", "budget_s"])
        assert by.loc["seed", "wall_s"] >= by.loc["seed", "budget_s"]  # it trains until the budget is spent
    out = capsys.readouterr().out
    assert "wall time of the defaults' own schedule" in out

    # a rerun skips every done row and prints the same table
    again = accuracy.main(argv)
    assert pd.read_csv(csv_path).equals(written)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), rows.reset_index(drop=True), check_dtype=False)
    assert "fold  1 defaults" not in capsys.readouterr().out


def test_rows_of_other_data_are_not_reused(tmp_path, short_defaults):
    work = tmp_path / "work"
    base = ["--work-dir", str(work), "--folds", "1", "--configs", "defaults"]
    accuracy.main(["--num-clips", "60", *base])
    accuracy.main(["--num-clips", "60", "--data-seed", "1", *base])
    written = pd.read_csv(work / "accuracy.csv")
    assert len(written) == 2 and written["data"].nunique() == 2


def test_bad_budget_arguments_are_refused_without_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        accuracy.main(["--budget", "soon", "--work-dir", str(tmp_path)])
    assert stop.value.code == 2 and "expected seconds (> 0) or 'defaults'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        accuracy.main(["--budget", "defaults", "--configs", "seed", "--work-dir", str(tmp_path)])
    assert "add 'defaults' to --configs" in capsys.readouterr().err
    assert accuracy.parse_budget("300") == 300.0 and accuracy.parse_budget("Defaults") == "defaults"
    with pytest.raises(argparse.ArgumentTypeError):
        accuracy.parse_budget("-5")
