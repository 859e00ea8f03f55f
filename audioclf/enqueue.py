"""Checks made before anything is enqueued on a ClearML agent (a stage's --queue, a pipeline's steps and
controller, a search's trials): its queues exist (and are served), and its code is what the agent will clone
(repository.py). A refusal is a UserError naming the fix; what is only worth knowing is printed as a warning."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from . import repository
from .errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the repository the agents clone


def check_queues(queues: list[str]) -> tuple[list[str], list[str]]:
    """(queues that do not exist: the work would never start; queues no agent listens to: it waits until one
    does), each with the command that fixes it."""
    from clearml.backend_api.session.client import APIClient
    from clearml.config import config_obj

    from .tracking import _FAST_FAIL_HTTP

    config_obj.set_overrides({"api": {"http": _FAST_FAIL_HTTP}})  # an unreachable server: seconds, not hours
    client = APIClient()
    listening = {q.id for worker in client.workers.get_all() for q in (worker.queues or [])}
    missing, unserved = [], []
    for name in dict.fromkeys(queues):
        found = client.queues.get_all(name=f"^{re.escape(name)}$")
        if not found:
            missing.append(f"queue '{name}' does not exist: create it in the web UI (Orchestration > Queues) or "
                           f"start an agent with: clearml-agent daemon --queue {name} --create-queue")
        elif found[0].id not in listening:
            hint = " --services-mode" if name == "services" else " --gpus 0" if "gpu" in name else ""
            unserved.append(f"queue '{name}' has no agent listening: start one with: "
                            f"clearml-agent daemon --queue {name}{hint}")
    return missing, unserved


def before_enqueue(what: str, queues: list[str], code: bool = True, root: Path = PROJECT_ROOT) -> None:
    """Refuse (UserError) ``what`` when a queue does not exist or, with ``code``, when the agent could not run
    this project's code as it is here; print warnings for the rest. Called before any task is created."""
    warnings = repository.check_before_enqueue(root, what) if code else []
    try:
        missing, unserved = check_queues(queues)
    except Exception as exc:  # the queue check is advice when the server cannot answer it; never block on it
        missing, unserved = [], [f"could not check the queues ({type(exc).__name__}: {exc})"]
    if missing:
        raise UserError("; ".join(missing))
    for warning in warnings + unserved:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
