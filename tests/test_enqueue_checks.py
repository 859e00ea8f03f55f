"""Issue 34, item 6: before anything is enqueued on an agent, the code the agent will clone is checked, and a run
that fails before doing any work leaves no offline session behind.

The repositories are real git repositories made here (a bare one stands for the remote the agents clone from).

    python -m pytest -q tests/test_enqueue_checks.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import preprocessing
import training
from audioclf import repository
from audioclf.errors import UserError

REPO = Path(__file__).resolve().parents[1]
WHAT = "training.py --queue gpu"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=audioclf tests", "-c", "user.email=tests@audioclf.invalid",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True, capture_output=True,
                          text=True)
    return done.stdout


@pytest.fixture
def project(tmp_path) -> Path:
    """A project folder in a git repository of its own, one commit, no remote."""
    root = tmp_path / "project"
    (root / "audioclf").mkdir(parents=True)
    (root / "training.py").write_text("print('training')\n")
    (root / "audioclf" / "models.py").write_text("WIDTH = 32\n")
    (root / ".gitignore").write_text("outputs/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


def push(root: Path) -> Path:
    """A bare repository as origin, with the current branch pushed to it."""
    remote = root.parent / "remote.git"
    git(root.parent, "init", "-q", "--bare", str(remote))
    git(root, "remote", "add", "origin", str(remote))
    git(root, "push", "-q", "-u", "origin", "HEAD")
    return remote


def check(root: Path, diff_stored: bool = True) -> tuple[list[str], list[str]]:
    return repository.problems(repository.inspect(root), diff_stored, WHAT)


def test_a_folder_outside_git_is_refused_naming_what_to_do(tmp_path):
    folder = tmp_path / "loose"
    folder.mkdir()
    (refusal,), warnings = check(folder)
    assert refusal.startswith(f"{WHAT}: an agent runs this project from a git repository it clones")
    assert "git init" in refusal and "git push" in refusal and "run it here instead" in refusal and not warnings


def test_a_repository_without_a_remote_is_refused(project):
    (refusal,), _ = check(project)
    assert "has no remote" in refusal and "git remote add origin URL" in refusal and "git push -u origin HEAD" in refusal


def test_a_commit_that_was_not_pushed_is_refused_and_pushing_it_is_the_fix(project):
    push(project)
    assert check(project) == ([], [])
    (project / "training.py").write_text("print('training, changed')\n")
    git(project, "commit", "-q", "-am", "not pushed")
    commit = git(project, "rev-parse", "HEAD").strip()
    (refusal,), _ = check(project)
    assert f"commit {commit[:8]} is on no branch of origin" in refusal and "git push" in refusal
    git(project, "push", "-q")
    assert check(project) == ([], [])


def test_uncommitted_changes_travel_as_a_diff_and_the_warning_says_so(project):
    push(project)
    (project / "audioclf" / "models.py").write_text("WIDTH = 64\n")
    refusals, (warning,) = check(project)
    commit = git(project, "rev-parse", "HEAD").strip()
    assert not refusals
    assert "uncommitted changes to 1 file(s) (audioclf/models.py)" in warning
    assert f"ClearML stores them with the task as a diff, which the agent applies on top of that commit" in warning
    assert f"not in commit {commit[:8]}" in warning


def test_uncommitted_changes_are_refused_when_clearml_does_not_store_the_diff(project):
    push(project)
    (project / "audioclf" / "models.py").write_text("WIDTH = 64\n")
    (refusal,), _ = check(project, diff_stored=False)
    assert "would not reach the agent" in refusal and "store_uncommitted_code_diff is off" in refusal


def test_untracked_files_are_named_they_do_not_reach_the_agent(project):
    push(project)
    (project / "audioclf" / "new_module.py").write_text("X = 1\n")
    (project / "outputs").mkdir()
    (project / "outputs" / "ignored.txt").write_text("ignored by .gitignore\n")
    refusals, (warning,) = check(project)
    assert not refusals
    assert warning == f"{WHAT}: untracked files do not reach the agent: audioclf/new_module.py (git add and commit " \
                      "those the run needs)"


def test_the_sdk_stores_the_diff_by_default():
    assert repository.diff_is_stored() is True  # clearml's sdk.conf: store_uncommitted_code_diff: true


def test_check_before_enqueue_raises_the_refusals_as_one_user_error(project):
    with pytest.raises(UserError, match="has no remote"):
        repository.check_before_enqueue(project, WHAT)


def test_training_with_queue_from_a_clone_without_remote_stops_before_any_task(tmp_path):
    """The whole path: a copy of this project in a repository with no remote, a server configured (a closed port:
    nothing may be sent to it), training.py --queue: one line, exit 2, before any task or session exists."""
    copy = tmp_path / "audioclf-project"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, copy / rel)
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "-m", "a clone with no remote")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(HOME=str(tmp_path / "home"), CLEARML_CACHE_DIR=str(tmp_path / "cache"), TQDM_DISABLE="1",
               CLEARML_API_HOST="http://127.0.0.1:9", CLEARML_FILES_HOST="http://127.0.0.1:9",
               CLEARML_WEB_HOST="http://127.0.0.1:9", CLEARML_API_ACCESS_KEY="key", CLEARML_API_SECRET_KEY="secret")
    done = subprocess.run([sys.executable, "training.py", "--dataset-id", "x", "--queue", "gpu", "--device", "cpu",
                           "--output-dir", str(tmp_path / "out")], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: training.py --queue gpu: the git repository {copy} has no remote"), line
    assert not (tmp_path / "cache" / "offline").exists() and not (tmp_path / "out" / "runs").exists()


# ----------------------------------------------------------------------------- no session for a run that did nothing
def _sessions(cache: Path) -> set[Path]:
    return set((cache / "offline").glob("offline-*"))


def test_failed_runs_that_did_no_work_leave_no_offline_session(clearml_cache_dir, tmp_path, capsys):
    """Three failed commands used to leave three offline sessions (which push_offline.py's glob then found)."""
    before = _sessions(clearml_cache_dir)
    out = ["--offline", "--output-dir", str(tmp_path / "out")]
    for main, argv in ((preprocessing.main, ["--dataset-id", "local-0123456789abcdef"]),
                       (training.main, ["--dataset-id", "local-0123456789abcdef", "--device", "cpu"]),
                       (training.main, ["--dataset-id", "no-such-id", "--device", "cpu"])):
        with pytest.raises(SystemExit) as exc:
            main(argv + out)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "Traceback" not in err and "error: no dataset" in err, err
    assert _sessions(clearml_cache_dir) == before
    assert not (tmp_path / "out" / "runs").exists()
