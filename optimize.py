"""Hyperparameter search over training.py's arguments: ClearML's HyperParameterOptimizer on agents, or Optuna here.

    python optimize.py --dataset-id <features id> --trials-queue gpu --trials 20    # online: trials run on agents
    python optimize.py --base-task-id <training task id> --trials-queue gpu         # clone that training task
    python optimize.py --dataset-id <id> --queue services                           # the optimizer on an agent too
    python optimize.py --offline --dataset-id <features id> --trials 3 --epochs 2   # no server: trials here
    python optimize.py ... --lr 1e-3:5e-3 --batch-size 32,64 --mixup 0.2 --epochs 30

Searched (each LOW:HIGH, A,B,C or one fixed value): --lr, --batch-size, --mixup, --weight-decay, --model,
--epochs. Strategy: Optuna's TPE sampler (--strategy random for random search), with median pruning of
trials whose validation accuracy falls behind the others' at the same epoch (--no-prune to keep every trial).
The objective is the VALIDATION accuracy of the weights a trial keeps (training.py --select): with --select last,
the default, its last epoch's accuracy; with --select best-val (in --training-args, or a --base-task-id task from
before --select), its best epoch's. Online that is the scalar title "accuracy", series "val" (its last value, or
its maximum), and the trials table, the plot and the best trial report the same number ClearML's optimizer
maximizes. The test fold takes no part in any choice, and its accuracy is reported for the best trial only.

Online, every trial is a clone of the base training task (--base-task-id, or a task created from training.py
for --dataset-id) with its Args/ set, enqueued on --trials-queue and run by an agent: the trials stay normal
training tasks the UI can compare. Offline, every trial is a training.py run in this process with its own run
folder. Either way the search's run folder holds trials.csv and trials.png, and the best trial's arguments,
task or run folder, model and test accuracy are printed and reported.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from audioclf import cli, stopping, tracking
from audioclf.cli import Renamed, positive_float, positive_int
from audioclf.enqueue import before_enqueue
from audioclf.errors import UserError
from audioclf.search import (OBJECTIVE_LABELS, OBJECTIVE_SERIES, OBJECTIVE_TITLE, SEARCHABLE, clearml_ranges,
                             max_epochs, space_from, training_argv, trial_objective)
from audioclf.train_config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parent
OPTIMIZER_REQUIREMENTS = REPO_ROOT / "requirements-controller.txt"


STOPPED_STATUSES = (130, 143)  # a training run stopped by SIGINT or SIGTERM (stopping.py)


class TrialStopped(Exception):
    """Raised from training's per-epoch callback to prune a trial; the training run is marked stopped."""

    stops_run = True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-id", default=None,
                        help="the features dataset the trials train on (printed by preprocessing.py); online, a "
                             "base training task is created from training.py with it")
    parser.add_argument("--base-task-id", default=None,
                        help="online: clone this training task for every trial instead (its Args/ are the start)")
    space = parser.add_argument_group("search space (LOW:HIGH a range, A,B,C a choice, A one fixed value)")
    for name, (_, log, default) in SEARCHABLE.items():
        scale = " (log scale)" if log else ""
        space.add_argument("--" + name.replace("_", "-"), default=default,
                           help=f"training --{name.replace('_', '-')}{scale} (default: %(default)s)")
    search = parser.add_argument_group("search")
    search.add_argument("--trials", type=positive_int, default=20, help="trials in all (default: %(default)s)")
    search.add_argument("--strategy", choices=("optuna", "random"), default="optuna",
                        help="Optuna's TPE sampler or random search (default: %(default)s)")
    search.add_argument("--no-prune", action="store_true",
                        help="let every trial finish (default: stop trials below the median at the same epoch)")
    search.add_argument("--sampler-seed", type=int, default=0,
                        help="seed of the search's sampler (Optuna TPE or random); the trials' training seed is "
                             "training's --seed, in --training-args (default: %(default)s)")
    search.add_argument("--seed", action=Renamed,
                        message="optimize.py's --seed was the sampler's seed: use --sampler-seed; the trials' "
                                "training seed goes in --training-args \"--seed N\"")
    training_args = search.add_argument("--training-args", default="", metavar="FLAGS",
                                        help="more training.py flags for every trial, one quoted string, e.g. "
                                             "\"--width 24 --test-fold 9\" (default: none)")
    cli.alias(search, "--train-args", training_args)
    online = parser.add_argument_group("online (ClearML server and agents)")
    online.add_argument("--trials-queue", default="gpu",
                        help="agent queue the trials are enqueued on (default: %(default)s)")
    online.add_argument("--concurrent", type=positive_int, default=2,
                        help="trials running at once (default: %(default)s)")
    online.add_argument("--time-limit", type=positive_float, default=None,
                        help="stop the search after this many minutes (default: when --trials are done)")
    online.add_argument("--poll-seconds", type=positive_float, default=30.0,
                        help="how often the trials' progress is read from the server (default: %(default)s)")
    queue = tracking.add_tracking_args(parser, stage="optimize")
    cli.alias(parser, "--optimizer-queue", queue)
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        space = space_from(args)
    except UserError as exc:
        parser.error(str(exc))
    if not args.dataset_id and not args.base_task_id:
        parser.error("give --dataset-id (the features dataset to train on) or, online, --base-task-id")
    offline, why = tracking.decide_offline(args.offline)
    if offline and args.queue:  # before any trial: the optimizer's own session would only start after them
        flag = tracking.queue_flag_of(parser)
        tracking.fail(f"{flag} {args.queue} needs a ClearML server, but this run is offline ({why}); drop {flag} to "
                      "run the search here, or configure a server")
    if offline:
        if args.base_task_id:
            tracking.fail(f"--base-task-id needs a ClearML server, but this run is offline ({why}); use --dataset-id")
        args.offline = True
        return run_offline(args, parser, space)
    return run_online(args, parser, space)


