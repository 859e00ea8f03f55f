"""The hyperparameter search space, shared by optimize.py's two modes.

Each searched training argument is a ``Dimension`` given on the command line as

- ``LOW:HIGH``  a range (log-uniform for the learning rate and the weight decay, integers for integer
  arguments, uniform otherwise);
- ``A,B,C``     a choice among values;
- ``A``         one fixed value (not searched).

Offline the space becomes Optuna ``trial.suggest_*`` calls in this process; online it becomes ClearML
``Args/<name>`` parameter ranges for ``HyperParameterOptimizer``, so both search the same thing.

The objective is the validation accuracy of the weights a trial keeps (training.py --select): offline the
``model_val_accuracy`` training returns; online the scalar title ``accuracy``, series ``val``, read as
:data:`OBJECTIVE_FIELDS` says for the sign given to ClearML, so that what the optimizer maximizes and what the
report shows are one number. The test fold never takes part in a choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from .errors import UserError
from .train_config import ARCHITECTURES, TrainConfig

OBJECTIVE_TITLE, OBJECTIVE_SERIES = "accuracy", "val"  # training.py's per-epoch scalar (TensorBoard accuracy/val)
# ClearML's objective_metric_sign -> the field of Task.get_last_scalar_metrics()[title][series] it optimizes:
# "max" the last reported value (--select last keeps the last epoch's weights), "max_global" the maximum over the
# epochs (--select best-val keeps the best epoch's).
OBJECTIVE_FIELDS = {"max": "last", "max_global": "max"}
OBJECTIVE_LABELS = {"max": "last validation accuracy", "max_global": "best validation accuracy"}


def trial_objective(last_scalar_metrics: dict, sign: str) -> float | None:
    """A trial's objective from ``Task.get_last_scalar_metrics()``: the value ClearML's optimizer compares for
    ``sign`` (None when the trial reported none)."""
    return last_scalar_metrics.get(OBJECTIVE_TITLE, {}).get(OBJECTIVE_SERIES, {}).get(OBJECTIVE_FIELDS[sign])
_TRAIN = TrainConfig()
# training.py's argument -> (value type, log scale, default search range)
SEARCHABLE: dict[str, tuple[type, bool, str]] = {
    "lr": (float, True, "5e-4:1e-2"),
    "batch_size": (int, False, "16,32,64"),
    "mixup": (float, False, "0:0.5"),
    "weight_decay": (float, True, "1e-4:1e-1"),
    "dropout": (float, False, "0:0.5"),
    "model": (str, False, _TRAIN.arch),
    "epochs": (int, False, str(_TRAIN.epochs)),
}


@dataclass(frozen=True)
class Dimension:
    name: str  # training.py's argument dest (Args/<name> online)
    kind: str  # "range", "choice" or "fixed"
    values: tuple  # (low, high) for a range, the choices, or (value,)
    log: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        if self.kind == "range":
            return f"{self.name} in [{self.values[0]:g}, {self.values[1]:g}]{' (log)' if self.log else ''}"
        if self.kind == "choice":
            return f"{self.name} in {{{', '.join(map(str, self.values))}}}"
        return f"{self.name} = {self.values[0]}"


def parse_dimension(name: str, text: str) -> Dimension:
    """'LOW:HIGH', 'A,B,C' or 'A' for training.py's argument ``name``; UserError naming the flag otherwise."""
    kind_of, log, _ = SEARCHABLE[name]
    flag = "--" + name.replace("_", "-")
    text = str(text).strip()
    try:
        if ":" in text:
            if kind_of is str:
                raise ValueError("a range needs numbers")
            low, high = (kind_of(v) for v in text.split(":"))
            if not low < high or (log and low <= 0) or (kind_of is float and not (math.isfinite(low) and math.isfinite(high))):
                raise ValueError(f"expected LOW < HIGH{' and LOW > 0 (a log range)' if log else ''}")
            return Dimension(name, "range", (low, high), log=log)
        values = tuple(kind_of(v.strip()) for v in text.split(",") if v.strip())
        if not values:
            raise ValueError("no value")
        unknown = [v for v in values if name == "model" and v not in ARCHITECTURES]
        if unknown:
            raise ValueError(f"unknown model {', '.join(unknown)}; choose among {', '.join(ARCHITECTURES)}")
    except ValueError as exc:
        raise UserError(f"{flag} {text!r}: {exc}; give LOW:HIGH, A,B,C or one value") from None
    return Dimension(name, "choice" if len(values) > 1 else "fixed", values)


def space_from(args) -> list[Dimension]:
    """Every searchable argument of an argparse namespace holding optimize.py's flags."""
    return [parse_dimension(name, getattr(args, name)) for name in SEARCHABLE]


def suggest(trial, space: list[Dimension]) -> dict:
    """One Optuna trial's values for the space."""
    values = {}
    for dim in space:
        if dim.kind == "fixed":
            values[dim.name] = dim.values[0]
        elif dim.kind == "choice":
            values[dim.name] = trial.suggest_categorical(dim.name, list(dim.values))
        elif isinstance(dim.values[0], int) and not isinstance(dim.values[0], bool):
            values[dim.name] = trial.suggest_int(dim.name, dim.values[0], dim.values[1], log=dim.log)
        else:
            values[dim.name] = trial.suggest_float(dim.name, dim.values[0], dim.values[1], log=dim.log)
    return values


def clearml_ranges(space: list[Dimension]) -> list:
    """The same space as ClearML parameter ranges on the training task's ``Args/`` section."""
    from clearml.automation import (DiscreteParameterRange, LogUniformParameterRange, UniformIntegerParameterRange,
                                    UniformParameterRange)

    ranges = []
    for dim in space:
        name = f"Args/{dim.name}"
        if dim.kind in ("fixed", "choice"):
            ranges.append(DiscreteParameterRange(name, values=list(dim.values)))
        elif dim.log:
            ranges.append(LogUniformParameterRange(name, min_value=math.log10(dim.values[0]),
                                                   max_value=math.log10(dim.values[1]), base=10))
        elif isinstance(dim.values[0], int):
            ranges.append(UniformIntegerParameterRange(name, min_value=dim.values[0], max_value=dim.values[1],
                                                       include_max_value=True))
        else:
            ranges.append(UniformParameterRange(name, min_value=dim.values[0], max_value=dim.values[1]))
    return ranges


def training_argv(values: dict) -> list[str]:
    """training.py's command line for a trial's values."""
    return [item for name, value in values.items() for item in ("--" + name.replace("_", "-"), f"{value}")]


def max_epochs(space: list[Dimension]) -> int:
    (epochs,) = [d for d in space if d.name == "epochs"]
    return int(max(epochs.values))


def best_so_far(values: pd.Series) -> pd.Series:
    return values.cummax()


def trials_png(table: pd.DataFrame, path, title: str):
    """The objective of every trial (pruned and failed ones at the bottom, hollow) and the best so far."""
    from .plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(7, 4))
    done = table[table["state"] == "COMPLETE"]
    others = table[table["state"] != "COMPLETE"]
    ax.scatter(done["trial"], done["objective"], color="tab:blue",
               label="trial (validation accuracy of the weights it keeps)")
    if not others.empty:
        ax.scatter(others["trial"], others["objective"].fillna(0), facecolors="none", edgecolors="tab:gray",
                   label="pruned or failed (last reported)")
    if not done.empty:
        ax.step(done["trial"], best_so_far(done["objective"]), where="post", color="tab:orange", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path, 110)
