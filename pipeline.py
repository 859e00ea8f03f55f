"""The pipeline: get_data -> preprocessing -> training, dataset ids handed from step to step.

    python pipeline.py --offline                 # everything here, no server: the built-in data end to end
    python pipeline.py --offline --source /data/UrbanSound8K --model resnet18 --epochs 40

Each step is the stage script itself, run with its own arguments; the id a
step publishes (``General/dataset_id`` on its task, and its return value) is
passed to the next step's ``--dataset-id``, exactly as the ClearML
PipelineController passes ``${step.parameters.General/dataset_id}`` online.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import get_data
import preprocessing
import training
from audioclf import tracking


@dataclass(frozen=True)
class Step:
    name: str
    main: object  # the stage's main(argv) -> dict
    parent: str | None  # the step whose dataset id this one reads


STEPS = (
    Step("get_data", get_data.main, None),
    Step("preprocessing", preprocessing.main, "get_data"),
    Step("training", training.main, "preprocessing"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="synthetic", help="get_data --source (default: %(default)s)")
    parser.add_argument("--num-clips", type=int, default=1000, help="get_data --num-clips (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed (default: %(default)s)")
    parser.add_argument("--model", default="compact", help="training --model (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=30, help="training --epochs (default: %(default)s)")
    parser.add_argument("--test-fold", type=int, default=10, help="training --test-fold (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="preprocessing and training --device (default: %(default)s)")
    parser.add_argument("--project", default="Audio Classification", help="ClearML project (default: %(default)s)")
    parser.add_argument("--offline", action="store_true",
                        help="run the steps in this process with no ClearML server (automatic when no ClearML "
                             "credentials are configured)")
    parser.add_argument("--output-dir", type=Path, default=tracking.default_output_dir(),
                        help="local dataset store and run folders (default: %(default)s)")
    return parser


def step_arguments(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each step's own command line, without the dataset id that the previous step provides."""
    common = ["--project", args.project, "--output-dir", str(args.output_dir)] + (["--offline"] if args.offline else [])
    return {
        "get_data": ["--source", args.source, "--num-clips", str(args.num_clips), "--seed", str(args.seed)] + common,
        "preprocessing": ["--device", args.device] + common,
        "training": ["--model", args.model, "--epochs", str(args.epochs), "--test-fold", str(args.test_fold),
                     "--seed", str(args.seed), "--device", args.device] + common,
    }


def run_offline(args: argparse.Namespace) -> dict[str, dict]:
    """Run the steps in order in this process, handing each dataset id to the next step."""
    argv = step_arguments(args)
    results: dict[str, dict] = {}
    for step in STEPS:
        step_argv = list(argv[step.name])
        if step.parent:
            step_argv += ["--dataset-id", results[step.parent]["dataset_id"]]
        print(f"\n=== pipeline step {step.name} ===", flush=True)
        results[step.name] = step.main(step_argv)
    return results


def print_summary(results: dict[str, dict]) -> None:
    train = results["training"]
    print("\n=== pipeline summary ===")
    print(f"raw dataset:      {results['get_data']['dataset_id']}")
    print(f"features dataset: {results['preprocessing']['dataset_id']}")
    print(f"test accuracy:    {train['test']['accuracy']:.4f} (macro-F1 {train['test']['f1_macro']:.4f}, "
          f"test fold {train['test_fold']})")
    print(f"run folder:       {train['run_dir']}")
    print(f"model:            {train['model_path']}")


def main(argv: list[str] | None = None) -> dict[str, dict]:
    args = build_parser().parse_args(argv)
    offline, why = tracking.decide_offline(args.offline)
    if not offline:
        tracking.fail("the online PipelineController is not part of this version yet. Run the pipeline here "
                      "with --offline, or run get_data.py, preprocessing.py and training.py one by one: each "
                      "reports to your ClearML server.")
    args.offline = True
    results = run_offline(args)
    print_summary(results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
