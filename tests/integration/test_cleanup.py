"""The suite leaves nothing on the server: a project with a task, a dataset, a model, a pipeline-like hidden
subproject with a task using the model, and a queue, are all gone after the session's cleanup (the same call the
fixtures make)."""

from __future__ import annotations

import secrets
import textwrap

from clearml_env import delete_from_server, output_of


def test_cleanup_deletes_the_project_with_everything_in_it_and_the_queues(user, tmp_path):
    project = f"audioclf-it-cleanup-{secrets.token_hex(3)}"
    queue = f"{project}-queue"
    script = tmp_path / "populate.py"
    script.write_text(textwrap.dedent(f"""
        from clearml import Dataset, OutputModel, Task
        from clearml.backend_api.session.client import APIClient
        task = Task.init(project_name={project!r}, task_name="some task", auto_connect_arg_parser=False,
                         auto_connect_frameworks=False)
        (p := __import__("pathlib").Path({str(tmp_path / "weights.bin")!r})).write_bytes(b"w" * 64)
        model = OutputModel(task=task, name="some model")
        model.update_weights(weights_filename=str(p), upload_uri=task.get_output_destination() or None)
        task.close()
        dataset = Dataset.create(dataset_name="some data", dataset_project={project!r})
        dataset.add_files(str(p))
        dataset.finalize(auto_upload=True)
        hidden = Task.create(project_name={project + "/.pipelines/some pipeline"!r}, task_name="step")
        hidden.set_input_model(model_id=model.id)  # a task that uses the model, as predict or serving does
        APIClient().queues.create(name={queue!r})
        print("model", model.id)
        print("dataset", dataset.id)
        print("task", task.id)
    """))
    done = user.run(str(script), PYTHONPATH=user.project)
    ids = {kind: output_of(done, kind) for kind in ("model", "dataset", "task")}
    (before,) = user.read({"project_tasks": project})
    assert {t["id"] for t in before} >= {ids["task"]}
    assert user.read({"model_exists": ids["model"]}) == [True]

    delete_from_server(user.server, user.project, tmp_path / "cleanup", projects=[project], queues=[queue])

    (after,) = user.read({"project_tasks": project})
    assert after == []
    assert user.read({"dataset_exists": ids["dataset"]}) == [False]
    assert user.read({"dataset_exists": ids["task"]}) == [False]
    assert user.read({"model_exists": ids["model"]}) == [False]
