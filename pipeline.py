"""The pipeline: get_data -> preprocessing -> training, dataset ids handed from step to step.

    python pipeline.py --offline                  # no server: every step here, on the built-in data
    python pipeline.py                            # ClearML: controller here, steps on agents
    python pipeline.py --queue services           # ClearML: controller on 'services' too
    python pipeline.py --run-locally              # ClearML: controller and steps here, reported to the server
    python pipeline.py --folds all --epochs 40    # 10-fold cross-validation, one training step per fold
    python pipeline.py --preprocessing-args "--pad zero --n-mels 128" --training-args "--lr 3e-3 --select best-val"

Each step is a stage script run with its own arguments. A step publishes the id
it created as ``General/dataset_id``; the next step's ``Args/dataset_id`` is set
to ``${<step>.parameters.General/dataset_id}``, which the controller resolves
when that step launches. Offline, the same hand-off happens in this process.

Online, each step's task is created from its script in this repository
(``Task.create``: repository, commit, entry point, requirements.txt) next to
the pipeline's controller, unless ``--template-project`` names a project holding
template tasks called get_data, preprocessing and training (for example tasks
you ran once with --task-name training and edited in the UI); those are cloned
instead. Each step's task names itself after its settings when it runs. The
pipeline parameters (UI_PARAMETERS) are the controller's Args/, what a NEW RUN
in the web UI changes. The controller
itself needs only clearml (requirements-controller.txt): this module imports
the stages, and torch with them, only to run them offline.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from audioclf import cli, clearml_internals, stopping, tracking
from audioclf.cli import fold_list, positive_int
from audioclf.enqueue import before_enqueue
from audioclf.errors import UserError
from audioclf.layouts import source_folds
from audioclf.train_config import TrainConfig

_TRAIN = TrainConfig()

REPO_ROOT = Path(__file__).resolve().parent
CONTROLLER_REQUIREMENTS = REPO_ROOT / "requirements-controller.txt"

# The pipeline parameters: the controller task's Args/, which the web UI's NEW RUN dialog offers, each working
# there (num_clips only for the synthetic source, width only when given). Everything else pipeline.py was
# given is fixed when the DAG is built (the source decides the folds, one training step each) and kept in the
# controller's configuration object FIXED_CONFIG, which a controller run by an agent reads back.
UI_PARAMETERS = ("num_clips", "seed", "model", "epochs", "width", "device")
FIXED_CONFIG = "pipeline.py arguments"
# What only the process that launches the pipeline uses: not needed by a controller on an agent.
_LAUNCH_ONLY = ("offline", "run_locally", "output_dir", "queue")


@dataclass(frozen=True)
class Step:
    name: str
    script: str
    task_type: str

    def main(self, argv: list[str]) -> dict:
        """Run the stage here (offline), importing it only now."""
        return importlib.import_module(Path(self.script).stem).main(argv)


STEPS = {
    "get_data": Step("get_data", "get_data.py", "data_processing"),
    "preprocessing": Step("preprocessing", "preprocessing.py", "data_processing"),
    "training": Step("training", "training.py", "training"),
    "cross_validation": Step("cross_validation", "cross_validation.py", "qc"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data (fixed when the pipeline is built: the source decides the folds, one "
                                     "training step each)")
    data.add_argument("--source", default="synthetic", help="get_data --source (default: %(default)s)")
    data.add_argument("--data-seed", type=int, default=0,
                      help="random seed of the data this run makes: get_data --data-seed (default: %(default)s)")
    data.add_argument("--classes", nargs="+", default=None, metavar="CLASS",
                      help="get_data --classes: keep only these classes (names, comma- or space-separated) "
                           "(default: every class)")
    data.add_argument("--folds", type=fold_list, default=None,
                      help="test fold(s): one training step each, e.g. 10, 1,2,3 or 'all' (the source's folds: "
                           "1..10 for UrbanSound8K, 1..5 for ESC-50); with more than one, a final step reports "
                           "mean ± std and the summed confusion matrix (default: one step on the dataset's last fold)")
    knobs = parser.add_argument_group("pipeline parameters (editable in the ClearML UI when online)")
    knobs.add_argument("--num-clips", type=positive_int, default=1000,
                       help="get_data --num-clips, synthetic source (default: %(default)s)")
    knobs.add_argument("--seed", type=int, default=0,
                       help="random seed of the training this run does: training --seed (default: %(default)s)")
    knobs.add_argument("--model", default=_TRAIN.arch, help="training --model (default: %(default)s)")
    knobs.add_argument("--epochs", type=positive_int, default=_TRAIN.epochs,
                       help="training --epochs (default: %(default)s)")
    knobs.add_argument("--width", type=positive_int, default=None,
                       help="training --width (default: training.py's, as a pipeline parameter only when given)")
    knobs.add_argument("--device", type=cli.device_name, default="auto",
                       help=f"preprocessing and training --device: {cli.DEVICE_CHOICES} (default: %(default)s)")
    stages = parser.add_argument_group("more stage flags (checked by the stage's own parser before anything runs)")
    for step, example in (("get_data", "--esc10 --workers 4"), ("preprocessing", "--pad zero --n-mels 128"),
                          ("training", "--lr 3e-3 --select best-val --no-amp")):
        stages.add_argument(f"--{step.replace('_', '-')}-args", default="", metavar="FLAGS",
                            help=f"more {step}.py flags for its step, one quoted string, e.g. \"{example}\" "
                                 f"(one flag alone: --{step.replace('_', '-')}-args=--flag) (default: none; the "
                                 "flags this pipeline sets itself are refused)")
    online = parser.add_argument_group("ClearML server and agents")
    online.add_argument("--steps-queue", default="default",
                        help="agent queue of the CPU steps: get_data and cross_validation (default: %(default)s)")
    online.add_argument("--gpu-queue", default="gpu",
                        help="agent queue of preprocessing and training (default: %(default)s)")
    where = online.add_mutually_exclusive_group()
    queue = where.add_argument("--queue", default=None,
                               help="enqueue this script on a ClearML agent queue instead of running it here: the "
                                    "pipeline controller, e.g. on 'services' (default: the controller runs here, "
                                    "the steps on the agents)")
    cli.alias(where, "--controller-queue", queue)
    where.add_argument("--run-locally", action="store_true",
                       help="run the controller and every step in this process, one after the other, reporting "
                            "to the ClearML server: no agent needed")
    # --local (the controller here, the steps on the agents) is what no --queue does now.
    where.add_argument("--local", action=cli.Deprecated, nargs=0, const=None, dest="queue",
                       new="the default (no --queue)")
    online.add_argument("--template-project", default=None,
                        help="clone the steps from template tasks named get_data, preprocessing, training and "
                             "cross_validation in this project (default: create them from the scripts in this "
                             "repository)")
    online.add_argument("--pipeline-name", default="Audio classification pipeline",
                        help="(default: %(default)s)")
    online.add_argument("--no-cache", action="store_true",
                        help="rerun get_data and preprocessing even when an identical completed step exists")
    online.add_argument("--storage", default=None,
                        help="every step's --storage: where models and dataset files go (default: the files server)")
    parser.add_argument("--project", default="Audio Classification", help="ClearML project (default: %(default)s)")
    parser.add_argument("--offline", action="store_true",
                        help="run without a ClearML server: every step in this process (automatic when no ClearML "
                             "credentials are configured)")
    parser.add_argument("--output-dir", type=Path, default=tracking.default_output_dir(),
                        help="offline: local dataset store and run folders (default: %(default)s)")
    return parser


def training_options(args: argparse.Namespace) -> dict[str, str]:
    """The training flags the pipeline sets (the others keep training.py's defaults)."""
    chosen = {"--model": args.model, "--epochs": args.epochs, "--width": args.width}
    return {flag: str(value) for flag, value in chosen.items() if value is not None}


# --- the stage flags passed through (--get-data-args, --preprocessing-args, --training-args) ---------

# Each step's flags that the pipeline sets itself (argparse dest -> what to use instead); refused in --*-args.
_SET_BY_PIPELINE = {"dataset_id": "the previous step's output", "project": "pipeline.py --project",
                    "offline": "pipeline.py --offline", "output_dir": "pipeline.py --output-dir",
                    "queue": "--steps-queue / --gpu-queue", "storage": "pipeline.py --storage",
                    "task_name": "the name each step gives its task (its settings)"}
_RESERVED = {
    "get_data": {**_SET_BY_PIPELINE, "source": "pipeline.py --source", "classes": "pipeline.py --classes",
                 "num_clips": "pipeline.py --num-clips", "data_seed": "pipeline.py --data-seed"},
    "preprocessing": {**_SET_BY_PIPELINE, "device": "pipeline.py --device"},
    "training": {**_SET_BY_PIPELINE, "device": "pipeline.py --device", "seed": "pipeline.py --seed",
                 "model": "pipeline.py --model", "epochs": "pipeline.py --epochs", "width": "pipeline.py --width",
                 "test_fold": "pipeline.py --folds", "folds": "pipeline.py --folds"},
}
_PASS_THROUGH = {"get_data": "get_data_args", "preprocessing": "preprocessing_args", "training": "training_args"}


def stage_overrides(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """{step: {argparse dest: value}} from the --*-args strings, each checked by the stage's own parser (imported
    only when one is given: the stages import torch, the controller needs only clearml). UserError naming the
    pipeline flag."""
    from clearml.config import running_remotely

    overrides = {}
    for step, attr in _PASS_THROUGH.items():
        text = getattr(args, attr) or ""
        if not text.strip():
            overrides[step] = {}
            continue
        if running_remotely():  # the controller on a services agent: checked when the pipeline was launched
            overrides[step] = cli.flag_pairs(text, f"--{attr.replace('_', '-')}")
            continue
        parser = importlib.import_module(step).build_parser()
        required = ["--dataset-id", "x"] if step != "get_data" else []
        overrides[step] = cli.stage_overrides(parser, text, f"--{attr.replace('_', '-')}", _RESERVED[step], required)
    return overrides


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Everything that can be known wrong before a step runs or a ClearML session starts: an argparse error,
    exit 2. A local --source path is checked only here, not on an agent that runs the controller."""
    from clearml.config import running_remotely

    classes = cli.name_list(args.classes)
    problems = [cli.source_problem(args.source, check_paths=not running_remotely()),
                cli.num_clips_problem(args.source, args.num_clips), cli.classes_problem(args.source, classes)]
    try:
        step_folds(args)  # a fold the source does not have
        stage_overrides(args)
        if not running_remotely():  # --model, --epochs, --width: as training.py's parser takes them
            options = [item for pair in training_options(args).items() for item in pair]
            cli.stage_overrides(importlib.import_module("training").build_parser(), " ".join(options),
                                "pipeline.py", {}, ["--dataset-id", "x"])
    except UserError as exc:
        problems.append(str(exc))
    for problem in problems:
        if problem:
            parser.error(problem)


# --- offline: the steps in this process -------------------------------------------------------------

def step_arguments(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each step's own command line, without the dataset id that the previous step provides."""
    common = ["--project", args.project, "--output-dir", str(args.output_dir), "--offline"]
    training = [item for pair in training_options(args).items() for item in pair]
    classes = cli.name_list(args.classes)
    return {
        "get_data": ["--source", args.source, "--num-clips", str(args.num_clips), "--data-seed", str(args.data_seed)]
        + (["--classes", ",".join(classes)] if classes else []) + shlex.split(args.get_data_args) + common,
        "preprocessing": ["--device", args.device] + shlex.split(args.preprocessing_args) + common,
        "training": training + ["--seed", str(args.seed), "--device", args.device]
        + shlex.split(args.training_args) + common,
    }


def run_offline(args: argparse.Namespace) -> dict[str, dict]:
    """Run the steps in order in this process, handing each dataset id to the next step."""
    results: dict[str, dict] = {}
    try:
        return _run_steps_offline(args, results)
    except SystemExit as exc:
        if exc.code in (130, 143):  # a step stopped by SIGINT or SIGTERM (it said what it kept)
            print(f"interrupted: pipeline.py stopped; {_finished_steps(results)}", file=sys.stderr, flush=True)
        raise


def _finished_steps(results: dict[str, dict]) -> str:
    """What the steps that finished made, and how to go on from them, for the line of an interrupted pipeline."""
    if "preprocessing" in results:
        features = results["preprocessing"]["dataset_id"]
        return (f"raw dataset {results['get_data']['dataset_id']} and features dataset {features} are complete: go "
                f"on with python training.py --dataset-id {features}, or rerun the same command")
    if "get_data" in results:
        raw = results["get_data"]["dataset_id"]
        return (f"raw dataset {raw} is complete: go on with python preprocessing.py --dataset-id {raw}, or rerun "
                "the same command (the spectrograms computed so far are reused)")
    return "no step finished: rerun the same command (the clips made so far are reused)"


def _run_steps_offline(args: argparse.Namespace, results: dict[str, dict]) -> dict[str, dict]:
    argv = step_arguments(args)
    print("\n=== pipeline step get_data ===", flush=True)
    results["get_data"] = STEPS["get_data"].main(argv["get_data"])
    print("\n=== pipeline step preprocessing ===", flush=True)
    results["preprocessing"] = STEPS["preprocessing"].main(
        argv["preprocessing"] + ["--dataset-id", results["get_data"]["dataset_id"]])
    folds = step_folds(args)
    for fold in folds:
        print(f"\n=== pipeline step {training_step_name(fold, folds)} ===", flush=True)
        chosen = [] if fold is None else ["--test-fold", str(fold)]
        results[training_step_name(fold, folds)] = STEPS["training"].main(
            argv["training"] + chosen + ["--dataset-id", results["preprocessing"]["dataset_id"]])
    if len(folds) > 1:
        print("\n=== pipeline step cross_validation ===", flush=True)
        run_dirs = [results[training_step_name(f, folds)]["run_dir"] for f in folds]
        results["cross_validation"] = STEPS["cross_validation"].main(
            ["--run-dirs", *run_dirs, "--project", args.project, "--output-dir", str(args.output_dir), "--offline"])
    return results


def step_folds(args: argparse.Namespace) -> list[int | None]:
    """The test folds, one training step each: --folds, checked against the source's folds (fixed when the
    pipeline is built); 'all' is every fold of the source. Without --folds, one step whose test fold is
    None: training.py then takes the dataset's last fold when it runs (a small dataset may lack fold 10)."""
    available = list(source_folds(args.source))
    if args.folds is None:
        return [None]
    outside = sorted(set(args.folds) - set(available))
    if outside:
        raise UserError(f"--folds {','.join(map(str, outside))}: {args.source} has the folds "
                        f"{available[0]}..{available[-1]}")
    return list(args.folds) or available


def training_step_name(fold: int | None, folds: list[int | None]) -> str:
    return "training" if len(folds) == 1 else f"training_fold{fold}"


def print_summary(results: dict[str, dict]) -> None:
    """The same summary offline (the stages' results) and online (read back from the step tasks)."""
    print("\n=== pipeline summary ===")
    if "pipeline" in results:
        print(f"pipeline:         {results['pipeline']['status']}  {results['pipeline']['url']}")
    for name in ("get_data", "preprocessing"):
        step = results.get(name, {})
        label = "raw dataset:     " if name == "get_data" else "features dataset:"
        print(f"{label} {step.get('dataset_id', '-')}{_where(step)}")
    for name, train in results.items():
        if name.startswith("training") and "test" in train:
            print(f"{name}: test fold {train['test_fold']} accuracy {train['test']['accuracy']:.4f} "
                  f"(macro-F1 {train['test']['f1_macro']:.4f}); model {train.get('model_id') or train.get('model_path')}"
                  f"{_where(train)}")
        elif name.startswith("training"):
            print(f"{name}: {train.get('status', 'not run')}{_where(train)}")
    if "cross_validation" in results and "accuracy_mean" in results["cross_validation"]:
        cv = results["cross_validation"]
        print(f"cross-validation: accuracy {cv['accuracy_mean']:.4f} ± {cv['accuracy_std']:.4f}, "
              f"macro-F1 {cv['f1_macro_mean']:.4f} ± {cv['f1_macro_std']:.4f}{_where(cv)}")
    elif "training" in results and "test" in results["training"]:
        train = results["training"]
        print(f"test accuracy:    {train['test']['accuracy']:.4f}")
        if train.get("run_dir"):
            print(f"run folder:       {train['run_dir']}")
        print(f"model:            {train.get('model_id') or train.get('model_path')}")


def _where(step: dict) -> str:
    if step.get("url"):
        return f"  ({step.get('status', '')}: {step['url']})"
    return ""


# --- online: a ClearML PipelineController -----------------------------------------------------------

def _task_factory(pipe, step: Step):
    """base_task_factory: a task created from the step's script, with its requirements, in the controller's own
    project (next to the pipeline, where cloned steps would go too).

    Its code is the controller's own: the repository, branch, commit and uncommitted diff recorded when the
    pipeline was launched. So a step is the same task whether the controller runs here (no --queue) or on a
    services agent, whose working copy is a detached checkout: ClearML's step cache hashes the script
    (automation/job.py, _create_task_hash), and a local path's branch and diff would differ between the two."""
    from clearml import Task

    def create(node) -> Task:
        task = Task.create(project_name=pipe.task.get_project_name(), task_name=node.name,
                           task_type=step.task_type, script=step.script, working_directory=".",
                           repo=str(REPO_ROOT), requirements_file=str(REPO_ROOT / "requirements.txt"),
                           add_task_init_call=False)
        code = _controller_code(pipe)
        if code.repository:
            task.set_script(repository=code.repository, branch=code.branch or "", commit=code.version_num or "",
                            diff=code.diff or "", working_dir=".", entry_point=step.script)
        return task
    return create


def _controller_code(pipe):
    """The controller task's recorded script (waiting, once, for the SDK's repository detection)."""
    if getattr(pipe, "_audioclf_code", None) is None:
        clearml_internals.wait_for_repo_detection(pipe.task, timeout=300)  # detection runs in a thread
        pipe.task.reload()
        pipe._audioclf_code = pipe.task.data.script
    return pipe._audioclf_code


def _base_task(args: argparse.Namespace, pipe, step: Step) -> dict:
    if args.template_project:
        return {"base_task_project": args.template_project, "base_task_name": step.name}
    return {"base_task_factory": _task_factory(pipe, step)}


def fixed_arguments(args: argparse.Namespace) -> dict:
    """pipeline.py's arguments that are not pipeline parameters and that a controller on an agent needs."""
    return {k: v for k, v in vars(args).items() if k not in UI_PARAMETERS and k not in _LAUNCH_ONLY}


def restore_arguments(task, parser: argparse.ArgumentParser, args: argparse.Namespace, fixed) -> None:
    """Under an agent (a controller enqueued by pipeline.py, or a NEW RUN from the web UI): set ``args`` from the
    controller task: the fixed arguments from its FIXED_CONFIG (``fixed``, as read back), the pipeline
    parameters from its Args/ (as the UI left them), each checked by pipeline.py's own flag types. An argparse
    error (exit 2) names a bad one."""
    if not isinstance(fixed, dict):
        parser.error(f"the pipeline controller's '{FIXED_CONFIG}' configuration is not a dictionary: start the "
                     "pipeline again with pipeline.py")
    for key, value in fixed.items():
        setattr(args, key, value)
    given = task.get_parameters()
    actions = {a.dest: a for a in parser._actions if a.help != argparse.SUPPRESS}  # not an old flag name
    for name in UI_PARAMETERS:
        value = given.get(f"Args/{name}")
        if value is None or value == "":  # not a parameter of this pipeline (width not given, a real source)
            setattr(args, name, actions[name].default)
            continue
        kind = actions[name].type or str
        try:
            setattr(args, name, kind(value))
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            parser.error(f"pipeline parameter {name}={value!r}: {exc}")


def build_controller(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None):
    """The DAG: get_data -> preprocessing -> one training step per test fold [-> cross_validation].

    The source (and so the folds, one training step each) is fixed here; the pipeline parameters are the
    knobs that keep the DAG's shape (clips, seed, model, epochs, width, device). Under an agent, ``args`` are
    first set from the controller task (restore_arguments)."""
    from clearml import PipelineController, Task
    from clearml.config import running_remotely

    parser = parser or build_parser()
    # The controller's task lists only what pipeline.py needs when an agent runs it: clearml. (Detected, it
    # would list torch and the rest, which a services agent would then install just to run a controller.)
    Task.force_requirements_env_freeze(force=True, requirements_file=str(CONTROLLER_REQUIREMENTS))
    pipe = PipelineController(name=args.pipeline_name, project=args.project, version="1.0.0",
                              add_pipeline_tags=False, abort_on_failure=True)
    # Here: recorded on the controller task. Under an agent: read back from it.
    fixed = pipe.connect_configuration(
        fixed_arguments(args), name=FIXED_CONFIG,
        description="fixed when the pipeline was built (the source decides the folds, one training step each): "
                    "change them with a new pipeline.py run; a NEW RUN changes only the Args")
    if running_remotely():
        restore_arguments(pipe.task, parser, args, dict(fixed))
        check_arguments(parser, args)
    if args.source == "synthetic":
        pipe.add_parameter(name="num_clips", default=args.num_clips, description="get_data --num-clips")
    pipe.add_parameter(name="seed", default=args.seed, description="training --seed")
    pipe.add_parameter(name="device", default=args.device, description="preprocessing and training --device")
    training_knobs = {}
    for flag, value in training_options(args).items():
        name = flag.lstrip("-")
        pipe.add_parameter(name=name, default=value, description=f"training {flag}")
        training_knobs[f"Args/{name}"] = f"${{pipeline.{name}}}"
    pipe.set_default_execution_queue(args.steps_queue)
    cache = not args.no_cache
    # The --*-args flags, as each step's Args/ (fixed when the pipeline is built, like the source).
    passed = {step: {f"Args/{dest}": value for dest, value in values.items()}
              for step, values in stage_overrides(args).items()}
    classes = cli.name_list(args.classes)
    # Every step reports to the server (never --offline) and to the pipeline's project.
    common = {"Args/project": args.project, "Args/offline": "False",
              **({"Args/storage": args.storage} if args.storage else {})}

    pipe.add_step(
        name="get_data", execution_queue=args.steps_queue, cache_executed_step=cache,
        parameter_override={**common, **passed["get_data"], "Args/source": args.source,
                            **({"Args/num_clips": "${pipeline.num_clips}"} if args.source == "synthetic" else {}),
                            "Args/data_seed": str(args.data_seed),
                            **({"Args/classes": ",".join(classes)} if classes else {})},
        **_base_task(args, pipe, STEPS["get_data"]))
    pipe.add_step(
        name="preprocessing", parents=["get_data"], execution_queue=args.gpu_queue, cache_executed_step=cache,
        parameter_override={**common, **passed["preprocessing"],
                            "Args/dataset_id": "${get_data.parameters.General/dataset_id}",
                            "Args/device": "${pipeline.device}"},
        **_base_task(args, pipe, STEPS["preprocessing"]))
    names = []
    folds = step_folds(args)
    for fold in folds:
        name = training_step_name(fold, folds)
        names.append(name)
        pipe.add_step(
            name=name, parents=["preprocessing"], execution_queue=args.gpu_queue,
            parameter_override={**common, **passed["training"],
                                "Args/dataset_id": "${preprocessing.parameters.General/dataset_id}",
                                **({} if fold is None else {"Args/test_fold": str(fold)}), **training_knobs,
                                "Args/seed": "${pipeline.seed}", "Args/device": "${pipeline.device}"},
            **_base_task(args, pipe, STEPS["training"]))
    if len(names) > 1:
        pipe.add_step(
            name="cross_validation", parents=names, execution_queue=args.steps_queue,
            parameter_override={**common, "Args/training_tasks": ",".join(f"${{{n}.id}}" for n in names)},
            **_base_task(args, pipe, STEPS["cross_validation"]))
    return pipe


def online_results(pipe) -> dict[str, dict]:
    """What each step produced, read back from its task on the server (for the summary)."""
    from clearml import Task

    results: dict[str, dict] = {}
    controller = pipe.task
    controller.reload()
    results["pipeline"] = {"task_id": controller.id, "status": controller.get_status(),
                           "url": controller.get_output_log_web_page()}
    for name, node in pipe.get_pipeline_dag().items():
        task_id = node.executed or (node.job.task_id() if node.job else None)
        if not task_id:
            results[name] = {"status": "not run"}
            continue
        task = Task.get_task(task_id=task_id)
        params = task.get_parameters()
        entry = {"task_id": task_id, "status": task.get_status(), "url": task.get_output_log_web_page()}
        if params.get("General/dataset_id"):
            entry["dataset_id"] = params["General/dataset_id"]
        if name.startswith("training") and "metrics" in task.artifacts:
            entry.update(task.artifacts["metrics"].get())
            entry["model_id"] = params.get("General/model_id") or entry.get("model_id")
        if name == "cross_validation":
            entry.update({k: float(params[f"General/{k}"]) for k in
                          ("accuracy_mean", "accuracy_std", "f1_macro_mean", "f1_macro_std") if f"General/{k}" in params})
        results[name] = entry
    return results


def run_online(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> dict[str, dict] | None:
    if args.run_locally:
        # Each step runs as `python <script>` in <current folder>/<its working dir> (ClearML's LocalClearmlJob):
        # from the repository root, whatever folder the pipeline was started from.
        args.output_dir = args.output_dir.resolve()
        os.chdir(REPO_ROOT)
    from clearml.config import running_remotely

    if not args.run_locally and not running_remotely():
        # Before the controller's task exists: a queue that does not exist, or code the agents cannot clone as it
        # is here, stops the launch (the steps would fail on the agents, or wait forever). Not on the agent that
        # runs an enqueued controller: checked when it was launched, and its clone is not a working copy.
        queues = [args.steps_queue, args.gpu_queue] + ([args.queue] if args.queue else [])
        try:
            before_enqueue("pipeline.py (its steps run on agents)", queues)
        except UserError as exc:
            tracking.fail(str(exc))
    pipe = build_controller(args, parser)
    stopping.install()  # again: the controller's Task.init replaced our handlers and swallows SIGTERM (stopping.py)
    url = pipe.task.get_output_log_web_page()
    if args.queue or running_remotely():
        if running_remotely():  # the agent's run of an enqueued controller (or of a NEW RUN from the web UI)
            print(f"running the pipeline controller on this agent; steps on '{args.steps_queue}' and "
                  f"'{args.gpu_queue}'", flush=True)
        else:
            print(f"enqueuing the pipeline controller on '{args.queue}'; follow it at {url}", flush=True)
        pipe.start(queue=args.queue or "services")  # hands over to the agent: this process exits here
        return None
    if args.run_locally:
        print(f"starting the pipeline controller in this process ({url}); the steps run here too, one after "
              "the other, and report to the server", flush=True)
    else:
        print(f"starting the pipeline controller in this process ({url}); steps go to the agents", flush=True)
    try:
        pipe.start_locally(run_pipeline_steps_locally=args.run_locally)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGINT or SIGTERM: abort the running steps, mark the pipeline stopped
        pipe.stop(timeout=0.5, mark_aborted=True)
        stopping.end_children()  # --run-locally: the step running as a subprocess of this one
        print(f"interrupted: pipeline.py stopped by {stopping.describe(exc)}; its running steps were aborted and the "
              f"pipeline marked stopped ({url}); a rerun of the same command reuses its completed get_data and "
              "preprocessing steps (ClearML's step cache)", file=sys.stderr, flush=True)
        raise SystemExit(stopping.exit_status(exc)) from None
    results = online_results(pipe)
    print_summary(results)
    failed = [name for name, step in results.items() if step.get("status") in ("failed", "stopped")]
    if failed:
        print(f"error: the pipeline did not complete: {', '.join(failed)} failed or stopped; see the links above",
              file=sys.stderr)
        raise SystemExit(1)
    return results


def main(argv: list[str] | None = None) -> dict[str, dict] | None:
    from clearml.config import running_remotely

    parser = build_parser()
    # Parsed unseen by ClearML's argparse binding: the controller task's Args/ are the pipeline parameters only
    # (the NEW RUN dialog offers its Args/), not every flag of pipeline.py (see UI_PARAMETERS, FIXED_CONFIG).
    args = cli.parse_quietly(parser, argv)
    if running_remotely():  # a controller on an agent: its arguments come from its task (build_controller)
        return run_online(args, parser)
    check_arguments(parser, args)  # before any step runs or any ClearML session starts
    offline, why = tracking.decide_offline(args.offline)
    if offline and args.run_locally:
        parser.error(f"--run-locally reports to a ClearML server, but this run is offline ({why}); without a "
                     "server use --offline (every step here)")
    if offline:
        args.offline = True
        results = run_offline(args)
        print_summary(results)
        return results
    return run_online(args, parser)


if __name__ == "__main__":
    stopping.run_script(main, "pipeline")
