"""Issue 34, item 1: SIGTERM and SIGINT stop every stage, the offline pipeline, the search and predict.py mid-work.

Each script runs as a subprocess, as `kill PID`, `timeout`, systemd or a terminal's Ctrl-C would meet it, on tiny
generated data. The work is slowed down where it would otherwise end before the signal (a sitecustomize replaces
one function with a slower one that first touches a marker file), and the signal is sent once the marker or a first
checkpoint exists. Then: the process ends within seconds with 143 (SIGTERM) or 130 (SIGINT) and one line saying
what was kept and how to resume, no traceback; its worker processes are gone; nothing is half written (no dataset
appears, no temporary file is left, every file under its final name loads); the offline session records the run
as stopped, with the signal as the reason.

    python -m pytest -q tests/test_signals.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf
import torch

import get_data
import preprocessing
import training
from audioclf import atomic
from audioclf.store import LocalStore
from audioclf.tracking import SESSION_STATUS_FILE

REPO = Path(__file__).resolve().parents[1]
CLIPS = 30
BOUND_S = 20.0  # "within a few seconds" on a loaded 2-core machine: the stops below take 1-5 s
SIGNALS = {"SIGTERM": (signal.SIGTERM, 143), "SIGINT": (signal.SIGINT, 130)}

# Slows one function (a dotted path in a module) down in every interpreter of a run: the script, and the fork
# server and worker processes it starts (they do not inherit its memory: stopping.worker_pool), through a
# sitecustomize module on PYTHONPATH. The slower function first touches a marker file: a signal sent once the
# marker exists reaches the run mid-work on any machine.
_SLOWED = """
import functools, importlib, os, pathlib, time
module, path, delay, marker = os.environ["AUDIOCLF_TEST_SLOWED"].split("|")
owner = importlib.import_module(module)
*parents, name = path.split(".")
for part in parents:
    owner = getattr(owner, part)
original = getattr(owner, name)
@functools.wraps(original)  # the same qualified name: a process pool pickles it by name and finds this one
def slowed(*args, **kwargs):
    pathlib.Path(marker).touch()
    time.sleep(float(delay))
    return original(*args, **kwargs)
setattr(owner, name, slowed)
"""


def _env() -> dict:
    # Not CLEARML_PROC_MASTER_ID: a child that inherits it takes itself for a subprocess of this process's task.
    env = {k: v for k, v in os.environ.items() if k not in ("CLEARML_PROC_MASTER_ID", "TRAINS_PROC_MASTER_ID")}
    env.update(CLEARML_OFFLINE_MODE="1", TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
    return env


def _terminal_sigint() -> None:
    # A test run started in the background of a non-interactive shell inherits SIGINT ignored; a terminal's
    # process would not, and the scripts (rightly) keep SIGINT ignored when they were started so.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sessions(cache: Path) -> set[Path]:
    return {p for p in (cache / "offline").glob("offline-*") if p.is_dir()}


def _stop(script: str, args: list[str], sig: int, ready, tmp_path: Path, clearml_cache_dir: Path,
          slow: tuple[str, str, float] | None = None, timeout: float = 240) -> dict:
    """Start ``script`` (with ``slow`` = (module, function, seconds) slowed down), send ``sig`` once ``ready()``
    holds or the slowed function has been called, and return how it ended."""
    marker = tmp_path / "slowed-was-called"
    env = _env()
    if slow:
        site = tmp_path / "slowed-site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(_SLOWED)
        env.update(AUDIOCLF_TEST_SLOWED=f"{slow[0]}|{slow[1]}|{slow[2]}|{marker}",
                   PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    before = _sessions(clearml_cache_dir)
    process = subprocess.Popen([sys.executable, str(REPO / script), *args], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_terminal_sigint)
    deadline = time.monotonic() + timeout
    while process.poll() is None and not (marker.exists() if slow else ready()) and time.monotonic() < deadline:
        time.sleep(0.05)
    if slow:  # the slowed call is under way: wait for the other condition too (e.g. some files written)
        while process.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert process.poll() is None, f"{script} ended before the signal:\n{process.communicate()[1][-3000:]}"
    children = psutil.Process(process.pid).children(recursive=True)
    sent = time.monotonic()
    process.send_signal(sig)
    try:
        stdout, stderr = process.communicate(timeout=BOUND_S * 3)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"{script} still running {BOUND_S * 3:.0f} s after {signal.Signals(sig).name}:\n{stderr[-3000:]}")
    elapsed = time.monotonic() - sent
    _, alive = psutil.wait_procs(children, timeout=5)
    return {"code": process.returncode, "stdout": stdout, "stderr": stderr, "elapsed": elapsed,
            "children": children, "alive": [p for p in alive if p.status() != psutil.STATUS_ZOMBIE],
            "sessions": _sessions(clearml_cache_dir) - before}


def _assert_stopped(ended: dict, sig_name: str, stage: str, *said: str) -> dict:
    """Exit status, one line (no traceback), within the bound, no worker left; returns the session's status."""
    sig, code = SIGNALS[sig_name]
    err = ended["stderr"]
    assert ended["code"] == code, f"exit status {ended['code']}, expected {code}:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    how = "Ctrl-C (SIGINT)" if sig == signal.SIGINT else sig_name
    lines = [line for line in err.splitlines() if line.startswith(f"interrupted: {stage} stopped by {how}")]
    assert len(lines) == 1, err[-3000:]
    for phrase in said:
        assert phrase in lines[0], (phrase, lines[0])
    assert ended["elapsed"] < BOUND_S, f"took {ended['elapsed']:.1f} s to stop"
    assert not ended["alive"], f"worker processes left running: {ended['alive']}"
    (session,) = ended["sessions"]
    status = json.loads((session / SESSION_STATUS_FILE).read_text())
    assert status == {"status": "stopped", "reason": f"stopped by {how}"}, status
    return status


