"""Cross-validation report: per-fold test accuracy and macro-F1, mean ± std, the summed confusion matrix.

    python cross_validation.py --training-tasks <id1>,<id2>,...     # ClearML training tasks
    python cross_validation.py --run-dirs outputs/runs/training-*   # local training run folders

The pipeline runs it as its last step when it trains one model per test fold
(``pipeline.py --folds all``). Writes cross_validation.json, per_fold.csv and
the summed confusion matrix (PNG and CSV) to its run folder, and reports the
same to ClearML.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audioclf import crossval, evaluation, plots, tracking


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--training-tasks", default=None, help="comma-separated ClearML training task ids")
    source.add_argument("--run-dirs", nargs="+", type=Path, default=None, help="training run folders")
    tracking.add_tracking_args(parser, stage="cross_validation")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = tracking.start_run("cross_validation", args, parser, task_type="qc")
    try:
        if args.training_tasks:
            loaded = crossval.load_tasks([t.strip() for t in args.training_tasks.split(",") if t.strip()])
        else:
            loaded = crossval.load_run_dirs(args.run_dirs)
        per_fold, matrices, class_names = loaded
        table, summary, total = crossval.summarize_folds(per_fold, matrices)
    except (ValueError, LookupError) as exc:
        run.close()
        tracking.fail(str(exc))

    out = run.run_dir
    run.table("Cross-validation per fold", table, csv_name="per_fold.csv")
    for key, value in summary.items():
        if key != "folds":
            run.logger.report_single_value(key, value)
    run.logger.report_confusion_matrix(
        title="Confusion matrix", series="all folds summed", matrix=total, iteration=0, xaxis="Predicted",
        yaxis="True", xlabels=class_names, ylabels=class_names, yaxis_reversed=True)
    frame = evaluation.confusion_frame(total, class_names)
    frame.to_csv(out / "confusion_matrix.csv")
    plots.confusion_matrix_png(total, class_names, out / "confusion_matrix.png",
                               f"{len(table)} folds: accuracy {summary['accuracy_mean']:.3f} "
                               f"± {summary['accuracy_std']:.3f}")
    result = {**summary, "per_fold": table.to_dict(orient="records")}
    (out / "cross_validation.json").write_text(json.dumps(result, indent=2) + "\n")
    run.artifact("cross_validation", result)
    run.artifact("confusion_matrix", frame)
    run.close()
    print(f"cross-validation over folds {summary['folds']}: accuracy {summary['accuracy_mean']:.4f} "
          f"± {summary['accuracy_std']:.4f}, macro-F1 {summary['f1_macro_mean']:.4f} ± {summary['f1_macro_std']:.4f}")
    print(f"results: {run.where()}")
    return {**result, "run_dir": str(out), **run.identity()}


if __name__ == "__main__":
    main(sys.argv[1:])