# --- offline: Optuna in this process -----------------------------------------------------------------

def run_offline(args: argparse.Namespace, parser: argparse.ArgumentParser, space) -> dict:
    import optuna

    import training

    check_features_dataset(args)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=args.sampler_seed) if args.strategy == "optuna"
               else optuna.samplers.RandomSampler(seed=args.sampler_seed))
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=_pruner(optuna, args, space))
    base = ["--dataset-id", args.dataset_id, "--offline", "--project", args.project, "--output-dir",
            str(args.output_dir), *shlex.split(args.training_args)]

    def objective(trial) -> float:
        values = _suggest(trial, space)
        print(f"\n=== trial {trial.number + 1}/{args.trials}: "
              f"{', '.join(f'{k}={v}' for k, v in values.items())} ===", flush=True)

        def on_epoch(epoch: int, val_accuracy: float) -> None:
            trial.report(val_accuracy, epoch)
            if trial.should_prune():
                raise TrialStopped(f"pruned after epoch {epoch}: validation accuracy {val_accuracy:.4f} is below "
                                   "the median of the earlier trials at that epoch")

        try:
            result = training.main(base + training_argv(values), on_epoch=on_epoch)
        except TrialStopped as exc:
            print(f"trial {trial.number + 1}: {exc}")
            raise optuna.TrialPruned(str(exc)) from None
        except SystemExit as exc:  # training refused these values (diverged, ...): the trial failed, go on
            if exc.code in STOPPED_STATUSES:  # SIGINT or SIGTERM stopped it: the whole search stops
                raise
            raise TrialFailed(f"training.py exited with status {exc.code}") from None
        trial.set_user_attr("run_dir", result["run_dir"])
        trial.set_user_attr("model", result["model_path"])
        trial.set_user_attr("test_accuracy", result["test"]["accuracy"])
        return result["model_val_accuracy"]  # the validation accuracy of the weights the trial keeps

    try:
        study.optimize(objective, n_trials=args.trials, catch=(TrialFailed,))
    except (KeyboardInterrupt, SystemExit) as exc:
        code = stopping.exit_status(exc) if isinstance(exc, KeyboardInterrupt) else exc.code
        if code not in STOPPED_STATUSES:
            raise
        finished = [t for t in study.trials if t.user_attrs.get("run_dir")]
        print(f"interrupted: the search stopped after {len(finished)} finished trial(s), whose run folders are "
              f"kept ({', '.join(t.user_attrs['run_dir'] for t in finished) or 'none'}); rerun the same command "
              "to search again", file=sys.stderr, flush=True)
        raise SystemExit(code) from None
    table = trials_table(study, space)
    complete = table[table["state"] == "COMPLETE"]
    if complete.empty:
        tracking.fail("no trial completed; see the trials' messages above")
    best = complete.loc[complete["objective"].idxmax()]
    with tracking.stage("optimize", args, parser, task_type="optimizer") as run:
        report(run, table, space, best_label=f"trial {int(best['trial'])}")
        run.output("best_run_dir", str(best["run_dir"]))
        run.output("best_model", str(best["model_file"]))
        result = {"best": {"trial": int(best["trial"]), "values": {d.name: best[d.name] for d in space},
                           "val_accuracy": float(best["objective"]), "test_accuracy": float(best["test_accuracy"]),
                           "run_dir": best["run_dir"], "model": best["model_file"]},
                  "trials": table.to_dict(orient="records"), "run_dir": str(run.run_dir), **run.identity()}
        # Printed before the session closes, so that its console ends with them too.
        print_best(result["best"], where=f"run folder {best['run_dir']}")
        print(f"results: {run.where()}", flush=True)
    return result


