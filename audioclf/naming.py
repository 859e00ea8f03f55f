"""Names and tags that tell runs apart in a table: tasks, models and datasets.

Two training runs that differ in ``--lr`` must not both be called "training": the web UI's tasks table, its
compare view ("<task name>.<id prefix>") and the models table show names first. A name is the stage, the
model and the test fold (for training), then every flag this run sets to something other than its default,
written as the user types it (``lr=0.001``, ``no-augment``); a user-given ``--task-name`` replaces it.

Dataset names say where the data came from: a ClearML dataset of the same name and project is a new VERSION
of it, so two different data sets (200 and 150 generated clips, a subset of the classes) get different names,
and a rerun on the same source is the next version of its dataset.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from urllib.parse import urlparse

NAME_LIMIT = 100  # characters of a generated name; the flags that do not fit are counted ("+2 more")

# Flags that decide where a run reports, what it reads or how fast it runs, not what it computes.
BOOKKEEPING = frozenset({
    "dataset_id", "project", "task_name", "offline", "queue", "storage", "verify", "output_dir", "device",
    "threads", "workers", "resume", "export", "compile", "no_channels_last", "debug_samples", "cache_dir", "tags",
    "dataset_name",
})
# Shown in a name's head (the model, the fold, the source), so not again among the changed flags.
_IN_HEAD = {"training": {"model", "test_fold", "folds"}, "get_data": {"source"}, "preprocessing": set()}
# preprocessing's --batch-size bounds memory only (the features do not depend on it); training's changes the run.
_NOT_A_SETTING = {"preprocessing": {"chunk_size"}}

DATASET_SOURCES = {"urbansound8k": None, "esc50": None, "clearml-subset": "ClearML subset"}
LAYOUT_NAMES = {"urbansound8k": "UrbanSound8K", "esc50": "ESC-50"}  # audioclf.layouts names -> as shown


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_value(v) for v in value)
    if isinstance(value, Path) or (isinstance(value, str) and "/" in value):
        return Path(value).name  # a local path never goes into a name on the server
    return str(value)


def changed_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, stage: str) -> list[str]:
    """The settings of ``args`` that differ from ``parser``'s defaults, as the user types them, in --help order:
    ``lr=0.001``, ``no-augment``. Bookkeeping flags (where it reports, the device, workers...) are left out.

    ``parser``: a freshly built one (the stage's build_parser()): under an agent ClearML's argparse binding
    makes the task's values the defaults of the parser that parsed them (clearml/binding/args.py,
    copy_to_parser), against which nothing would differ."""
    skip = BOOKKEEPING | _IN_HEAD.get(stage, set()) | _NOT_A_SETTING.get(stage, set())
    changed = []
    for action in parser._actions:
        if not action.option_strings or action.dest in skip or action.dest == "help" \
                or action.help == argparse.SUPPRESS:  # an old flag name (cli.alias): its new name is counted
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default or value is None:
            continue
        flag = action.option_strings[-1].lstrip("-")
        changed.append(flag if isinstance(value, bool) else f"{flag}={_value(value)}")
    return changed


def compose(head: list[str], flags: list[str], limit: int = NAME_LIMIT) -> str:
    """``head`` then as many ``flags`` as fit in ``limit`` characters; the rest counted."""
    name = " ".join(head)
    for i, flag in enumerate(flags):
        more = len(flags) - i - 1
        tail = f" (+{more} more)" if more else ""
        if len(name) + 1 + len(flag) + len(tail) > limit:
            return f"{name} (+{len(flags) - i} more)"
        name = f"{name} {flag}"
    return name


def fold_label(folds: list[int]) -> str:
    """'fold 10', or 'folds 1-10' / 'folds 1,3,5' for a cross-validation."""
    if len(folds) == 1:
        return f"fold {folds[0]}"
    ordered = sorted(folds)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"folds {ordered[0]}-{ordered[-1]}"
    return "folds " + ",".join(map(str, ordered))


def training_descriptor(parser: argparse.ArgumentParser, args: argparse.Namespace, folds: list[int]) -> str:
    """What a training run is: 'cnn fold 10 lr=0.001 epochs=3' (the model, the test fold(s), the changed flags),
    short enough that 'training ' before it stays within NAME_LIMIT."""
    return compose([args.model, fold_label(folds)], changed_flags(parser, args, "training"),
                   limit=NAME_LIMIT - len("training "))


def source_label(source: str) -> str:
    """A source as a name shows it: a named source as is, a folder or archive by its base name (a local path
    never goes to the server), a URL by its file name."""
    if source.startswith(("http://", "https://")):
        return Path(urlparse(source).path).name or urlparse(source).netloc
    if source in DATASET_SOURCES or source == "synthetic":
        return source
    return Path(source).expanduser().name or source


def get_data_name(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    return compose(["get_data", source_label(args.source)], changed_flags(parser, args, "get_data"))


def preprocessing_name(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    return compose(["preprocessing"], changed_flags(parser, args, "preprocessing"))


def _classes_label(classes: list[str]) -> str:
    joined = "+".join(classes)
    if len(joined) <= 40:
        return f"classes {joined}"
    digest = hashlib.sha256(",".join(sorted(classes)).encode()).hexdigest()[:6]
    return f"{len(classes)} classes #{digest}"


def raw_dataset_name(layout: str, source: str, num_clips: int, seed: int, classes: list[str] | None,
                     esc10: bool) -> str:
    """'UrbanSound8K raw' for the official archive; otherwise what makes the data different, in parentheses:
    'UrbanSound8K raw (synthetic, 200 clips, seed 0)', 'ESC-10 raw', 'UrbanSound8K raw (my_copy, classes
    dog_bark+siren)'."""
    base = "ESC-10" if esc10 else LAYOUT_NAMES.get(layout, layout)
    details = []
    if source == "synthetic":
        details.append(f"synthetic, {num_clips} clips, seed {seed}")
    elif source in DATASET_SOURCES:
        if DATASET_SOURCES[source]:
            details.append(DATASET_SOURCES[source])
    else:
        details.append(source_label(source))
    if classes:
        details.append(_classes_label(classes))
    return f"{base} raw" + (f" ({', '.join(details)})" if details else "")


def features_dataset_name(raw_name: str, changed: list[str]) -> str:
    """The features of a raw dataset are named after it ('UrbanSound8K raw (...)' -> 'UrbanSound8K features
    (...)'), with the feature settings that differ from the defaults: features of other data or other settings
    are not a version of these."""
    name = raw_name.replace(" raw", " features", 1) if " raw" in raw_name else f"{raw_name} features"
    return compose([name], changed, limit=NAME_LIMIT + len(name))


def training_tags(model: str, folds: list[int]) -> list[str]:
    """Tags the tasks and models tables filter on: the model, the test fold (or 'cross-validation')."""
    return [model, fold_label(folds) if len(folds) == 1 else "cross-validation"]
