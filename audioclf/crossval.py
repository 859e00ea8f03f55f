"""Cross-validation over the predefined folds: per-fold results -> one report.

Used by the pipeline's aggregation step (one training task per test fold, read
back from ClearML) and by anything that has the per-fold metrics and confusion
matrices in hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .cli import parse_fold_list  # noqa: F401  (read back by the agents; kept importable from here)
from .errors import UserError


def summarize_folds(per_fold: list[dict], matrices: list[np.ndarray]) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """per_fold: each training run's metrics (test_fold and test accuracy/f1_macro).

    Returns the per-fold table, the mean and std (population std over folds, as
    UrbanSound8K papers report), and the summed confusion matrix.
    """
    if not per_fold:
        raise UserError("no folds to summarize")
    if len(per_fold) != len(matrices):
        raise UserError(f"{len(per_fold)} fold results but {len(matrices)} confusion matrices")
    shapes = {m.shape for m in matrices}
    if len(shapes) != 1:
        raise UserError(f"confusion matrices differ in shape: {sorted(shapes)}")
    table = pd.DataFrame([{"test_fold": int(m["test_fold"]), "accuracy": float(m["test"]["accuracy"]),
                           "f1_macro": float(m["test"]["f1_macro"]), "num_test": int(m.get("num_test", 0))}
                          for m in per_fold]).sort_values("test_fold").reset_index(drop=True)
    if table["test_fold"].duplicated().any():
        raise UserError(f"a test fold appears twice: {table['test_fold'].tolist()}")
    summary = {"folds": table["test_fold"].tolist()}
    for name in ("accuracy", "f1_macro"):
        summary[f"{name}_mean"] = float(table[name].mean())
        summary[f"{name}_std"] = float(table[name].std(ddof=0))
    return table, summary, np.sum(matrices, axis=0)


def load_run_dirs(run_dirs: list[Path]) -> tuple[list[dict], list[np.ndarray], list[str]]:
    """Per-fold metrics and confusion matrices from training run folders (metrics.json, confusion_matrix.csv)."""
    per_fold, matrices, class_names = [], [], []
    for run_dir in run_dirs:
        metrics_file, matrix_file = Path(run_dir) / "metrics.json", Path(run_dir) / "confusion_matrix.csv"
        if not metrics_file.is_file() or not matrix_file.is_file():
            raise UserError(f"{run_dir} is not a finished training run folder (metrics.json, confusion_matrix.csv)")
        per_fold.append(json.loads(metrics_file.read_text()))
        frame = pd.read_csv(matrix_file, index_col=0)
        matrices.append(frame.to_numpy(dtype=np.int64))
        class_names = class_names or list(frame.columns)
    return per_fold, matrices, class_names


def load_tasks(task_ids: list[str]) -> tuple[list[dict], list[np.ndarray], list[str]]:
    """The same from ClearML training tasks (their ``metrics`` and ``confusion_matrix`` artifacts). A UserError
    names an id that is no task, or a task that is not a finished single-fold training run."""
    from clearml import Task

    per_fold, matrices, class_names = [], [], []
    for task_id in task_ids:
        try:
            task = Task.get_task(task_id=task_id)
        except ValueError as exc:  # the SDK's answer to an unknown id
            raise UserError(f"--training-tasks {task_id}: no such task ({exc}); pass the ids of training tasks") \
                from None
        missing = [name for name in ("metrics", "confusion_matrix") if name not in task.artifacts]
        if missing:
            raise UserError(f"--training-tasks {task_id}: task {task.name!r} ({task.get_status()}) has no "
                            f"{' and no '.join(missing)} artifact: pass the ids of completed training.py runs of "
                            "one test fold each")
        per_fold.append(task.artifacts["metrics"].get())
        frame = task.artifacts["confusion_matrix"].get()  # index: true class, columns: predicted
        matrices.append(np.asarray(frame.to_numpy(), dtype=np.int64))
        class_names = class_names or [str(c) for c in frame.columns]
    return per_fold, matrices, class_names


def report(run, per_fold: list[dict], matrices: list[np.ndarray], class_names: list[str]) -> dict:
    """Write and log a cross-validation: per_fold.csv, cross_validation.json, the summed confusion matrix
    (PNG, CSV, ClearML heatmap), mean ± std as ClearML single values and as the task's outputs
    (General/accuracy_mean, ...), for training.py --folds and cross_validation.py alike. ``run`` is a
    tracking.Run."""
    from . import atomic, evaluation, plots

    table, summary, total = summarize_folds(per_fold, matrices)
    out = run.run_dir
    run.table("Cross-validation per fold", table.round(4))
    atomic.write_csv(out / "per_fold.csv", table)
    for key, value in summary.items():
        if key != "folds":
            run.single_value(key, value)
    for key in ("accuracy_mean", "accuracy_std", "f1_macro_mean", "f1_macro_std"):
        run.output(key, f"{summary[key]:.6f}")
    run.confusion_matrix("all folds summed", total, class_names)
    frame = evaluation.confusion_frame(total, class_names)
    atomic.write_csv(out / "confusion_matrix_all_folds.csv", frame, index=True)
    plots.confusion_matrix_png(total, class_names, out / "confusion_matrix_all_folds.png",
                               f"{len(table)} folds: accuracy {summary['accuracy_mean']:.3f} "
                               f"± {summary['accuracy_std']:.3f}")
    result = {**summary, "per_fold": table.to_dict(orient="records")}
    atomic.write_json(out / "cross_validation.json", result)
    run.artifact("cross_validation", result)
    run.artifact("confusion_matrix_all_folds", frame)
    print(f"cross-validation over folds {summary['folds']}: accuracy {summary['accuracy_mean']:.4f} "
          f"± {summary['accuracy_std']:.4f}, macro-F1 {summary['f1_macro_mean']:.4f} ± {summary['f1_macro_std']:.4f}")
    return result
