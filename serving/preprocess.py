"""clearml-serving custom engine for the audio classifier: an audio file's bytes in, its classes out (JSON).

    python serve.py --model-id <id>       # uploads this file as the endpoint's preprocess code (docs/serving.md)
    curl -X POST http://127.0.0.1:8090/serve/audio_classifier -H "Content-Type: audio/wav" --data-binary @clip.wav

clearml-serving loads this file in its inference process, finds the class ``Preprocess``, sets
``self.model_endpoint`` and calls ``load()`` once with the model file it downloaded, then per request
``preprocess(body) -> process() -> postprocess()`` (the ``custom`` engine; the three run one request at a time
on the server's event loop). A body whose Content-Type is not JSON arrives here as raw bytes.

Nothing about the features is declared here: the model file carries its FeatureConfig, and the request goes
through ``audioclf.inference.Classifier.classify_file``, the call predict.py makes (decode with libsndfile, mix
to mono, resample to the model's rate, windows of the model's clip duration every half of it, log-mel rounded
through float16 as the training features were): the answer is predict.py's on the same file, and there is no
second copy of the feature code to drift from training's. Any sample rate, channel count and length; any
format this libsndfile reads (WAV, FLAC, OGG/Vorbis, AIFF, ...), detected from the bytes.

Answer: ``model_id``, ``top`` (the top-k classes of the file: the mean of its window probabilities), the
file's ``duration_s``, ``sample_rate``, ``channels``, ``format``, and ``windows`` (each window's start, end and
top-k), the same fields as a file's record in ``predict.py --format json``, plus ``settings``.

Bad input (no body, a JSON body, bytes that are not audio, a file with no samples) raises ValueError, which
clearml-serving answers with HTTP 422 and the one-line reason; never a 500. (The project's UserError, e.g. a
--window longer than the model's clip, is turned into that ValueError here.)

Settings, per endpoint, with ``--aux-config`` (serve.py's --top-k, --window, --hop): ``top_k`` (default 3,
predict.py's), ``window_s`` and ``hop_s`` (default: the model's clip duration and half of it).

The inference process needs the ``audioclf`` package importable: start it from the repository root, or
``pip install .`` there (docs/serving.md). When it cannot import it, this is the server's fault, not the
client's: the process log gets one line saying so when the endpoint loads, and every request is answered
503 with that line (not 422 with a traceback, which would blame the request).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

try:
    from audioclf.audio import AudioDecodeError
    from audioclf.errors import UserError
    from audioclf.inference import AGGREGATE, Classifier, FileResult, load_classifier
except ImportError as _missing:
    # Not raised: clearml-serving would answer every request 422 with the traceback, as if the request were wrong.
    IMPORT_PROBLEM = (f"the inference process cannot import the audioclf package ({_missing}): restart it from the "
                      "repository root, or run `pip install .` there first (docs/serving.md)")
else:
    IMPORT_PROBLEM = None

DEFAULT_TOP_K = 3  # predict.py's --top-k default
_SETTINGS = ("top_k", "window_s", "hop_s")
USAGE = ("POST the audio file's bytes with a non-JSON Content-Type, e.g. "
         "curl -H 'Content-Type: audio/wav' --data-binary @clip.wav <url>")


def _top(result: FileResult, k: int, probabilities=None) -> list[dict]:
    return [{"class": name, "probability": p} for name, p in result.top(k, probabilities)]


class Unavailable:
    """The Preprocess of an inference process that cannot import the project: one line in its log, and every
    request answered 503 (Service Unavailable) with that line. A starlette Response returned by postprocess
    reaches the client as it is (FastAPI passes a Response through)."""

    model_endpoint: Any = None

    def load(self, local_file_name: str) -> None:
        import sys

        endpoint = getattr(self.model_endpoint, "serving_url", None) or "this endpoint"
        print(f"error: {endpoint}: {IMPORT_PROBLEM}; every request answers 503 until then", file=sys.stderr,
              flush=True)

    def preprocess(self, body: Any, state: dict, collect_custom_statistics_fn=None) -> None:
        return None

    def process(self, data: Any, state: dict, collect_custom_statistics_fn=None) -> None:
        return None

    def postprocess(self, data: Any, state: dict, collect_custom_statistics_fn=None):
        from fastapi.responses import JSONResponse

        return JSONResponse(status_code=503, content={"detail": IMPORT_PROBLEM})


class Preprocess:
    """One per endpoint (and version) and inference worker; shared by its requests, which keep their data in
    ``state`` or in local variables."""

    model_endpoint: Any = None  # clearml_serving ModelEndpoint, set by clearml-serving before load()

    def __init__(self) -> None:
        self.classifier: Classifier | None = None
        self.top_k = DEFAULT_TOP_K
        self.window_s: float | None = None
        self.hop_s: float | None = None

    # ------------------------------------------------------------------ once
    def load(self, local_file_name: str) -> Classifier:
        """The model file clearml-serving downloaded (Model(model_id).get_local_copy()) -> a CPU Classifier."""
        aux = getattr(self.model_endpoint, "auxiliary_cfg", None) or {}
        if not isinstance(aux, dict):
            raise ValueError(f"--aux-config must be key=value pairs ({', '.join(_SETTINGS)}), got {aux!r}")
        unknown = sorted(set(aux) - set(_SETTINGS))
        if unknown:
            raise ValueError(f"--aux-config {', '.join(unknown)}: unknown; known settings: {', '.join(_SETTINGS)}")
        try:
            classifier = load_classifier(local_file_name, device="cpu", offline=True)
            top_k = int(aux.get("top_k", DEFAULT_TOP_K))
            if top_k < 1:
                raise ValueError(f"--aux-config top_k={top_k}: must be at least 1")
            self.top_k = min(top_k, len(classifier.class_names))
            self.window_s = None if aux.get("window_s") is None else float(aux["window_s"])
            self.hop_s = None if aux.get("hop_s") is None else float(aux["hop_s"])
            classifier.window_samples(self.window_s, self.hop_s)  # bad settings fail here, once, with the reason
        except UserError as exc:
            raise ValueError(str(exc)) from None
        self.classifier = classifier
        return classifier

    @property
    def model_id(self) -> str | None:
        return getattr(self.model_endpoint, "model_id", None)

    # ------------------------------------------------------------------ per request
    def preprocess(self, body: Any, state: dict, collect_custom_statistics_fn=None) -> str:
        """The request's bytes -> a temporary file that ``process`` classifies and removes."""
        if isinstance(body, dict):
            raise ValueError(f"a JSON body: {USAGE}")
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        if not isinstance(body, bytes):  # None: an empty body (FastAPI passes no bytes at all)
            raise ValueError(f"empty body: {USAGE}")
        if not body:
            raise ValueError(f"empty body: {USAGE}")
        fd, path = tempfile.mkstemp(prefix="audioclf-serving-", suffix=".audio")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
        except BaseException:
            os.unlink(path)
            raise
        state["bytes"] = len(body)
        return path

    def process(self, path: str, state: dict, collect_custom_statistics_fn=None) -> dict:
        """Classify the file exactly as predict.py does, and return the answer; a file that does not decode is a
        ValueError (HTTP 422).

        The answer is made here, not in postprocess: clearml-serving 1.3.5 tears down the processors of an
        auto-update endpoint's versions one sync after each change of its models (model_request_processor.py,
        launch's loop: ``_preprocess = None`` for every processor not in ``_endpoints``, which holds only static
        endpoints), from its own thread. A request classified meanwhile then meets no postprocess of ours, and its
        FileResult went to FastAPI's JSON encoder: HTTP 500. The process result is the answer itself now."""
        try:
            return self.answer(self.classifier.classify_file(path, self.window_s, self.hop_s))
        except AudioDecodeError as exc:
            raise ValueError(f"the body is not audio this server can decode ({state.get('bytes', 0)} bytes): "
                             f"{exc.reason.replace(path, 'body')}") from None
        except (RuntimeError, MemoryError) as exc:  # e.g. a sample rate the resampler refuses (as predict.py)
            raise ValueError(f"the audio could not be classified: {type(exc).__name__}: "
                             f"{str(exc).replace(path, 'body')}") from None
        finally:
            os.unlink(path)

    def postprocess(self, answer: dict, state: dict, collect_custom_statistics_fn=None) -> dict:
        """The answer, as process made it."""
        return answer

    def answer(self, result: FileResult) -> dict:
        """A FileResult -> the JSON answer (plain floats and ints only)."""
        info = result.info
        rate = self.classifier.config.sample_rate
        window, hop = self.classifier.window_samples(self.window_s, self.hop_s)
        return {
            "model_id": self.model_id,
            "top": _top(result, self.top_k),
            "duration_s": info.duration_s,
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "format": f"{info.format}/{info.subtype}",
            "num_windows": len(result.starts_s),
            "windows": [{"start_s": float(start), "end_s": float(end), "top": _top(result, self.top_k, probs)}
                        for start, end, probs in zip(result.starts_s, result.ends_s, result.probabilities)],
            "settings": {"window_s": window / rate, "hop_s": hop / rate, "top_k": self.top_k,
                         "aggregate": AGGREGATE, "class_names": list(self.classifier.class_names)},
        }


if IMPORT_PROBLEM is not None:
    Preprocess = Unavailable  # noqa: F811  (clearml-serving instantiates the class named Preprocess)
