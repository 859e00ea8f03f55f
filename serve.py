"""Serve a trained model with clearml-serving: an HTTP endpoint that takes an audio file and answers its classes.

    python serve.py --model-id <model id printed by training.py or pipeline.py>
    python serve.py --model-id <id> --auto-update     # each new training run becomes a new endpoint version
    python serve.py --model-id <id> --endpoint sirens --top-k 5 --service-id <existing serving service>

What it does, with the real ``clearml-serving`` CLI (each command is printed, so it can be repeated by hand):
1. reuses the serving service named --service-name in --project (or --service-id), or creates it
   (``clearml-serving create``): a ClearML task that holds the endpoints;
2. without --auto-update, adds the endpoint --endpoint serving exactly --model-id (``clearml-serving model
   add --engine custom --preprocess serving/preprocess.py``);
   with --auto-update, follows the models of --model-id's project that carry the tag training.py puts on a
   run's final model (``audioclf-serving``), whatever their names (a model is named after its run's settings):
   the newest --max-versions are served as <endpoint>/1, /2, ...
   (``model auto-update``), and <endpoint> itself routes to the newest (``model canary
   --input-endpoint-prefix <endpoint>/``);
3. prints the command that starts the inference process and the curl line that classifies a file.

The inference process (``uvicorn clearml_serving.serving.main:app``) runs anywhere with this repository's
requirements and requirements-serving.txt installed, started from the repository root (or after ``pip install
.``), and ClearML credentials; it reads the endpoints from the service and picks up changes within
CLEARML_SERVING_POLL_FREQ minutes (default 5). See docs/serving.md.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

from audioclf import cli, tracking
from audioclf.cli import positive_float, positive_int
from audioclf.errors import UserError

PREPROCESS = Path(__file__).resolve().parent / "serving" / "preprocess.py"
# The inference process's default port: not one of a local ClearML server's (web UI 8080, API 8008, files 8081),
# nor one of clearml-serving's own docker stack (inference 8080, Prometheus 9090, Kafka 9092, Grafana 3000).
DEFAULT_PORT = 8090
CONTROL_PLANE_TAG = "serving-control-plane"  # clearml-serving's system tag on its service tasks
ENDPOINT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _endpoint(value: str) -> str:
    if not ENDPOINT_RE.match(value):
        raise argparse.ArgumentTypeError(f"{value!r}: letters, digits, '_', '.' and '-' only (it is a URL path "
                                         "segment; versions are added as <endpoint>/<n>)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-id", required=True,
                        help="ClearML model id to serve (training.py and pipeline.py print it)")
    parser.add_argument("--endpoint", type=_endpoint, default="audio_classifier",
                        help="endpoint name: the URL is /serve/<endpoint> (default: %(default)s)")
    parser.add_argument("--auto-update", action="store_true",
                        help=f"serve the newest models of --model-id's project with the tag "
                             f"'{tracking.SERVING_TAG}' (training.py sets it on a run's final model, whose name says "
                             "its settings) as <endpoint>/1, /2, ..., with "
                             "<endpoint> routed to the newest (default: serve exactly --model-id)")
    parser.add_argument("--max-versions", type=positive_int, default=2,
                        help="with --auto-update: how many of the newest models stay served (default: %(default)s)")
    service = parser.add_argument_group("serving service (a ClearML task holding the endpoints)")
    service.add_argument("--service-id", default=None,
                         help="use this existing serving service (default: find --service-name in --project, "
                              "else create it)")
    service.add_argument("--service-name", default="audioclf serving",
                         help="name of the serving service to reuse or create (default: %(default)s)")
    # Not --project: in every other script that is where the run reports, with the default 'Audio Classification'.
    service_project = service.add_argument("--service-project", default=None,
                                           help="ClearML project of the serving service (default: the model's "
                                                "project)")
    cli.alias(service, "--project", service_project)
    answer = parser.add_argument_group("answers (predict.py's flags of the same names)")
    answer.add_argument("--top-k", type=positive_int, default=3,
                        help="classes listed per file and per window (default: %(default)s)")
    answer.add_argument("--window", type=positive_float, default=None,
                        help="window length in seconds, at most the model's clip duration (default: the model's "
                             "clip duration)")
    answer.add_argument("--hop", type=positive_float, default=None,
                        help="seconds between window starts (default: half the window)")
    printed = parser.add_argument_group("the printed commands")
    printed.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}",
                         help="where the inference process will listen, for the printed uvicorn and curl lines "
                              "(default: %(default)s: a local ClearML server uses 8080, 8008 and 8081)")
    return parser


def clearml_serving(*args: str) -> str:
    """Run the real clearml-serving CLI (this interpreter's) and return its output; a failure is a clear error."""
    command = [sys.executable, "-m", "clearml_serving", "--yes", *args]
    print("$ clearml-serving --yes " + shlex.join(args), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    output = done.stdout + done.stderr
    # The CLI prints "Error: ..." and exits 1 on a failure it catches.
    if done.returncode != 0 or re.search(r"^Error: ", output, re.MULTILINE):
        last = [line for line in output.splitlines() if line.strip()][-5:]
        command = " ".join(a for a in args[2 if args[:1] == ("--id",) else 0:][:2] if not a.startswith("-"))
        raise UserError(f"clearml-serving {command} failed (exit {done.returncode}): " + " | ".join(last))
    return output


def find_model(model_id: str) -> dict:
    """The model's name, project name and tags; a UserError naming the id when the server has no such model."""
    from clearml import Model, Task

    try:
        model = Model(model_id=model_id)
        name, project_id, tags = model.name, model.project, list(model.tags or [])
    except Exception as exc:  # the SDK raises ValueError, ResourceNotFound... for an unknown id
        raise UserError(f"--model-id {model_id}: no such model on {tracking._api_host()} "
                        f"({type(exc).__name__}: {exc})") from None
    if not model.url:
        raise UserError(f"--model-id {model_id}: the model has no weights file to serve")
    projects = Task.get_projects(id=[project_id], only_fields=["id", "name"]) if project_id else []
    project = projects[0].name if projects else None
    return {"id": model_id, "name": name, "project": project, "tags": tags}


def find_or_create_service(args: argparse.Namespace, project: str) -> tuple[str, bool]:
    """(service task id, created?)."""
    from clearml import Task

    if args.service_id:
        try:
            task = Task.get_task(task_id=args.service_id)
        except ValueError as exc:  # the SDK's answer to an unknown id
            raise UserError(f"--service-id {args.service_id}: no such task ({exc})") from None
        if CONTROL_PLANE_TAG not in (task.get_system_tags() or []):
            raise UserError(f"--service-id {args.service_id}: not a clearml-serving service task")
        return task.id, False
    found = Task.query_tasks(project_name=project, task_name=f"^{re.escape(args.service_name)}$",
                             task_filter={"type": ["service"], "system_tags": [CONTROL_PLANE_TAG],
                                          "status": ["created", "in_progress"], "order_by": ["-last_update"]})
    if found:
        return found[0], False
    output = clearml_serving("create", "--name", args.service_name, "--project", project)
    match = re.search(r"created: id=([0-9a-f]+)", output)
    if not match:
        raise RuntimeError(f"clearml-serving create printed no service id:\n{output[-1000:]}")
    return match.group(1), True


def aux_config(args: argparse.Namespace) -> list[str]:
    """serving/preprocess.py's settings as --aux-config key=value pairs."""
    pairs = [f"top_k={args.top_k}"]
    if args.window is not None:
        pairs.append(f"window_s={args.window}")
    if args.hop is not None:
        pairs.append(f"hop_s={args.hop}")
    return ["--aux-config", *pairs]


def configure(args: argparse.Namespace) -> dict:
    """Create or reuse the service and add the endpoint; returns what was set up."""
    from clearml.config import config_obj

    config_obj.set_overrides({"api": {"http": tracking._FAST_FAIL_HTTP}})  # an unreachable server fails in seconds
    model = find_model(args.model_id)
    project = args.service_project or model["project"]
    if not project:
        raise UserError(f"--model-id {args.model_id}: the model is in no project; give --project")
    if args.auto_update and tracking.SERVING_TAG not in model["tags"]:
        raise UserError(f"--auto-update follows models tagged '{tracking.SERVING_TAG}', and model {args.model_id} "
                        f"has tags {model['tags']}: serve it without --auto-update, or add the tag in the UI")
    service_id, created = find_or_create_service(args, project)
    # One mode per endpoint: clearml-serving routes <endpoint> through an auto-update rule's canary before it looks
    # at a static endpoint of the same name, so the entries of the other mode are removed first (and said so).
    switched = switch_mode(service_id, args.endpoint, auto_update=args.auto_update)
    common = ["--engine", "custom", "--endpoint", args.endpoint, "--preprocess", str(PREPROCESS), *aux_config(args)]
    if args.auto_update:
        # By project and tag, not by name: each run's model is named after its settings (audioclf/naming.py).
        clearml_serving("--id", service_id, "model", "auto-update", *common, "--project", model["project"],
                        "--tags", tracking.SERVING_TAG,
                        "--max-versions", str(args.max_versions))
        # <endpoint> itself: always the highest version (the newest model).
        clearml_serving("--id", service_id, "model", "canary", "--endpoint", args.endpoint, "--weights", "1",
                        "--input-endpoint-prefix", f"{args.endpoint}/")
    else:
        clearml_serving("--id", service_id, "model", "add", *common, "--model-id", args.model_id)
    return {"service_id": service_id, "created": created, "project": project, "model": model,
            "endpoint": args.endpoint, "auto_update": args.auto_update, "switched": switched}


def service_entries(service_id: str, endpoint: str) -> dict[str, dict]:
    """What the service holds under ``endpoint``: {"endpoints": static entry, "model_monitoring": auto-update
    rule, "canary": router}, each present only when set (clearml-serving's configuration objects)."""
    from clearml import Task

    task = Task.get_task(task_id=service_id)
    found = {}
    for kind in ("endpoints", "model_monitoring", "canary"):
        entry = (task.get_configuration_object_as_dict(name=kind) or {}).get(endpoint)
        if entry:
            found[kind] = entry
    return found


def switch_mode(service_id: str, endpoint: str, auto_update: bool) -> str | None:
    """Remove the entries of ``endpoint`` that belong to the other mode; returns the sentence saying what went.

    Pinning (no --auto-update) removes an auto-update rule and its canary: left in place they keep answering
    <endpoint> with the newest model whatever is pinned. --auto-update removes a pinned static endpoint, which
    its canary would hide. ``clearml-serving model remove --endpoint E`` removes one entry named E per call, a
    static one first, then a rule, then a canary: one call per entry, and the static one is added again after
    when pinning."""
    found = service_entries(service_id, endpoint)
    other = {"endpoints"} if auto_update else {"model_monitoring", "canary"}
    if not other & set(found):
        return None
    for _ in found:  # every entry named so goes (the static one, if pinning, comes back with model add)
        clearml_serving("--id", service_id, "model", "remove", "--endpoint", endpoint)
    if auto_update:
        pinned = found["endpoints"].get("model_id")
        return (f"removed: /serve/{endpoint} was pinned to model {pinned}; it follows the newest model now (to pin "
                f"it again: python serve.py --model-id {pinned} --endpoint {endpoint})")
    rule = found.get("model_monitoring", {})
    named = f" named {rule['monitor_name']!r}" if rule.get("monitor_name") else ""  # rules made before: by name
    return (f"removed: the auto-update rule of /serve/{endpoint} (the newest models{named} "
            f"tagged {rule.get('monitor_tags')} in {rule.get('monitor_project')!r}, served as /serve/{endpoint}/<n>); "
            f"/serve/{endpoint} is pinned now (to follow the newest model again: python serve.py --model-id <id> "
            f"--auto-update --endpoint {endpoint})")


def instructions(setup: dict, url: str) -> str:
    port = url.rsplit(":", 1)[-1].strip("/") if re.search(r":\d+/?$", url) else str(DEFAULT_PORT)
    endpoint = setup["endpoint"]
    lines = [
        f"serving service: {setup['service_id']} ({'created' if setup['created'] else 'reused'}, project "
        f"{setup['project']!r})",
        *([setup["switched"]] if setup.get("switched") else []),
        (f"endpoint: /serve/{endpoint} -> the newest model tagged '{tracking.SERVING_TAG}' in "
         f"{setup['model']['project']!r}; /serve/{endpoint}/<n> -> version n"
         if setup["auto_update"] else f"endpoint: /serve/{endpoint} -> model {setup['model']['id']}"),
        "start the inference process (from the repository root, with requirements-serving.txt installed):",
        f"  CLEARML_SERVING_TASK_ID={setup['service_id']} python -m uvicorn clearml_serving.serving.main:app "
        f"--host 0.0.0.0 --port {port}",
        "classify a file:",
        f"  curl -X POST {url.rstrip('/')}/serve/{endpoint} -H 'Content-Type: audio/wav' --data-binary @clip.wav",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    offline, why = tracking.decide_offline(False)
    if offline:
        tracking.fail(f"serving needs a ClearML server, and this machine is offline: {why}")
    try:
        setup = configure(args)
    except UserError as exc:
        tracking.fail(str(exc))
    print(instructions(setup, args.url))
    return setup


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        print("interrupted: serve.py stopped", file=sys.stderr)
        sys.exit(130)
