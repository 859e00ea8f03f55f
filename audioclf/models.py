"""The classifiers: a VGG-style CNN for log-mel spectrograms, and image backbones with a 1-channel stem.

Every model is wrapped in ``AudioClassifier``, which holds the input
normalization as buffers (the mean and std of the training spectrograms, per mel
band), so a saved state dict is all that prediction needs besides the feature
config and the model's arguments (``model_args``), both stored in the model file.
"""

from __future__ import annotations

import socket

import torch
from torch import nn
from torchvision import models as tv

from . import atomic
from .errors import UserError
from .train_config import ARCHITECTURES, CNN_ARCHITECTURES  # noqa: F401  (re-exported: named there, without torch)
COMPACT_WIDTH = 16  # "compact" is the CNN at this width: the old default, fastest on a CPU
DEFAULT_WIDTH = 32  # "cnn"'s base channels unless --width says otherwise
CNN_MIN_SIZE = 16  # mel bands and frames the CNNs need: four 2x2 max-pools leave at least one of each


def _conv_block(c_in: int, c_out: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class FourBlockCNN(nn.Module):
    """Four conv blocks (w-2w-4w-8w channels; ``first_convs`` 3x3 convs in the first, two in the others, each conv
    followed by batch norm and ReLU), each ending in a 2x2 max-pool, then global average+max pooling
    and a linear head: the SB-CNN / PANNs-CNN6 family.

    Width 16 ("compact"): 0.3 M parameters; width 32 ("cnn" at its default): 1.2 M. A single conv at
    full resolution trains 1.7x faster on a 2-core CPU than a double one, for the same depth where the
    feature maps are small.
    (B, 1, M, T) -> blocks -> (B, 8w, M/16, T/16) -> pool -> (B, 16w) -> (B, K)
    """

    def __init__(self, num_classes: int, width: int = 16, dropout: float = 0.3, first_convs: int = 1):
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        blocks, c_in = [], 1
        for i, c_out in enumerate(widths):
            blocks.append(_conv_block(c_in, c_out, convs=first_convs if i == 0 else 2))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)


# torchvision backbones: (constructor, ImageNet weights enum, path of the first conv in the module tree).
_TORCHVISION = {
    "resnet18": (tv.resnet18, "ResNet18_Weights", "conv1"),
    "resnet34": (tv.resnet34, "ResNet34_Weights", "conv1"),
    "efficientnet_b0": (tv.efficientnet_b0, "EfficientNet_B0_Weights", "features.0.0"),
    "mobilenet_v3": (tv.mobilenet_v3_large, "MobileNet_V3_Large_Weights", "features.0.0"),
}


def _one_channel_stem(model: nn.Module, path: str) -> None:
    """Swap the first conv for a 1-channel one (spectrograms have one channel, as in the seed).

    Its weights are the sum over the RGB filters, so ImageNet weights still respond to a grey image
    the way they responded to the same image in colour."""
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, name)
    new = nn.Conv2d(1, old.out_channels, old.kernel_size, old.stride, old.padding, bias=old.bias is not None)
    with torch.no_grad():
        new.weight.copy_(old.weight.sum(dim=1, keepdim=True))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    setattr(parent, name, new)


def _replace_head(model: nn.Module, num_classes: int) -> None:
    if hasattr(model, "fc"):  # ResNets
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    else:  # EfficientNet, MobileNetV3: the last layer of `classifier`
        last = model.classifier[-1]
        model.classifier[-1] = nn.Linear(last.in_features, num_classes)


def torchvision_backbone(arch: str, num_classes: int, pretrained: bool = False,
                         weights_file: str | None = None) -> nn.Module:
    """A torchvision model with a 1-channel stem and a num_classes head.

    pretrained: torchvision's ImageNet weights (downloaded, or from torch's cache);
    weights_file: a local state dict of the same architecture (the 3-channel ImageNet one).
    """
    build, weights_enum, stem = _TORCHVISION[arch]
    model = build(weights=None)
    if weights_file:
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise UserError(f"--weights {weights_file} does not hold {arch} weights: {exc}") from exc
    elif pretrained:
        weights = getattr(tv, weights_enum).DEFAULT
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30)  # torch.hub's urlopen has no timeout: a silent network would hang
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # URLError, timeout, HTTP errors: no network here
            raise UserError(
                f"--pretrained: could not download the ImageNet weights of {arch} ({type(exc).__name__}: {exc}). "
                f"Download {weights.url} elsewhere and pass it with --weights FILE, or train from scratch."
            ) from exc
        finally:
            socket.setdefaulttimeout(previous)
        model.load_state_dict(state)
    _one_channel_stem(model, stem)
    _replace_head(model, num_classes)
    return model


