"""Names and tags that tell runs and datasets apart (audioclf/naming.py), with the stages' real parsers."""

from __future__ import annotations

import get_data
import preprocessing
import training
from audioclf import naming


def training_name(*argv: str, folds=(10,)) -> str:
    parser = training.build_parser()
    args = parser.parse_args(["--dataset-id", "x", *argv])
    return f"training {naming.training_descriptor(parser, args, list(folds))}"


def test_two_trainings_that_differ_in_lr_have_names_that_say_so():
    assert training_name("--lr", "0.003") != training_name("--lr", "0.001")
    assert training_name("--lr", "0.001") == "training cnn fold 10 lr=0.001"
    assert training_name() == "training cnn fold 10"


def test_a_name_lists_the_settings_in_help_order_as_the_user_types_them():
    name = training_name("--no-augment", "--lr", "1e-3", "--epochs", "3", "--model", "resnet18", "--mixup", "0.2")
    assert name == "training resnet18 fold 10 epochs=3 lr=0.001 no-augment mixup=0.2"


def test_where_a_run_reports_or_runs_is_not_in_its_name():
    bookkeeping = ("--device", "cpu", "--project", "P", "--output-dir", "/home/me/out", "--threads", "2",
                   "--storage", "s3://b", "--verify", "--task-name", "")
    assert training_name(*bookkeeping) == "training cnn fold 10"


def test_a_local_path_never_goes_into_a_name():
    assert training_name("--weights", "/home/me/weights/resnet18.pth") == "training cnn fold 10 weights=resnet18.pth"
    parser = get_data.build_parser()
    args = parser.parse_args(["--source", "/home/me/data/UrbanSound8K"])
    assert naming.get_data_name(parser, args) == "get_data UrbanSound8K"


def test_a_cross_validation_is_named_by_its_folds():
    assert training_name("--folds", "all", folds=range(1, 11)) == "training cnn folds 1-10"
    assert training_name(folds=(1, 3, 5)) == "training cnn folds 1,3,5"
    assert naming.training_tags("cnn", [10]) == ["cnn", "fold 10"]
    assert naming.training_tags("cnn", [1, 2]) == ["cnn", "cross-validation"]


def test_a_long_name_counts_what_does_not_fit():
    many = ["--lr", "0.001", "--epochs", "3", "--batch-size", "16", "--weight-decay", "0.05", "--label-smoothing",
            "0.1", "--dropout", "0.5", "--patience", "4", "--masks", "2", "--freq-shift", "3", "--eq-db", "2",
            "--mixup", "0.4", "--ema", "0.999", "--tta", "3", "--select", "best-val", "--seed", "5"]
    name = training_name(*many)
    assert len(name) <= naming.NAME_LIMIT and name.endswith("more)") and name.startswith("training cnn fold 10 ")


def test_stage_names_of_get_data_and_preprocessing():
    parser = get_data.build_parser()
    assert naming.get_data_name(parser, parser.parse_args([])) == "get_data synthetic"
    assert naming.get_data_name(parser, parser.parse_args(["--num-clips", "200", "--workers", "4"])) == \
        "get_data synthetic num-clips=200"
    parser = preprocessing.build_parser()
    args = parser.parse_args(["--dataset-id", "x", "--n-mels", "128", "--batch-size", "8", "--workers", "1"])
    assert naming.preprocessing_name(parser, args) == "preprocessing n-mels=128"  # batch size: memory only


def test_different_data_gets_a_different_dataset_name_and_the_same_source_the_same():
    built_in = naming.raw_dataset_name("urbansound8k", "synthetic", 200, 0, None, False)
    assert built_in == "UrbanSound8K raw (synthetic, 200 clips, seed 0)"
    assert naming.raw_dataset_name("urbansound8k", "synthetic", 150, 0, None, False) != built_in
    assert naming.raw_dataset_name("urbansound8k", "synthetic", 200, 1, None, False) != built_in
    assert naming.raw_dataset_name("urbansound8k", "synthetic", 200, 0, None, False) == built_in  # a rerun
    assert naming.raw_dataset_name("urbansound8k", "urbansound8k", 1000, 0, None, False) == "UrbanSound8K raw"
    assert naming.raw_dataset_name("urbansound8k", "clearml-subset", 1000, 0, None, False) == \
        "UrbanSound8K raw (ClearML subset)"
    assert naming.raw_dataset_name("esc50", "esc50", 1000, 0, None, True) == "ESC-10 raw"
    assert naming.raw_dataset_name("urbansound8k", "/data/my copy/US8K", 1000, 0, ["dog_bark", "siren"], False) \
        == "UrbanSound8K raw (US8K, classes dog_bark+siren)"
    many = [f"class_number_{i}" for i in range(8)]
    assert naming.raw_dataset_name("urbansound8k", "urbansound8k", 1000, 0, many, False).startswith(
        "UrbanSound8K raw (8 classes #")


def test_features_are_named_after_their_raw_dataset_and_their_settings():
    raw = "UrbanSound8K raw (synthetic, 200 clips, seed 0)"
    assert naming.features_dataset_name(raw, []) == "UrbanSound8K features (synthetic, 200 clips, seed 0)"
    assert naming.features_dataset_name(raw, ["n-mels=128"]) == \
        "UrbanSound8K features (synthetic, 200 clips, seed 0) n-mels=128"
    assert naming.features_dataset_name("my audio", []) == "my audio features"


def test_under_an_agent_the_name_is_made_against_a_fresh_parser():
    """An agent's run parses with the task's values as the parser's defaults (ClearML's argparse binding,
    binding/args.py copy_to_parser): that parser is no reference for what differs; the stages pass a new one."""
    used = training.build_parser()
    used.set_defaults(lr=0.001, epochs=3)  # what copy_to_parser does with the task's Args/
    args = used.parse_args(["--dataset-id", "x"])
    assert naming.training_descriptor(used, args, [10]) == "cnn fold 10", "the trap"
    assert naming.training_descriptor(training.build_parser(), args, [10]) == "cnn fold 10 epochs=3 lr=0.001"
