"""The pipeline: get_data -> preprocessing -> training, dataset ids handed from step to step.

    python pipeline.py --offline                  # no server: every step here, on the built-in data
    python pipeline.py                            # ClearML: controller on 'services', steps on agents
    python pipeline.py --local                    # ClearML: controller here, steps on agents
    python pipeline.py --folds all --epochs 40    # 10-fold cross-validation, one training step per fold

Each step is a stage script run with its own arguments. A step publishes the id
it created as ``General/dataset_id``; the next step's ``Args/dataset_id`` is set
to ``${<step>.parameters.General/dataset_id}``, which the controller resolves
when that step launches. Offline, the same hand-off happens in this process.

Online, each step's task is created from its script in this repository
(``Task.create``: repository, commit, entry point, requirements.txt) unless
``--template-project`` names a project holding template tasks called
get_data, preprocessing and training (for example tasks you ran once and edited
in the UI); those are cloned instead.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import cross_validation
import get_data
import preprocessing
import training
from audioclf import tracking
from audioclf.sources import source_folds

REPO_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Step:
    name: str
    script: str
    main: object  # the stage's main(argv) -> dict
    task_type: str


STEPS = {
    "get_data": Step("get_data", "get_data.py", get_data.main, "data_processing"),
    "preprocessing": Step("preprocessing", "preprocessing.py", preprocessing.main, "data_processing"),
    "training": Step("training", "training.py", training.main, "training"),
    "cross_validation": Step("cross_validation", "cross_validation.py", cross_validation.main, "qc"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    knobs = parser.add_argument_group("pipeline parameters (editable in the ClearML UI when online)")
    knobs.add_argument("--source", default="synthetic", help="get_data --source (default: %(default)s)")
    knobs.add_argument("--num-clips", type=int, default=1000, help="get_data --num-clips (default: %(default)s)")
    knobs.add_argument("--classes", default="",
                       help="get_data --classes, comma-separated class names (default: every class)")
    knobs.add_argument("--seed", type=int, default=0, help="data and training seed (default: %(default)s)")
    knobs.add_argument("--model", default="compact", help="training --model (default: %(default)s)")
    knobs.add_argument("--epochs", type=int, default=30, help="training --epochs (default: %(default)s)")
    knobs.add_argument("--folds", type=training.parse_folds, default=None,
                       help="test fold(s): one training step each, e.g. 10, 1,2,3 or all (the source's folds: "
                            "1..10 for UrbanSound8K, 1..5 for ESC-50); with more than one, a final step reports "
                            "mean ± std and the summed confusion matrix (default: the source's last fold)")
    knobs.add_argument("--device", default="auto", help="preprocessing and training --device (default: %(default)s)")
    online = parser.add_argument_group("ClearML server and agents")
    online.add_argument("--queue", default="default", help="agent queue of the CPU steps (default: %(default)s)")
    online.add_argument("--gpu-queue", default="gpu",
                        help="agent queue of preprocessing and training (default: %(default)s)")
    online.add_argument("--controller-queue", default="services",
                        help="queue of the pipeline controller itself (default: %(default)s)")
    online.add_argument("--local", action="store_true",
                        help="run the controller in this process instead of on --controller-queue; the steps "
                             "still go to the agents")
    online.add_argument("--template-project", default=None,
                        help="clone the steps from template tasks named get_data, preprocessing, training and "
                             "cross_validation in "
                             "this project (default: create them from the scripts in this repository)")
    online.add_argument("--pipeline-name", default="Audio classification pipeline",
                        help="(default: %(default)s)")
    online.add_argument("--no-cache", action="store_true",
                        help="rerun get_data and preprocessing even when an identical completed step exists")
    parser.add_argument("--project", default="Audio Classification", help="ClearML project (default: %(default)s)")
    parser.add_argument("--offline", action="store_true",
                        help="run the steps in this process with no ClearML server (automatic when no ClearML "
                             "credentials are configured)")
    parser.add_argument("--output-dir", type=Path, default=tracking.default_output_dir(),
                        help="offline: local dataset store and run folders (default: %(default)s)")
    return parser


# --- offline: the steps in this process -------------------------------------------------------------

def step_arguments(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each step's own command line, without the dataset id that the previous step provides."""
    common = ["--project", args.project, "--output-dir", str(args.output_dir), "--offline"]
    return {
        "get_data": ["--source", args.source, "--num-clips", str(args.num_clips), "--seed", str(args.seed)]
        + (["--classes", args.classes] if args.classes else []) + common,
        "preprocessing": ["--device", args.device] + common,
        "training": ["--model", args.model, "--epochs", str(args.epochs), "--seed", str(args.seed),
                     "--device", args.device] + common,
    }


