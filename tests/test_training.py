"""training.py on a tiny generated features dataset: resume, cross-validation, fold separation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import audioclf.trainer as trainer
import get_data
import preprocessing
import training
from audioclf.store import LocalStore


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    out = tmp_path_factory.mktemp("outputs")
    common = ["--offline", "--output-dir", str(out)]
    raw = get_data.main(["--num-clips", "100", "--data-seed", "11", "--workers", "1"] + common)
    feats = preprocessing.main(["--dataset-id", raw["dataset_id"], "--device", "cpu", "--n-mels", "32",
                                "--duration", "2"] + common)
    return {"out": out, "id": feats["dataset_id"], "common": common}


def _train(features, *extra: str) -> dict:
    return training.main(["--dataset-id", features["id"], "--device", "cpu", "--threads", "2", *extra]
                         + features["common"])


def test_resume_after_an_interruption_continues_where_it_stopped(features, monkeypatch):
    uninterrupted = _train(features, "--epochs", "3", "--patience", "10")
    history_full = pd.read_csv(Path(uninterrupted["run_dir"]) / "history.csv")

    real_save = trainer.save_checkpoint

    def save_then_die(path, **state):
        real_save(path, **state)
        if state["epoch"] == 2:
            raise KeyboardInterrupt  # Ctrl-C right after epoch 2 was saved

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    with pytest.raises(SystemExit) as stopped:  # Ctrl-C: one line and exit status 130, no traceback
        _train(features, "--epochs", "3", "--patience", "10")
    assert stopped.value.code == 130
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    runs = sorted((features["out"] / "runs").glob("training-*"), key=lambda p: p.stat().st_mtime)
    checkpoint = runs[-1] / "checkpoint.pt"
    assert checkpoint.is_file() and not (runs[-1] / "metrics.json").exists()
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2

    resumed = _train(features, "--epochs", "3", "--patience", "10", "--resume", str(checkpoint))
    history = pd.read_csv(Path(resumed["run_dir"]) / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    # The same numbers as the run that was never interrupted: weights, optimizer, schedule and RNGs came back.
    pd.testing.assert_frame_equal(history, history_full, rtol=1e-4, atol=1e-5)
    assert resumed["test"] == pytest.approx(uninterrupted["test"])


def test_resume_refuses_a_checkpoint_of_another_config(features):
    first = _train(features, "--epochs", "1")
    with pytest.raises(SystemExit) as exc:
        _train(features, "--epochs", "1", "--lr", "0.01", "--resume", str(Path(first["run_dir"]) / "checkpoint.pt"))
    assert exc.value.code == 2


def test_no_test_fold_clip_reaches_training_or_validation(features):
    dataset = LocalStore(features["out"] / "datasets").get(features["id"])
    folds = dataset.read_table("features.csv")["fold"].to_numpy()
    for test_fold in sorted(set(folds)):
        split = trainer.split_by_fold(folds, test_fold, trainer.default_val_fold(test_fold, sorted(set(folds))))
        assert not set(split.test) & (set(split.train) | set(split.val))
        assert (folds[split.test] == test_fold).all()
        assert not (folds[split.train] == test_fold).any() and not (folds[split.val] == test_fold).any()
        assert len(split.train) + len(split.val) + len(split.test) == len(folds)


def test_training_sees_only_training_folds(features, monkeypatch):
    """Spy on the batches fit() draws: every training index belongs to a training fold."""
    seen: list[np.ndarray] = []
    real_augment = trainer.augment
    dataset = LocalStore(features["out"] / "datasets").get(features["id"])
    folds = dataset.read_table("features.csv")["fold"].to_numpy()
    real_fit = trainer.fit

    def spying_fit(model, x, y, split, cfg, *args, **kwargs):
        seen.append(split.train)
        return real_fit(model, x, y, split, cfg, *args, **kwargs)

    monkeypatch.setattr(training, "fit", spying_fit)
    monkeypatch.setattr(trainer, "augment", real_augment)
    result = _train(features, "--epochs", "1", "--test-fold", "3")
    assert result["test_fold"] == 3 and result["val_fold"] == 2
    assert set(folds[seen[0]]) == set(range(1, 11)) - {2, 3}


def test_cross_validation_over_several_folds(features):
    result = _train(features, "--epochs", "1", "--folds", "1,5,10")
    run_dir = Path(result["run_dir"])
    cv = json.loads((run_dir / "cross_validation.json").read_text())
    per_fold = [json.loads((run_dir / f"fold_{k}" / "metrics.json").read_text()) for k in (1, 5, 10)]
    assert cv["folds"] == [1, 5, 10]
    accuracies = [m["test"]["accuracy"] for m in per_fold]
    assert cv["accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert cv["accuracy_std"] == pytest.approx(np.std(accuracies))
    assert [m["val_fold"] for m in per_fold] == [10, 4, 9]
    total = pd.read_csv(run_dir / "confusion_matrix_all_folds.csv", index_col=0).to_numpy()
    assert total.sum() == sum(m["num_test"] for m in per_fold)
    assert (run_dir / "confusion_matrix_all_folds.png").is_file()
    for k in (1, 5, 10):
        assert torch.load(run_dir / f"fold_{k}" / "model.pt", weights_only=True)["metrics"]["test_fold"] == k
    # The task publishes the mean and std as its outputs, as cross_validation.py does (General/...).
    general = json.loads((Path(result["session_dir"]) / "task.json").read_text())["hyperparams"]["General"]
    assert float(general["accuracy_mean"]["value"]) == pytest.approx(cv["accuracy_mean"], abs=1e-6)


def test_dropout_reaches_the_head_and_the_saved_model(features):
    from audioclf.models import load_model

    result = _train(features, "--epochs", "1", "--width", "4", "--dropout", "0.5")
    model, bundle = load_model(result["model_path"])
    assert bundle["model_args"]["dropout"] == 0.5
    assert bundle["train_config"]["dropout"] == 0.5
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.5]


def test_first_convs_reaches_the_saved_model(features):
    from audioclf.models import load_model

    result = _train(features, "--epochs", "1", "--width", "4", "--first-convs", "2")
    model, bundle = load_model(result["model_path"])
    assert bundle["model_args"]["first_convs"] == 2 and bundle["train_config"]["first_convs"] == 2
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.backbone.features[0]) == 2


def test_dropout_of_one_or_more_is_a_usage_error(features, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _train(features, "--dropout", "1")
    assert exit_info.value.code == 2
    assert "--dropout" in capsys.readouterr().err


def _features_of(features, name: str, get_data_args: list[str], preprocessing_args: list[str]) -> str:
    out = features["out"]
    common = ["--offline", "--output-dir", str(out)]
    raw = get_data.main(["--num-clips", "60", "--data-seed", "11", "--workers", "1", *get_data_args] + common)
    return preprocessing.main(["--dataset-id", raw["dataset_id"], "--device", "cpu", *preprocessing_args]
                              + common)["dataset_id"]


def _refused(features, dataset_id: str, capsys, *extra: str) -> str:
    with pytest.raises(SystemExit) as exc:
        training.main(["--dataset-id", dataset_id, "--device", "cpu", "--epochs", "1", *extra] + features["common"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_one_class_is_refused_not_trained_to_a_perfect_score(features, capsys):
    from audioclf.synthetic import CLASS_NAMES

    one = _features_of(features, "one", ["--classes", CLASS_NAMES[0]], ["--n-mels", "32", "--duration", "2"])
    assert "a classifier needs at least two" in _refused(features, one, capsys)


def test_spectrograms_too_small_for_the_cnn_are_refused_naming_the_fix(features, capsys):
    small = _features_of(features, "small", [], ["--n-mels", "8", "--duration", "2"])
    err = _refused(features, small, capsys, "--width", "4")
    assert "8 mel bands" in err and "--n-mels >= 16" in err


def test_resume_refuses_a_checkpoint_made_on_another_dataset(features, capsys):
    first = _train(features, "--epochs", "2", "--width", "4")
    other = _features_of(features, "other", [], ["--n-mels", "32", "--duration", "2", "--pad", "zero"])
    err = _refused(features, other, capsys, "--epochs", "2", "--width", "4",
                   "--resume", str(Path(first["run_dir"]) / "checkpoint.pt"))
    assert "made on other data" in err and features["id"] in err
