"""What a ClearML server holds, read back with the SDK and printed as one JSON line (for the integration tests).

    python tests/integration/readback.py '[{"task": "<id>"}, {"dataset": "<id>"}, {"model": "<id>"}]'

Queries: ``task`` (``"brief": true`` for status only), ``dataset``, ``model`` (``"load": true`` also downloads
the weights and loads them with audioclf.models.load_model), ``served_queues`` (the names of those queues that
have an agent), ``project_tasks`` (the tasks of a project, optionally ``"name"``), ``dataset_exists``, ``model_exists``,
and what the web UI reads: ``task_log`` (the task's console, events.get_task_log), ``compare_scalars`` (the
[metric, variant] pairs of tasks, events.get_multi_task_metrics), ``run_dialog`` (the parameters the pipelines
page's NEW RUN dialog lists: the controller's Args/ not starting with "_").
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
        artifacts={name: {"url": str(a.url), "preview": a.preview} for name, a in task.artifacts.items()},
        output_models=[{"id": m.id, "name": m.name, "url": m.url, "labels": m.labels, "config": m.config_dict,
                        "tags": list(m.tags or [])}
                       for m in task.models["output"]],
        scalars=task.get_reported_scalars(),
        plots=[plot_record(p) for p in task.get_reported_plots()],
        single_values=task.get_reported_single_values(),
        # what the tasks table's metric columns show: {metric/variant: last value}
        last_metrics={f"{v['metric']}/{v['variant']}": v["value"] for m in (task.data.last_metrics or {}).values()
                      for v in m.values()},
        debug_samples=debug_samples(task.id),
        requirements=(script.requirements or {}).get("pip", "") if script else "",
        script={"repository": script.repository, "version_num": script.version_num,
                "entry_point": script.entry_point} if script else {},
    )
    return record


def plot_record(event: dict) -> dict:
    """A plot event: its title, series, type and the parts of its layout that decide whether labels fit."""
    plot = json.loads(event["plot_str"])
    layout = plot.get("layout", {})
    return {"metric": event["metric"], "variant": event["variant"], "type": plot["data"][0]["type"],
            "layout": {k: layout[k] for k in ("margin", "xaxis", "yaxis", "title") if k in layout}}


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
    return {"id": dataset.id, "name": dataset.name, "version": dataset.version, "project": dataset.project,
            "tags": dataset.tags,
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
              "config": model.config_dict, "task": model.task, "tags": list(model.tags or []),
              "published": model.published, "metadata": model.get_all_metadata(), "comment": model.comment}
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


def task_log(task_id: str) -> str:
    """The task's console as the web UI's CONSOLE tab shows it (events.get_task_log), oldest first."""
    from clearml.backend_api.session.client import APIClient

    answer = APIClient().session.send_request("events", "get_task_log", json={
        "task": task_id, "batch_size": 5000, "navigate_earlier": False, "order": "asc"})
    return "\n".join(event.get("msg", "") for event in answer.json()["data"]["events"])


def compare_scalars(task_ids: list[str]) -> list[list[str]]:
    """The scalar series of the tasks, as the compare view fetches them (events.get_multi_task_metrics)."""
    from clearml.backend_api.session.client import APIClient

    answer = APIClient().session.send_request("events", "get_multi_task_metrics", json={
        "tasks": task_ids, "event_type": "training_stats_scalar"})
    return [[m["metric"], v] for m in answer.json()["data"]["metrics"] for v in m["variants"]]


def run_dialog(task_id: str) -> list[dict]:
    """What the NEW RUN dialog of the pipelines page lists (clearml-web: run-pipeline-controller-dialog: the
    controller's hyperparams.Args whose names do not start with "_")."""
    from clearml.backend_api.session.client import APIClient

    answer = APIClient().session.send_request("tasks", "get_all_ex", json={"id": [task_id],
                                                                          "only_fields": ["hyperparams"]})
    args = (answer.json()["data"]["tasks"][0].get("hyperparams") or {}).get("Args", {})
    return [{"name": p["name"], "value": p.get("value", "")} for p in args.values() if not p["name"].startswith("_")]


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
    if "task_log" in query:
        return task_log(query["task_log"])
    if "compare_scalars" in query:
        return compare_scalars(query["compare_scalars"])
    if "run_dialog" in query:
        return run_dialog(query["run_dialog"])
    raise SystemExit(f"unknown query {query}")


if __name__ == "__main__":
    print(json.dumps([answer(q) for q in json.loads(sys.argv[1])], default=str))
