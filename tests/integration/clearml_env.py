"""The integration suite's server, agents and users (fixtures are registered by conftest.py): a real ClearML server, real clearml-agents, and the project as a user has it.

- Server, in this order:
  1. the one named by CLEARML_API_HOST, CLEARML_API_ACCESS_KEY and CLEARML_API_SECRET_KEY (and
     CLEARML_FILES_HOST, CLEARML_WEB_HOST), only with the explicit opt-in ``AUDIOCLF_IT_SERVER=1``: the suite
     writes to that server, so having credentials configured is not enough;
  2. a test-server launcher named by ``AUDIOCLF_TEST_SERVER``: a folder with ``start.sh`` (prints ``export
     CLEARML_...`` lines; honours CLEARML_LOCAL_API_PORT / CLEARML_LOCAL_FILES_PORT) and ``stop.sh``, started on
     free ports for this session and stopped after it (CI passes ``../shared/clearml-server``);
  3. otherwise every integration test is skipped, with one line saying how to get a server.
- Everything the suite creates lives in one project of this session (``names``) and on queues of this session
  (``agents``); both are deleted from the server at the end (``cleanup.py``), so a real server keeps nothing.
- Project: a snapshot of this working tree (committed or not) as its own git repository whose ``origin`` is
  itself (fetched, so that the commit is on a remote-tracking branch, as after a push), so the tasks record a
  repository and a commit that the agents can clone.
- Agents: real ``clearml-agent`` daemons on queues unique to the session (so a real server's other queues and
  tasks are never touched), one for steps (cpu and gpu queues) and one in services mode for pipeline
  controllers, each with its own HOME, running tasks with this project's own .venv python. Stopped by PID.

Every stage runs as a subprocess with a fresh HOME, as a user on another machine would run it; what the
server holds is read back with the SDK in a subprocess too (``readback.py``), since this test process may be
in the SDK's offline mode (the unit tests run offline in it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SERVER_VARS = ("CLEARML_API_HOST", "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY")
PASSED_VARS = SERVER_VARS + ("CLEARML_FILES_HOST", "CLEARML_WEB_HOST")
PYTHON = sys.executable  # the project's .venv python


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    env: dict  # the CLEARML_* variables that point the SDK at it
    logs: Path | None = None  # the test server's logs (its apiserver.stdout has one line per call)

    def api_log_tail(self, lines: int = 40) -> str:
        log = self.logs / "apiserver.stdout" if self.logs else None
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log and log.is_file() else ""


NO_SERVER = ("no ClearML server for the integration tests: start one (the official docker compose, "
             "https://clear.ml/docs/latest/docs/deploying_clearml/clearml_server_linux_mac), export CLEARML_API_HOST, "
             "CLEARML_FILES_HOST, CLEARML_API_ACCESS_KEY, CLEARML_API_SECRET_KEY and AUDIOCLF_IT_SERVER=1; or set "
             "AUDIOCLF_TEST_SERVER to a test-server folder with start.sh and stop.sh")


def server_source(environ) -> tuple[str, str | None]:
    """Which server the suite uses: ("configured", None), ("launcher", folder) or ("none", why)."""
    if environ.get("AUDIOCLF_IT_SERVER") == "1":
        missing = [v for v in SERVER_VARS if not environ.get(v)]
        if missing:
            return "none", f"AUDIOCLF_IT_SERVER=1 but {', '.join(missing)} not set"
        return "configured", None
    launcher = environ.get("AUDIOCLF_TEST_SERVER")
    if launcher:
        folder = Path(launcher).expanduser().resolve()
        if not (folder / "start.sh").is_file() or not (folder / "stop.sh").is_file():
            return "none", f"AUDIOCLF_TEST_SERVER={launcher}: no start.sh and stop.sh there"
        return "launcher", str(folder)
    if all(environ.get(v) for v in SERVER_VARS):
        return "none", ("CLEARML_API_* are set but the suite writes to that server only with AUDIOCLF_IT_SERVER=1 "
                        "(it creates and then deletes one project and its queues)")
    return "none", NO_SERVER


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    kind, detail = server_source(os.environ)
    if kind == "none":
        pytest.skip(detail)
    if kind == "configured":
        yield Server(env={k: os.environ[k] for k in PASSED_VARS if os.environ.get(k)})
        return
    launcher = Path(detail)
    ports = {"CLEARML_LOCAL_API_PORT": str(_free_port()), "CLEARML_LOCAL_FILES_PORT": str(_free_port())}
    env = {**os.environ, **ports}
    started = subprocess.run(["bash", str(launcher / "start.sh")], env=env, capture_output=True, text=True,
                             timeout=900)
    if started.returncode != 0:
        pytest.fail(f"could not start the test server ({launcher}/start.sh):\n{started.stderr[-3000:]}")
    values = dict(line[len("export "):].split("=", 1) for line in started.stdout.splitlines()
                  if line.startswith("export "))
    home = Path(os.environ.get("CLEARML_TEST_SERVER_HOME",
                               Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "clearml-test-server"))
    try:
        yield Server(env=values, logs=home / f"logs-{ports['CLEARML_LOCAL_API_PORT']}")
    finally:
        subprocess.run(["bash", str(launcher / "stop.sh")], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    """This working tree as a repository of its own (origin: itself) at a commit holding every change."""
    snap = tmp_path_factory.mktemp("project") / "audioclf"
    subprocess.run(["git", "clone", "-q", "--no-local", str(REPO), str(snap)], check=True)
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, listed):
        source = REPO / rel
        target = snap / rel
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif target.exists() and not source.exists():
            target.unlink()
    git = ["git", "-c", "user.name=audioclf tests", "-c", "user.email=tests@audioclf.invalid"]
    subprocess.run(git + ["add", "-A"], cwd=snap, check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "integration test snapshot"], cwd=snap, check=True)
    subprocess.run(["git", "remote", "set-url", "origin", str(snap)], cwd=snap, check=True)
    # The snapshot's commit is on its remote (itself) as a user's pushed commit is: the check made before
    # enqueueing (audioclf/repository.py) looks for it on a remote-tracking branch.
    subprocess.run(["git", "fetch", "-q", "origin"], cwd=snap, check=True)
    return snap


@dataclass
class User:
    """Someone running the project's scripts against the server from a machine of their own (a fresh HOME)."""

    server: Server
    project: Path
    home: Path
    queues: dict = field(default_factory=dict)

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
        env.update(self.server.env)
        self.home.mkdir(parents=True, exist_ok=True)
        env.update(HOME=str(self.home), CLEARML_CACHE_DIR=str(self.home / ".clearml" / "cache"), TQDM_DISABLE="1",
                   CLEARML_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1", AUDIOCLF_VERIFY="1")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run(self, script: str, *args: str, timeout: float = 600, check: bool = True, **extra_env
            ) -> subprocess.CompletedProcess:
        command = [PYTHON, str(self.project / script), *args]
        process = subprocess.Popen(command, cwd=self.project, env=self.env(**extra_env), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stacks = _stacks_of(process.pid)
            process.kill()
            stdout, stderr = process.communicate()
            pytest.fail(f"{script} {' '.join(args)} still running after {timeout} s; its threads:\n{stacks}\n"
                        f"{stdout[-3000:]}\n{stderr[-3000:]}\n--- server log ---\n{self.server.api_log_tail()}")
        done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
        if check and done.returncode != 0:
            pytest.fail(f"{script} {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                        f"{done.stderr[-5000:]}\n--- server log ---\n{self.server.api_log_tail()}")
        return done

    def read(self, *queries: dict) -> list:
        """What the server holds, read back with the SDK (readback.py)."""
        done = subprocess.run([PYTHON, str(HERE / "readback.py"), json.dumps(list(queries))], cwd=self.project,
                              env=self.env(), capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"readback {queries} failed:\n{done.stderr[-4000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def wait_for(self, task_id: str, timeout: float = 600) -> dict:
        """The task once it has stopped running (completed, failed, stopped...)."""
        deadline = time.monotonic() + timeout
        while True:
            (task,) = self.read({"task": task_id, "brief": True})
            if task["status"] not in ("created", "queued", "in_progress"):
                return self.read({"task": task_id})[0]
            if time.monotonic() > deadline:
                pytest.fail(f"task {task_id} still {task['status']} after {timeout} s")
            time.sleep(3)


def _stacks_of(pid: int) -> str:
    """Every thread's Python stack of a hung process (py-spy, from the test requirements), for the failure."""
    spy = Path(PYTHON).with_name("py-spy")
    if not spy.is_file():
        return "(py-spy is not installed: no stacks)"
    dumped = subprocess.run([str(spy), "dump", "--pid", str(pid), "--subprocesses"], capture_output=True, text=True,
                            timeout=60)
    return dumped.stdout[-8000:] + dumped.stderr[-2000:]


@pytest.fixture(scope="session")
def agents(server, project, tmp_path_factory):
    """Queue names {cpu, gpu, services}, each served by a real clearml-agent daemon."""
    token = secrets.token_hex(3)
    queues = {"cpu": f"audioclf-it-{token}-cpu", "gpu": f"audioclf-it-{token}-gpu",
              "services": f"audioclf-it-{token}-services"}
    agent_bin = Path(PYTHON).with_name("clearml-agent")
    if not agent_bin.is_file():
        pytest.fail(f"{agent_bin} is missing: install the test requirements (pip install -r requirements-dev.txt)")
    base = tmp_path_factory.mktemp("agents")
    processes = []
    for name, queue_args in (("steps", ["--queue", queues["cpu"], queues["gpu"]]),
                             ("services", ["--queue", queues["services"], "--services-mode"])):
        home = base / name
        home.mkdir()
        env = User(server, project, home).env(
            CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL=1, CLEARML_AGENT_SKIP_PIP_VENV_INSTALL=PYTHON)
        log = open(base / f"{name}.log", "w")
        processes.append((subprocess.Popen([str(agent_bin), "daemon", *queue_args, "--create-queue", "--cpu-only",
                                            "--foreground"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                           cwd=home, start_new_session=True), log))
    try:
        _wait_for_workers(User(server, project, base / "probe"), list(queues.values()))
        yield {**queues, "logs": base}
    finally:
        for process, log in processes:
            with_children = os.getpgid(process.pid)
            os.killpg(with_children, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(with_children, signal.SIGKILL)
            log.close()
        delete_from_server(server, project, base / "cleanup", queues=list(queues.values()))


def _wait_for_workers(user: User, queues: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (served,) = user.read({"served_queues": queues})
        if set(served) == set(queues):
            return
        time.sleep(2)
    pytest.fail(f"the agents did not register on {queues} within {timeout} s")


@pytest.fixture(scope="session")
def user(server, project, tmp_path_factory) -> User:
    return User(server, project, tmp_path_factory.mktemp("user-home"))


@pytest.fixture
def fresh_user(server, project, tmp_path) -> User:
    """Another machine: a HOME with nothing cached."""
    return User(server, project, tmp_path / "another-home")


def output_of(done: subprocess.CompletedProcess, prefix: str) -> str:
    """The value a script printed after ``prefix`` (e.g. 'raw dataset id:')."""
    for line in done.stdout.splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].split()[0]
    raise AssertionError(f"{prefix!r} not in the output:\n{done.stdout[-2000:]}")


def task_id_in(done: subprocess.CompletedProcess) -> str:
    """The id of the task a script ran as (from the ClearML link it prints)."""
    import re

    found = re.findall(r"/tasks/([0-9a-f]{32})/", done.stdout)
    assert found, f"no task link in the output:\n{done.stdout[-2000:]}"
    return found[-1]


def delete_from_server(server: Server, project: Path, home: Path, **what: list[str]) -> None:
    """Delete the named projects (with all they hold) and queues from the server (cleanup.py), and check they
    are gone: a suite that leaves things behind on a user's server fails."""
    env = User(server, project, home).env()
    answers = []
    for query in (what, {**what, "check": True}):
        done = subprocess.run([PYTHON, str(HERE / "cleanup.py"), json.dumps(query)], cwd=project, env=env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"cleanup {query} failed:\n{done.stderr[-3000:]}")
        answers.append(json.loads(done.stdout.strip().splitlines()[-1]))
    deleted, left = answers
    if deleted["errors"] or any(left.values()):
        pytest.fail(f"the cleanup left things on the server: deleted {deleted}, still there {left}")


@pytest.fixture(scope="session")
def names(server, project, tmp_path_factory):
    """A project of this session only, so that a real server's projects are never touched; deleted at the end
    with everything in it (tasks, datasets, models, pipelines)."""
    created = {"project": f"audioclf-it-{secrets.token_hex(3)}"}
    yield created
    delete_from_server(server, project, tmp_path_factory.mktemp("cleanup"), projects=[created["project"]])


@pytest.fixture(scope="session")
def datasets(user, names, tmp_path_factory):
    """get_data and preprocessing run online, once for the session: their outputs and task ids."""
    out = tmp_path_factory.mktemp("online-outputs")
    common = ["--project", names["project"], "--output-dir", str(out)]
    raw = user.run("get_data.py", "--num-clips", "20", "--data-seed", "4", "--workers", "1", *common)
    raw_id = output_of(raw, "raw dataset id:")
    feats = user.run("preprocessing.py", "--dataset-id", raw_id, "--device", "cpu", "--workers", "1", *common)
    return {"out": out, "common": common, "raw": raw_id, "raw_task": task_id_in(raw),
            "features": output_of(feats, "features dataset id:"), "features_task": task_id_in(feats),
            "raw_output": raw.stdout, "features_output": feats.stdout}
