"""optimize.py online: ClearML's HyperParameterOptimizer with Optuna, trials cloned from a base training task and
run by a real agent, the best chosen by validation accuracy.

    python -m pytest -q tests/integration/test_optimize_online.py
"""

from __future__ import annotations

from audioclf.tracking import SERVING_TAG
from clearml_env import task_id_in


def test_three_trials_on_an_agent_the_best_by_validation_accuracy(user, agents, datasets):
    done = user.run("optimize.py", "--dataset-id", datasets["features"], "--trials-queue", agents["gpu"],
                    "--trials", "3",
                    "--epochs", "2", "--batch-size", "8,16", "--training-args", "--width 4 --device cpu",
                    "--concurrent", "1", "--poll-seconds", "3", "--no-prune", *datasets["common"], timeout=900)
    assert "=== best trial ===" in done.stdout
    (optimizer,) = user.read({"task": task_id_in(done)})
    assert optimizer["status"] == "completed" and optimizer["type"] == "optimizer"
    params = optimizer["parameters"]
    base, best_id = params["General/base_task_id"], params["General/best_task_id"]
    (project_tasks,) = user.read({"project_tasks": optimizer["project"]})
    trials = [t for t in user.read(*[{"task": t["id"]} for t in project_tasks if t["id"] not in (base,
                                                                                                 optimizer["id"])])
              if t["parent"] in (base, optimizer["id"]) and t["name"].startswith("training")]
    assert len(trials) == 3, [(t["name"], t["parent"]) for t in trials]
    # The objective: the validation accuracy of the weights a trial keeps, its last epoch's (--select last).
    objective = {t["id"]: t["scalars"]["accuracy"]["val"]["y"][-1] for t in trials if t["status"] == "completed"}
    assert objective and best_id in objective
    assert objective[best_id] == max(objective.values()), "the best is chosen by validation accuracy"
    # The report reads the number the optimizer maximized (issue 30, item 5): the last accuracy/val, not its
    # maximum over the epochs.
    reported = float(done.stdout.split("validation accuracy:")[-1].split()[0])
    assert reported == round(objective[best_id], 4), (reported, objective[best_id])
    # The trials are normal training tasks with the searched arguments in Args/ and a model each.
    for trial in trials:
        assert trial["parameters"]["Args/epochs"] == "2" and trial["parameters"]["Args/batch_size"] in ("8", "16")
        assert trial["parameters"]["Args/dataset_id"] == datasets["features"]
        if trial["status"] == "completed":
            assert trial["output_models"] and not trial["output_models"][0]["url"].startswith("file://")
            # A trial's model is not one serve.py --auto-update should pick up.
            assert SERVING_TAG not in trial["output_models"][0]["tags"]
    assert params["General/best_model_id"] == next(t for t in trials if t["id"] == best_id)["output_models"][0]["id"]
