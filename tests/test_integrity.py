"""Data integrity under faults: damaged files, full disks, bad arguments, kills and two runs at once.

Every case of issue 13 is here, run as a user would run the stages (in-process where the exit status and
stderr tell everything, as subprocesses for kills, Ctrl-C and concurrency), against the offline local store.
A user error must end in one line on stderr naming the file or flag and the fix, never in a traceback.

    python -m pytest -q tests/test_integrity.py
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import get_data
import predict
import preprocessing
import training
from audioclf import atomic, locks, store as store_module
from audioclf.errors import UserError
from audioclf.models import AudioClassifier, save_model
from audioclf.store import DATASET_FILE, DatasetCorrupt, LocalStore, sha256_of

REPO = Path(__file__).resolve().parents[1]
CLIPS = 30


# ----------------------------------------------------------------------------- helpers
def run_script(script: str, args: list[str], env_extra: dict | None = None, timeout: float = 300,
               **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True, cwd=REPO,
                          env=script_env(env_extra), timeout=timeout, **popen)


def script_env(extra: dict | None = None) -> dict:
    # Not CLEARML_PROC_MASTER_ID: the SDK sets it in this process once a test ran a stage here, and a child
    # that inherits it takes itself for a subprocess of that task (Task.init then returns a stub).
    env = {k: v for k, v in os.environ.items() if k not in ("CLEARML_PROC_MASTER_ID", "TRAINS_PROC_MASTER_ID")}
    env.update(CLEARML_OFFLINE_MODE="1", TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def stage_exit(capsys, main, argv) -> tuple[int, str]:
    """Run a stage's main in-process and return (exit status, stderr); a traceback would raise here."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    return stopped.value.code, capsys.readouterr().err


