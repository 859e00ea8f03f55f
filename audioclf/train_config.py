"""Training's config: one dataclass, every default in one place (no torch import, so that the pipeline
controller can read the defaults it shows as pipeline parameters)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace

SELECT_MODES = ("last", "best-val")
# training.py --model (models.py builds them; named here, without torch, for the flags' checks)
ARCHITECTURES = ("cnn", "compact", "resnet18", "resnet34", "efficientnet_b0", "mobilenet_v3")
CNN_ARCHITECTURES = ("cnn", "compact")  # the ones that take --width


@dataclass
class TrainConfig:
    arch: str = "cnn"
    width: int | None = None  # base channels of the CNNs (None: the model's default)
    epochs: int = 25  # 25 x 960 clips: about 1.8x the seed config's CPU time (benchmarks/README.md, "Today's defaults")
    batch_size: int = 32
    lr: float = 2e-3  # peak of the one-cycle schedule (AdamW)
    weight_decay: float = 1e-2
    label_smoothing: float = 0.05
    patience: int = 0  # stop after this many epochs without a better validation accuracy; 0: never
    augment: bool = True  # random circular time shift and SpecAugment masks
    masks: int = 1  # SpecAugment: time masks and frequency masks per clip (each up to 1/8 of the axis)
    freq_shift: int = 0  # shift the mel axis by up to this many bands (pitch spread); 0: off
    eq_db: float = 0.0  # add a smooth random curve of up to +-eq_db dB over the mel bands (mic colour); 0: off
    mixup: float = 0.0  # Beta(alpha, alpha) mixup of training batches; 0: off. Off by default: no gain in the
    #                     paired cross-validation of a 25-epoch schedule on the built-in data; the real set is
    #                     checking it (docs/choosing-defaults.md, "Which evidence decided each default")
    dropout: float = 0.3  # dropout before the CNNs' linear head (torchvision backbones keep their own)
    first_convs: int = 1  # 3x3 convs in the CNNs' first block (the others have two)
    ema: float = 0.0  # decay per step of an exponential moving average of the weights, which is then the
    #                   model validated and saved; 0: off
    band_norm: bool = True  # normalize the input per mel band (False: one mean and std for all)
    level_norm: bool = False  # subtract each clip's maximum dB first (gain invariance)
    tta: int = 1  # test and validation: average the softmax over this many circular time shifts
    select: str = "last"  # the weights tested and saved: the last epoch's, or "best-val" (best validation
    #                       accuracy). "last": the one-cycle schedule's end beat a pick on ~110 validation
    #                       clips by 0.010 +- 0.003 over 170 cross-validation runs
    #                       (docs/choosing-defaults.md, "Which weights")
    amp: bool = True  # bf16 autocast on CUDA (ignored on the CPU)
    channels_last: bool = True  # NHWC convolutions: 10-20 % faster for the CNNs on a 2-core CPU (measured)
    compile: bool = False  # torch.compile the model
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def model_kwargs(self) -> dict:
        return {"width": self.width, "level_norm": self.level_norm, "dropout": self.dropout,
                "first_convs": self.first_convs}

    def spec(self) -> str:
        """A short hash of every field: results of a changed config are never mistaken for this one's.
        A field added later is left out at the value every config had before it (the CSVs keep their hashes)."""
        values = asdict(self)
        for name, before in _FIELDS_ADDED_LATER.items():
            if values[name] == before:
                del values[name]
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]

    def with_changes(self, changes: str) -> TrainConfig:
        """This config with 'key=value,key=value' applied ('none' for None; booleans as true/false/1/0).
        Raises ValueError naming an unknown field or a value of the wrong type."""
        known = {f.name: f.type for f in fields(self)}
        cfg = self
        for item in filter(None, (part.strip() for part in changes.split(","))):
            key, _, value = item.partition("=")
            if key not in known:
                raise ValueError(f"unknown TrainConfig field {key!r}; known: {', '.join(known)}")
            cfg = replace(cfg, **{key: _convert(value, getattr(TrainConfig(), key), known[key])})
        return cfg


# field -> the value every config had before the field existed
_FIELDS_ADDED_LATER = {"dropout": 0.3, "first_convs": 1}


def same_config(recorded: dict, cfg: TrainConfig) -> bool:
    """Whether a config recorded as a dict (a checkpoint's) is ``cfg``; a field added after the record was
    written counts as the value every config had before it."""
    return {**_FIELDS_ADDED_LATER, **recorded} == cfg.to_dict()


def named_config(text: str, bases: dict[str, TrainConfig]) -> tuple[str, TrainConfig]:
    """'NAME=BASE:key=value,key=value' -> (NAME, ``bases[BASE]`` with those fields changed), as the benchmarks
    take configs on their command line. Raises ValueError saying what is wrong."""
    name, _, rest = text.partition("=")
    base, _, changes = rest.partition(":")
    if not name or base not in bases:
        raise ValueError(f"expected NAME=BASE:key=value,... with BASE one of {', '.join(bases)}")
    return name, bases[base].with_changes(changes)


def _convert(value: str, example, annotation: str):
    if value.lower() == "none":
        return None
    if isinstance(example, bool):
        return value.lower() in {"1", "true", "yes", "on"}
    if isinstance(example, int) or "int" in str(annotation):
        return int(value)
    if isinstance(example, float) or "float" in str(annotation):
        return float(value)
    return value


# The defaults before they were chosen by cross-validation on field-like data (kept for benchmarks/accuracy.py).
OLD_DEFAULTS = TrainConfig(arch="compact", epochs=30, batch_size=64, lr=3e-3, weight_decay=1e-2,
                           label_smoothing=0.05, patience=10, augment=True, masks=1, mixup=0.0, band_norm=False,
                           channels_last=False, select="best-val")
