"""What a ClearML server holds, read back with the SDK and printed as one JSON line (for the integration tests).

    python tests/integration/readback.py '[{"task": "<id>"}, {"dataset": "<id>"}, {"model": "<id>"}]'

Queries: ``task`` (``"brief": true`` for status only), ``dataset``, ``model`` (``"load": true`` also downloads
the weights and loads them with audioclf.models.load_model), ``served_queues`` (the names of those queues that
have an agent), ``project_tasks`` (the tasks of a project, optionally ``"name"``), ``dataset_exists``, ``model_exists``.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.getcwd())  # the project (the tests run this from its root): audioclf.models for "load"


def task_record(task_id: str, brief: bool, log: int = 0) -> dict:
    from clearml import Task

    task = Task.get_task(task_id=task_id)
    record = {"id": task.id, "name": task.name, "status": task.get_status(),
              "status_reason": task.data.status_reason, "status_message": task.data.status_message}
    if log:
        record["log"] = "\n".join(task.get_reported_console_output(number_of_reports=log))[-4000:]
    if brief:
        return record
    script = task.data.script
    record.update(
        type=str(task.task_type), project=task.get_project_name(), tags=task.get_tags(),
        system_tags=task.get_system_tags(), parameters=task.get_parameters(), parent=task.parent,
        configuration={name: task.get_configuration_object(name) for name in (task.data.configuration or {})},
        artifacts={name: {"url": str(a.url)} for name, a in task.artifacts.items()},
        output_models=[{"id": m.id, "name": m.name, "url": m.url, "labels": m.labels, "config": m.config_dict,
                        "tags": list(m.tags or [])}
                       for m in task.models["output"]],
        scalars=task.get_reported_scalars(),
        plots=[{"metric": p["metric"], "variant": p["variant"], "type": json.loads(p["plot_str"])["data"][0]["type"]}
               for p in task.get_reported_plots()],
        single_values=task.get_reported_single_values(),
        debug_samples=debug_samples(task.id),
        requirements=(script.requirements or {}).get("pip", "") if script else "",
        script={"repository": script.repository, "version_num": script.version_num,
                "entry_point": script.entry_point} if script else {},
    )
    return record


def debug_samples(task_id: str) -> list[dict]:
    """Every debug image and media event of a task (title, series, url), through the events API."""
    from clearml.backend_api.session.client import APIClient

    client = APIClient()
    response = client.session.send_request("events", "debug_images", json={"metrics": [{"task": task_id}],
                                                                           "iters": 10})
    found = []
    for metric in response.json().get("data", {}).get("metrics", []):
        for iteration in metric.get("iterations", []):
            for event in iteration.get("events", []):
                found.append({"title": event.get("metric"), "series": event.get("variant"), "url": event.get("url")})
    return found


def dataset_record(dataset_id: str) -> dict:
    from clearml import Dataset

    dataset = Dataset.get(dataset_id=dataset_id)
    task = dataset._task  # noqa: SLF001 (the dataset's own task holds its page's reports)
    return {"id": dataset.id, "name": dataset.name, "project": dataset.project, "tags": dataset.tags,
            "parents": dataset.get_dependency_graph().get(dataset.id, []), "files": dataset.list_files(),
            "added": dataset.list_files(dataset_id=dataset.id), "final": dataset.is_final(),
            "artifacts": sorted(task.artifacts), "tables": sorted({p["metric"] for p in task.get_reported_plots()
                                                                  if json.loads(p["plot_str"])["data"][0]["type"]
                                                                  == "table"}),
            "plots": [{"metric": p["metric"], "variant": p["variant"],
                       "type": json.loads(p["plot_str"])["data"][0]["type"]} for p in task.get_reported_plots()],
            "debug_samples": debug_samples(task.id)}


def model_record(model_id: str, load: bool) -> dict:
    from clearml import Model

    model = Model(model_id=model_id)
    record = {"id": model.id, "name": model.name, "url": model.url, "labels": model.labels,
              "config": model.config_dict, "task": model.task, "tags": list(model.tags or [])}
    if load:
        from audioclf.models import load_model

        local = model.get_local_copy(raise_on_error=True)
        _, bundle = load_model(local)
        record["loaded"] = {"class_names": bundle["class_names"], "arch": bundle["arch"]}
    return record


def served_queues(names: list[str]) -> list[str]:
    from clearml.backend_api.session.client import APIClient

    client = APIClient()
    ids = {q.id: q.name for q in client.queues.get_all() if q.name in names}
    return sorted({ids[q.id] for w in client.workers.get_all() for q in (w.queues or []) if q.id in ids})


def project_tasks(project: str, name: str | None) -> list[dict]:
    from clearml import Task

    # search_hidden: a pipeline's tasks live in the hidden project <project>/.pipelines/<name>
    tasks = Task.get_tasks(project_name=project, task_name=name, allow_archived=True,
                           task_filter={"order_by": ["created"], "search_hidden": True, "_allow_extra_fields_": True})
    return [{"id": t.id, "name": t.name, "status": t.get_status(), "project": t.get_project_name()} for t in tasks]


def dataset_exists(dataset_id: str) -> bool:
    from clearml import Task

    try:
        Task.get_task(task_id=dataset_id)
    except ValueError:
        return False
    return True


def model_exists(model_id: str) -> bool:
    from clearml.backend_api.session.client import APIClient

    answer = APIClient().session.send_request("models", "get_all", json={"id": [model_id], "only_fields": ["id"]})
    return bool(answer.json().get("data", {}).get("models"))


def answer(query: dict):
    if "task" in query:
        return task_record(query["task"], query.get("brief", False), query.get("log", 0))
    if "dataset" in query:
        return dataset_record(query["dataset"])
    if "model" in query:
        return model_record(query["model"], query.get("load", False))
    if "served_queues" in query:
        return served_queues(query["served_queues"])
    if "project_tasks" in query:
        return project_tasks(query["project_tasks"], query.get("name"))
    if "dataset_exists" in query:
        return dataset_exists(query["dataset_exists"])
    if "model_exists" in query:
        return model_exists(query["model_exists"])
    raise SystemExit(f"unknown query {query}")


if __name__ == "__main__":
    print(json.dumps([answer(q) for q in json.loads(sys.argv[1])], default=str))
