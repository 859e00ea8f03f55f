"""Issue 30, item 4: one meaning per flag name across the scripts, one value syntax per name.

Every script's parser is read here, so a new flag that reuses a name with another meaning or another value
syntax fails this test (add it to MEANINGS, or name it differently).

    python -m pytest -q tests/test_flags.py
"""

from __future__ import annotations

import argparse
import importlib
from collections import defaultdict

import pytest

from audioclf import cli
from audioclf.search import SEARCHABLE

SCRIPTS = ("get_data", "preprocessing", "training", "pipeline", "optimize", "predict", "cross_validation",
           "push_offline")
# optimize.py's search space: training's flag of the same name, its value a search spec (LOW:HIGH, A,B,C or A).
SEARCH_SPACE = {("optimize", "--" + name.replace("_", "-")) for name in SEARCHABLE}
# pipeline.py --model takes any name (the controller imports no torch, where the architectures live); it is
# checked by training.py's parser before the pipeline starts (test_pipeline_checks_model_with_training_parser).
CHECKED_BY_THE_STAGE = {("pipeline", "--model")}
# A phrase the help of a shared flag carries in every script that has it: the flag's one meaning.
MEANINGS = {
    "--queue": "enqueue this script",
    "--seed": "random seed of the",
    "--batch-size": "examples per batch through the model",
    "--offline": "without a ClearML server",
    "--classes": "keep only these classes",
    "--folds": "'all'",
}


def _parsers() -> dict[str, argparse.ArgumentParser]:
    return {name: importlib.import_module(name).build_parser() for name in SCRIPTS}


def _options() -> dict[str, dict[str, argparse.Action]]:
    """flag -> {script: action}, the refused old spellings (cli.Renamed) left out."""
    table: dict[str, dict[str, argparse.Action]] = defaultdict(dict)
    for script, parser in _parsers().items():
        for action in parser._actions:
            if isinstance(action, cli.Renamed):
                continue
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    table[option][script] = action
    return table


def _syntax(action: argparse.Action) -> tuple:
    """What a flag's value looks like: its type, choices, number of values (0 for a switch)."""
    return (getattr(action.type, "__name__", action.type), tuple(action.choices or ()), action.nargs)


def test_a_shared_flag_takes_the_same_values_in_every_script():
    differ = {}
    for flag, where in _options().items():
        kinds = {script: _syntax(action) for script, action in where.items()
                 if (script, flag) not in SEARCH_SPACE | CHECKED_BY_THE_STAGE}
        if len(set(kinds.values())) > 1:
            differ[flag] = kinds
    assert not differ, f"a flag name with several value syntaxes: {differ}"


def test_a_shared_flag_has_one_meaning():
    options = _options()
    wrong = {}
    for flag, phrase in MEANINGS.items():
        assert len(options[flag]) >= 2, f"{flag} is in one script only: drop it from MEANINGS"
        for script, action in options[flag].items():
            if (script, flag) not in SEARCH_SPACE and phrase.lower() not in (action.help or "").lower():
                wrong[(script, flag)] = action.help
    assert not wrong, f"help that does not say the flag's one meaning: {wrong}"


def test_every_shared_flag_is_in_the_meanings_table_or_a_search_flag():
    """A flag name in several scripts is either listed in MEANINGS (one meaning, checked above) or is the same
    stage flag passed along (pipeline/optimize -> a stage): its help then names that stage's flag."""
    passed_along = []
    for flag, where in _options().items():
        if len(where) < 2 or flag in MEANINGS:
            continue
        for script, action in where.items():
            help_text = action.help or ""
            if script in ("pipeline", "optimize") and f"{flag}" not in help_text and (script, flag) not in SEARCH_SPACE:
                passed_along.append((script, flag, help_text))
    # The pipeline's and optimize's copies of stage flags say which stage flag they set.
    assert not [p for p in passed_along if p[1] not in ("--project", "--offline", "--output-dir", "--storage",
                                                        "--device", "--source", "--num-clips", "--task-name",
                                                        "--verify", "--dataset-id")], passed_along


def test_optimize_search_flags_name_the_training_flag_they_search():
    options = _options()
    for script, flag in SEARCH_SPACE:
        assert f"training {flag}" in options[flag][script].help
        assert "training" in options[flag], f"{flag} is searched but training.py has no such flag"


def test_queue_enqueues_the_script_itself_where_it_exists():
    for script, action in _options()["--queue"].items():
        assert action.dest == "queue" and action.default is None, script


@pytest.mark.parametrize("script, argv, new", [
    ("pipeline", ["--queue", "cpu"], "--steps-queue"),
    ("optimize", ["--queue", "gpu", "--dataset-id", "x"], "--trials-queue"),
    ("optimize", ["--seed", "3", "--dataset-id", "x"], "--sampler-seed"),
])
def test_an_old_meaning_is_refused_with_the_new_name(script, argv, new, capsys):
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(script).build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and new in err and f"error: {argv[0]}:" in err


def test_the_new_names_parse():
    pipeline_args = importlib.import_module("pipeline").build_parser().parse_args(["--steps-queue", "cpu"])
    assert pipeline_args.steps_queue == "cpu" and not hasattr(pipeline_args, "queue")
    optimize_args = importlib.import_module("optimize").build_parser().parse_args(
        ["--trials-queue", "g", "--sampler-seed", "4", "--optimizer-queue", "svc"])
    assert (optimize_args.trials_queue, optimize_args.sampler_seed, optimize_args.queue) == ("g", 4, "svc")


@pytest.mark.parametrize("values", [["dog_bark,siren"], ["dog_bark", "siren"], ["dog_bark,", "siren"]])
def test_classes_take_the_same_list_syntax_in_get_data_and_pipeline(values):
    parsed = {script: importlib.import_module(script).build_parser().parse_args(["--classes", *values]).classes
              for script in ("get_data", "pipeline")}
    assert {script: cli.name_list(v) for script, v in parsed.items()} == {"get_data": ["dog_bark", "siren"],
                                                                          "pipeline": ["dog_bark", "siren"]}


@pytest.mark.parametrize("text, folds", [("1,2,3", [1, 2, 3]), ("all", []), ("3", [3])])
def test_folds_take_the_same_list_syntax_in_training_and_pipeline(text, folds):
    for script, extra in (("training", ["--dataset-id", "x"]), ("pipeline", [])):
        assert importlib.import_module(script).build_parser().parse_args([*extra, "--folds", text]).folds == folds


def test_pipeline_checks_model_with_training_parser(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        importlib.import_module("pipeline").main(["--model", "resnet9", "--offline", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--model" in err and "resnet9" in err and "resnet18" in err
    assert not (tmp_path / "runs").exists()
