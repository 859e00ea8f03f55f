"""Cross-validation report: per-fold test accuracy and macro-F1, mean ± std, the summed confusion matrix.

    python cross_validation.py --training-tasks <id1>,<id2>,...     # ClearML training tasks
    python cross_validation.py --run-dirs outputs/runs/training-*   # local training run folders

The pipeline runs it as its last step when it trains one model per test fold
(``pipeline.py --folds all``). Writes cross_validation.json, per_fold.csv and
the summed confusion matrix (confusion_matrix_all_folds.png/.csv) to its run folder, and reports the
same to ClearML.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audioclf import cli, crossval, stopping, tracking


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--training-tasks", nargs="+", default=None, metavar="TASK",
                        help="ClearML training task ids, comma- or space-separated")
    source.add_argument("--run-dirs", nargs="+", default=None, metavar="DIR",
                        help="training run folders, comma- or space-separated")
    tracking.add_tracking_args(parser, stage="cross_validation")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    offline, why = tracking.decide_offline(args.offline)
    if args.training_tasks and offline:  # before any session: Task.get_task offline finds nothing
        parser.error(f"--training-tasks reads training tasks from a ClearML server, but this run is offline ({why}); "
                     "give the training run folders with --run-dirs instead")
    with tracking.stage("cross_validation", args, parser, task_type="qc") as run:
        if args.training_tasks:
            loaded = crossval.load_tasks(cli.name_list(args.training_tasks))
        else:
            loaded = crossval.load_run_dirs([Path(d) for d in cli.name_list(args.run_dirs)])
        result = crossval.report(run, *loaded)  # publishes General/accuracy_mean, ... too
        print(f"results: {run.where()}", flush=True)  # before the task closes: its console on the server ends so too
    return {**result, "run_dir": str(run.run_dir), **run.identity()}


if __name__ == "__main__":
    stopping.run_script(main, "cross_validation")
