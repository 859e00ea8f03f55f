"""Argument types for the scripts' parsers: a bad value is an argparse error naming the flag, never a
traceback from deep inside a stage (``--batch-size 0`` used to end in a ZeroDivisionError)."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys

from .errors import UserError


def _number(kind, text: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _bounded(kind, name: str, ok, requirement: str):
    """An argparse type: a number of ``kind`` for which ``ok(value)`` holds, else "must be <requirement>"."""
    def parse(text: str):
        value = _number(kind, text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {value}")
        return value
    parse.__name__ = name
    return parse


positive_int = _bounded(int, "positive_int", lambda v: v >= 1, "at least 1")
non_negative_int = _bounded(int, "non_negative_int", lambda v: v >= 0, "0 or more")
positive_float = _bounded(float, "positive_float", lambda v: v > 0, "greater than 0")
non_negative_float = _bounded(float, "non_negative_float", lambda v: v >= 0, "0 or more")
unit_float = _bounded(float, "unit_float", lambda v: 0 <= v < 1, "at least 0 and below 1")  # [0, 1)


DEVICE_CHOICES = "'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'"


def device_name(text: str) -> str:
    """argparse type of --device: 'auto', 'cpu', 'cuda' or 'cuda:N' (checked here, without torch, so that a typo
    such as 'gpu' stops the run before any work; whether CUDA is there is checked by device.resolve_device)."""
    value = str(text).strip().lower()
    if value in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", value):
        return value
    raise argparse.ArgumentTypeError(f"expected {DEVICE_CHOICES}, got {text!r}")


def parse_fold_list(value: str) -> list[int] | None:
    """'1,2,3' -> [1, 2, 3]; 'all' -> None (every fold). Raises UserError on anything else.

    Also reads back what ClearML records in Args/ for an argparse value that was
    already a list ('[1, 2, 3]', "['1,2,3']", '[]' for all): a task that an
    agent re-runs from its recorded arguments must get the same folds.
    """
    text = str(value).strip()
    if text.lower() == "all":
        return None
    listed = text.startswith("[") and text.endswith("]")
    cleaned = re.sub(r"[\[\]'\"\s]", "", text)
    if listed and not cleaned:
        return None
    parts = [v for v in cleaned.split(",") if v]
    if not parts or not all(v.isdigit() for v in parts):
        raise UserError(f"expected 'all' or fold numbers like 1,2,3; got {value!r}")
    return sorted({int(v) for v in parts})


def fold_list(value: str) -> list[int]:
    """argparse type of --folds: 'all' -> [] (every fold of the dataset, resolved later); '1,2,3' -> [1, 2, 3]."""
    try:
        folds = parse_fold_list(value)
    except UserError:
        raise argparse.ArgumentTypeError(f"--folds takes 'all' or fold numbers like 1,2,3; got {value!r}")
    return [] if folds is None else folds


# --- one syntax for lists, and the checks a stage makes before any work or ClearML session -------------------

def name_list(values: str | list[str] | None) -> list[str] | None:
    """A list flag's values, comma- or space-separated (``--classes a,b c`` -> [a, b, c]); None or nothing ->
    None. Every list flag of every script takes commas; those that take several arguments take spaces too."""
    if isinstance(values, str):
        values = [values]
    names = [name.strip() for value in values or [] for name in str(value).split(",") if name.strip()]
    return names or None


# Pure constants (the pipeline controller runs with clearml only): tests check them against the modules that
# own them (audioclf.sources, audioclf.sound_generators, audioclf.synthetic).
NAMED_SOURCES = ("synthetic", "urbansound8k", "clearml-subset", "esc50")
URBANSOUND8K_CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
                        "engine_idling", "gun_shot", "jackhammer", "siren", "street_music")
SYNTHETIC_CLIPS = (10, 8690)  # synthetic.MIN_CLIPS, synthetic.MAX_CLIPS


def source_problem(source: str, check_paths: bool = True) -> str | None:
    """Why ``--source`` cannot work, known before anything is downloaded or generated; None when it may.
    ``check_paths=False`` skips the local checks (a path that exists only on the agent that runs get_data)."""
    if source in NAMED_SOURCES or source.startswith(("http://", "https://")) or not check_paths:
        return None
    import tarfile
    import zipfile
    from pathlib import Path

    from .layouts import SourceError, detect_layout

    path = Path(source).expanduser()
    if not path.exists():
        return (f"--source {source!r} is neither a known source ({', '.join(NAMED_SOURCES)}), an http(s) URL, "
                "nor an existing folder or archive")
    if path.is_dir():
        try:
            detect_layout(path)
        except (SourceError, OSError) as exc:
            return f"--source {source}: {exc}"
        return None
    try:
        if zipfile.is_zipfile(path) or tarfile.is_tarfile(path):
            return None
    except OSError as exc:
        return f"--source {source}: cannot read it ({exc})"
    return (f"--source {source} is a file but not a zip or tar archive; pass a folder in UrbanSound8K or ESC-50 "
            "layout, or its .zip/.tar/.tar.gz archive")


def known_classes(source: str) -> tuple[str, ...] | None:
    """The class names a source has, when they are known before it is fetched (None: only after)."""
    if source in ("synthetic", "urbansound8k", "clearml-subset"):
        return URBANSOUND8K_CLASSES
    from pathlib import Path

    path = Path(source).expanduser()
    if not path.is_dir():
        return None  # esc50, an archive or a URL: the names come with the data
    import csv

    from .layouts import URBANSOUND8K, SourceError, detect_layout

    try:
        root, layout = detect_layout(path)
        with open(root / layout.csv, newline="", encoding="utf-8") as handle:
            column = "class" if layout is URBANSOUND8K else "category"
            return tuple(sorted({row[column] for row in csv.DictReader(handle) if row.get(column)}))
    except (SourceError, OSError, KeyError, csv.Error, UnicodeDecodeError):
        return None  # get_data reports the table's problem itself


def classes_problem(source: str, classes: list[str] | None, esc10: bool = False) -> str | None:
    """Why ``--classes`` (or ``--esc10``) cannot work with ``--source``, when that is known before any work."""
    if esc10 and source in ("synthetic", "urbansound8k", "clearml-subset"):
        return f"--esc10 applies to ESC-50, but --source {source} is UrbanSound8K; drop --esc10 or use --source esc50"
    known = known_classes(source) if classes else None
    if not known:
        return None
    unknown = [name for name in classes if name not in known]
    if unknown:
        return (f"--classes: unknown classes {unknown} for --source {source}; known classes: "
                f"{', '.join(known)}")
    return None


def num_clips_problem(source: str, num_clips: int) -> str | None:
    low, high = SYNTHETIC_CLIPS
    if source == "synthetic" and not low <= num_clips <= high:
        return f"--num-clips must be between {low} and {high} for the synthetic source, got {num_clips}"
    return None


class Renamed(argparse.Action):
    """A flag that was renamed: using it is an argparse error (exit 2) that names the new flag, not a silent
    change of meaning. Hidden from --help."""

    def __init__(self, option_strings, dest, message: str = "", **kwargs):
        kwargs.setdefault("help", argparse.SUPPRESS)
        # Nothing in the namespace (ClearML records nothing), and no clash with the dest of the flag's new name.
        kwargs["default"] = argparse.SUPPRESS
        super().__init__(option_strings, f"renamed_{dest}", **kwargs)
        self.message = message

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string}: {self.message}")


class Deprecated(argparse.Action):
    """An old flag name kept for one release: it sets the new flag's value and says so in one line on stderr.
    Hidden from --help; made by ``alias``."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        kwargs.setdefault("help", argparse.SUPPRESS)
        kwargs["default"] = argparse.SUPPRESS  # the new flag's default stands
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is now {self.new} (the old name goes in the next release)",
              file=sys.stderr, flush=True)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def alias(group, old: str, new: argparse.Action) -> argparse.Action:
    """Add ``old`` to ``group`` (a parser or argument group) as a deprecated name of the flag ``new``: the same
    destination, type, choices and number of values."""
    kwargs = {"nargs": 0, "const": new.const} if new.nargs == 0 else {
        "nargs": new.nargs, "type": new.type, "choices": new.choices, "metavar": new.metavar}
    return group.add_argument(old, dest=new.dest, action=Deprecated, new=new.option_strings[0], **kwargs)


