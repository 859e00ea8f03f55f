"""serving/preprocess.py (the clearml-serving custom engine) on generated audio: the answer is predict.py's.

    python -m pytest -q tests/test_serving.py

The HTTP path (the real clearml-serving inference process and CLI against a ClearML server) is
tests/integration/test_serving_online.py; here the Preprocess class is driven as clearml-serving drives it: a
ModelEndpoint set on the instance, load(model file), then preprocess(bytes) -> process -> postprocess.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from clearml_serving.serving.endpoints import ModelEndpoint

import predict
import serve
from audioclf.synthetic import synthesize_clip
from serving.preprocess import Preprocess
from tests.test_predict import TWO_CLASSES, mixed_30s, two_class_model  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[1]


def make_preprocess(model: Path, aux: dict | None = None, model_id: str = "model-under-test") -> Preprocess:
    """As clearml-serving does it (preprocess_service.py): instance, model_endpoint, then load(local file)."""
    pre = Preprocess()
    pre.model_endpoint = ModelEndpoint(engine_type="custom", serving_url="audio_classifier", model_id=model_id,
                                       auxiliary_cfg=aux)
    pre.load(str(model))
    return pre


def answer(pre: Preprocess, body) -> dict:
    state: dict = {}
    out = pre.postprocess(pre.process(pre.preprocess(body, state, None), state, None), state, None)
    json.dumps(out)  # what FastAPI will serialize: plain types only
    return out


def predict_record(model: Path, audio: Path, *extra: str) -> dict:
    report = predict.main([str(model), str(audio), "--format", "json", "--device", "cpu", "--offline",
                           "--output", str(audio.with_suffix(".predict.json")), *extra])
    (record,) = report["files"]
    return {**record, "settings": report["settings"]}


def same_as_predict(got: dict, want: dict) -> None:
    for key in ("top", "duration_s", "sample_rate", "channels", "format", "num_windows", "windows"):
        assert got[key] == want[key], key
    for key in ("window_s", "hop_s", "top_k", "aggregate"):
        assert got["settings"][key] == want["settings"][key], key


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The folder the Preprocess writes its temporary files to (to check it leaves none behind)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_long_stereo_48k_wav_gets_predict_pys_answer_window_by_window(two_class_model, mixed_30s, private_tmp):
    pre = make_preprocess(two_class_model)
    got = answer(pre, mixed_30s.read_bytes())
    want = predict_record(two_class_model, mixed_30s)
    same_as_predict(got, want)
    assert got["model_id"] == "model-under-test"
    # 30 s at the model's own 1 s windows every 0.5 s (its feature config, not the 4 s default): a timeline.
    assert got["num_windows"] == len(got["windows"]) == 59
    assert (got["sample_rate"], got["channels"], got["format"]) == (48000, 2, "WAV/PCM_24")
    names = got["settings"]["class_names"]
    first = [w["top"][0]["class"] for w in got["windows"] if w["end_s"] <= 14.5]
    second = [w["top"][0]["class"] for w in got["windows"] if w["start_s"] >= 15.5]
    assert np.mean([c == names[0] for c in first]) >= 0.9 and np.mean([c == names[1] for c in second]) >= 0.9
    assert list(private_tmp.iterdir()) == []  # the request's temporary file is gone


@pytest.mark.parametrize("fmt, subtype, rate, channels", [("FLAC", "PCM_16", 8000, 1), ("OGG", "VORBIS", 44100, 2),
                                                          ("WAV", "FLOAT", 16000, 3)])
def test_flac_ogg_and_float_wav_of_any_rate_and_channels(two_class_model, tmp_path, private_tmp, fmt, subtype, rate,
                                                         channels):
    clip = synthesize_clip(TWO_CLASSES[1], 2.5, rate, channels, 1, np.random.default_rng(5))
    path = tmp_path / f"siren.{fmt.lower()}"
    sf.write(path, clip, rate, format=fmt, subtype=subtype)
    got = answer(make_preprocess(two_class_model), path.read_bytes())
    same_as_predict(got, predict_record(two_class_model, path))
    assert (got["sample_rate"], got["channels"], got["format"]) == (rate, channels, f"{fmt}/{subtype}")
    assert got["top"][0]["class"] == got["settings"]["class_names"][1]  # the siren is heard as a siren
    assert list(private_tmp.iterdir()) == []


def test_aux_config_sets_top_k_window_and_hop_as_predict_flags_do(two_class_model, mixed_30s):
    pre = make_preprocess(two_class_model, {"top_k": 1, "window_s": 0.5, "hop_s": 0.25})
    got = answer(pre, mixed_30s.read_bytes())
    same_as_predict(got, predict_record(two_class_model, mixed_30s, "--top-k", "1", "--window", "0.5", "--hop", "0.25"))
    assert len(got["top"]) == 1 and got["num_windows"] == 119
    # A top_k above the number of classes lists every class, as predict.py does.
    assert len(answer(make_preprocess(two_class_model, {"top_k": 9}), mixed_30s.read_bytes())["top"]) == 2


@pytest.mark.parametrize("aux, message", [({"window_s": 2.0}, "at most the model's clip duration"),
                                          ({"top_k": 0}, "top_k=0"), ({"topk": 3}, "topk: unknown")])
def test_bad_endpoint_settings_fail_at_load_with_the_reason(two_class_model, aux, message):
    with pytest.raises(ValueError, match=message):
        make_preprocess(two_class_model, aux)


def _empty_wav() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros((0, 1), np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.mark.parametrize("body, message", [
    (None, "empty body"),
    (b"", "empty body"),
    ({"features": [1, 2, 3]}, "a JSON body"),
    (b"RIFF\x00\x00\x00\x00WAVEthis is not audio" * 50, "not audio this server can decode"),
    (os.urandom(4096), "not audio this server can decode"),
    (_empty_wav(), "zero frames"),
])
def test_bad_bodies_are_value_errors_with_one_line_reasons_and_leave_no_file(two_class_model, private_tmp, body,
                                                                              message):
    """clearml-serving answers a ValueError with HTTP 422 and its text; anything else would be a 500."""
    pre = make_preprocess(two_class_model)
    state: dict = {}
    with pytest.raises(ValueError, match=message) as exc:
        pre.postprocess(pre.process(pre.preprocess(body, state, None), state, None), state, None)
    assert "\n" not in str(exc.value) and str(private_tmp) not in str(exc.value)
    assert list(private_tmp.iterdir()) == []
    # The instance still serves good requests afterwards.
    clip = synthesize_clip(TWO_CLASSES[0], 1.0, 16000, 1, 1, np.random.default_rng(1))
    buf = io.BytesIO()
    sf.write(buf, clip, 16000, format="WAV", subtype="PCM_16")
    assert answer(pre, buf.getvalue())["num_windows"] == 1


def test_the_preprocess_file_loads_as_clearml_serving_loads_it(two_class_model, mixed_30s, tmp_path):
    """A copy of the file alone (clearml-serving downloads the artifact to its cache and imports it by path), in a
    process started in the repository root, with no test module around it."""
    copy = tmp_path / "py_code_audio_classifier.py"
    copy.write_bytes((REPO / "serving" / "preprocess.py").read_bytes())
    script = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('Preprocess', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "pre = module.Preprocess(); pre.load(sys.argv[2]); state = {}\n"
        "body = open(sys.argv[3], 'rb').read()\n"
        "print(json.dumps(pre.postprocess(pre.process(pre.preprocess(body, state), state), state)))\n")
    done = subprocess.run([sys.executable, "-c", script, str(copy), str(two_class_model), str(mixed_30s)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["model_id"] is None  # no ModelEndpoint outside clearml-serving
    same_as_predict(got, predict_record(two_class_model, mixed_30s))


def test_serve_py_refuses_to_run_offline_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
    env.update(HOME=str(tmp_path), CLEARML_OFFLINE_MODE="1")
    done = subprocess.run([sys.executable, "serve.py", "--model-id", "0123abc"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: serving needs a ClearML server, and this machine is offline: "
                                                "CLEARML_OFFLINE_MODE is set"]


def test_serve_py_validates_the_endpoint_name():
    with pytest.raises(SystemExit):
        serve.build_parser().parse_args(["--model-id", "x", "--endpoint", "a/b"])
    args = serve.build_parser().parse_args(["--model-id", "x", "--top-k", "5", "--window", "0.5"])
    assert serve.aux_config(args) == ["--aux-config", "top_k=5", "window_s=0.5"]


def test_serve_py_prints_an_inference_port_a_local_clearml_server_does_not_use():
    """A default ClearML server install listens on 8080 (web UI), 8008 (API) and 8081 (files): the printed
    inference command must not start a second server on one of them."""
    args = serve.build_parser().parse_args(["--model-id", "x"])
    setup = {"service_id": "sid", "created": True, "project": "P", "endpoint": "audio_classifier",
             "auto_update": False, "model": {"id": "x", "name": "m", "project": "P"}}
    text = serve.instructions(setup, args.url)
    port = int(re.search(r"--port (\d+)", text).group(1))
    assert port not in (8080, 8008, 8081)
    assert f"curl -X POST http://127.0.0.1:{port}/serve/audio_classifier " in text
