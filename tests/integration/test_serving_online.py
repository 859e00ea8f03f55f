"""Serving online: a model trained on the server, served by the real clearml-serving inference process over HTTP.

    python -m pytest -q tests/integration/test_serving_online.py

training.py trains a tiny model online; serve.py creates the serving service and the endpoints with the real
``clearml-serving`` CLI; the real inference process (``uvicorn clearml_serving.serving.main:app``) runs as a
subprocess on a free port with a fresh HOME, as on another machine; a generated WAV file is POSTed over HTTP and
the answer must be predict.py's on the same file and model id. Then bad bodies get 4xx, and a second training
run (its model tagged by training.py) becomes version 2 of the auto-update endpoint without a restart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf

from audioclf.synthetic import synthesize_clip
from audioclf.tracking import SERVING_TAG
from clearml_env import PYTHON, _free_port, output_of

TRAIN = ["--epochs", "1", "--width", "4", "--batch-size", "8", "--device", "cpu"]
STATIC, AUTO = "audio_classifier", "audio_auto"


def _own_project(common: list[str]) -> list[str]:
    """The session's arguments with the project moved to a subproject of its own: --auto-update follows every
    tagged model of one name in the model's project, and the other modules train models there too."""
    i = common.index("--project")
    return [*common[:i + 1], common[i + 1] + "/serving", *common[i + 2:]]


def train(user, datasets) -> str:
    """One online training run in this module's subproject; the id of the model it registered."""
    done = user.run("training.py", "--dataset-id", datasets["features"], *TRAIN, *_own_project(datasets["common"]))
    metrics = json.loads((Path(output_of(done, "model:")).parent / "metrics.json").read_text())
    return metrics["model_id"]


