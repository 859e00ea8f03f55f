"""TorchScript and ONNX exports match PyTorch and carry the feature config and class names.

    python -m pytest -q tests/test_export.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import predict
from audioclf import export
from audioclf.export import ExportMismatch, export_file, sidecar_path
from audioclf.features import FeatureConfig
from audioclf.inference import load_classifier
from audioclf.models import AudioClassifier, save_model

CLASSES = ["alarm", "engine", "baby", "other"]
FEATURES = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=32, duration_s=1.0)


def _model_file(folder: Path, arch: str) -> tuple[Path, AudioClassifier]:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AudioClassifier(arch, len(CLASSES))
        _trained_looking(model)
    path = folder / f"{arch}.pt"
    save_model(path, model.eval(), CLASSES, FEATURES.to_dict(), {"arch": arch}, {"test": {"accuracy": 0.75}})
    return path, model.eval()


def _trained_looking(model: AudioClassifier) -> None:
    """Input normalization and BatchNorm statistics that are not the identity, as after training."""
    model.set_normalization(-45.0, 18.0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)


@pytest.fixture(scope="module")
def compact(tmp_path_factory):
    return _model_file(tmp_path_factory.mktemp("export"), "compact")


def _spectrograms(batch: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return -45.0 + 18.0 * torch.randn((batch, FEATURES.n_mels, FEATURES.num_frames), generator=gen)


def _check_sidecar(result, fmt: str) -> dict:
    assert result.sidecar == sidecar_path(result.path) and result.sidecar.name == result.path.name + ".json"
    info = json.loads(result.sidecar.read_text())
    assert info["runtime"] == fmt and info["file"] == result.path.name
    assert info["class_names"] == CLASSES
    assert FeatureConfig.from_dict(info["feature_config"]) == FEATURES
    assert info["input"]["shape"] == ["batch", 32, FEATURES.num_frames]
    assert info["verified"]["max_abs_diff"] == result.max_abs_diff <= 1e-4
    return info


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
@pytest.mark.parametrize("arch", ["compact", "resnet18"])
def test_torchscript_matches_pytorch(arch, tmp_path):
    path, model = _model_file(tmp_path, arch)
    result = export_file(path, "torchscript")
    assert result.path == tmp_path / f"{arch}.torchscript.pt"  # default: next to the model file
    _check_sidecar(result, "torchscript")
    x = _spectrograms(5, seed=3)
    loaded = torch.jit.load(str(result.path), map_location="cpu")  # no audioclf code needed to run it
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-4, rtol=1e-4)
    inside = export.read_torchscript_metadata(result.path)
    assert inside["class_names"] == CLASSES and inside["feature_config"] == FEATURES.to_dict()


def test_onnx_matches_pytorch_in_onnxruntime(compact, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path, model = compact
    result = export_file(path, "onnx", tmp_path / "served" / "classifier.onnx")
    _check_sidecar(result, "onnx")
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["spectrogram"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    for batch in (1, 7):  # the batch axis is dynamic
        x = _spectrograms(batch, seed=batch)
        (logits,) = session.run(["logits"], {"spectrogram": x.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(logits, model(x).numpy(), atol=1e-4, rtol=1e-4)
    inside = export.read_onnx_metadata(result.path)
    assert inside["class_names"] == CLASSES and inside["feature_config"] == FEATURES.to_dict()


def test_onnx_on_predicts_features_gives_predicts_probabilities(compact, tmp_path):
    """A serving runtime that computes the sidecar's features and runs the ONNX graph agrees with predict.py."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path, _ = compact
    result = export_file(path, "onnx", tmp_path / "m.onnx")
    clf = load_classifier(path, "cpu")
    assert clf.config == FeatureConfig.from_dict(json.loads(result.sidecar.read_text())["feature_config"])
    waves = np.random.default_rng(0).standard_normal((3, FEATURES.num_samples)).astype(np.float32) * 0.1
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"spectrogram": clf.spectrograms(waves).numpy()})
    served = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    np.testing.assert_allclose(served, clf.probabilities(waves), atol=1e-5)


def test_a_mismatch_is_refused(compact, tmp_path, monkeypatch):
    path, _ = compact
    monkeypatch.setitem(export._RUN, "torchscript", lambda p, x: np.zeros((x.shape[0], len(CLASSES)), np.float32))
    with pytest.raises(ExportMismatch, match="differ from PyTorch"):
        export_file(path, "torchscript", tmp_path / "bad.torchscript.pt")
    assert not (tmp_path / "bad.torchscript.pt").exists() and not sidecar_path(tmp_path / "bad.torchscript.pt").exists()


def test_predict_export_writes_the_model_and_predicts_nothing(compact, tmp_path, capsys):
    path, _ = compact
    out = tmp_path / "exported.torchscript.pt"
    report = predict.main([str(path), "--export", "torchscript", "--output", str(out)])
    assert report["export"]["path"] == str(out) and out.is_file() and sidecar_path(out).is_file()
    assert predict.exit_code(report) == 0 and "exported torchscript" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        predict.main([str(path), "somefile.wav", "--export", "onnx"])
    assert exc.value.code == 2