def run_offline(args: argparse.Namespace) -> dict[str, dict]:
    """Run the steps in order in this process, handing each dataset id to the next step."""
    argv = step_arguments(args)
    results: dict[str, dict] = {}
    print("\n=== pipeline step get_data ===", flush=True)
    results["get_data"] = get_data.main(argv["get_data"])
    print("\n=== pipeline step preprocessing ===", flush=True)
    results["preprocessing"] = preprocessing.main(
        argv["preprocessing"] + ["--dataset-id", results["get_data"]["dataset_id"]])
    folds = step_folds(args)
    for fold in folds:
        print(f"\n=== pipeline step {training_step_name(fold, folds)} ===", flush=True)
        results[training_step_name(fold, folds)] = training.main(
            argv["training"] + ["--test-fold", str(fold), "--dataset-id", results["preprocessing"]["dataset_id"]])
    if len(folds) > 1:
        print("\n=== pipeline step cross_validation ===", flush=True)
        run_dirs = [results[training_step_name(f, folds)]["run_dir"] for f in folds]
        results["cross_validation"] = cross_validation.main(
            ["--run-dirs", *run_dirs, "--project", args.project, "--output-dir", str(args.output_dir), "--offline"])
    return results


def step_folds(args: argparse.Namespace) -> list[int]:
    """The test folds, one training step each: --folds, checked against the source's folds (fixed when the
    pipeline is built); by default the source's last fold; 'all' is every fold of the source."""
    available = list(source_folds(args.source))
    if args.folds is None:
        return available[-1:]
    outside = sorted(set(args.folds) - set(available))
    if outside:
        raise ValueError(f"--folds {','.join(map(str, outside))}: {args.source} has the folds "
                         f"{available[0]}..{available[-1]}")
    return list(args.folds) or available


def training_step_name(fold: int, folds: list[int]) -> str:
    return "training" if len(folds) == 1 else f"training_fold{fold}"


def print_summary(results: dict[str, dict]) -> None:
    print("\n=== pipeline summary ===")
    print(f"raw dataset:      {results['get_data']['dataset_id']}")
    print(f"features dataset: {results['preprocessing']['dataset_id']}")
    for name, train in results.items():
        if name.startswith("training"):
            print(f"{name}: test fold {train['test_fold']} accuracy {train['test']['accuracy']:.4f} "
                  f"(macro-F1 {train['test']['f1_macro']:.4f}); run folder {train['run_dir']}")
    if "cross_validation" in results:
        cv = results["cross_validation"]
        print(f"cross-validation: accuracy {cv['accuracy_mean']:.4f} ± {cv['accuracy_std']:.4f}, "
              f"macro-F1 {cv['f1_macro_mean']:.4f} ± {cv['f1_macro_std']:.4f}")
    else:
        train = results["training"]
        print(f"test accuracy:    {train['test']['accuracy']:.4f}")
        print(f"run folder:       {train['run_dir']}")
        print(f"model:            {train['model_path']}")


# --- online: a ClearML PipelineController -----------------------------------------------------------

def _task_factory(project: str, step: Step):
    """base_task_factory: a task created from the step's script in this repository, with its requirements."""
    from clearml import Task

    def create(node) -> Task:
        return Task.create(project_name=project, task_name=node.name, task_type=step.task_type,
                           script=step.script, working_directory=".", repo=str(REPO_ROOT),
                           requirements_file=str(REPO_ROOT / "requirements.txt"), add_task_init_call=False)
    return create


def _base_task(args: argparse.Namespace, step: Step) -> dict:
    if args.template_project:
        return {"base_task_project": args.template_project, "base_task_name": step.name}
    return {"base_task_factory": _task_factory(args.project, step)}