def workers_default() -> int:
    """--workers' default in every script: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def parse_quietly(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)`` unseen by ClearML. Its argparse binding remembers every parse in the process,
    and the next Task.init (a pipeline controller's) records those arguments as its own: a stage's parser used
    only to check flags would overwrite the pipeline's Args/ (its --folds, --project...) on the server."""
    from .clearml_internals import original_parse_known_args

    # (argparse's own parse_args calls parse_known_args, which ClearML patches too: call the original of that.)
    original = original_parse_known_args()
    if original is None:
        return parser.parse_args(argv)
    namespace, extras = original(parser, args=argv)
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return namespace


def stage_overrides(parser: argparse.ArgumentParser, text: str, flag: str, reserved: dict[str, str],
                    required: list[str] = ()) -> dict[str, str]:
    """A stage's flags given to the pipeline as one string (``--training-args "--lr 3e-3 --no-amp"``), checked by
    the stage's own parser: {argparse dest: value as typed} (a switch: "True"). ``reserved``: the stage's flags
    that the pipeline sets itself -> the pipeline flag to use instead. ``required``: placeholder arguments for the
    stage's required flags (its dataset id, which the pipeline hands over). UserError naming ``flag``."""
    import contextlib
    import io
    import shlex

    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise UserError(f"{flag}: {exc}") from None
    actions = parser._option_string_actions  # option string -> action (argparse's own table)
    overrides: dict[str, str] = {}
    rest = list(tokens)
    while rest:
        token = rest.pop(0)
        name, equals, value = token.partition("=")
        action = actions.get(name)
        if action is None:
            raise UserError(f"{flag}: {token!r} is not a flag of {parser.prog}" + (
                "; see its --help" if name.startswith("-") else " (expected --flag [value])"))
        if action.dest in reserved or name in reserved:
            instead = reserved.get(name) or reserved[action.dest]
            raise UserError(f"{flag}: {name} is set by the pipeline; use {instead}")
        if action.nargs == 0:  # a switch
            if equals:
                raise UserError(f"{flag}: {name} takes no value")
            overrides[action.dest] = "True"
            continue
        if not equals:
            if not rest:
                raise UserError(f"{flag}: {name} needs a value")
            value = rest.pop(0)
        overrides[action.dest] = value
    # The stage's own parser decides whether the values are valid (types, choices, ranges).
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parse_quietly(parser, [*required, *tokens])
    except SystemExit:
        message = errors.getvalue().strip().splitlines()[-1] if errors.getvalue().strip() else "invalid"
        raise UserError(f"{flag}: {message.split('error: ', 1)[-1]}") from None
    return overrides


def flag_pairs(text: str, flag: str) -> dict[str, str]:
    """'--width 24 --no-amp --test-fold=9' -> {'width': '24', 'no_amp': 'True', 'test_fold': '9'}: a stage's flags as
    argparse dests (this project's flags are their dests with dashes) without its parser, for a process that
    cannot import the stage (the pipeline controller on an agent). UserError naming ``flag``."""
    import shlex

    try:
        tokens, pairs = shlex.split(text), {}
    except ValueError as exc:  # an unclosed quote
        raise UserError(f"{flag}: {exc}") from None
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("--"):
            raise UserError(f"{flag}: expected --flag [value], got {token!r}")
        name, equals, value = token[2:].partition("=")
        if not equals:
            value = tokens.pop(0) if tokens and not tokens[0].startswith("--") else "True"
        pairs[name.replace("-", "_")] = value
    return pairs