def assert_one_line_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    # (a progress bar may share the line: the message starts at "error:")
    lines = [line[line.index("error:"):] for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def contents(dataset) -> dict[str, str]:
    """relpath -> sha256 of every file of a dataset, read from disk."""
    return {rel: sha256_of(dataset.path(rel)) for rel in dataset.list_files()}


def assert_complete(store: LocalStore, dataset_id: str) -> None:
    """Every listed file is there with its size and sha256, and features.csv lists only files it has."""
    dataset = store.get(dataset_id, verify=True)
    if "features.csv" in dataset.list_files():
        listed = set(dataset.read_table("features.csv")["feature_path"])
        assert listed == set(dataset.list_files("features/*")), "features.csv and the files disagree"


def tamper(store: LocalStore, dataset_id: str, relpath: str, payload: bytes, register: bool) -> Path:
    """Rewrite one stored file. ``register``: also record its new size and sha256 in dataset.json, as if the
    damaged bytes had been registered; otherwise the store sees a file that changed after registration."""
    path = store.get(dataset_id, verify=False).path(relpath)
    path.write_bytes(payload)
    if register:
        meta = store.root / dataset_id / DATASET_FILE
        info = json.loads(meta.read_text())
        info["files"][relpath].update(size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
        meta.write_text(json.dumps(info))
    return path


def copy_dataset(store: LocalStore, dataset_id: str) -> str:
    """An independent copy of a finalized dataset under a new id (so one test's damage stays its own)."""
    new_id = f"local-{os.urandom(16).hex()}"
    shutil.copytree(store.root / dataset_id, store.root / new_id)
    meta = store.root / new_id / DATASET_FILE
    info = json.loads(meta.read_text())
    info["id"] = new_id
    for entry in info["files"].values():
        if entry["dataset_id"] == dataset_id:
            entry["dataset_id"] = new_id
    meta.write_text(json.dumps(info))
    return new_id


def fresh_outputs(made, tmp_path: Path) -> Path:
    """An --output-dir holding only the module's raw and features datasets (not other tests' damaged copies)."""
    out = tmp_path / "outputs"
    for dataset_id in (made["raw"], made["features"]):
        shutil.copytree(made["store"].root / dataset_id, out / "datasets" / dataset_id)
    return out


@contextlib.contextmanager
def read_only(folder: Path):
    """A folder nobody can write into, root included (chattr +i), or skip when the file system cannot."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            pytest.skip("needs chattr +i to make a folder read-only for root")
        try:
            yield folder
        finally:
            subprocess.run(["chattr", "-i", str(folder)])
    else:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A raw and a features dataset of CLIPS generated clips, offline, and a trained model."""
    out = tmp_path_factory.mktemp("integrity") / "outputs"
    common = ["--offline", "--output-dir", str(out)]
    raw = get_data.main(["--num-clips", str(CLIPS), "--data-seed", "2", "--workers", "1"] + common)
    feats = preprocessing.main(["--dataset-id", raw["dataset_id"], "--device", "cpu", "--workers", "1"] + common)
    return {"out": out, "common": common, "store": LocalStore(out / "datasets"), "raw": raw["dataset_id"],
            "features": feats["dataset_id"]}


def train_argv(made, dataset_id: str, *extra: str) -> list[str]:
    return ["--dataset-id", dataset_id, "--epochs", "1", "--batch-size", "8", "--width", "4", "--device", "cpu",
            *extra, *made["common"]]


# ----------------------------------------------------------------------------- 2. corrupt features never train
def test_eight_bytes_of_ff_in_a_feature_file_fail_its_sha256(made, capsys):
    store = made["store"]
    victim_id = copy_dataset(store, made["features"])
    rel = store.get(victim_id).list_files("features/*")[0]
    path = store.get(victim_id).path(rel)
    data = bytearray(path.read_bytes())
    data[-64:-56] = b"\xff" * 8
    path.write_bytes(bytes(data))  # same size: only the sha256 tells
    code, err = stage_exit(capsys, training.main, train_argv(made, victim_id, "--verify"))
    assert code == 2
    assert_one_line_error(err, str(path), "sha256", "preprocessing.py")


def test_nan_in_a_feature_file_is_refused_even_without_verify(made, capsys, monkeypatch):
    monkeypatch.setenv(store_module.VERIFY_ENV, "0")
    store = made["store"]
    victim_id = copy_dataset(store, made["features"])
    rel = store.get(victim_id).list_files("features/*")[3]
    path = store.get(victim_id).path(rel)
    data = bytearray(path.read_bytes())
    data[-64:-56] = b"\xff" * 8  # float16 0xffff is NaN
    path.write_bytes(bytes(data))
    code, err = stage_exit(capsys, training.main, train_argv(made, victim_id))
    assert code == 2
    assert_one_line_error(err, str(path), "NaN or Inf", "preprocessing.py")


def test_a_registered_nan_clip_is_refused_naming_the_clip(made, capsys):
    store = made["store"]
    victim_id = copy_dataset(store, made["features"])
    rel = store.get(victim_id).list_files("features/*")[5]
    array = np.load(store.get(victim_id).path(rel))
    array[:] = np.nan
    buffer = __import__("io").BytesIO()
    np.save(buffer, array)
    path = tamper(store, victim_id, rel, buffer.getvalue(), register=True)
    code, err = stage_exit(capsys, training.main, train_argv(made, victim_id, "--verify"))
    assert code == 2
    assert_one_line_error(err, str(path), rel, "NaN or Inf")


def test_a_wrong_sha256_in_dataset_json_is_refused(made):
    store = made["store"]
    victim_id = copy_dataset(store, made["features"])
    meta = store.root / victim_id / DATASET_FILE
    info = json.loads(meta.read_text())
    rel = sorted(info["files"])[-1]
    info["files"][rel]["sha256"] = "0" * 64
    meta.write_text(json.dumps(info))
    store.get(victim_id, verify=False)  # sizes match
    with pytest.raises(DatasetCorrupt, match="sha256") as found:
        store.get(victim_id, verify=True)
    assert rel in str(found.value) and "rerun" in str(found.value)


def test_training_that_diverges_stops_and_saves_no_model(made, capsys, monkeypatch):
    def diverged(self, spec):  # a forward pass whose loss is NaN, as after an exploding update
        head = self.backbone.head[-1]
        return torch.full((spec.shape[0], head.out_features), float("nan")) + 0 * head.weight.sum()

    monkeypatch.setattr(AudioClassifier, "forward", diverged)
    training_refused(made, capsys, "diverged", "--lr")


def training_refused(made, capsys, *words) -> list[Path]:
    """Train on the features: one-line error with ``words``, exit 2, no model or metrics; the new run folders."""
    runs = made["out"] / "runs"
    before = set(runs.glob("training-*"))
    code, err = stage_exit(capsys, training.main, train_argv(made, made["features"]))
    assert code == 2
    assert_one_line_error(err, *words)
    new = sorted(set(runs.glob("training-*")) - before)
    for run in new:
        assert not (run / "model.pt").exists() and not (run / "metrics.json").exists()
    return new


def test_a_model_with_non_finite_weights_is_neither_saved_nor_predicted_with(made, tmp_path, capsys):
    model = AudioClassifier("cnn", 3, width=4)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(UserError, match="non-finite"):
        save_model(tmp_path / "model.pt", model, ["a", "b", "c"], {}, {}, {})
    assert not (tmp_path / "model.pt").exists() and not list(tmp_path.iterdir())
    bundle_path = tmp_path / "nan.pt"  # as a damaged or hand-made file would hold it
    good = AudioClassifier("cnn", 3, width=4)
    state = {k: v.clone() for k, v in good.state_dict().items()}
    state[next(iter(k for k in state if k.endswith("weight")))].fill_(float("inf"))
    torch.save({"format": "audioclf.model/1", "arch": "cnn", "model_args": good.model_args, "num_classes": 3,
                "class_names": ["a", "b", "c"], "feature_config": {}, "train_config": {}, "metrics": {},
                "state_dict": state}, bundle_path)
    clip = tmp_path / "clip.wav"
    import soundfile as sf

    sf.write(clip, np.zeros(8000, dtype=np.float32), 8000)
    code, err = stage_exit(capsys, predict.main, [str(bundle_path), str(clip), "--offline"])
    assert code == 2
    assert_one_line_error(err, str(bundle_path), "non-finite", "retrain")


# ----------------------------------------------------------------------------- 3. full disk
def _disk_full_after(limit: int):
    """A replacement for a writer: writes ``limit`` bytes of the payload, then fails as a full disk does."""
    def write(fh, data):
        fh.write(data[:limit])
        raise OSError(errno.ENOSPC, "No space left on device")
    return write


def test_full_disk_while_saving_the_model_leaves_no_half_model(made, capsys, monkeypatch):
    real_save = torch.save

    def full_disk_save(obj, f, *a, **k):
        if "model" in Path(str(f)).name:
            with open(f, "wb") as fh:
                _disk_full_after(1000)(fh, b"x" * 5000)
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full_disk_save)
    (run,) = training_refused(made, capsys, "no space left on device", "model.pt")
    assert not [p for p in run.rglob("*") if atomic.is_temporary(p)], "no temporary file is left behind"


def test_full_disk_in_get_data_says_so_and_names_the_folder(tmp_path, capsys, monkeypatch):
    def full_disk_link(src, dst, link):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "_place", full_disk_link)
    out = tmp_path / "outputs"
    code, err = stage_exit(capsys, get_data.main, ["--num-clips", "10", "--workers", "1", "--offline",
                                                    "--output-dir", str(out)])
    assert code == 2
    assert_one_line_error(err, "no space left on device", str(out.resolve()))
    assert LocalStore(out / "datasets").list_ids() == [] and not list((out / "datasets").glob(".draft-*"))