def build_controller(args: argparse.Namespace):
    """The DAG: get_data -> preprocessing -> one training step per test fold [-> cross_validation]."""
    from clearml import PipelineController

    pipe = PipelineController(name=args.pipeline_name, project=args.project, version="1.0.0",
                              add_pipeline_tags=False, abort_on_failure=True)
    pipe.add_parameter(name="source", default=args.source, description="get_data --source")
    pipe.add_parameter(name="num_clips", default=args.num_clips, description="synthetic source: clips")
    pipe.add_parameter(name="seed", default=args.seed, description="data and training seed")
    pipe.add_parameter(name="model", default=args.model, description="training --model")
    pipe.add_parameter(name="epochs", default=args.epochs, description="training --epochs")
    pipe.add_parameter(name="device", default=args.device, description="preprocessing/training --device")
    pipe.set_default_execution_queue(args.queue)
    cache = not args.no_cache
    # Every step reports to the server (never --offline) and to the pipeline's project.
    common = {"Args/project": args.project, "Args/offline": "False"}

    pipe.add_step(
        name="get_data", execution_queue=args.queue, cache_executed_step=cache,
        parameter_override={**common, "Args/source": "${pipeline.source}", "Args/num_clips": "${pipeline.num_clips}",
                            "Args/seed": "${pipeline.seed}", **({"Args/classes": args.classes} if args.classes else {})},
        **_base_task(args, STEPS["get_data"]))
    pipe.add_step(
        name="preprocessing", parents=["get_data"], execution_queue=args.gpu_queue, cache_executed_step=cache,
        parameter_override={**common, "Args/dataset_id": "${get_data.parameters.General/dataset_id}",
                            "Args/device": "${pipeline.device}"},
        **_base_task(args, STEPS["preprocessing"]))
    names = []
    folds = step_folds(args)
    for fold in folds:
        name = training_step_name(fold, folds)
        names.append(name)
        pipe.add_step(
            name=name, parents=["preprocessing"], execution_queue=args.gpu_queue,
            parameter_override={**common, "Args/dataset_id": "${preprocessing.parameters.General/dataset_id}",
                                "Args/test_fold": str(fold), "Args/model": "${pipeline.model}",
                                "Args/epochs": "${pipeline.epochs}", "Args/seed": "${pipeline.seed}",
                                "Args/device": "${pipeline.device}", "Args/task_name": name},
            **_base_task(args, STEPS["training"]))
    if len(names) > 1:
        pipe.add_step(
            name="cross_validation", parents=names, execution_queue=args.queue,
            parameter_override={**common, "Args/training_tasks": ",".join(f"${{{n}.id}}" for n in names)},
            **_base_task(args, STEPS["cross_validation"]))
    return pipe


def check_queues(queues: list[str]) -> list[str]:
    """Warnings for queues that do not exist or that no agent listens to (the steps would wait forever)."""
    from clearml.backend_api.session.client import APIClient

    client = APIClient()
    listening = {q.id for worker in client.workers.get_all() for q in (worker.queues or [])}
    warnings = []
    for name in dict.fromkeys(queues):
        found = client.queues.get_all(name=f"^{re.escape(name)}$")
        if not found:
            warnings.append(f"queue '{name}' does not exist: create it in the web UI (Orchestration > Queues) or "
                            f"start an agent with: clearml-agent daemon --queue {name} --create-queue")
        elif found[0].id not in listening:
            hint = " --services-mode" if name == "services" else " --gpus 0" if "gpu" in name else ""
            warnings.append(f"queue '{name}' has no agent listening: start one with: "
                            f"clearml-agent daemon --queue {name}{hint}")
    return warnings


def run_online(args: argparse.Namespace) -> None:
    pipe = build_controller(args)
    queues = [args.queue, args.gpu_queue] + ([] if args.local else [args.controller_queue])
    try:
        warnings = check_queues(queues)
    except Exception as exc:  # the check is advice; never block the launch on it
        warnings = [f"could not check the queues ({type(exc).__name__}: {exc})"]
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.local:
        print("starting the pipeline controller in this process; steps go to the agents")
        pipe.start_locally(run_pipeline_steps_locally=False)
    else:
        print(f"enqueuing the pipeline controller on '{args.controller_queue}'")
        pipe.start(queue=args.controller_queue)


def main(argv: list[str] | None = None) -> dict[str, dict] | None:
    args = build_parser().parse_args(argv)
    try:
        step_folds(args)  # a fold the source does not have: say so before any step runs
    except ValueError as exc:
        tracking.fail(str(exc))
    offline, _ = tracking.decide_offline(args.offline)
    if offline:
        args.offline = True
        results = run_offline(args)
        print_summary(results)
        return results
    run_online(args)
    return None


if __name__ == "__main__":
    main(sys.argv[1:])