@pytest.fixture(scope="module")
def served(server, user, datasets, names, tmp_path_factory):
    """A model, the serving service with a static and an auto-update endpoint, and the inference process."""
    api_log = server.logs / "apiserver.stdout" if server.logs else None
    log_start = api_log.stat().st_size if api_log and api_log.is_file() else 0  # this module's calls come after
    model_id = train(user, datasets)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    static = user.run("serve.py", "--model-id", model_id, "--url", url)
    service_id = re.search(r"^serving service: ([0-9a-f]+) \(created, project '(.+)'\)$", static.stdout, re.M)
    assert service_id and service_id.group(2) == names["project"] + "/serving", static.stdout
    service_id = service_id.group(1)
    assert f"curl -X POST {url}/serve/{STATIC} -H 'Content-Type: audio/wav' --data-binary @clip.wav" in static.stdout
    auto = user.run("serve.py", "--model-id", model_id, "--auto-update", "--endpoint", AUTO, "--url", url)
    assert f"serving service: {service_id} (reused" in auto.stdout, auto.stdout  # the same service, not a second

    log_path = tmp_path_factory.mktemp("inference") / "uvicorn.log"
    log = open(log_path, "w")
    env = user.env(CLEARML_SERVING_TASK_ID=service_id, CLEARML_SERVING_POLL_FREQ="0.05",  # minutes: a 3 s sync
                   CLEARML_BKG_THREAD_REPORT="1")
    process = subprocess.Popen([PYTHON, "-m", "uvicorn", "clearml_serving.serving.main:app", "--host", "127.0.0.1",
                                "--port", str(port)], cwd=user.project, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:  # no health route: /openapi.json answers once the app is up (after the first sync)
            if process.poll() is not None:
                pytest.fail(f"the inference process exited {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if requests.get(f"{url}/openapi.json", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the inference process did not answer in 180 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield {"url": url, "model_id": model_id, "service_id": service_id, "log": log_path, "api_log": api_log,
               "api_log_start": log_start}
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: uvicorn and anything it started
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def post(served, endpoint: str, body: bytes | None, content_type: str | None = "audio/wav") -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return requests.post(f"{served['url']}/serve/{endpoint}", data=body, headers=headers, timeout=120)


def ok(served, response: requests.Response) -> dict:
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{served['log'].read_text()[-3000:]}"
    return response.json()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """6 s of a siren, stereo, 32 kHz, PCM_24: another rate and channel count than training's, two windows."""
    path = tmp_path_factory.mktemp("clips") / "siren.wav"
    sf.write(path, synthesize_clip(8, 6.0, 32000, 2, 1, np.random.default_rng(11)), 32000, subtype="PCM_24")
    return path


def test_a_wav_over_http_gets_predict_pys_answer(served, clip, fresh_user):
    answer = ok(served, post(served, STATIC, clip.read_bytes()))
    # predict.py on another machine (a fresh HOME), the same model fetched by its id, the same file.
    done = fresh_user.run("predict.py", served["model_id"], str(clip), "--format", "json", "--device", "cpu")
    (record,) = json.loads(done.stdout)["files"]
    assert answer["model_id"] == served["model_id"]
    assert (answer["sample_rate"], answer["channels"], answer["format"]) == (32000, 2, "WAV/PCM_24")
    assert answer["num_windows"] == record["num_windows"] == 2  # 4 s windows every 2 s over 6 s
    for got, want in zip([answer] + answer["windows"], [record] + record["windows"]):
        assert [t["class"] for t in got["top"]] == [t["class"] for t in want["top"]]
        np.testing.assert_allclose([t["probability"] for t in got["top"]],
                                   [t["probability"] for t in want["top"]], rtol=0, atol=1e-6)
    assert [(w["start_s"], w["end_s"]) for w in answer["windows"]] == [(w["start_s"], w["end_s"])
                                                                      for w in record["windows"]]
    # curl's default Content-Type (application/x-www-form-urlencoded) also reaches the audio as bytes.
    assert ok(served, post(served, STATIC, clip.read_bytes(), "application/x-www-form-urlencoded"))["top"] == \
        answer["top"]


@pytest.mark.parametrize("body, content_type, status, reason", [
    (b"garbage, not audio" * 100, "audio/wav", 422, "not audio this server can decode"),
    (b"", "audio/wav", 422, "empty body"),
    (b'{"features": [1, 2, 3]}', "application/json", 422, "a JSON body"),
    (b"RIFF....WAVE", None, 422, "JSON decode error"),  # no Content-Type: FastAPI decodes JSON itself...
    ("clip", None, 400, "error parsing the body"),  # ...and a WAV file's bytes are not even UTF-8
])
def test_bad_bodies_get_a_4xx_with_the_reason_and_the_service_keeps_serving(served, clip, body, content_type, status,
                                                                           reason):
    response = post(served, STATIC, clip.read_bytes() if body == "clip" else body, content_type)
    assert response.status_code == status, response.text
    detail = json.dumps(response.json()["detail"])  # FastAPI's own answers hold a list
    assert reason in detail and "Traceback" not in detail and "\\n" not in detail
    assert ok(served, post(served, STATIC, clip.read_bytes()))["model_id"] == served["model_id"]


def test_an_unknown_endpoint_is_a_404(served, clip):
    assert post(served, "no_such_endpoint", clip.read_bytes()).status_code == 404


def test_a_new_training_run_becomes_version_2_of_the_auto_update_endpoint(served, clip, user, datasets):
    first = served["model_id"]
    assert ok(served, post(served, f"{AUTO}/1", clip.read_bytes()))["model_id"] == first
    assert ok(served, post(served, AUTO, clip.read_bytes()))["model_id"] == first  # the newest version
    assert post(served, f"{AUTO}/2", clip.read_bytes()).status_code == 404

    second = train(user, datasets)  # training.py tags its model: the auto-update entry follows that tag
    assert second != first
    deadline = time.monotonic() + 120  # the inference process syncs every 3 s (CLEARML_SERVING_POLL_FREQ)
    while post(served, f"{AUTO}/2", clip.read_bytes()).status_code == 404:
        if time.monotonic() > deadline:
            pytest.fail(f"no {AUTO}/2 within 120 s:\n{served['log'].read_text()[-4000:]}")
        time.sleep(2)
    assert ok(served, post(served, f"{AUTO}/2", clip.read_bytes()))["model_id"] == second
    assert ok(served, post(served, AUTO, clip.read_bytes()))["model_id"] == second  # routed to the newest
    assert ok(served, post(served, f"{AUTO}/1", clip.read_bytes()))["model_id"] == first  # still served
    assert ok(served, post(served, STATIC, clip.read_bytes()))["model_id"] == first  # the static one is pinned


def _wait_for(served, condition, what: str, timeout: float = 120) -> None:
    """Poll until ``condition()`` holds (the inference process syncs the service every 3 s)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {timeout:.0f} s:\n{served['log'].read_text()[-4000:]}")
        time.sleep(2)


def test_pinning_an_auto_update_endpoint_removes_its_rule_and_going_back_removes_the_pin(served, clip, user,
                                                                                        datasets):
    """Issue 34, item 3: clearml-serving routes <endpoint> through the auto-update rule's canary before a static
    endpoint of that name, so a model pinned there was never served (serve.py said it was): the newest kept
    answering."""
    first, url = served["model_id"], served["url"]

    def answering() -> str | None:  # None while a change is being synced (the endpoint may be briefly absent)
        response = post(served, AUTO, clip.read_bytes())
        return response.json()["model_id"] if response.status_code == 200 else None

    newest = ok(served, post(served, AUTO, clip.read_bytes()))["model_id"]
    if newest == first:  # alone (the version-2 test did not run first): a newer model for the rule to follow
        newest = train(user, datasets)
        _wait_for(served, lambda: answering() == newest, f"/serve/{AUTO} on the newer model")

    pinned = user.run("serve.py", "--model-id", first, "--endpoint", AUTO, "--url", url)
    assert f"removed: the auto-update rule of /serve/{AUTO} (the newest models tagged ['{SERVING_TAG}']" \
        in pinned.stdout, pinned.stdout
    assert f"endpoint: /serve/{AUTO} -> model {first}" in pinned.stdout
    (service,) = user.read({"task": served["service_id"]})
    assert AUTO not in service["configuration"].get("model_monitoring", "")  # the rule is gone from the service
    _wait_for(served, lambda: answering() == first, f"/serve/{AUTO} on the pinned model")

    back = user.run("serve.py", "--model-id", first, "--auto-update", "--endpoint", AUTO, "--url", url)
    assert f"removed: /serve/{AUTO} was pinned to model {first}; it follows the newest model now" in back.stdout
    _wait_for(served, lambda: answering() == newest, f"/serve/{AUTO} on the newest model again")
    assert ok(served, post(served, AUTO, clip.read_bytes()))["model_id"] == newest


def test_an_offline_run_pushed_to_the_server_is_served_by_the_model_id_push_offline_printed(served, clip, user,
                                                                                             fresh_user, names,
                                                                                             tmp_path):
    """Issue 34, item 2: push_offline.py used to import the session and register no model: nothing to serve."""
    out = tmp_path / "offline-outputs"
    common = ["--offline", "--project", names["project"] + "/offline", "--output-dir", str(out)]
    raw = user.run("get_data.py", "--num-clips", "20", "--data-seed", "6", "--workers", "1", *common)
    feats = user.run("preprocessing.py", "--dataset-id", output_of(raw, "raw dataset id:"), "--device", "cpu",
                     "--workers", "1", *common)
    trained = user.run("training.py", "--dataset-id", output_of(feats, "features dataset id:"), *TRAIN, *common)
    session = re.search(r"ClearML offline session (\S+)$", trained.stdout, re.M).group(1)
    model_file = Path(output_of(trained, "model:"))

    pushed = user.run("push_offline.py", "--no-datasets", "--sessions", session)
    found = re.search(r"^model model of session .* -> ClearML model ([0-9a-f]{32}) \(predict.py and serve.py take "
                      r"this id\)$", pushed.stdout, re.M)
    assert found, pushed.stdout
    model_id = found.group(1)
    (model,) = user.read({"model": model_id})
    # Named, tagged and published as training.py registers it online (the name is the run's settings).
    assert model["task"] and model["name"] == "audio classifier cnn fold 10 width=4 epochs=1 batch-size=8"
    assert {SERVING_TAG, "cnn", "fold 10", "imported-from-offline"} <= set(model["tags"]) and model["published"]
    (task,) = user.read({"task": model["task"]})
    assert task["status"] == "completed" and [m["id"] for m in task["output_models"]] == [model_id]

    served_by = user.run("serve.py", "--model-id", model_id, "--endpoint", "offline_model", "--service-id",
                         served["service_id"], "--url", served["url"])
    assert "endpoint: /serve/offline_model -> model " + model_id in served_by.stdout
    _wait_for(served, lambda: post(served, "offline_model", clip.read_bytes()).status_code == 200,
              "/serve/offline_model")
    answer = ok(served, post(served, "offline_model", clip.read_bytes()))
    assert answer["model_id"] == model_id
    # The answer is predict.py's with the offline run's own model file, and with the id on another machine.
    local = json.loads(user.run("predict.py", str(model_file), str(clip), "--format", "json", "--device", "cpu",
                                "--offline").stdout)["files"][0]
    remote = json.loads(fresh_user.run("predict.py", model_id, str(clip), "--format", "json",
                                       "--device", "cpu").stdout)["files"][0]
    for record in (local, remote):
        assert [t["class"] for t in answer["top"]] == [t["class"] for t in record["top"]]
        np.testing.assert_allclose([t["probability"] for t in answer["top"]],
                                   [t["probability"] for t in record["top"]], rtol=0, atol=1e-6)


def test_an_inference_process_started_outside_the_repository_answers_503_in_one_line(served, clip, user,
                                                                                    tmp_path):
    """Issue 34, item 4: it answered every valid request 422 with a traceback, as if the request were wrong."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = _free_port()
    log_path = tmp_path / "uvicorn-elsewhere.log"
    env = user.env(CLEARML_SERVING_TASK_ID=served["service_id"], CLEARML_SERVING_POLL_FREQ="0.05",
                   CLEARML_BKG_THREAD_REPORT="1")
    env.pop("PYTHONPATH", None)
    with open(log_path, "w") as log:
        process = subprocess.Popen([PYTHON, "-m", "uvicorn", "clearml_serving.serving.main:app", "--host", "127.0.0.1",
                                    "--port", str(port)], cwd=elsewhere, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the inference process exited {process.returncode}:\n{log_path.read_text()[-4000:]}")
                try:
                    if requests.get(f"{url}/openapi.json", timeout=5).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"no answer in 180 s:\n{log_path.read_text()[-4000:]}")
                time.sleep(1)
            for _ in range(2):  # every request, not only the first
                response = requests.post(f"{url}/serve/{STATIC}", data=clip.read_bytes(),
                                         headers={"Content-Type": "audio/wav"}, timeout=120)
                assert response.status_code == 503, f"{response.status_code} {response.text}"
                detail = response.json()["detail"]
                assert "cannot import the audioclf package" in detail and "repository root" in detail
                assert "Traceback" not in detail and "\n" not in detail
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    logged = [line for line in log_path.read_text().splitlines() if "cannot import the audioclf package" in line]
    assert logged and logged[0].startswith(f"error: {STATIC}: the inference process cannot import"), logged


def test_the_server_answered_no_call_of_this_module_with_a_5xx(served):
    log = served["api_log"]
    if log is None or not log.is_file():
        pytest.skip("not the test server: no API log to read")
    with open(log, "rb") as fh:
        fh.seek(served["api_log_start"])
        calls = fh.read().decode(errors="replace").splitlines()
    assert any("Returned 200 for models.get_all" in line for line in calls)  # the inference process's polling
    failed = [line for line in calls if re.search(r"Returned 5\d\d ", line)]
    assert not failed, "\n".join(failed[-20:])


def test_serve_py_names_an_unknown_model_id_in_one_line(user):
    done = user.run("serve.py", "--model-id", "0123456789abcdef0123456789abcdef", check=False, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: --model-id 0123456789abcdef0123456789abcdef: no such model on http"), line
    assert "Traceback" not in done.stderr
