"""Issue 30, item 7: user errors that used to be reported late, with the wrong exit status or with torch's advice.

Each is an argparse-style line and exit status 2, found before any work or ClearML session starts, so that a
failed invocation leaves no offline session behind (the README's push_offline.py glob would import it).

    python -m pytest -q tests/test_traps.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

import get_data
import optimize
import pipeline
import predict
import training


def _sessions(clearml_cache_dir: Path) -> set[Path]:
    return set((clearml_cache_dir / "offline").glob("offline-*"))


@pytest.fixture
def no_session_left(clearml_cache_dir, tmp_path):
    """Asserts, after the test, that no offline session and no run or staging folder was made."""
    before = _sessions(clearml_cache_dir)
    yield tmp_path / "out"
    assert _sessions(clearml_cache_dir) == before, "a failed invocation left an offline session behind"
    assert not (tmp_path / "out" / "runs").exists() and not (tmp_path / "out" / "staging").exists(), \
        "work started before the arguments were checked"


def _exit_2(capsys, call) -> str:
    with pytest.raises(SystemExit) as exc:
        call()
    err = capsys.readouterr().err
    assert exc.value.code == 2, (exc.value.code, err)
    assert "Traceback" not in err
    return err


# --- --classes and --source are checked before any work or session ----------------------------------

@pytest.mark.parametrize("classes", [["dog_bak"], ["dog_bark,sirene"], ["siren", "gunshot"]])
def test_get_data_unknown_class_stops_before_any_work(no_session_left, capsys, classes):
    err = _exit_2(capsys, lambda: get_data.main(["--classes", *classes, "--num-clips", "10", "--offline",
                                                 "--output-dir", str(no_session_left)]))
    assert "--classes" in err and "unknown classes" in err and "dog_bark" in err  # the known names are listed


def test_get_data_unknown_class_of_a_local_folder_is_checked_against_its_table(no_session_left, capsys, tmp_path):
    folder = tmp_path / "US8K"
    (folder / "metadata").mkdir(parents=True)
    (folder / "metadata" / "UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n1-3-0-0.wav,1,0,1,1,1,3,dog_bark\n")
    err = _exit_2(capsys, lambda: get_data.main(["--source", str(folder), "--classes", "siren", "--offline",
                                                 "--output-dir", str(no_session_left)]))
    assert "unknown classes ['siren']" in err and "known classes: dog_bark" in err


@pytest.mark.parametrize("source, phrase", [("urbansound8", "neither a known source"),
                                            ("/no/such/folder", "neither a known source")])
def test_get_data_wrong_source_stops_before_any_work(no_session_left, capsys, source, phrase):
    err = _exit_2(capsys, lambda: get_data.main(["--source", source, "--offline",
                                                 "--output-dir", str(no_session_left)]))
    assert f"--source {source!r}" in err and phrase in err and "urbansound8k" in err


def test_get_data_file_that_is_no_archive_stops_before_any_work(no_session_left, capsys, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an archive")
    err = _exit_2(capsys, lambda: get_data.main(["--source", str(text), "--offline",
                                                 "--output-dir", str(no_session_left)]))
    assert "not a zip or tar archive" in err


def test_get_data_esc10_with_urbansound8k_and_a_clip_count_out_of_range(no_session_left, capsys):
    err = _exit_2(capsys, lambda: get_data.main(["--esc10", "--offline", "--output-dir", str(no_session_left)]))
    assert "--esc10 applies to ESC-50" in err
    err = _exit_2(capsys, lambda: get_data.main(["--num-clips", "3", "--offline", "--output-dir",
                                                 str(no_session_left)]))
    assert "--num-clips must be between 10 and 8690" in err


@pytest.mark.parametrize("argv, phrase", [(["--classes", "dog_bak"], "unknown classes ['dog_bak']"),
                                          (["--source", "esc-50"], "neither a known source"),
                                          (["--num-clips", "5"], "--num-clips must be between")])
def test_pipeline_checks_the_data_arguments_before_any_step(no_session_left, capsys, argv, phrase):
    err = _exit_2(capsys, lambda: pipeline.main([*argv, "--offline", "--output-dir", str(no_session_left)]))
    assert phrase in err


# --- --offline with --queue: exit 2, naming the flag typed -------------------------------------------

def test_offline_queue_is_exit_2_naming_the_flag(no_session_left, capsys):
    err = _exit_2(capsys, lambda: get_data.main(["--offline", "--queue", "cpu", "--num-clips", "10",
                                                 "--output-dir", str(no_session_left)]))
    assert "error: --queue cpu needs a ClearML server" in err and "--offline was given" in err


def test_optimize_offline_queue_names_optimizer_queue(no_session_left, capsys):
    err = _exit_2(capsys, lambda: optimize.main(["--offline", "--dataset-id", "local-x", "--queue", "svc",
                                                 "--output-dir", str(no_session_left)]))
    assert "--queue svc needs a ClearML server" in err


# --- predict.py on a file that is not a model ---------------------------------------------------------

class _Pickled:  # an object torch.load(weights_only=True) refuses, with its "weights_only=False" advice
    pass


@pytest.mark.parametrize("content", ["pickle", "text"])
def test_predict_on_a_file_that_is_not_a_model_is_one_line(tmp_path, capsys, content):
    path = tmp_path / "thing.pt"
    if content == "pickle":
        torch.save({"x": _Pickled(), "ns": argparse.Namespace(a=1)}, path)
    else:
        path.write_text("hello")
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"")
    err = _exit_2(capsys, lambda: predict.main([str(path), str(clip), "--offline"]))
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert str(path) in lines[0] and "not a model file of this project" in lines[0]
    assert "weights_only" not in err and "Weights only" not in err


# --- help texts that describe what the code does ----------------------------------------------------

def test_val_fold_help_says_what_the_validation_fold_does():
    (action,) = [a for a in training.build_parser()._actions if "--val-fold" in a.option_strings]
    assert "best epoch" not in action.help
    assert "--select" in action.help


# --- a run that fails after it wrote something: push_offline.py leaves its session out --------------------------
# (a run that fails before writing anything leaves no session at all: tests/test_enqueue_checks.py)

def test_push_offline_leaves_out_the_session_of_a_failed_run(clearml_cache_dir, tmp_path, monkeypatch, capsys):
    from unittest.mock import create_autospec

    import clearml
    import push_offline

    folder = tmp_path / "US8K"  # found only once the run has started and written skipped_clips.csv: no clip on disk
    (folder / "metadata").mkdir(parents=True)
    (folder / "metadata" / "UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n1-3-0-0.wav,1,0,1,1,1,3,dog_bark\n")
    before = _sessions(clearml_cache_dir)
    with pytest.raises(SystemExit):
        get_data.main(["--source", str(folder), "--offline", "--output-dir", str(tmp_path / "out")])
    (failed,) = [p for p in _sessions(clearml_cache_dir) - before if p.is_dir()]
    capsys.readouterr()

    for name in ("CLEARML_OFFLINE_MODE", "CLEARML_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "key")
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "secret")
    task_cls = create_autospec(clearml.Task)
    task_cls.import_offline_session.return_value = "task-imported"
    monkeypatch.setattr(clearml, "Task", task_cls)
    # Other tests' training sessions in the glob get their model registered: no server here.
    monkeypatch.setattr(clearml, "OutputModel", create_autospec(clearml.OutputModel))
    # The README's glob: every session folder.
    sessions = [str(p) for p in sorted((clearml_cache_dir / "offline").glob("offline-*")) if p.is_dir()]
    result = push_offline.main(["--no-datasets", "--sessions", *sessions])
    assert str(failed) not in result["sessions"]
    assert f"skipping {failed}: its run failed" in capsys.readouterr().err
    result = push_offline.main(["--no-datasets", "--include-failed", "--sessions", str(failed)])
    assert result["sessions"] == {str(failed): "task-imported"}
