"""Delete from a ClearML server what one integration-test session created: its project (with every subproject,
task, dataset and model in it) and its queues. Prints one JSON line: what was found and deleted.

    python tests/integration/cleanup.py '{"projects": ["audioclf-it-3f2a1b"], "queues": ["audioclf-it-3f2a1b-cpu"]}'

Only exact names are deleted: a project named here and the projects under it (``<name>/...``, the hidden
``.datasets`` and ``.pipelines`` ones included), and queues named here.
"""

from __future__ import annotations

import json
import re
import sys


def main(request: dict) -> dict:
    from clearml.backend_api.session.client import APIClient

    client = APIClient()
    send = client.session.send_request
    done = {"projects": [], "queues": [], "errors": []}
    for name in request.get("projects", []):
        answer = send("projects", "get_all_ex", json={"name": f"^{re.escape(name)}$", "only_fields": ["id", "name"],
                                                      "search_hidden": True})
        for project in answer.json().get("data", {}).get("projects", []):
            # Tasks, then models, one by one, then the project: the server's own cascade (projects.delete with
            # delete_contents) does all of it, but the in-memory test server cannot run its model steps while a
            # task still refers to a model (mongomock has no array filters).
            # Each list is read when its turn comes: deleting a task deletes its output models too.
            for kind, listed in (("tasks", _tasks_under), ("models", _models_under)):
                for entity in listed(send, name):
                    gone = send(kind, "delete", json={kind[:-1]: entity, "force": True})
                    if not gone.ok:
                        done["errors"].append(f"{kind}.delete {entity}: {gone.status_code} {gone.text[:300]}")
            deleted = send("projects", "delete", json={"project": project["id"], "force": True,
                                                       "delete_contents": True})
            if deleted.ok:
                done["projects"].append(project["name"])
            else:
                done["errors"].append(f"projects.delete {project['name']}: {deleted.status_code} {deleted.text[:300]}")
    for name in request.get("queues", []):
        answer = send("queues", "get_all", json={"name": f"^{re.escape(name)}$", "only_fields": ["id", "name"]})
        for queue in answer.json().get("data", {}).get("queues", []):
            deleted = send("queues", "delete", json={"queue": queue["id"], "force": True})
            if deleted.ok:
                done["queues"].append(queue["name"])
            else:
                done["errors"].append(f"queues.delete {queue['name']}: {deleted.status_code} {deleted.text[:300]}")
    return done


def _projects_under(send, name: str) -> list[str]:
    """The ids of the project ``name`` and of every project below it, hidden ones included."""
    answer = send("projects", "get_all_ex", json={"name": f"^{re.escape(name)}(/|$)", "only_fields": ["id"],
                                                  "search_hidden": True})
    return [p["id"] for p in answer.json().get("data", {}).get("projects", [])]


def _tasks_under(send, name: str) -> list[str]:
    projects = _projects_under(send, name)
    if not projects:
        return []
    answer = send("tasks", "get_all", json={"project": projects, "only_fields": ["id"], "search_hidden": True,
                                            "_allow_extra_fields_": True})
    return [t["id"] for t in answer.json().get("data", {}).get("tasks", [])]


def _models_under(send, name: str) -> list[str]:
    projects = _projects_under(send, name)
    if not projects:
        return []
    answer = send("models", "get_all", json={"project": projects, "only_fields": ["id"]})
    return [m["id"] for m in answer.json().get("data", {}).get("models", [])]


def remaining(request: dict) -> dict:
    """What of the request is still on the server (projects under the names, queues), for the suite's check."""
    from clearml.backend_api.session.client import APIClient

    send = APIClient().session.send_request
    left = {"projects": [], "queues": [], "models": []}
    for name in request.get("projects", []):
        answer = send("projects", "get_all_ex", json={"name": f"^{re.escape(name)}(/|$)",
                                                      "only_fields": ["name"], "search_hidden": True})
        left["projects"] += [p["name"] for p in answer.json().get("data", {}).get("projects", [])]
        left["models"] += _models_under(send, name)
    for name in request.get("queues", []):
        answer = send("queues", "get_all", json={"name": f"^{re.escape(name)}$", "only_fields": ["name"]})
        left["queues"] += [q["name"] for q in answer.json().get("data", {}).get("queues", [])]
    return left


if __name__ == "__main__":
    query = json.loads(sys.argv[1])
    print(json.dumps(remaining(query) if query.pop("check", False) else main(query)))
