"""Issue 34, item 5: one exception type for errors the user can fix (audioclf.errors.UserError), shown as one line
with exit status 2; anything else is a bug and shows its traceback. Flags with a fixed set of values are checked
before any work or ClearML session starts.

    python -m pytest -q tests/test_user_errors.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cross_validation
import optimize
import pipeline
import predict
import preprocessing
import training
from audioclf import metadata, tracking
from audioclf.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def _sessions(cache: Path) -> set[Path]:
    return set((cache / "offline").glob("offline-*"))


def _exit_2(capsys, call) -> str:
    with pytest.raises(SystemExit) as exc:
        call()
    err = capsys.readouterr().err
    assert exc.value.code == 2, (exc.value.code, err)
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("main, argv", [
    (training.main, ["--dataset-id", "x"]),
    (preprocessing.main, ["--dataset-id", "x"]),
    (pipeline.main, []),
    (predict.main, ["model.pt", "a.wav"]),
])
def test_a_device_that_does_not_exist_is_refused_by_the_parser(main, argv, capsys, clearml_cache_dir, tmp_path):
    before = _sessions(clearml_cache_dir)
    err = _exit_2(capsys, lambda: main([*argv, "--device", "gpu", "--offline", "--output-dir", str(tmp_path)]
                                       if main is not predict.main else [*argv, "--device", "gpu"]))
    assert "argument --device: expected 'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N', got 'gpu'" in err
    assert _sessions(clearml_cache_dir) == before and not (tmp_path / "runs").exists()


def test_training_device_gpu_stops_at_once_as_a_user_would_run_it(tmp_path):
    """It used to load the data and fail 14 s later in a RuntimeError traceback from torch."""
    env = {k: v for k, v in os.environ.items() if k not in ("CLEARML_PROC_MASTER_ID", "TRAINS_PROC_MASTER_ID")}
    env.update(CLEARML_OFFLINE_MODE="1")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "training.py", "--dataset-id", "local-0123", "--device", "gpu",
                           "--output-dir", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].endswith("got 'gpu'")
    assert "ClearML Task" not in done.stdout  # no session was started
    assert time.monotonic() - started < 60


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_refused_before_any_session(capsys, clearml_cache_dir, tmp_path):
    before = _sessions(clearml_cache_dir)
    err = _exit_2(capsys, lambda: training.main(["--dataset-id", "x", "--device", "cuda", "--offline",
                                                  "--output-dir", str(tmp_path)]))
    assert "--device cuda: CUDA is not available on this machine; use --device cpu or auto" in err
    assert _sessions(clearml_cache_dir) == before


def test_optimize_model_values_are_checked_before_any_trial(capsys, tmp_path):
    err = _exit_2(capsys, lambda: optimize.main(["--offline", "--dataset-id", "x", "--model", "cnn,resnet",
                                                  "--output-dir", str(tmp_path)]))
    assert "--model 'cnn,resnet': unknown model resnet; choose among cnn, compact, resnet18" in err


def test_preprocessing_feature_flags_are_checked_before_any_session(capsys, clearml_cache_dir, tmp_path):
    before = _sessions(clearml_cache_dir)
    err = _exit_2(capsys, lambda: preprocessing.main(["--dataset-id", "x", "--n-fft", "0", "--offline",
                                                       "--output-dir", str(tmp_path)]))
    assert "invalid feature config values for n_fft" in err
    assert _sessions(clearml_cache_dir) == before


def test_cross_validation_of_training_task_ids_offline_names_the_flag(capsys, clearml_cache_dir, tmp_path):
    """It printed `error: 'metrics'`: a KeyError (a bug) shown as if it were the user's error."""
    before = _sessions(clearml_cache_dir)
    err = _exit_2(capsys, lambda: cross_validation.main(["--training-tasks", "abc", "--offline",
                                                          "--output-dir", str(tmp_path)]))
    (line,) = [x for x in err.splitlines() if "error:" in x]
    assert "--training-tasks reads training tasks from a ClearML server, but this run is offline" in line
    assert "--run-dirs" in line
    assert _sessions(clearml_cache_dir) == before


def test_a_bug_inside_a_stage_shows_its_traceback(monkeypatch, tmp_path, capsys):
    """A ValueError that is no UserError (here from deep inside, as pandas or torch raise them) is a bug: it
    propagates with its traceback instead of becoming a one-line "error:" with exit status 2, as it used to."""
    import get_data

    store = tmp_path / "out"
    raw = get_data.main(["--num-clips", "10", "--workers", "1", "--offline", "--output-dir", str(store)])

    def broken(table, *args, **kwargs):
        raise ValueError("cannot reindex on an axis with duplicate labels")

    monkeypatch.setattr(metadata, "validate", broken)
    capsys.readouterr()
    with pytest.raises(ValueError, match="duplicate labels"):
        preprocessing.main(["--dataset-id", raw["dataset_id"], "--device", "cpu", "--offline",
                            "--output-dir", str(store)])
    assert "error:" not in capsys.readouterr().err


def test_user_message_takes_only_user_errors():
    assert tracking.user_message(UserError("--flag x: fix it")) == "--flag x: fix it"
    assert tracking.user_message(ValueError("an internal check")) is None
    assert tracking.user_message(KeyError("metrics")) is None
    assert tracking.user_message(LookupError("x")) is None
