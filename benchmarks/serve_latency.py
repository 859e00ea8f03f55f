"""Serving speed: a 4 s clip POSTed to the real clearml-serving inference process, against predict.py's classifier
called in-process on the same file, in the same run.

    export CLEARML_API_HOST=... CLEARML_WEB_HOST=... CLEARML_FILES_HOST=... CLEARML_API_ACCESS_KEY=... CLEARML_API_SECRET_KEY=...
    python benchmarks/serve_latency.py                     # the default CNN and features, untrained (same cost)
    python benchmarks/serve_latency.py --model outputs/runs/training-.../model.pt --requests 300

What it does: writes a 4 s, 44.1 kHz stereo PCM_16 WAV (an UrbanSound8K clip's format) of a generated siren;
registers the model on the server with ``clearml-serving model upload``; adds an endpoint with serve.py (a
serving service in --project); starts ``uvicorn clearml_serving.serving.main:app`` on a free port of
127.0.0.1 (one worker: the ``custom`` engine runs requests one at a time); after --warmup untimed rounds (the
first loads the model), times --requests rounds of one HTTP request (one client, keep-alive) followed by one
call of ``Classifier.classify_file`` (what predict.py calls) on the same file in this process: interleaved, so
that other load on the machine hits both alike. Prints requests/s (one client back to back: 1 / mean latency),
p50 and p95 latency of both and the ratios. The inference process is stopped by
its PID. Time on a quiet machine: other jobs on the cores skew the numbers.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audioclf import tracking  # noqa: E402
from audioclf.features import FeatureConfig  # noqa: E402
from audioclf.inference import load_classifier  # noqa: E402
from audioclf.models import AudioClassifier, save_model  # noqa: E402
from audioclf.synthetic import CLASS_NAMES, synthesize_clip  # noqa: E402
from audioclf.train_config import TrainConfig  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stats(latencies_s: list[float]) -> dict:
    """Requests/s of one client sending back to back (1 / mean latency), p50 and p95 latency in ms."""
    ms = np.asarray(latencies_s) * 1000
    return {"rps": 1000 / float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "mean_ms": float(ms.mean())}


def default_model(path: Path) -> Path:
    """The default architecture and features (training.py's defaults), untrained: the same inference cost."""
    cfg = TrainConfig()
    torch.manual_seed(0)
    model = AudioClassifier(cfg.arch, len(CLASS_NAMES), **cfg.model_kwargs()).eval()
    save_model(path, model, list(CLASS_NAMES), FeatureConfig().to_dict(), cfg.to_dict(), {})
    return path


def run_cli(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="model.pt to serve (default: training.py's default CNN and features, untrained)")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per side (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests first (default: %(default)s)")
    parser.add_argument("--project", default="audioclf benchmarks",
                        help="ClearML project of the benchmark's model and serving service (default: %(default)s)")
    args = parser.parse_args(argv)
    offline, why = tracking.decide_offline(False)
    if offline:
        raise SystemExit(f"the serving benchmark needs a ClearML server ({why}): see this file's docstring")

    work = Path(tempfile.mkdtemp(prefix="audioclf-bench-serving-"))
    model_path = args.model or default_model(work / "model.pt")
    clip = work / "siren_4s.wav"
    sf.write(clip, synthesize_clip(8, 4.0, 44100, 2, 1, np.random.default_rng(0)), 44100, subtype="PCM_16")
    body = clip.read_bytes()

    # Register the model and the endpoint with the real CLIs.
    created = run_cli("-m", "clearml_serving", "--yes", "create", "--name", "audioclf benchmark", "--project",
                      args.project)
    service_id = re.search(r"created: id=([0-9a-f]+)", created).group(1)
    uploaded = run_cli("-m", "clearml_serving", "--yes", "--id", service_id, "model", "upload", "--name",
                       "audio classifier benchmark", "--project", args.project, "--path", str(model_path),
                       "--framework", "pytorch")
    model_id = re.search(r"new Model ID=([0-9a-f]+)", uploaded).group(1)
    run_cli("serve.py", "--model-id", model_id, "--service-id", service_id, "--endpoint", "bench")

    import requests

    port = free_port()
    url = f"http://127.0.0.1:{port}/serve/bench"
    log = open(work / "uvicorn.log", "w")
    env = {**os.environ, "CLEARML_SERVING_TASK_ID": service_id, "CLEARML_BKG_THREAD_REPORT": "1"}
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "clearml_serving.serving.main:app", "--host",
                                "127.0.0.1", "--port", str(port), "--log-level", "warning"], cwd=REPO, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        session = requests.Session()
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the inference process did not start:\n{(work / 'uvicorn.log').read_text()[-3000:]}")
            try:
                if session.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).ok:
                    break
            except requests.ConnectionError:
                time.sleep(1)
        headers = {"Content-Type": "audio/wav"}
        clf = load_classifier(model_path, "cpu", offline=True)
        for _ in range(args.warmup):
            answer = session.post(url, data=body, headers=headers, timeout=120)
            if answer.status_code != 200:
                raise SystemExit(f"warm-up request: {answer.status_code} {answer.text[:500]}")
            result = clf.classify_file(clip)
        served_top = answer.json()["top"]
        local_top = [{"class": c, "probability": p} for c, p in result.top(3)]
        # Interleaved, one HTTP request then one in-process call: a neighbour's load on the cores hits both alike.
        timings = {"http": [], "local": []}
        for _ in range(args.requests):
            t0 = time.perf_counter()
            answer = session.post(url, data=body, headers=headers, timeout=120)
            t1 = time.perf_counter()
            assert answer.status_code == 200, answer.text[:500]
            clf.classify_file(clip)
            t2 = time.perf_counter()
            timings["http"].append(t1 - t0)
            timings["local"].append(t2 - t1)
        http, local = stats(timings["http"]), stats(timings["local"])
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()

    same = [t["class"] for t in served_top] == [t["class"] for t in local_top] and np.allclose(
        [t["probability"] for t in served_top], [t["probability"] for t in local_top], atol=1e-6)
    print(f"serving benchmark: {model_path.name if args.model else 'default cnn (untrained)'}, a 4 s 44.1 kHz stereo "
          f"WAV ({len(body)} bytes), {args.requests} requests after {args.warmup} warm-up; {os.cpu_count()} CPU "
          f"cores, torch threads {torch.get_num_threads()}; same answer over HTTP as in-process: {same}")
    for name, s in (("HTTP clearml-serving", http), ("in-process classify_file", local)):
        print(f"  {name:<26} {s['rps']:7.1f} req/s   p50 {s['p50_ms']:7.1f} ms   p95 {s['p95_ms']:7.1f} ms")
    print(f"  ratio HTTP / in-process: throughput {http['rps'] / local['rps']:.2f}x, p50 latency "
          f"{http['p50_ms'] / local['p50_ms']:.2f}x, p95 latency {http['p95_ms'] / local['p95_ms']:.2f}x")
    return {"http": http, "in_process": local, "same_answer": same, "model_id": model_id, "service_id": service_id}


if __name__ == "__main__":
    main(sys.argv[1:])
