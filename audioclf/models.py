"""The classifiers: image backbones with a 1-channel stem, and a compact CNN for CPUs.

Every model is wrapped in ``AudioClassifier``, which holds the input
normalization (mean/std of the training spectrograms) as buffers, so a saved
state dict is all that prediction needs besides the feature config.
"""

from __future__ import annotations


import torch
from torch import nn
from torchvision import models as tv

ARCHITECTURES = ("compact", "resnet18")


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


def _resnet18(num_classes: int) -> nn.Module:
    model = tv.resnet18(weights=None, num_classes=num_classes)
    # One input channel instead of RGB, as in the seed.
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


_BUILDERS = {"compact": CompactCNN, "resnet18": _resnet18}


class AudioClassifier(nn.Module):
    """(B, n_mels, frames) spectrograms in dB -> (B, num_classes) logits."""

    def __init__(self, arch: str, num_classes: int):
        super().__init__()
        if arch not in _BUILDERS:
            raise ValueError(f"unknown model {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        self.arch = arch
        self.backbone = _BUILDERS[arch](num_classes)
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
