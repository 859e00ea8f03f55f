"""Each stage online against a real ClearML server, asserting on what the server holds.

    python -m pytest -q tests/integration/test_stages_online.py
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import soundfile as sf

from audioclf.tracking import SERVING_TAG
from clearml_env import output_of, task_id_in

TRAIN = ["--epochs", "2", "--width", "4", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(user, datasets):
    done = user.run("training.py", "--dataset-id", datasets["features"], *TRAIN, *datasets["common"])
    return {"task": task_id_in(done), "output": done.stdout}


def test_get_data_online(user, datasets):
    task, dataset = user.read({"task": datasets["raw_task"]}, {"dataset": datasets["raw"]})
    assert task["status"] == "completed" and task["type"] == "data_processing"
    assert task["parameters"]["Args/num_clips"] == "20" and task["parameters"]["Args/source"] == "synthetic"
    assert task["parameters"]["General/dataset_id"] == datasets["raw"]
    assert {"raw", "audio"} <= set(task["tags"]) and {"raw", "audio"} <= set(dataset["tags"])
    assert dataset["final"] and dataset["parents"] == []
    audio = [f for f in dataset["files"] if f.endswith(".wav")]
    assert len(audio) == 20 and {"metadata.csv", "label_map.csv", "audio_info.csv",
                                 "metadata/UrbanSound8K.csv"} <= set(dataset["files"])
    # The dataset's own page: the metadata table, the label map and the per-clip audio headers each under its
    # own title, the class histogram, the audio-properties figure, one audio sample per class.
    assert {"metadata", "label_map", "audio_info"} <= set(dataset["artifacts"])
    assert {"metadata", "label_map", "audio_info"} <= set(dataset["tables"])
    assert ("Class distribution", "clips", "bar") in {(p["metric"], p["variant"], p["type"]) for p in dataset["plots"]}
    assert ("Audio properties", "bar") in {(p["metric"], p["type"]) for p in dataset["plots"]}
    classes = {s["series"] for s in dataset["debug_samples"] if s["title"] == "Audio sample"}
    assert classes and len(classes) == len({f.split("/")[-1].split("-")[1] for f in audio})
    # The script's task has the histogram and the tables too.
    assert ("Class distribution", "clips", "bar") in {(p["metric"], p["variant"], p["type"]) for p in task["plots"]}
    assert ("Audio properties", "bar") in {(p["metric"], p["type"]) for p in task["plots"]}
    assert "audio_info" in task["artifacts"]
    assert "audio: 20 clips: " in datasets["raw_output"]


def test_preprocessing_online_makes_a_child_without_audio(user, datasets):
    task, dataset = user.read({"task": datasets["features_task"]}, {"dataset": datasets["features"]})
    assert task["status"] == "completed"
    assert task["parameters"]["General/dataset_id"] == datasets["features"]
    assert task["parameters"]["Args/dataset_id"] == datasets["raw"]
    assert dataset["parents"] == [datasets["raw"]]
    added = set(dataset["added"])
    assert added and not any(f.endswith(".wav") for f in added), "the child holds only what it adds"
    assert {"features.csv", "features.json"} <= added
    assert len([f for f in added if f.endswith(".npy")]) == 20
    # The feature config that ran, recorded before the work.
    features = json.loads(task["configuration"]["Features"])
    assert features["n_mels"] == 64 and features["sample_rate"] == 22050
    # Debug samples on the features dataset's page: a spectrogram and its audio for every class.
    spectrograms = {s["series"] for s in dataset["debug_samples"] if s["title"] == "Spectrogram"}
    audio = {s["series"] for s in dataset["debug_samples"] if s["title"] == "Audio sample"}
    assert spectrograms and spectrograms == audio


def test_training_online_reports_and_registers_a_downloadable_model(user, datasets, trained):
    (task,) = user.read({"task": trained["task"]})
    assert task["status"] == "completed"
    for metric, series in (("loss", "train"), ("loss", "val"), ("accuracy", "train"), ("accuracy", "val"),
                           ("f1_macro", "val")):
        assert task["scalars"][metric][series]["x"] == [1, 2], (metric, series)
    assert task["scalars"]["lr"]["lr"]["x"] == [1, 2]
    plots = {(p["metric"], p["variant"], p["type"]) for p in task["plots"]}
    assert ("Confusion matrix", "test fold 10", "heatmap") in plots
    assert ("Per-class precision and recall", "test fold 10", "table") in plots
    assert {"metrics", "confusion_matrix"} <= set(task["artifacts"])
    assert {s["title"] for s in task["debug_samples"]} >= {"train", "test"}
    (model,) = task["output_models"]
    assert task["parameters"]["General/model_id"] == model["id"]
    assert SERVING_TAG in model["tags"]  # a run's final model: what serve.py --auto-update follows
    assert f"model id: {model['id']} " in trained["output"]  # what predict.py and serve.py take, printed
    assert model["labels"] and sorted(model["labels"].values()) == list(range(len(model["labels"])))
    assert model["config"]["feature_config"]["n_mels"] == 64
    files_host = user.server.env.get("CLEARML_FILES_HOST", "")
    assert model["url"].startswith(files_host or "http"), model["url"]
    assert not model["url"].startswith("file://")


@pytest.mark.parametrize("ref", ["model", "task"])
def test_predict_from_another_home_by_model_or_task_id(fresh_user, user, trained, tmp_path, ref):
    (task,) = user.read({"task": trained["task"]})
    model_id = task["output_models"][0]["id"]
    clip = tmp_path / "clip.wav"
    sf.write(clip, 0.1 * np.sin(np.linspace(0, 2000, 44100)).astype(np.float32), 22050)
    done = fresh_user.run("predict.py", model_id if ref == "model" else trained["task"], str(clip),
                          "--format", "json", "--output", str(tmp_path / "out.json"))
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["files"] and report["files"][0]["top"][0]["class"] in task["output_models"][0]["labels"]
    assert "1 file(s) classified" in done.stderr


def test_a_failing_stage_is_failed_on_the_server(user, datasets):
    done = user.run("training.py", "--dataset-id", datasets["raw"], *TRAIN, *datasets["common"], check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "preprocessing.py --dataset-id" in done.stderr
    (task,) = user.read({"task": task_id_in(done)})
    assert task["status"] == "failed", task["status"]
    assert "raw dataset" in (task["status_reason"] or "") + (task["status_message"] or "")


def test_training_over_several_folds_registers_each_model(user, datasets):
    done = user.run("training.py", "--dataset-id", datasets["features"], "--folds", "9,10", *TRAIN,
                    *datasets["common"])
    (task,) = user.read({"task": task_id_in(done)})
    assert task["status"] == "completed"
    assert task["name"] == "training cnn folds 9-10 width=4 epochs=2 batch-size=8"
    assert sorted(m["name"] for m in task["output_models"]) == [
        f"audio classifier cnn fold {k} width=4 epochs=2 batch-size=8" for k in (10, 9)]
    assert {"metrics_fold9", "metrics_fold10", "confusion_matrix_fold9", "confusion_matrix_fold10",
            "cross_validation"} <= set(task["artifacts"])
    assert all(not m["url"].startswith("file://") for m in task["output_models"])


def test_a_discarded_dataset_is_deleted_from_the_server(user, names, tmp_path):
    script = tmp_path / "discard.py"
    script.write_text(textwrap.dedent(f"""
        from clearml import Task
        from audioclf.clearml_store import ClearMLStore
        Task.init(project_name={names['project']!r}, task_name="discard", auto_connect_arg_parser=False)
        draft = ClearMLStore(scratch_root={str(tmp_path / 'scratch')!r}).create("half", {names['project']!r})
        draft.add_json("x.json", {{"a": 1}})
        print("draft", draft.id)
        draft.discard()
    """))
    done = user.run(str(script), PYTHONPATH=user.project)
    draft_id = output_of(done, "draft")
    (exists,) = user.read({"dataset_exists": draft_id})
    assert exists is False, "a failed build must not leave an in-progress dataset on the server"


def test_offline_sessions_keep_their_own_arguments_and_push_with_lineage(user, names, tmp_path):
    out = tmp_path / "offline"
    cache = tmp_path / "clearml-cache"
    user.run("pipeline.py", "--offline", "--num-clips", "12", "--epochs", "1", "--width", "4", "--device", "cpu",
             "--project", names["project"], "--output-dir", str(out), CLEARML_CACHE_DIR=cache)
    sessions = sorted((cache / "offline").glob("offline-*/"), key=lambda p: p.stat().st_mtime)
    sessions = [s for s in sessions if s.is_dir()]
    args_of = {}
    for session in sessions:
        info = json.loads((session / "task.json").read_text())
        args_of[info["name"]] = {k: v["value"] for k, v in info["hyperparams"].get("Args", {}).items()}
    stage_of = {name.split()[0]: name for name in args_of}  # each task is named after its settings
    assert set(stage_of) == {"get_data", "preprocessing", "training"}, sorted(args_of)
    assert "num_clips" in args_of[stage_of["get_data"]] and "dataset_id" not in args_of[stage_of["get_data"]]
    assert "n_mels" in args_of[stage_of["preprocessing"]] and "epochs" not in args_of[stage_of["preprocessing"]]
    assert args_of[stage_of["training"]]["epochs"] == "1" and "n_mels" not in args_of[stage_of["training"]]

    done = user.run("push_offline.py", "--output-dir", str(out), "--sessions", *map(str, sessions))
    id_map = json.loads((out / "datasets" / "clearml_ids.json").read_text())
    assert len(id_map) == 2
    raw_local, features_local = sorted(id_map, key=lambda i: (out / "datasets" / i / "dataset.json").stat().st_mtime)
    raw, features = user.read({"dataset": id_map[raw_local]}, {"dataset": id_map[features_local]})
    assert features["parents"] == [raw["id"]], "parents first: the child names its parent's new id"
    assert not any(f.endswith(".wav") for f in features["added"]) and any(f.endswith(".wav") for f in raw["added"])
    imported = {line.split()[-1] for line in done.stdout.splitlines() if "-> ClearML task" in line}
    assert len(imported) == 3
    tasks = user.read(*[{"task": t} for t in imported])
    for task in tasks:
        own = {k[len("Args/"):]: v for k, v in task["parameters"].items() if k.startswith("Args/")}
        assert own == args_of[task["name"]], task["name"]
