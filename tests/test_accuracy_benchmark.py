"""benchmarks/accuracy.py on a small generated set: equal wall time per fold, seeds, resume, bad arguments."""

import argparse
import math
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
    assert "fold  1 seed 0 defaults" in out

    # a rerun skips every done row and prints the same table
    again = accuracy.main(argv)
    assert pd.read_csv(csv_path).equals(written)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), rows.reset_index(drop=True), check_dtype=False)
    assert "fold  1 seed 0 defaults" not in capsys.readouterr().out


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


@pytest.fixture
def one_epoch(monkeypatch):
    """The defaults and the old defaults with 1 epoch: a run takes about a second."""
    monkeypatch.setitem(accuracy.BASES, "defaults", replace(TrainConfig(), epochs=1))
    monkeypatch.setitem(accuracy.BASES, "old-defaults", replace(accuracy.OLD_DEFAULTS, epochs=1))


def test_seeds_run_every_config_on_every_fold_per_seed_and_resume_an_old_csv(tmp_path, one_epoch, capsys):
    work = tmp_path / "work"
    csv_path = work / "accuracy.csv"
    base = ["--num-clips", "60", "--work-dir", str(work), "--folds", "1,2", "--configs", "defaults,old-defaults"]
    accuracy.main(base)  # no --seeds: each config once per fold, with its own seed (0)
    first = pd.read_csv(csv_path)
    assert len(first) == 4 and set(first["seed"]) == {0}
    # a file written before the seed column: its rows count as the default seed and are not run again
    first.drop(columns="seed").to_csv(csv_path, index=False)
    capsys.readouterr()

    rows = accuracy.main([*base, "--seeds", "0,1"])
    out = capsys.readouterr().out
    written = pd.read_csv(csv_path)
    assert len(written) == len(rows) == 8
    assert sorted(zip(written["config"], written["test_fold"], written["seed"])) == sorted(
        (c, f, s) for c in ("defaults", "old-defaults") for f in (1, 2) for s in (0, 1))
    assert "seed 0 defaults" not in out and "seed 0 old-defaults" not in out  # resumed, not re-run
    assert out.count("seed 1 defaults") == 2 and out.count("seed 1 old-defaults") == 2
    by = written.set_index(["config", "test_fold", "seed"]).sort_index()
    # seed 0 rows keep their spec (and values); a seed changes the spec and the run
    assert by.loc[("defaults", 1, 0), "spec"] == accuracy.spec_of(accuracy.BASES["defaults"]) + "-own"
    assert by.loc[("defaults", 1, 1), "spec"] != by.loc[("defaults", 1, 0), "spec"]
    pd.testing.assert_frame_equal(
        by.xs(0, level="seed")[["accuracy", "wall_s"]],
        first.set_index(["config", "test_fold"]).sort_index()[["accuracy", "wall_s"]], check_dtype=False)
    assert (by.xs(0, level="seed")["train_accuracy"] != by.xs(1, level="seed")["train_accuracy"]).any()
    # the report: seeds averaged per fold, the seed spread, the paired difference with runs won/tied/lost
    assert "seeds [0, 1]" in out and "seed std (SE/fold)" in out and "vs defaults: diff ± SE" in out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("old-defaults  ")]
    diff = (by.loc["old-defaults", "accuracy"] - by.loc["defaults", "accuracy"])
    won, tied, lost = int((diff > 0).sum()), int((diff == 0).sum()), int((diff < 0).sum())
    assert f"{diff.mean():+.3f} ± " in line and f"{won}/{tied}/{lost}" in line and won + tied + lost == 4

    capsys.readouterr()
    again = accuracy.main([*base, "--seeds", "0,1"])  # everything done: nothing runs
    assert "seed 1 defaults" not in capsys.readouterr().out
    assert pd.read_csv(csv_path).equals(written) and len(again) == 8


def test_report_gives_fold_means_seed_spread_and_paired_difference():
    # two folds x three seeds; B beats A by 0.1 on fold 1 and loses by 0.02 on fold 2, on every seed
    a = {1: [0.50, 0.60, 0.70], 2: [0.80, 0.80, 0.80]}
    rows = []
    for name, shift in (("A", {1: 0.0, 2: 0.0}), ("B", {1: 0.1, 2: -0.02})):
        for fold, accs in a.items():
            for seed, acc in enumerate(accs):
                rows.append({"config": name, "test_fold": fold, "seed": seed, "accuracy": acc + shift[fold],
                             "f1_macro": acc, "wall_s": 10.0, "epochs": 2,
                             # A fits its training folds by 0.2 beyond validation on fold 1, 0.1 on fold 2; B not
                             "train_accuracy": (0.9 if fold == 1 else 0.8) if name == "A" else float("nan"),
                             "val_accuracy": 0.7})
    text = accuracy.report(pd.DataFrame(rows), ["A", "B"], [1, 2], [0, 1, 2])
    line_a, line_b = [ln for ln in text.splitlines() if ln[:2] in ("A ", "B ")]
    # A: fold means 0.6 and 0.8 -> 0.700 ± 0.100 over folds; seed std 0.1 on fold 1, 0 on fold 2 -> 0.050,
    # SE/fold 0.1/sqrt(3)/2 = 0.029
    assert "  0.600  0.800   0.700 ± 0.100" in line_a and "0.050 (0.029)" in line_a
    # B - A: +0.04 mean; SE over the two folds' mean differences (0.1, -0.02): std 0.0849 / sqrt(2) = 0.060
    assert f"+0.040 ± {math.sqrt(((0.1 - 0.04) ** 2 + (-0.02 - 0.04) ** 2) / 1) / math.sqrt(2):.3f}" in line_b
    assert "+0.040 ± 0.060  3/0/3" in line_b
    # the train-val gap: mean over folds of (0.2, 0.1) for A; none recorded for B (as the seed's runner)
    assert "   +0.150      0.050 (0.029)" in line_a
    assert "     -      " in line_b and "+0.150" not in line_b
    # a config missing runs says so
    partial = accuracy.report(pd.DataFrame(rows[:-1]), ["A", "B"], [1, 2], [0, 1, 2])
    assert "(5/6 runs)" in partial


def test_bad_seeds_folds_and_results_are_refused_without_a_traceback(tmp_path, capsys):
    for flag, value, message in (("--seeds", "0,x", "--seeds takes seed numbers like 0,1,2"),
                                 ("--seeds", "all", "--seeds takes seed numbers like 0,1,2"),
                                 ("--folds", "1-3", "--folds takes 'all' or fold numbers")):
        with pytest.raises(SystemExit) as stop:
            accuracy.main([flag, value, "--work-dir", str(tmp_path)])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    assert accuracy.seed_list("2,0,1") == [0, 1, 2] and accuracy.fold_list("all") == []
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit) as stop:
        accuracy.main(["--results", str(bad), "--work-dir", str(tmp_path)])
    assert stop.value.code == 2 and "not a results file of this benchmark" in capsys.readouterr().err
    assert not list(tmp_path.glob("synthetic-*")), "a bad --results must stop the run before any data is made"
