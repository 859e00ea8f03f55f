"""optimize.py offline (Optuna in this process, each trial a training.py run) and the shared search space.

    python -m pytest -q tests/test_optimize.py
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest

import get_data
import optimize
import preprocessing
import training
from audioclf import search
from audioclf.errors import UserError
from audioclf.search import Dimension, parse_dimension


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    out = tmp_path_factory.mktemp("optimize") / "outputs"
    common = ["--offline", "--output-dir", str(out)]
    raw = get_data.main(["--num-clips", "40", "--data-seed", "4", "--workers", "1"] + common)
    feats = preprocessing.main(["--dataset-id", raw["dataset_id"], "--device", "cpu", "--workers", "1"] + common)
    return {"out": out, "id": feats["dataset_id"], "raw": raw["dataset_id"]}


def test_offline_search_of_three_trials_picks_the_best_validation_accuracy(features, capsys):
    result = optimize.main(["--offline", "--dataset-id", features["id"], "--trials", "3", "--epochs", "2",
                            "--training-args", "--width 4 --device cpu", "--output-dir", str(features["out"])])
    printed = capsys.readouterr().out
    assert "=== best trial ===" in printed and "validation accuracy:" in printed
    run = Path(result["run_dir"])
    table = pd.read_csv(run / "trials.csv")
    assert len(table) == 3 and (run / "trials.png").stat().st_size > 0
    assert "test_accuracy" not in table.columns, "only the best trial's test accuracy is shown"
    complete = table[table["state"] == "COMPLETE"]
    best = result["best"]
    assert best["val_accuracy"] == pytest.approx(complete["objective"].max())
    # The objective is the validation accuracy of the weights the trial kept (validation, never test).
    metrics = json.loads((Path(best["run_dir"]) / "metrics.json").read_text())
    assert metrics["model_val_accuracy"] == pytest.approx(best["val_accuracy"])
    assert metrics["test"]["accuracy"] == pytest.approx(best["test_accuracy"])
    assert Path(best["model"]).is_file() and metrics["train_config"]["epochs"] == 2
    for row in table.itertuples():  # every trial trained with the values the table records
        if row.state == "COMPLETE":
            config = json.loads((Path(row.run_dir) / "metrics.json").read_text())["train_config"]
            assert config["lr"] == pytest.approx(row.lr) and config["batch_size"] == row.batch_size
            assert config["mixup"] == pytest.approx(row.mixup)
            assert config["arch"] == row.model, "the searched --model column holds the architecture"
    assert best["values"]["model"] == "cnn" and "--model cnn " in printed


def test_a_trial_stopped_by_its_epoch_callback_saves_no_model(features):
    def prune(epoch, val_accuracy):
        raise optimize.TrialStopped(f"pruned after epoch {epoch}")

    runs = features["out"] / "runs"
    before = set(runs.glob("training-*"))
    with pytest.raises(optimize.TrialStopped):
        training.main(["--dataset-id", features["id"], "--epochs", "3", "--width", "4", "--device", "cpu",
                       "--offline", "--output-dir", str(features["out"])], on_epoch=prune)
    for run in set(runs.glob("training-*")) - before:
        assert not (run / "model.pt").exists()


def test_pruning_stops_a_trial_below_the_median(features, monkeypatch):
    # Two finished trials at 0.9 per epoch; a third at 0.1 is pruned as soon as the warm-up epochs are over.
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2,
                                                                                          n_warmup_steps=2))
    for _ in range(2):
        trial = study.ask()
        for epoch in (1, 2, 3):
            trial.report(0.9, epoch)
        study.tell(trial, 0.9)
    trial = study.ask()
    trial.report(0.1, 1)
    assert not trial.should_prune(), "not during the warm-up"
    trial.report(0.1, 2)
    assert trial.should_prune()


@pytest.mark.parametrize("name,text,expected", [
    ("lr", "1e-4:1e-2", Dimension("lr", "range", (1e-4, 1e-2), log=True)),
    ("mixup", "0:0.4", Dimension("mixup", "range", (0.0, 0.4))),
    ("batch_size", "16,32", Dimension("batch_size", "choice", (16, 32))),
    ("epochs", "10:30", Dimension("epochs", "range", (10, 30))),
    ("epochs", "2", Dimension("epochs", "fixed", (2,))),
    ("model", "cnn,compact", Dimension("model", "choice", ("cnn", "compact"))),
])
def test_dimensions_parse(name, text, expected):
    assert parse_dimension(name, text) == expected


@pytest.mark.parametrize("name,text", [("lr", "0:1e-2"), ("lr", "1e-2:1e-4"), ("batch_size", "a,b"),
                                       ("model", "cnn:compact"), ("mixup", "")])
def test_bad_dimensions_name_the_flag(name, text):
    with pytest.raises(UserError, match="--" + name.replace("_", "-")):
        parse_dimension(name, text)


def test_the_same_space_offline_and_online():
    space = [parse_dimension(n, t) for n, t in (("lr", "1e-4:1e-2"), ("batch_size", "16,32"), ("mixup", "0:0.5"),
                                                 ("epochs", "2"), ("model", "cnn"))]
    ranges = {r.name: r for r in search.clearml_ranges(space)}
    assert set(ranges) == {"Args/lr", "Args/batch_size", "Args/mixup", "Args/epochs", "Args/model"}
    assert type(ranges["Args/lr"]).__name__ == "LogUniformParameterRange"
    assert ranges["Args/lr"].base ** ranges["Args/lr"].min_value == pytest.approx(1e-4)
    assert ranges["Args/batch_size"].values == [16, 32] and ranges["Args/epochs"].values == [2]
    values = search.suggest(optuna.trial.FixedTrial({"lr": 3e-3, "batch_size": 32, "mixup": 0.25}), space)
    assert values == {"lr": 3e-3, "batch_size": 32, "mixup": 0.25, "epochs": 2, "model": "cnn"}
    argv = search.training_argv(values)
    args = training.build_parser().parse_args(["--dataset-id", "x"] + argv)
    assert (args.lr, args.batch_size, args.mixup, args.epochs, args.model) == (3e-3, 32, 0.25, 2, "cnn")


def test_train_args_become_args_pairs_for_the_base_task():
    assert optimize.train_args_pairs("--width 24 --no-amp --test-fold=9") == [
        ("width", "24"), ("no_amp", "True"), ("test_fold", "9")]
    with pytest.raises(UserError, match="--training-args"):
        optimize.train_args_pairs("width 24")


@pytest.mark.parametrize("train_args,sign", [
    ("--width 24", "max"),  # training's default --select last: the weights kept are the last epoch's
    ("--select last", "max"),
    ("--width 8 --select best-val", "max_global"),  # the best epoch's
    ("--select=best-val", "max_global"),
])
def test_the_online_objective_reads_the_validation_accuracy_of_the_weights_a_trial_keeps(train_args, sign):
    args = optimize.build_parser().parse_args(["--dataset-id", "x", f"--training-args={train_args}"])
    assert optimize.objective_sign(args, "unused-base-task") == sign


@pytest.mark.parametrize("argv,needle", [
    ([], "--dataset-id"),
    (["--dataset-id", "x", "--lr", "1:0"], "--lr"),
    (["--dataset-id", "local-none"], "no dataset 'local-none'"),
    (["--base-task-id", "abc"], "--base-task-id needs a ClearML server"),
])
def test_bad_input_is_one_line(features, argv, needle, capsys):
    with pytest.raises(SystemExit) as stopped:
        optimize.main(argv + ["--offline", "--output-dir", str(features["out"])])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_a_raw_dataset_is_refused_before_any_trial(features, capsys):
    with pytest.raises(SystemExit):
        optimize.main(["--offline", "--dataset-id", features["raw"], "--output-dir", str(features["out"])])
    assert "not a features dataset" in capsys.readouterr().err


class _Trial:
    """A finished trial task as Task.get_task returns it: accuracy/val reported per epoch (last and max differ)."""

    def __init__(self, task_id: str, last: float, best: float, batch_size: str):
        self.id, self._metrics, self._batch = task_id, {"last": last, "max": best, "min": 0.1}, batch_size
        self.models = {"output": []}

    def get_last_scalar_metrics(self):
        return {"accuracy": {"val": dict(self._metrics)}, "loss": {"val": {"last": 1.0, "max": 2.0, "min": 1.0}}}

    def get_status(self):
        return "completed"

    def get_parameters(self):
        return {"Args/batch_size": self._batch, "Args/lr": "0.003"}

    def get_reported_single_values(self):
        return {"test_accuracy": 0.5}

    def get_output_log_web_page(self):
        return f"https://app.example/tasks/{self.id}/"


def test_the_online_report_reads_the_objective_the_optimizer_maximizes(monkeypatch, tmp_path, capsys):
    """Issue 30, item 5: with --select last (the default) ClearML maximizes the LAST accuracy/val; the trials
    table and the best trial must read that too, not the maximum over the epochs."""
    import clearml

    trials = {"t-peaky": _Trial("t-peaky", last=0.60, best=0.90, batch_size="16"),  # best epoch early, last worse
              "t-steady": _Trial("t-steady", last=0.70, best=0.75, batch_size="32")}
    made = {}

    class FakeOptimizer:
        def __init__(self):
            self.optimizer = self

        def get_created_jobs_ids(self):
            return {task_id: None for task_id in trials}

        def set_report_period(self, minutes):
            pass

        def start(self):
            pass

        def wait(self):
            pass

        def stop(self):
            pass

    def make_optimizer(*args, **kwargs):
        made["args"] = args
        return FakeOptimizer()

    monkeypatch.setattr(optimize, "make_optimizer", make_optimizer)
    monkeypatch.setattr(clearml.Task, "get_task", classmethod(lambda cls, task_id=None, **kw: trials[task_id]))
    monkeypatch.setattr(clearml.Task, "force_requirements_env_freeze", classmethod(lambda cls, **kw: None))
    parser = optimize.build_parser()
    args = parser.parse_args(["--base-task-id", "base", "--offline", "--output-dir", str(tmp_path),
                              "--batch-size", "16,32", "--training-args", "--select last"])
    space = search.space_from(args)
    result = optimize.run_online(args, parser, space)
    assert [row["objective"] for row in result["trials"]] == [0.60, 0.70]
    assert result["best"]["task_id"] == "t-steady" and result["best"]["val_accuracy"] == 0.70
    assert "validation accuracy: 0.7000" in capsys.readouterr().out


@pytest.mark.parametrize("sign, field", [("max", "last"), ("max_global", "max")])
def test_trial_objective_reads_the_field_of_the_sign(sign, field):
    metrics = {"accuracy": {"val": {"last": 0.6, "max": 0.9, "min": 0.1}}}
    assert search.trial_objective(metrics, sign) == metrics["accuracy"]["val"][field]
    assert search.trial_objective({}, sign) is None


def test_help_describes_the_objective_of_the_kept_weights():
    text = optimize.build_parser().format_help()
    assert "maximum over its epochs" not in text and "best VALIDATION accuracy" not in text
    assert "--select last" in text and "its last value" in text