class AudioClassifier(nn.Module):
    """(B, n_mels, frames) spectrograms in dB -> (B, num_classes) logits.

    ``width``: base channels of the CNNs ("cnn", "compact"; ignored by the torchvision backbones).
    ``dropout``: before the CNNs' linear head (ignored by the torchvision backbones, which keep their own).
    ``first_convs``: 3x3 convs in the CNNs' first block (1 or 2; ignored by the torchvision backbones).
    ``level_norm``: subtract each clip's maximum first, so the model sees the spectrum relative to the
    clip's loudest bin: a recording's gain (a constant in dB) then changes nothing.
    The input is normalized with the training set's mean and std per mel band (``fit_normalization``).
    """

    def __init__(self, arch: str, num_classes: int, pretrained: bool = False, weights_file: str | None = None,
                 width: int | None = None, level_norm: bool = False, dropout: float = 0.3, first_convs: int = 1):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise UserError(f"unknown model {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if arch in CNN_ARCHITECTURES and (pretrained or weights_file):
            raise UserError(f"the {arch} CNN has no ImageNet weights; --pretrained and --weights need a "
                            "torchvision model (resnet18, resnet34, efficientnet_b0, mobilenet_v3)")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1), got {dropout}")
        if first_convs not in (1, 2):
            raise UserError(f"--first-convs must be 1 or 2, got {first_convs}")
        if width is not None and width < 1:
            raise UserError(f"--width must be a positive number of channels, got {width}")
        if width is not None and arch == "compact" and width != COMPACT_WIDTH:
            raise UserError(f"--width {width}: 'compact' is the CNN at width {COMPACT_WIDTH}; use --model cnn "
                            f"--width {width}")
        self.arch = arch
        self.width = (COMPACT_WIDTH if arch == "compact" else width or DEFAULT_WIDTH) if arch in CNN_ARCHITECTURES \
            else None
        self.level_norm = bool(level_norm)
        self.dropout = float(dropout) if arch in CNN_ARCHITECTURES else None
        self.first_convs = int(first_convs) if arch in CNN_ARCHITECTURES else None
        self.backbone = (FourBlockCNN(num_classes, width=self.width, dropout=self.dropout, first_convs=self.first_convs)
                         if arch in CNN_ARCHITECTURES
                         else torchvision_backbone(arch, num_classes, pretrained, weights_file))
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    @property
    def model_args(self) -> dict:
        """What ``AudioClassifier(arch, num_classes, **model_args)`` needs to rebuild this model."""
        args = {"width": self.width, "level_norm": self.level_norm}
        if self.dropout is not None:  # the CNNs' head; a torchvision backbone keeps its own
            args["dropout"] = self.dropout
        if self.first_convs not in (None, 1):  # files from before the option rebuild with one conv
            args["first_convs"] = self.first_convs
        return args

    def _leveled(self, spec: torch.Tensor) -> torch.Tensor:
        return spec - spec.amax(dim=(-2, -1), keepdim=True) if self.level_norm else spec

    def set_normalization(self, mean, std) -> None:
        """Scalars, or one value per mel band (tensors of shape (n_mels,))."""
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        shape = (mean.numel(), 1) if mean.ndim else ()  # (M, 1) broadcasts over (B, M, T)
        self.mean = mean.reshape(shape).clone().to(self.mean.device)
        self.std = std.reshape(shape).clamp_min(1e-6).clone().to(self.std.device)

    @torch.no_grad()
    def fit_normalization(self, train_spec: torch.Tensor, per_band: bool = True, chunk: int = 512) -> None:
        """The training spectrograms' mean and std (per mel band, or over everything), in float64."""
        total = count = 0
        square = 0
        dims = (0, 2) if per_band else (0, 1, 2)
        for start in range(0, len(train_spec), chunk):
            x = self._leveled(train_spec[start:start + chunk].double())
            total = total + x.sum(dim=dims)
            square = square + (x * x).sum(dim=dims)
            count += x.numel() // (x.shape[1] if per_band else 1)
        mean = total / count
        std = (square / count - mean * mean).clamp_min(0).sqrt()
        self.set_normalization(mean.float(), std.float())

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = ((self._leveled(spec) - self.mean) / self.std).unsqueeze(1)  # (B, 1, M, T)
        return self.backbone(x)


MODEL_FORMAT = "audioclf.model/1"


def save_model(path, model: AudioClassifier, class_names: list[str], feature_config: dict,
               train_config: dict, metrics: dict) -> None:
    """One file with everything prediction needs; loads with torch.load(weights_only=True). Written through a
    temporary name (a full disk or a kill never leaves half a model), and refused when a weight is not finite."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = non_finite(state)
    if bad:
        raise UserError(f"refusing to save a model with non-finite weights ({', '.join(bad[:3])}): training diverged; "
                        "lower --lr and retrain")
    atomic.save_torch(path, {
        "format": MODEL_FORMAT,
        "arch": model.arch,
        "model_args": model.model_args,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "feature_config": dict(feature_config),
        "train_config": dict(train_config),
        "metrics": dict(metrics),
        "state_dict": state,
    })


def non_finite(state: dict) -> list[str]:
    """Names of floating-point tensors holding NaN or Inf."""
    return [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]


def load_model(path, map_location: str | torch.device = "cpu") -> tuple[AudioClassifier, dict]:
    """Rebuild the model from a file written by save_model; returns (model in eval mode, the file's dict)."""
    try:
        bundle = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # UnpicklingError, EOFError, RuntimeError, IndexError... from a non-model file
        # One line without torch's text: its advice to retry with weights_only=False would run the file's code.
        raise UserError(f"{path} is not a model file of this project (a model.pt written by training.py): "
                        f"it does not load as weights only ({type(exc).__name__})") from None
    if not isinstance(bundle, dict) or bundle.get("format") != MODEL_FORMAT:
        raise UserError(f"{path} is not a model file of this project (a model.pt written by training.py; "
                        f"expected format {MODEL_FORMAT})")
    bad = non_finite(bundle.get("state_dict", {}))
    if bad:
        raise UserError(f"{path} holds non-finite weights ({', '.join(bad[:3])}): the training that wrote it "
                        "diverged; retrain it with training.py (a lower --lr)")
    try:
        # Files from before model_args: the CNN was "compact" at its width, without level normalization.
        model = AudioClassifier(bundle["arch"], bundle["num_classes"], **bundle.get("model_args", {}))
        state = bundle["state_dict"]
        model.set_normalization(state["mean"], state["std"])  # their shape: per mel band or one scalar
        model.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise UserError(f"{path}: the model file is damaged or from an incompatible version ({exc}); "
                        "retrain it with training.py") from exc
    return model.eval(), bundle
