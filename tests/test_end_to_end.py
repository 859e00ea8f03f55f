"""The three stages and the pipeline on a tiny generated dataset, offline, asserting on what they write."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import get_data
import pipeline
import preprocessing
import training
from audioclf.models import load_model
from audioclf.store import LocalStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
import web_ui  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NUM_CLIPS = 100  # every fold holds every class from 100 clips up


def _session_events(session_dir: str) -> list[dict]:
    """All events of an offline ClearML session: metrics.jsonl holds one JSON array per line."""
    events = []
    for line in (Path(session_dir) / "metrics.jsonl").read_text().splitlines():
        if line.strip():
            events.extend(json.loads(line))
    return events


def _tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """Run get_data -> preprocessing -> training through their main() functions, as a user would."""
    out = tmp_path_factory.mktemp("outputs")
    common = ["--offline", "--output-dir", str(out)]
    raw = get_data.main(["--num-clips", str(NUM_CLIPS), "--data-seed", "3", "--workers", "1"] + common)
    store = LocalStore(out / "datasets")
    raw_digest_before = _tree_digest(store.root / raw["dataset_id"])
    feats = preprocessing.main(["--dataset-id", raw["dataset_id"], "--device", "cpu"] + common)
    train = training.main(["--dataset-id", feats["dataset_id"], "--epochs", "2", "--device", "cpu"] + common)
    return {"out": out, "store": store, "raw": raw, "features": feats, "training": train,
            "raw_digest_before": raw_digest_before}


def test_get_data_registers_the_raw_dataset(stages):
    raw = stages["raw"]
    dataset = stages["store"].get(raw["dataset_id"])
    table = dataset.read_table("metadata.csv")
    assert raw["dataset_id"].startswith("local-")
    assert len(table) == NUM_CLIPS == raw["num_clips"]
    assert list(table.columns[:4]) == ["filepath", "fold", "label", "class"]
    assert {"slice_file_name", "fsID", "salience", "classID"} <= set(table.columns)
    assert sorted(table["fold"].unique()) == list(range(1, 11))
    wavs = dataset.list_files("audio/fold*/*.wav")
    assert sorted(wavs) == sorted(table["filepath"])
    assert "metadata/UrbanSound8K.csv" in dataset.list_files()
    assert Path(raw["histogram"]).is_file()
    # The session holds the class histogram (a bar plot) and the metadata table artifact.
    plots = [e for e in _session_events(raw["session_dir"]) if e["type"] == "plot"]
    bars = [json.loads(e["plot_str"]) for e in plots if e["metric"] == "Class distribution"]
    assert bars and bars[0]["data"][0]["type"] == "bar"
    assert sum(sum(trace["y"]) for trace in bars[0]["data"]) == NUM_CLIPS
    task = json.loads((Path(raw["session_dir"]) / "task.json").read_text())
    assert "metadata" in [a["key"] for a in task["execution"]["artifacts"]]
    assert task["hyperparams"]["General"]["dataset_id"]["value"] == raw["dataset_id"]
    assert task["hyperparams"]["Args"]["num_clips"]["value"] == str(NUM_CLIPS)


def test_features_dataset_is_a_child_that_adds_only_spectrograms(stages):
    raw_id, feat_id = stages["raw"]["dataset_id"], stages["features"]["dataset_id"]
    store = stages["store"]
    child = store.get(feat_id)
    assert feat_id != raw_id
    assert child.parent_ids == [raw_id]
    added = child.list_files(added_only=True)
    assert not [f for f in added if f.endswith(".wav")], "the child must not hold copies of the audio"
    assert not list((store.root / feat_id).rglob("*.wav"))
    assert set(added) == {f"features/{Path(p).with_suffix('.npy').as_posix()}"
                          for p in store.get(raw_id).list_files("audio/*")} | {"features.csv", "features.json"}
    # The audio is inherited: it resolves into the parent's folder.
    some_wav = child.list_files("audio/*")[0]
    assert child.path(some_wav).is_relative_to(store.root / raw_id)
    info = child.read_json("features.json")
    assert info["raw_dataset_id"] == raw_id and info["dtype"] == "float16"
    spec = np.load(child.path(child.read_table("features.csv")["feature_path"][0]))
    assert spec.dtype == np.float16 and list(spec.shape) == info["shape"] == [64, 173]
    assert np.isfinite(spec).all()


def test_raw_dataset_is_never_modified(stages):
    raw_folder = stages["store"].root / stages["raw"]["dataset_id"]
    assert _tree_digest(raw_folder) == stages["raw_digest_before"]


def test_training_writes_metrics_model_and_confusion_matrix(stages):
    result = stages["training"]
    run_dir = Path(result["run_dir"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert metrics["test"] == result["test"]
    assert metrics["dataset_id"] == stages["features"]["dataset_id"]
    assert metrics["test_fold"] == 10 and metrics["val_fold"] == 9
    matrix = pd.read_csv(run_dir / "confusion_matrix.csv", index_col=0)
    assert matrix.shape == (10, 10) and int(matrix.to_numpy().sum()) == metrics["num_test"]
    assert (run_dir / "confusion_matrix.png").stat().st_size > 1000
    assert list(run_dir.glob("tensorboard/events.out.tfevents.*"))

    # The model file loads with weights_only=True and reproduces the reported test accuracy.
    bundle = torch.load(run_dir / "model.pt", weights_only=True)
    assert bundle["class_names"] == metrics["class_names"]
    assert bundle["feature_config"]["n_mels"] == 64
    model, _ = load_model(run_dir / "model.pt")
    child = stages["store"].get(stages["features"]["dataset_id"])
    index = child.read_table("features.csv")
    test = index[index["fold"] == 10]
    x = torch.stack([torch.from_numpy(np.load(child.path(p)).astype(np.float32)) for p in test["feature_path"]])
    with torch.no_grad():
        predicted = model(x).argmax(1).numpy()
    assert np.mean(predicted == test["label"].to_numpy()) == pytest.approx(metrics["test"]["accuracy"])


def test_training_session_holds_scalars_and_confusion_matrix(stages):
    events = _session_events(stages["training"]["session_dir"])
    scalars = {(e["metric"], e["variant"]) for e in events if e["type"] == "training_stats_scalar"}
    for metric in ("loss", "accuracy"):
        assert {(metric, "train"), (metric, "val")} <= scalars
    assert {("f1_macro", "val"), ("lr", "lr"), ("Summary", "test_accuracy"), ("Summary", "test_f1_macro")} <= scalars
    # The web UI's compare view selects 8 series at first: the run's every series, the learning rate included.
    assert set(web_ui.compare_scalars_shown(scalars)) == scalars, web_ui.compare_scalars_order(scalars)
    summary = {e["variant"]: e["value"] for e in events if e.get("metric") == "Summary"}
    assert summary["test_accuracy"] == round(stages["training"]["test"]["accuracy"], 4)
    heatmaps = [json.loads(e["plot_str"]) for e in events
                if e["type"] == "plot" and e["metric"] == "Confusion matrix"]
    assert heatmaps, "no confusion matrix in the offline session"
    trace = heatmaps[0]["data"][0]
    assert trace["type"] == "heatmap"
    assert trace["x"] == stages["training"]["class_names"]
    assert sum(map(sum, trace["z"])) == stages["training"]["num_test"]
    task = json.loads((Path(stages["training"]["session_dir"]) / "task.json").read_text())
    assert {"model", "metrics"} <= {a["key"] for a in task["execution"]["artifacts"]}


def test_each_session_says_what_its_run_is(stages):
    """Names a table tells apart (the stage, the model and test fold, what was set), the folds used in Args/, the
    datasets named after their data, and nothing local in the metrics that go to a server."""
    tasks = {stage: json.loads((Path(stages[stage]["session_dir"]) / "task.json").read_text())
             for stage in ("raw", "features", "training")}
    assert tasks["raw"]["name"] == f"get_data synthetic num-clips={NUM_CLIPS} data-seed=3"
    assert tasks["features"]["name"] == "preprocessing"
    assert tasks["training"]["name"] == "training cnn fold 10 epochs=2"
    assert {"cnn", "fold 10"} <= set(tasks["training"]["tags"])
    args = {k: v["value"] for k, v in tasks["training"]["hyperparams"]["Args"].items()}
    assert (args["test_fold"], args["val_fold"]) == ("10", "9"), "the folds it used, not empty"
    raw = stages["store"].get(stages["raw"]["dataset_id"])
    assert raw.name == f"UrbanSound8K raw (synthetic, {NUM_CLIPS} clips, seed 3)"
    assert stages["store"].get(stages["features"]["dataset_id"]).name == \
        f"UrbanSound8K features (synthetic, {NUM_CLIPS} clips, seed 3)"
    (metrics,) = [a for a in tasks["training"]["execution"]["artifacts"] if a["key"] == "metrics"]
    uploaded = next(Path(stages["training"]["session_dir"]).glob("data/**/artifacts/metrics/*.json")).read_text()
    for text in (uploaded, metrics["type_data"]["preview"]):
        assert str(stages["out"]) not in text and "model_path" not in text, text


def test_training_figures_fit_the_web_ui(stages):
    """The confusion matrix brings margins for its longest class name and its axis titles; each debug sample's
    series is a class name short enough for its card, the prediction drawn into the image."""
    events = _session_events(stages["training"]["session_dir"])
    (heatmap,) = [json.loads(e["plot_str"]) for e in events if e["type"] == "plot" and e["metric"] == "Confusion matrix"]
    layout, names = heatmap["layout"], stages["training"]["class_names"]
    assert layout["yaxis"]["automargin"] and layout["xaxis"]["automargin"]
    assert layout["margin"]["l"] >= 7 * max(map(len, names)) + 2 * 14, "room for 'children_playing' and 'True'"
    assert layout["yaxis"]["title"]["standoff"] > 0
    task = json.loads((Path(stages["training"]["session_dir"]) / "task.json").read_text())
    (artifact,) = [a for a in task["execution"]["artifacts"] if a["key"] == "confusion_matrix"]
    header = artifact["type_data"]["preview"].splitlines()[0].split()
    assert header == names, "the preview is the whole table, every class a column (pandas' repr showed 4 of 10)"
    samples = [e for e in events if e["type"] == "training_debug_image"]
    assert {e["metric"] for e in samples} == {"train", "test"}
    assert {e["variant"] for e in samples if e["metric"] == "test"} <= set(names)
    assert all(len(e["variant"]) <= web_ui.SAMPLE_CARD_CHARS for e in samples)


def test_each_stage_reruns_on_the_printed_id(stages):
    """A stage can be rerun on the id the previous one printed: a second features dataset, same parent."""
    out = stages["out"]
    again = preprocessing.main(["--dataset-id", stages["raw"]["dataset_id"], "--device", "cpu", "--n-mels", "32",
                                "--offline", "--output-dir", str(out)])
    child = stages["store"].get(again["dataset_id"])
    assert child.parent_ids == [stages["raw"]["dataset_id"]]
    assert child.read_json("features.json")["shape"][0] == 32


def test_unknown_dataset_id_is_a_clear_error(stages, capsys):
    with pytest.raises(SystemExit) as exc:
        training.main(["--dataset-id", "local-doesnotexist", "--offline", "--output-dir", str(stages["out"])])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "local-doesnotexist" in err and "local store" in err


def test_pipeline_offline_hands_ids_from_step_to_step(tmp_path, capsys):
    results = pipeline.main(["--offline", "--num-clips", "100", "--epochs", "1", "--device", "cpu",
                             "--output-dir", str(tmp_path)])
    store = LocalStore(tmp_path / "datasets")
    raw_id, feat_id = results["get_data"]["dataset_id"], results["preprocessing"]["dataset_id"]
    assert store.get(feat_id).parent_ids == [raw_id]
    assert results["training"]["dataset_id"] == feat_id
    printed = capsys.readouterr().out
    assert raw_id in printed and feat_id in printed and results["training"]["run_dir"] in printed
    assert "test accuracy:" in printed


@pytest.mark.parametrize("script", ["get_data.py", "preprocessing.py", "training.py", "pipeline.py",
                                    "cross_validation.py", "predict.py"])
def test_each_script_has_help(script):
    done = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "--offline" in done.stdout


@pytest.mark.parametrize("parent", ["1:", "1:0123456789abcdef0123456789abcdef"])
def test_a_script_started_by_a_clearml_process_records_its_own_run(tmp_path, parent):
    """A notebook or test runner that called Task.init leaves CLEARML_PROC_MASTER_ID in the environment of the
    scripts it starts; the SDK would take the script for a worker of that process (a stub task that records
    nothing, or the parent's task). The script records its own session all the same."""
    env = {**__import__("os").environ, "CLEARML_PROC_MASTER_ID": parent, "HOME": str(tmp_path),
           "CLEARML_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, str(REPO / "get_data.py"), "--num-clips", "20", "--workers", "1",
                           "--offline", "--output-dir", str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    sessions = list((tmp_path / "cache" / "offline").glob("*/task.json"))
    assert len(sessions) == 1, "no offline session of its own"
    assert str(sessions[0].parent) in done.stdout  # the one it names
    recorded = json.loads(sessions[0].read_text())
    assert recorded["type"] == "data_processing" and recorded["id"] != parent.partition(":")[2]
    assert "raw dataset id" in done.stdout


def test_a_clip_that_does_not_decode_is_skipped_and_reported(tmp_path):
    """A registered clip that does not decode is listed with its reason and left out; the run finishes."""
    out = tmp_path / "outputs"
    common = ["--offline", "--output-dir", str(out)]
    raw = get_data.main(["--num-clips", "20", "--workers", "1"] + common)
    store = LocalStore(out / "datasets")
    original = store.get(raw["dataset_id"])
    victim = original.list_files("audio/*")[0]
    # A raw dataset whose copy of one clip is truncated, registered as it is (sizes and sha256 consistent).
    source = tmp_path / "copy"
    for rel in original.list_files():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(original.path(rel).read_bytes())
    (source / victim).write_bytes((source / victim).read_bytes()[:20])
    with pytest.raises(sf.LibsndfileError):
        sf.read(source / victim)
    draft = store.create(name="with a bad clip", project="test")
    draft.add_files(source)
    damaged = draft.finalize()

    feats = preprocessing.main(["--dataset-id", damaged.id, "--device", "cpu"] + common)
    assert feats["num_skipped"] == 1 and feats["num_clips"] == 19
    skipped = pd.read_csv(Path(feats["run_dir"]) / "skipped_clips.csv")
    assert skipped["filepath"].tolist() == [victim]
    index = store.get(feats["dataset_id"]).read_table("features.csv")
    assert victim not in set(index["filepath"])


_POOL_IN_A_SESSION = """
import os, sys
from clearml import Task
from audioclf import stopping
Task.set_offline(True)
task = Task.init(project_name="audioclf-tests", task_name="a pool inside a session")
parents = set()
for _ in range(3):
    with stopping.worker_pool(2, writes_in=os.getcwd()) as pool:
        parents |= set(pool.starmap(os.getppid, [()] * 8))
print("session", os.getpid(), "worker parents", *sorted(parents))
task.close()
"""


def test_worker_processes_are_not_forked_from_a_running_clearml_session(tmp_path):
    """ClearML makes a child forked from a process running a task a copy of that task, which shuts it down at
    its exit over locks shared with the parent; get_data hung closing its task about one run in ten so. The
    clip workers of a run come from a fork server instead, and the session closes."""
    env = {**__import__("os").environ, "HOME": str(tmp_path), "CLEARML_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO)}
    env.pop("CLEARML_PROC_MASTER_ID", None)
    done = subprocess.run([sys.executable, "-c", _POOL_IN_A_SESSION], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("session ")]
    session_pid, _, parents = line.removeprefix("session ").partition(" worker parents ")
    assert parents and session_pid not in parents.split(), line