def test_full_disk_in_preprocessing_names_the_file(made, capsys, monkeypatch):
    def full_disk_save(path, array, fsync=False):
        with atomic.atomic_path(path, fsync=fsync) as tmp:
            with open(tmp, "wb") as fh:
                _disk_full_after(100)(fh, b"y" * 1000)

    monkeypatch.setattr(atomic, "save_npy", full_disk_save)
    code, err = stage_exit(capsys, preprocessing.main, ["--dataset-id", made["raw"], "--device", "cpu",
                                                         "--workers", "1", "--n-mels", "40"] + made["common"])
    assert code == 2
    assert_one_line_error(err, "no space left on device", ".npy")


# ----------------------------------------------------------------------------- 5. damaged store files
def test_a_truncated_or_empty_feature_file_is_named(made, capsys):
    store = made["store"]
    for payload in (None, b""):  # truncated, then 0 bytes
        victim_id = copy_dataset(store, made["features"])
        rel = store.get(victim_id).list_files("features/*")[1]
        path = store.get(victim_id).path(rel)
        path.write_bytes(path.read_bytes()[:70] if payload is None else payload)
        code, err = stage_exit(capsys, training.main, train_argv(made, victim_id))
        assert code == 2
        assert_one_line_error(err, str(path), "bytes", "rerun")


def test_a_registered_truncated_feature_file_is_named_when_loaded(made, capsys):
    store = made["store"]
    for payload in (b"\x93NUMPY\x01\x00v\x00{'descr'", b""):
        victim_id = copy_dataset(store, made["features"])
        rel = store.get(victim_id).list_files("features/*")[2]
        path = tamper(store, victim_id, rel, payload, register=True)
        code, err = stage_exit(capsys, training.main, train_argv(made, victim_id))
        assert code == 2
        assert_one_line_error(err, str(path), "cannot be read", "preprocessing.py")


