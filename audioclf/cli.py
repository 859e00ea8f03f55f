"""Argument types for the scripts' parsers: a bad value is an argparse error naming the flag, never a
traceback from deep inside a stage (``--batch-size 0`` used to end in a ZeroDivisionError)."""

from __future__ import annotations

import argparse
import math
import re


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


def parse_fold_list(value: str) -> list[int] | None:
    """'1,2,3' -> [1, 2, 3]; 'all' -> None (every fold). Raises ValueError on anything else.

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
        raise ValueError(f"expected 'all' or fold numbers like 1,2,3; got {value!r}")
    return sorted({int(v) for v in parts})


def fold_list(value: str) -> list[int]:
    """argparse type of --folds: 'all' -> [] (every fold of the dataset, resolved later); '1,2,3' -> [1, 2, 3]."""
    try:
        folds = parse_fold_list(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--folds takes 'all' or fold numbers like 1,2,3; got {value!r}")
    return [] if folds is None else folds
