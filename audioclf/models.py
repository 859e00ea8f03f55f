"""The classifiers: image backbones with a 1-channel stem, and a compact CNN for CPUs.

Every model is wrapped in ``AudioClassifier``, which holds the input
normalization (mean/std of the training spectrograms) as buffers, so a saved
state dict is all that prediction needs besides the feature config.
"""

from __future__ import annotations

import socket

import torch
from torch import nn
from torchvision import models as tv

ARCHITECTURES = ("compact", "resnet18", "resnet34", "efficientnet_b0", "mobilenet_v3")


def _conv_block(c_in: int, c_out: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class CompactCNN(nn.Module):
    """Four conv blocks (16-32-64-128 channels; one conv in the first, two in the others), each ending in
    a 2x2 max-pool, then global average+max pooling and a linear head.

    About 0.3 M parameters. A single conv at full resolution trains 1.7x faster on a 2-core CPU than
    a double one, for the same depth where the feature maps are small.
    (B, 1, M, T) -> blocks -> (B, 128, M/16, T/16) -> pool -> (B, 256) -> (B, K)
    """

    def __init__(self, num_classes: int, width: int = 16, dropout: float = 0.3):
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        blocks, c_in = [], 1
        for i, c_out in enumerate(widths):
            blocks.append(_conv_block(c_in, c_out, convs=1 if i == 0 else 2))
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
            raise ValueError(f"--weights {weights_file} does not hold {arch} weights: {exc}") from exc
    elif pretrained:
        weights = getattr(tv, weights_enum).DEFAULT
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30)  # torch.hub's urlopen has no timeout: a silent network would hang
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # URLError, timeout, HTTP errors: no network here
            raise ValueError(
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
    """(B, n_mels, frames) spectrograms in dB -> (B, num_classes) logits."""

    def __init__(self, arch: str, num_classes: int, pretrained: bool = False, weights_file: str | None = None):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown model {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if arch == "compact" and (pretrained or weights_file):
            raise ValueError("the compact CNN has no ImageNet weights; --pretrained and --weights need a "
                             "torchvision model (resnet18, resnet34, efficientnet_b0, mobilenet_v3)")
        self.arch = arch
        self.backbone = (CompactCNN(num_classes) if arch == "compact"
                         else torchvision_backbone(arch, num_classes, pretrained, weights_file))
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    def set_normalization(self, mean: float, std: float) -> None:
        self.mean.fill_(mean)
        self.std.fill_(max(std, 1e-6))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = ((spec - self.mean) / self.std).unsqueeze(1)  # (B, 1, M, T)
        return self.backbone(x)


MODEL_FORMAT = "audioclf.model/1"


def save_model(path, model: AudioClassifier, class_names: list[str], feature_config: dict,
               train_config: dict, metrics: dict) -> None:
    """One file with everything prediction needs; loads with torch.load(weights_only=True)."""
    torch.save({
        "format": MODEL_FORMAT,
        "arch": model.arch,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "feature_config": dict(feature_config),
        "train_config": dict(train_config),
        "metrics": dict(metrics),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }, path)


def load_model(path, map_location: str | torch.device = "cpu") -> tuple[AudioClassifier, dict]:
    """Rebuild the model from a file written by save_model; returns (model in eval mode, the file's dict)."""
    try:
        bundle = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # UnpicklingError, EOFError, RuntimeError, IndexError... from a non-model file
        raise ValueError(f"{path} is not an audioclf model file (torch.load failed: {exc})") from exc
    if not isinstance(bundle, dict) or bundle.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not an audioclf model file (expected format {MODEL_FORMAT})")
    model = AudioClassifier(bundle["arch"], bundle["num_classes"])
    model.load_state_dict(bundle["state_dict"])
    return model.eval(), bundle