def test_damaged_dataset_json_is_named(made, capsys):
    store = made["store"]
    for damage in ("truncate", "drop files"):
        victim_id = copy_dataset(store, made["features"])
        meta = store.root / victim_id / DATASET_FILE
        if damage == "truncate":
            meta.write_text(meta.read_text()[:200])
        else:
            info = json.loads(meta.read_text())
            del info["files"]
            meta.write_text(json.dumps(info))
        code, err = stage_exit(capsys, training.main, train_argv(made, victim_id))
        assert code == 2
        assert_one_line_error(err, str(meta), "rerun the stage that made it")


def test_a_truncated_features_csv_is_named(made, capsys):
    store = made["store"]
    victim_id = copy_dataset(store, made["features"])
    lines = store.get(victim_id).path("features.csv").read_text().splitlines()
    half = len(lines) // 2
    cut = "\n".join(lines[:half] + [lines[half].split(",")[0]]) + "\n"  # cut off mid-row, after its first field
    tamper(store, victim_id, "features.csv", cut.encode(), register=True)
    code, err = stage_exit(capsys, training.main, train_argv(made, victim_id))
    assert code == 2
    assert_one_line_error(err, "features.csv", victim_id, "truncated or damaged")


def test_a_label_outside_the_classes_is_named(made, capsys):
    store = made["store"]
    victim_id = copy_dataset(store, made["features"])
    index = store.get(victim_id).read_table("features.csv")
    index.loc[0, "label"] = 99
    tamper(store, victim_id, "features.csv", index.to_csv(index=False).encode(), register=True)
    code, err = stage_exit(capsys, training.main, train_argv(made, victim_id))
    assert code == 2
    assert_one_line_error(err, "features.csv", "[99]", "classes")


# ----------------------------------------------------------------------------- 6. bad arguments
@pytest.mark.parametrize("script,argv,flag", [
    ("training.py", ["--dataset-id", "x", "--batch-size", "0"], "--batch-size"),
    ("training.py", ["--dataset-id", "x", "--batch-size", "-5"], "--batch-size"),
    ("training.py", ["--dataset-id", "x", "--epochs", "0"], "--epochs"),
    ("training.py", ["--dataset-id", "x", "--lr", "nan"], "--lr"),
    ("preprocessing.py", ["--dataset-id", "x", "--batch-size", "0"], "--batch-size"),
    ("preprocessing.py", ["--dataset-id", "x", "--workers", "0"], "--workers"),
])
def test_bad_numbers_are_argparse_errors_naming_the_flag(script, argv, flag, capsys):
    main = {"training.py": training.main, "preprocessing.py": preprocessing.main}[script]
    code, err = stage_exit(capsys, main, argv + ["--offline"])
    assert code == 2 and "Traceback" not in err
    assert flag in err.splitlines()[-1]


def test_a_raw_id_given_to_training_says_to_run_preprocessing(made, capsys):
    code, err = stage_exit(capsys, training.main, train_argv(made, made["raw"]))
    assert code == 2
    assert_one_line_error(err, made["raw"], "raw dataset", f"preprocessing.py --dataset-id {made['raw']}")


def test_a_features_id_given_to_preprocessing_is_refused(made, capsys):
    code, err = stage_exit(capsys, preprocessing.main, ["--dataset-id", made["features"], "--device", "cpu"]
                           + made["common"])
    assert code == 2
    assert_one_line_error(err, made["features"], "features dataset", made["raw"])


def test_an_unknown_id_names_the_output_dir_option(made, capsys):
    code, err = stage_exit(capsys, training.main, train_argv(made, "local-0123"))
    assert code == 2
    assert_one_line_error(err, "local-0123", "--output-dir")
    assert "--store" not in err


def test_a_read_only_output_dir_is_one_line(tmp_path):
    with read_only(tmp_path / "ro") as folder:
        done = run_script("get_data.py", ["--num-clips", "10", "--workers", "1", "--output-dir", str(folder)])
    assert done.returncode == 2, done.stderr
    assert_one_line_error(done.stderr, str(folder), "--output-dir")


