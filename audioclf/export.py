"""Export a trained classifier to TorchScript or ONNX, verified against PyTorch.

    python predict.py outputs/runs/training-.../model.pt --export onnx --output model.onnx
    python predict.py outputs/runs/training-.../model.pt --export torchscript
    python training.py --dataset-id <id> --export onnx       # next to model.pt after training

    from audioclf.export import export_file
    export_file("model.pt", "onnx")      # -> model.onnx + model.onnx.json

What is exported is the classifier on spectrograms, the part that has weights:
input ``spectrogram`` (batch, n_mels, frames) float32 in dB, output ``logits``
(batch, classes); softmax gives the probabilities. The batch axis is dynamic.
The input normalization (the training set's mean and std) is inside the graph.
The feature config and the class names travel with the file, so a serving
runtime computes the same features: inside it (TorchScript extra file
``audioclf.json``, ONNX metadata property ``audioclf``) and as a JSON sidecar
``<file>.json`` (for example ``model.onnx.json``).

Every export is checked before it is returned: the exported file is loaded
back (torch.jit.load, onnxruntime) and run on random spectrograms with another
batch size than the one exported; its logits must match PyTorch's within
|a - b| <= atol + rtol * |b| (atol 1e-4, rtol 1e-4 by default), or ExportMismatch
is raised (and the file removed).

TorchScript: torch.jit.script (exact for every architecture here; tracing is the
fallback). ONNX: torch.onnx.export's dynamo exporter (needs onnx and onnxscript),
opset 18; checking needs onnxruntime.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import atomic
from .audio import PAD_WORDS
from .errors import UserError
from .features import FeatureConfig
from .models import AudioClassifier, load_model

EXPORT_FORMATS = ("torchscript", "onnx")
EXPORT_FORMAT = "audioclf.export/1"
ONNX_OPSET = 18
SUFFIXES = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}
METADATA_KEY = "audioclf"  # ONNX metadata property / TorchScript extra file "audioclf.json"
INPUT_NAME, OUTPUT_NAME = "spectrogram", "logits"


class ExportMismatch(UserError):
    """The exported model's outputs differ from PyTorch's by more than the tolerance."""


@dataclass
class ExportResult:
    format: str
    path: Path
    sidecar: Path
    max_abs_diff: float


def default_export_path(model_path: Path | str, fmt: str) -> Path:
    """model.pt -> model.onnx / model.torchscript.pt, in the same folder."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + SUFFIXES[fmt])


def sidecar_path(path: Path | str) -> Path:
    """The JSON description written next to an exported file: model.onnx -> model.onnx.json."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def describe(bundle: dict, fmt: str, path: Path, max_abs_diff: float, atol: float, rtol: float) -> dict:
    """What a serving runtime needs besides the graph: the features, the classes, the tensors."""
    config = FeatureConfig.from_dict(bundle["feature_config"])
    return {
        "format": EXPORT_FORMAT,
        "runtime": fmt,
        "file": path.name,
        "arch": bundle["arch"],
        "class_names": list(bundle["class_names"]),
        "feature_config": config.to_dict(),
        "input": {"name": INPUT_NAME, "shape": ["batch", config.n_mels, config.num_frames], "dtype": "float32",
                  "unit": "dB"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(bundle["class_names"])], "dtype": "float32",
                   "meaning": "logits; softmax gives the class probabilities"},
        "features": ("decode; mix channels to mono (mean); resample to sample_rate (libsoxr HQ); cut windows "
                     f"of duration_s, {PAD_WORDS[config.pad]} when shorter; power mel spectrogram "
                     "(n_fft, hop_length, n_mels, f_min, f_max; Hann window, centered, reflect padding, HTK "
                     "mel scale without norm, as torchaudio.transforms.MelSpectrogram); 10*log10(max(power, "
                     "1e-10)); floored at the window's max minus top_db; rounded to float16 as in training. "
                     "audioclf.inference implements exactly this."),
        "metrics": bundle.get("metrics", {}).get("test", {}),
        "verified": {"max_abs_diff": max_abs_diff, "atol": atol, "rtol": rtol,
                     "against": f"PyTorch {torch.__version__}"},
    }


def sample_input(model: AudioClassifier, config: FeatureConfig, batch: int, seed: int = 0) -> torch.Tensor:
    """Random spectrograms at the scale the model was trained on (its mean and std in dB)."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn((batch, config.n_mels, config.num_frames), generator=gen)
    return model.mean.float() + model.std.float() * noise