class TrialFailed(Exception):
    pass


def check_features_dataset(args: argparse.Namespace) -> None:
    """Before the first trial: the dataset exists and is a features dataset (a bad id stops here, once)."""
    from audioclf import metadata
    from audioclf.store import LocalStore

    try:
        dataset = LocalStore(args.output_dir / "datasets").get(args.dataset_id, needs=(metadata.FEATURES_CONFIG,))
    except UserError as exc:
        tracking.fail(str(exc))
    if metadata.dataset_kind(dataset.list_files()) != "features":
        tracking.fail(f"dataset {args.dataset_id} is not a features dataset: pass the id preprocessing.py printed")


def _pruner(optuna, args: argparse.Namespace, space):
    if args.no_prune:
        return optuna.pruners.NopPruner()
    # Two trials run to the end before any is judged; no judgement before a third of the epochs.
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=max(1, max_epochs(space) // 3))


def _suggest(trial, space) -> dict:
    from audioclf.search import suggest

    return suggest(trial, space)


def trials_table(study, space):
    import pandas as pd

    rows = []
    for t in study.trials:
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        rows.append({"trial": t.number + 1, "state": t.state.name,
                     "objective": t.value if t.value is not None else last,
                     **{d.name: t.params.get(d.name, d.values[0]) for d in space},
                     "epochs_run": len(t.intermediate_values), "run_dir": t.user_attrs.get("run_dir", ""),
                     # "model_file", not "model": --model is a searched argument with a column of its own
                     "model_file": t.user_attrs.get("model", ""), "test_accuracy": t.user_attrs.get("test_accuracy")})
    return pd.DataFrame(rows)


def report(run: tracking.Run, table, space, best_label: str) -> None:
    """trials.csv and trials.png in the run folder; the same as a table and a plot on the optimizer's task.
    Only the best trial's test accuracy is shown: the others' are not for choosing."""
    from audioclf import atomic
    from audioclf.search import trials_png

    shown = table.drop(columns=["test_accuracy"]).copy()
    atomic.write_csv(run.run_dir / "trials.csv", shown)
    png = trials_png(table, run.run_dir / "trials.png", f"{len(table)} trials; best: {best_label}")
    run.logger.report_table(title="Trials", series="trials", iteration=0, table_plot=shown)
    run.logger.report_image(title="Trials", series="objective", iteration=0, local_path=str(png))
    run.artifact("trials", shown)


def print_best(best: dict, where: str) -> None:
    values = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in best["values"].items())
    print("\n=== best trial ===")
    print(f"arguments:           {values}")
    print(f"validation accuracy: {best['val_accuracy']:.4f}  (the objective)")
    print(f"test accuracy:       {best['test_accuracy']:.4f}  (reported for the best trial only)")
    print(f"model:               {best['model']}")
    print(f"where:               {where}")