# ----------------------------------------------------------------------------- 7. leftovers
def test_a_failed_run_leaves_no_empty_run_folder(made, capsys):
    runs = made["out"] / "runs"
    before = set(runs.iterdir())
    stage_exit(capsys, training.main, train_argv(made, "local-does-not-exist"))
    stage_exit(capsys, preprocessing.main, ["--dataset-id", "local-nope", "--device", "cpu"] + made["common"])
    assert set(runs.iterdir()) == before


def test_an_abandoned_draft_is_removed_and_a_live_one_kept(tmp_path):
    store = LocalStore(tmp_path / "store")
    (store.root / ".draft-local-dead" / "files").mkdir(parents=True)  # its builder is gone: no lock held
    (store.root / ".draft-local-dead" / "files" / "half.wav").write_bytes(b"half")
    live = store.create(name="live", project="p")
    again = LocalStore(store.root)
    assert not (store.root / ".draft-local-dead").exists()
    assert live.folder.is_dir(), "a draft whose builder still runs is left alone"
    assert again.list_ids() == []
    live.discard()


def test_a_stray_temporary_file_in_the_work_folder_is_not_registered(made, tmp_path):
    out = fresh_outputs(made, tmp_path)
    store = LocalStore(out / "datasets")
    raw = store.get(made["raw"])
    table = raw.read_table("metadata.csv")
    from audioclf.features import FeatureConfig
    from audioclf.metadata import feature_path

    work = out / "staging" / f"features-{raw.id}-{FeatureConfig().fingerprint()}"
    planted = [work / (feature_path(table["filepath"][0]) + ".tmp"), work / "features" / "unlisted.npy",
               work / "features" / "audio" / "stray.txt"]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a spectrogram")
    result = preprocessing.main(["--dataset-id", raw.id, "--device", "cpu", "--workers", "1", "--offline",
                                 "--output-dir", str(out)])
    dataset = store.get(result["dataset_id"], verify=True)
    assert set(dataset.list_files("features/*")) == set(table["filepath"].map(feature_path))
    assert_complete(store, result["dataset_id"])
    assert not work.exists()