def check_close(got: np.ndarray, want: np.ndarray, atol: float, rtol: float, what: str) -> float:
    """The largest absolute difference; raises ExportMismatch beyond |a - b| <= atol + rtol * |b|."""
    if got.shape != want.shape:
        raise ExportMismatch(f"{what}: output shape {got.shape}, PyTorch gives {want.shape}")
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if not np.all(diff <= atol + rtol * np.abs(want)):
        raise ExportMismatch(f"{what}: outputs differ from PyTorch's by up to {diff.max():.3g} "
                             f"(tolerance atol {atol} + rtol {rtol} x |value|)")
    return float(diff.max())


# ----------------------------------------------------------------------------- TorchScript
def _to_torchscript(model: AudioClassifier, example: torch.Tensor) -> torch.jit.ScriptModule:
    try:
        return torch.jit.script(model)
    except Exception:  # an architecture that does not script: trace it (no control flow here)
        with torch.no_grad():
            return torch.jit.trace(model, example)


def save_torchscript(model: AudioClassifier, path: Path, example: torch.Tensor, metadata: str) -> None:
    with warnings.catch_warnings():  # torch 2.14 marks torch.jit deprecated; it still works
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = _to_torchscript(model, example)
        torch.jit.save(scripted, str(path), _extra_files={f"{METADATA_KEY}.json": metadata})


def run_torchscript(path: Path | str, x: torch.Tensor) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return loaded(x).numpy()


def read_torchscript_metadata(path: Path | str) -> dict:
    extra = {f"{METADATA_KEY}.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[f"{METADATA_KEY}.json"])


# ----------------------------------------------------------------------------- ONNX
def save_onnx(model: AudioClassifier, path: Path, example: torch.Tensor, metadata: str) -> None:
    """torch.onnx's dynamo exporter, dynamic batch axis, weights inside the file, metadata added."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter needs it; say so clearly when missing)
    except ImportError as exc:
        raise UserError(f"ONNX export needs the packages onnx and onnxscript ({exc}); "
                        "pip install onnx onnxscript onnxruntime") from exc
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=ONNX_OPSET,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: batch},), verbose=False)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata
    onnx.save_model(proto, str(path), save_as_external_data=False)


def run_onnx(path: Path | str, x: torch.Tensor) -> np.ndarray:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise UserError(f"checking an ONNX export needs onnxruntime ({exc}); pip install onnxruntime") from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]


def read_onnx_metadata(path: Path | str) -> dict:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])


_SAVE = {"torchscript": save_torchscript, "onnx": save_onnx}
_RUN = {"torchscript": run_torchscript, "onnx": run_onnx}


# ----------------------------------------------------------------------------- entry points
def export_model(model: AudioClassifier, bundle: dict, fmt: str, path: Path | str,
                 atol: float = 1e-4, rtol: float = 1e-4) -> ExportResult:
    """Write ``model`` (with ``bundle``'s feature config and class names) as ``fmt`` to ``path``,
    plus the sidecar JSON; verified against PyTorch on CPU before returning."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().eval()
    config = FeatureConfig.from_dict(bundle["feature_config"])
    example = sample_input(model, config, batch=2, seed=0)
    check = sample_input(model, config, batch=3, seed=1)  # another batch size: the batch axis is dynamic
    # The metadata inside the file cannot hold its own check result; the sidecar does.
    inside = json.dumps(describe(bundle, fmt, path, float("nan"), atol, rtol) | {"verified": None})
    with torch.no_grad():
        want = model(check).numpy()
    # Written and checked under a temporary name: only a verified export gets the final name.
    with atomic.atomic_path(path) as tmp:
        _SAVE[fmt](model, tmp, example, inside)
        max_diff = check_close(_RUN[fmt](tmp, check), want, atol, rtol, f"{fmt} export {path}")
    sidecar = sidecar_path(path)
    atomic.write_json(sidecar, describe(bundle, fmt, path, max_diff, atol, rtol))
    return ExportResult(format=fmt, path=path, sidecar=sidecar, max_abs_diff=max_diff)


def export_file(model_path: Path | str, fmt: str, output: Path | str | None = None, **tolerance) -> ExportResult:
    """Export a model file written by training (models.save_model); default output next to it."""
    model, bundle = load_model(model_path)
    return export_model(model, bundle, fmt, output or default_export_path(model_path, fmt), **tolerance)