# --- online: ClearML's HyperParameterOptimizer ----------------------------------------------------------

def run_online(args: argparse.Namespace, parser: argparse.ArgumentParser, space) -> dict:
    from clearml import Task

    from clearml.config import running_remotely

    if not running_remotely():  # before any task exists: the trials' queue, and the code their agents clone
        # (a --base-task-id task carries its own recorded code: only the queue is checked then)
        try:
            before_enqueue(f"optimize.py --trials-queue {args.trials_queue}", [args.trials_queue],
                           code=not args.base_task_id)
        except UserError as exc:
            tracking.fail(str(exc))
    # The optimizer's task lists only what this script needs online (a services agent installs just that).
    Task.force_requirements_env_freeze(force=True, requirements_file=str(OPTIMIZER_REQUIREMENTS))
    with tracking.stage("optimize", args, parser, task_type="optimizer", kept=_kept_online) as run:
        base_task = args.base_task_id or create_base_task(args, run)
        sign = objective_sign(args, base_task)  # what the optimizer maximizes is what the report reads
        optimizer = make_optimizer(args, space, base_task, sign)
        # The optimizer's own loop reports (and notices the end of the search) once per report period,
        # 5 minutes by default: as often as the trials are polled instead.
        optimizer.set_report_period(args.poll_seconds / 60)
        print(f"searching {len(space)} arguments over {args.trials} trials of {base_task} on queue "
              f"'{args.trials_queue}' (objective: the {OBJECTIVE_LABELS[sign]}, {OBJECTIVE_TITLE}/{OBJECTIVE_SERIES})",
              flush=True)
        optimizer.start()
        try:
            optimizer.wait()
        except KeyboardInterrupt:  # SIGINT or SIGTERM: the running trials are aborted, not left on the agents
            optimizer.stop(timeout=0.5, wait_for_reporter=False)
            raise
        optimizer.stop()
        rows = online_trials(optimizer, space, sign)
        complete = [r for r in rows if r["status"] == "completed" and r["objective"] is not None]
        if not complete:
            raise UserError("no trial completed; open the trials in the web UI for their logs")
        best = max(complete, key=lambda r: r["objective"])
        header = ["trial task", "status", "objective", *[d.name for d in space]]
        run.logger.report_table(title="Trials", series="trials", iteration=0,
                                table_plot=[header] + [[r["task_id"], r["status"], r["objective"],
                                                        *[r[d.name] for d in space]] for r in rows])
        run.logger.report_scatter2d(title="Trials", series="validation accuracy", iteration=0, mode="markers",
                                    scatter=[[i + 1, r["objective"] or 0.0] for i, r in enumerate(rows)],
                                    xaxis="trial", yaxis=OBJECTIVE_LABELS[sign])
        best_task = Task.get_task(task_id=best["task_id"])
        test_accuracy = best_task.get_reported_single_values().get("test_accuracy")
        models = best_task.models["output"]
        run.output("best_task_id", best["task_id"])
        run.output("best_model_id", models[-1].id if models else "")
        summary = {"values": {d.name: best[d.name] for d in space}, "val_accuracy": best["objective"],
                   "test_accuracy": float(test_accuracy) if test_accuracy is not None else float("nan"),
                   "model": models[-1].id if models else "-", "task_id": best["task_id"],
                   "url": best_task.get_output_log_web_page()}
        run.artifact("best_trial", summary)
        result = {"best": summary, "trials": rows, **run.identity()}
        # Printed before the task closes, so that the task's console on the server ends with them too.
        print_best(summary, where=f"task {summary['task_id']}: {summary['url']}")
        print(f"results: {run.where()}", flush=True)
    return result


def _kept_online(run: tracking.Run) -> str:
    return ("the trials that finished stay on the server as training tasks, and those still running were aborted: "
            "rerun the same command to search again")