def _temporary_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if atomic.is_temporary(p)] if folder.exists() else []


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A raw and a features dataset of CLIPS generated clips and a tiny model, offline."""
    out = tmp_path_factory.mktemp("signals") / "outputs"
    common = ["--offline", "--output-dir", str(out)]
    raw = get_data.main(["--num-clips", str(CLIPS), "--data-seed", "3", "--workers", "1"] + common)
    feats = preprocessing.main(["--dataset-id", raw["dataset_id"], "--device", "cpu", "--workers", "1"] + common)
    model = training.main(["--dataset-id", feats["dataset_id"], "--epochs", "1", "--width", "4", "--batch-size", "8",
                           "--device", "cpu"] + common)
    return {"out": out, "raw": raw["dataset_id"], "features": feats["dataset_id"], "model": model["model_path"]}


def _copy_store(made, tmp_path: Path) -> Path:
    import shutil

    out = tmp_path / "outputs"
    for dataset_id in (made["raw"], made["features"]):
        shutil.copytree(made["out"] / "datasets" / dataset_id, out / "datasets" / dataset_id)
    return out


# ----------------------------------------------------------------------------- the stages
@pytest.mark.parametrize("sig_name", SIGNALS)
def test_get_data_stops_mid_generation_with_its_worker_processes(sig_name, tmp_path, clearml_cache_dir):
    out = tmp_path / "outputs"
    args = ["--num-clips", "200", "--data-seed", "8", "--workers", "2", "--output-dir", str(out)]
    staged = lambda: sum(1 for _ in (out / "staging").rglob("*.wav")) >= 4  # noqa: E731
    ended = _stop("get_data.py", args, SIGNALS[sig_name][0], staged, tmp_path, clearml_cache_dir,
                  slow=("audioclf.synthetic", "_render", 0.2))
    assert len(ended["children"]) >= 2, "the clips were expected to be rendered by a pool of 2 processes"
    _assert_stopped(ended, sig_name, "get_data", "kept and reused", "rerun the same command")
    store = LocalStore(out / "datasets")
    assert store.list_ids() == [] and not list((out / "datasets").glob(".draft-*")), "no dataset, not even half"
    assert not _temporary_files(out), _temporary_files(out)
    clips = list((out / "staging").rglob("*.wav"))
    assert clips, "the clips made so far are kept"
    for clip in clips:
        assert sf.info(clip).frames > 0  # every file under its final name is whole


@pytest.mark.parametrize("sig_name", SIGNALS)
def test_preprocessing_stops_mid_extraction_and_keeps_what_it_computed(sig_name, made, tmp_path, clearml_cache_dir):
    out = _copy_store(made, tmp_path)
    args = ["--dataset-id", made["raw"], "--device", "cpu", "--workers", "2", "--batch-size", "2",
            "--output-dir", str(out)]
    computed = lambda: sum(1 for p in (out / "staging").rglob("*.npy") if not atomic.is_temporary(p)) >= 3  # noqa
    ended = _stop("preprocessing.py", args, SIGNALS[sig_name][0], computed, tmp_path, clearml_cache_dir,
                  slow=("audioclf.atomic", "save_npy", 0.1))
    _assert_stopped(ended, sig_name, "preprocessing", "spectrograms computed so far", "rerun the same command")
    assert sorted(LocalStore(out / "datasets").list_ids()) == sorted([made["raw"], made["features"]])
    assert not _temporary_files(out), _temporary_files(out)
    kept = list((out / "staging").rglob("*.npy"))
    assert 3 <= len(kept) < CLIPS
    for path in kept:
        assert np.load(path).dtype == np.float16


@pytest.mark.parametrize("sig_name", SIGNALS)
def test_training_stops_between_batches_and_names_the_checkpoint_to_resume_from(sig_name, made, tmp_path,
                                                                                clearml_cache_dir):
    out = _copy_store(made, tmp_path)
    args = ["--dataset-id", made["features"], "--epochs", "400", "--width", "4", "--batch-size", "8",
            "--device", "cpu", "--output-dir", str(out)]
    checkpoint = lambda: any((out / "runs").glob("training-*/checkpoint.pt"))  # noqa: E731
    ended = _stop("training.py", args, SIGNALS[sig_name][0], checkpoint, tmp_path, clearml_cache_dir)
    (path,) = (out / "runs").glob("training-*/checkpoint.pt")
    _assert_stopped(ended, sig_name, "training", f"--resume {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["epoch"] >= 1
    assert not (path.parent / "model.pt").exists() and not (path.parent / "metrics.json").exists()
    assert not _temporary_files(out), _temporary_files(out)


# ----------------------------------------------------------------------------- the pipeline, the search, predict.py
def test_the_offline_pipeline_stops_in_its_step_and_says_where_it_was(tmp_path, clearml_cache_dir):
    out = tmp_path / "outputs"
    args = ["--offline", "--num-clips", "200", "--seed", "9", "--epochs", "1", "--width", "4", "--device", "cpu",
            "--get-data-args", "--workers 2", "--output-dir", str(out)]
    staged = lambda: sum(1 for _ in (out / "staging").rglob("*.wav")) >= 4  # noqa: E731
    ended = _stop("pipeline.py", args, signal.SIGTERM, staged, tmp_path, clearml_cache_dir,
                  slow=("audioclf.synthetic", "_render", 0.2))
    _assert_stopped(ended, "SIGTERM", "get_data", "rerun the same command")
    assert "interrupted: pipeline.py stopped; no step finished" in ended["stderr"]
    assert "=== pipeline step preprocessing ===" not in ended["stdout"]
    assert LocalStore(out / "datasets").list_ids() == []


def test_the_offline_search_stops_in_its_trial_and_starts_no_other(made, tmp_path, clearml_cache_dir):
    out = _copy_store(made, tmp_path)
    args = ["--offline", "--dataset-id", made["features"], "--trials", "3", "--epochs", "400", "--no-prune",
            "--training-args", "--width 4 --device cpu", "--batch-size", "8", "--output-dir", str(out)]
    checkpoint = lambda: any((out / "runs").glob("training-*/checkpoint.pt"))  # noqa: E731
    ended = _stop("optimize.py", args, signal.SIGTERM, checkpoint, tmp_path, clearml_cache_dir)
    _assert_stopped(ended, "SIGTERM", "training", "--resume")
    assert "interrupted: the search stopped after 0 finished trial(s)" in ended["stderr"]
    assert len(list((out / "runs").glob("training-*"))) == 1, "no second trial was started"
    assert not list((out / "runs").glob("optimize-*"))


def test_predict_stops_mid_file_and_writes_no_results(made, tmp_path, clearml_cache_dir):
    rng = np.random.default_rng(0)
    files = []
    for i in range(6):
        files.append(tmp_path / f"clip{i}.wav")
        sf.write(files[-1], rng.normal(0, 0.1, 16000 * 3).astype(np.float32), 16000)
    output = tmp_path / "predictions.csv"
    args = [made["model"], *map(str, files), "--format", "csv", "--output", str(output), "--device", "cpu"]
    ended = _stop("predict.py", args, signal.SIGTERM, lambda: True, tmp_path, clearml_cache_dir,
                  slow=("audioclf.inference", "Classifier.classify_file", 1.0))
    assert ended["code"] == 143 and "Traceback" not in ended["stderr"], ended["stderr"][-3000:]
    (line,) = [x for x in ended["stderr"].splitlines() if x.startswith("interrupted:")]
    assert line.startswith("interrupted: predict.py stopped by SIGTERM; nothing was written"), line
    assert ended["elapsed"] < BOUND_S
    assert not output.exists() and not _temporary_files(tmp_path)
    assert not ended["sessions"], "predict.py records no ClearML session"


# ----------------------------------------------------------------------------- the worker pool itself
def test_a_stopped_worker_pool_ends_busy_and_idle_workers_at_once_and_removes_their_temporaries(tmp_path):
    """A stop (any exception) in a worker_pool block kills its workers wherever they are, one in a long job and
    one waiting for work, and removes the temporary files killed writers leave; the exception goes on."""
    from audioclf import stopping

    left = atomic.temporary_name(tmp_path / "fold1" / "clip.wav")
    left.parent.mkdir()
    left.write_bytes(b"half a clip")
    kept = tmp_path / "fold1" / "whole.wav"
    kept.write_bytes(b"a whole clip")
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with stopping.worker_pool(2, writes_in=tmp_path) as pool:
            workers = {pid for pid in pool.starmap(os.getpid, [()] * 8)}
            pool.apply_async(time.sleep, (120,))
            time.sleep(1.0)
            raise KeyboardInterrupt
    assert time.monotonic() - started < BOUND_S
    assert not [pid for pid in workers if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE], "a worker outlived its pool"
    assert not left.exists() and kept.read_bytes() == b"a whole clip"