# ----------------------------------------------------------------------------- 1 and 4. two runs at once
# Runs a script with every feature file's write slowed down, so that a signal sent from outside after the
# N-th file reaches the run mid-work on any machine (30 small clips otherwise take half a second).
_SLOW_FEATURE_WRITES = """
import runpy, sys, time
from audioclf import atomic
_save = atomic.save_npy
def _slow_save(*args, **kwargs):
    time.sleep(0.1)
    return _save(*args, **kwargs)
atomic.save_npy = _slow_save
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _default_sigint() -> None:
    # A test run started in the background of a non-interactive shell (`make test &`) inherits SIGINT
    # ignored, and Python then never turns Ctrl-C into KeyboardInterrupt: give the child a terminal's default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(script: str, args: list[str], slow_features: bool = False) -> subprocess.Popen:
    command = [sys.executable, *(["-c", _SLOW_FEATURE_WRITES] if slow_features else []), str(REPO / script), *args]
    return subprocess.Popen(command, cwd=REPO, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)


@pytest.mark.parametrize("delay", [0.0, 1.0])
def test_two_preprocessing_runs_of_one_raw_id_both_end_complete(made, tmp_path, delay):
    out = fresh_outputs(made, tmp_path)
    args = ["--dataset-id", made["raw"], "--device", "cpu", "--workers", "1", "--output-dir", str(out)]
    first = _start("preprocessing.py", args)
    time.sleep(delay)
    second = _start("preprocessing.py", args)
    results = [p.communicate(timeout=300) for p in (first, second)]
    for process, (stdout, stderr) in zip((first, second), results):
        assert process.returncode == 0, stderr
    store = LocalStore(out / "datasets")
    made_ids = [line.split()[3] for stdout, _ in results for line in stdout.splitlines()
                if line.startswith("features dataset id:")]
    assert len(made_ids) == 2 and made_ids[0] != made_ids[1]
    for dataset_id in made_ids:
        assert_complete(store, dataset_id)
        assert len(store.get(dataset_id).list_files("features/*")) == CLIPS
    assert contents(store.get(made_ids[0])) .keys() == contents(store.get(made_ids[1])).keys()
    assert not list((out / "staging").glob("features-*"))


def test_two_get_data_runs_into_one_output_dir_both_end_complete(tmp_path):
    out = tmp_path / "outputs"
    args = ["--num-clips", "12", "--workers", "1", "--output-dir", str(out)]
    runs = [_start("get_data.py", args) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in runs]
    for process, (stdout, stderr) in zip(runs, results):
        assert process.returncode == 0, stderr
    store = LocalStore(out / "datasets")
    ids = store.list_ids()
    assert len(ids) == 2
    for dataset_id in ids:
        assert_complete(store, dataset_id)
    assert contents(store.get(ids[0])) == contents(store.get(ids[1]))  # the same data, each complete


# ----------------------------------------------------------------------------- kills and Ctrl-C
def _stop_when(script: str, args: list[str], ready, sig: int, timeout: float = 240) -> subprocess.CompletedProcess:
    """Start ``script`` (preprocessing with slowed feature writes), send ``sig`` as soon as ``ready()`` holds
    (polled), return how it ended."""
    process = _start(script, args, slow_features=script == "preprocessing.py")
    deadline = time.monotonic() + timeout
    while process.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    if process.poll() is None:
        process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _files(folder: Path, pattern: str) -> int:
    return sum(1 for p in folder.rglob(pattern) if not atomic.is_temporary(p)) if folder.is_dir() else 0


def _new_dataset(store: LocalStore, before: set[str]) -> str:
    (new_id,) = set(store.list_ids()) - before
    return new_id


def test_ctrl_c_stops_with_one_line_and_the_rerun_matches_an_uninterrupted_run(made, tmp_path):
    out = fresh_outputs(made, tmp_path)
    args = ["--dataset-id", made["raw"], "--device", "cpu", "--workers", "1", "--batch-size", "2",
            "--output-dir", str(out)]
    stopped = _stop_when("preprocessing.py", args, lambda: _files(out / "staging", "*.npy") >= 4, signal.SIGINT)
    assert stopped.returncode == 130, f"the run was expected to be interrupted mid-way: {stopped.stderr}"
    assert "Traceback" not in stopped.stderr and "interrupted: preprocessing stopped" in stopped.stderr
    store = LocalStore(out / "datasets")
    before = set(store.list_ids())
    assert len(before) == 2, "no features dataset became visible"
    rerun = run_script("preprocessing.py", args)
    assert rerun.returncode == 0, rerun.stderr
    assert 0 < int(rerun.stdout.count("features dataset id"))
    assert contents(store.get(_new_dataset(store, before))) == contents(made["store"].get(made["features"]))


@pytest.mark.parametrize("script", ["get_data.py", "preprocessing.py"])
def test_after_a_sigkill_mid_work_the_store_is_whole_and_the_rerun_matches(made, tmp_path, script):
    out = tmp_path / "outputs"
    if script == "get_data.py":
        args = ["--num-clips", str(CLIPS), "--seed", "2", "--workers", "1", "--output-dir", str(out)]
        reference, pattern = made["raw"], "*.wav"
    else:
        out = fresh_outputs(made, tmp_path)
        args = ["--dataset-id", made["raw"], "--device", "cpu", "--workers", "1", "--batch-size", "2",
                "--output-dir", str(out)]
        reference, pattern = made["features"], "*.npy"
    killed = _stop_when(script, args, lambda: _files(out / "staging", pattern) >= 5, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL, "the run was expected to be killed mid-way"
    store = LocalStore(out / "datasets")
    for dataset_id in store.list_ids():
        assert_complete(store, dataset_id)
    before = set(store.list_ids())
    rerun = run_script(script, args)
    assert rerun.returncode == 0, rerun.stderr
    assert contents(store.get(_new_dataset(store, before))) == contents(made["store"].get(reference))
    assert not list((out / "staging").iterdir()), "the rerun cleaned its work folder"


def test_a_sigkill_while_a_dataset_is_built_leaves_no_dataset(tmp_path):
    root = tmp_path / "store"
    builder = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from audioclf.store import LocalStore
        source = Path({str(tmp_path / "src")!r})
        source.mkdir()
        for i in range(20):
            (source / f"{{i}}.wav").write_bytes(bytes(1000 + i))
        draft = LocalStore({str(root)!r}).create(name="half", project="p")
        draft.add_files(source, link=True)
        print("building", flush=True)
        time.sleep(120)
    """)
    process = subprocess.Popen([sys.executable, "-c", builder], cwd=REPO, env=script_env(), stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "building"
    assert list(root.glob(".draft-*")), "a draft is being built"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    store = LocalStore(root)
    assert store.list_ids() == [] and not list(root.glob(".draft-*")) and not list(root.glob("*.lock"))