def create_base_task(args: argparse.Namespace, run: tracking.Run) -> str:
    """A draft training task from training.py in this repository, for the optimizer to clone."""
    from clearml import Task

    task = Task.create(project_name=args.project, task_name="training (search base)", task_type="training",
                       script="training.py", working_directory=".", repo=str(REPO_ROOT),
                       requirements_file=str(REPO_ROOT / "requirements.txt"),
                       argparse_args=[("dataset_id", args.dataset_id), ("project", args.project),
                                      *train_args_pairs(args.training_args)], add_task_init_call=False)
    run.output("base_task_id", task.id)
    return task.id


def train_args_pairs(text: str) -> list[tuple[str, str]]:
    """'--width 24 --no-amp --test-fold=9' -> [('width', '24'), ('no_amp', 'True'), ('test_fold', '9')]."""
    tokens, pairs = shlex.split(text), []
    while tokens:
        flag = tokens.pop(0)
        if not flag.startswith("--"):
            raise UserError(f"--training-args: expected --flag [value], got {flag!r}")
        name, _, value = flag[2:].partition("=")
        if not value:
            value = tokens.pop(0) if tokens and not tokens[0].startswith("--") else "True"
        pairs.append((name.replace("-", "_"), value))
    return pairs


def objective_sign(args: argparse.Namespace, base_task: str) -> str:
    """How ClearML reads a trial's objective from its accuracy/val series: the validation accuracy of the weights
    the trial keeps. "max": the last value, for training's --select last (the default); "max_global": the best
    epoch's, for --select best-val, and for a --base-task-id task from before --select (it kept its best epoch)."""
    select = dict(train_args_pairs(args.training_args)).get("select")
    if select is None and args.base_task_id:
        from clearml import Task

        select = Task.get_task(task_id=base_task).get_parameter("Args/select") or "best-val"
    return "max_global" if (select or TrainConfig().select) == "best-val" else "max"


def make_optimizer(args: argparse.Namespace, space, base_task: str, sign: str):
    from clearml.automation import HyperParameterOptimizer, RandomSearch

    strategy, extra = RandomSearch, {}
    if args.strategy == "optuna":
        try:
            import optuna
            from clearml.automation.optuna import OptimizerOptuna
        except ImportError as exc:
            print(f"warning: Optuna is not installed ({exc}); using random search")
        else:
            strategy = OptimizerOptuna
            extra = {"optuna_sampler": optuna.samplers.TPESampler(seed=args.sampler_seed),
                     "optuna_pruner": _pruner(optuna, args, space)}
    return HyperParameterOptimizer(
        base_task_id=base_task, hyper_parameters=clearml_ranges(space), objective_metric_title=OBJECTIVE_TITLE,
        objective_metric_series=OBJECTIVE_SERIES, objective_metric_sign=sign,
        optimizer_class=strategy,
        execution_queue=args.trials_queue, max_number_of_concurrent_tasks=args.concurrent,
        optimization_time_limit=args.time_limit, total_max_jobs=args.trials, pool_period_min=args.poll_seconds / 60,
        # OptimizerOptuna aborts a trial that reaches max_iteration_per_job: one past the last epoch, so that every
        # trial ends by itself (tests its checkpoint and registers its model).
        max_iteration_per_job=max_epochs(space) + 1, min_iteration_per_job=max(1, max_epochs(space) // 3),
        save_top_k_tasks_only=None, **extra)


def online_trials(optimizer, space, sign: str) -> list[dict]:
    """Every trial the optimizer launched (completed, pruned or failed): its task, status, objective (accuracy/val
    read as the optimizer read it for ``sign``: the last value or the maximum) and values, in launch order."""
    from clearml import Task

    rows = []
    for task_id in optimizer.optimizer.get_created_jobs_ids():
        task = Task.get_task(task_id=task_id)
        params = task.get_parameters()
        rows.append({"task_id": task.id, "status": task.get_status(),
                     "objective": trial_objective(task.get_last_scalar_metrics(), sign),
                     **{d.name: params.get(f"Args/{d.name}") for d in space}})
    return rows


if __name__ == "__main__":
    stopping.run_script(main, "optimize")
