"""What an agent will run, checked before anything is enqueued: the repository and commit ClearML records.

A clearml-agent does not see this folder: it clones the repository the task records (the URL of this clone's
remote) at the recorded commit, and applies on top of it the uncommitted diff ClearML stored with the task
(``sdk.development.store_uncommitted_code_diff``, on by default; ``git diff HEAD``, so changes to tracked files
only). A stage run with ``--queue``, a pipeline's steps and a search's trials all run that way. So, before
anything is enqueued:

- refused (a UserError naming the fix): no git repository, no commit, no remote to clone from, a commit that is
  on no branch of the remote as far as this clone knows (the agent's checkout would fail), or uncommitted
  changes while the diff is not stored (the agent would silently run other code);
- said (warnings): uncommitted changes, which travel as a diff stored with the task; untracked files, which do
  not travel at all.

Nothing here calls the network: "on the remote" means on a remote-tracking branch (``git fetch`` refreshes them).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

SHOWN = 5  # file names listed in a message


@dataclass
class Repository:
    root: Path  # the project folder that was inspected
    git_root: Path | None = None  # None: not in a git repository
    commit: str | None = None  # HEAD; None: no commit yet
    remotes: list[str] = field(default_factory=list)
    pushed: bool = False  # HEAD is on a remote-tracking branch
    modified: list[str] = field(default_factory=list)  # tracked files that differ from HEAD (travel as a diff)
    untracked: list[str] = field(default_factory=list)  # neither tracked nor ignored (do not travel)

    @property
    def short(self) -> str:
        return (self.commit or "")[:8]


def _git(root: Path, *args: str) -> str | None:
    """git's output, or None when it fails (not a repository, no commit, no git)."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _names(text: str | None) -> list[str]:
    return [line for line in (text or "").splitlines() if line.strip()]


def inspect(root: Path) -> Repository:
    repo = Repository(root=Path(root))
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None:
        return repo
    repo.git_root = Path(top.strip())
    commit = _git(root, "rev-parse", "--verify", "HEAD")
    if commit is None:
        return repo
    repo.commit = commit.strip()
    repo.remotes = _names(_git(root, "remote"))
    repo.pushed = bool(_names(_git(root, "branch", "--remotes", "--contains", repo.commit)))
    repo.modified = _names(_git(root, "diff", "HEAD", "--name-only"))
    repo.untracked = _names(_git(root, "ls-files", "--others", "--exclude-standard"))
    return repo


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def problems(repo: Repository, diff_stored: bool, what: str) -> tuple[list[str], list[str]]:
    """(refusals, warnings) for running ``what`` (e.g. "training.py --queue gpu") on an agent from ``repo``."""
    here = "run it here instead, without the agent"
    if repo.git_root is None:
        return [f"{what}: an agent runs this project from a git repository it clones, and {repo.root} is in none: "
                "put the project in a git repository that the agents can clone (git init, git commit, git remote "
                f"add origin URL, git push), or {here}"], []
    if repo.commit is None:
        return [f"{what}: the git repository {repo.git_root} has no commit for an agent to check out: commit and "
                f"push the project first, or {here}"], []
    if not repo.remotes:
        return [f"{what}: the git repository {repo.git_root} has no remote, so an agent has nothing to clone: git "
                "remote add origin URL (a server the agents can reach) and git push -u origin HEAD"], []
    refusals, warnings = [], []
    if not repo.pushed:
        refusals.append(f"{what}: commit {repo.short} is on no branch of {', '.join(repo.remotes)} that this clone "
                        "knows of, so an agent cannot check it out: git push (or git fetch, if it was pushed from "
                        "elsewhere)")
    if repo.modified and not diff_stored:
        refusals.append(f"{what}: uncommitted changes to {_listed(repo.modified)} would not reach the agent "
                        "(sdk.development.store_uncommitted_code_diff is off in clearml.conf), which would run "
                        f"commit {repo.short} without them: commit and push them, or turn the setting on")
    elif repo.modified:
        warnings.append(f"{what}: uncommitted changes to {len(repo.modified)} file(s) ({_listed(repo.modified)}) are "
                        f"not in commit {repo.short}: ClearML stores them with the task as a diff, which the agent "
                        "applies on top of that commit (commit and push them to run exactly what git holds)")
    if repo.untracked:
        warnings.append(f"{what}: untracked files do not reach the agent: {_listed(repo.untracked)} (git add and "
                        "commit those the run needs)")
    return refusals, warnings


def diff_is_stored() -> bool:
    """Whether ClearML stores the uncommitted diff with a task (the SDK's default: yes)."""
    from clearml.config import config_obj

    return bool(config_obj.get("sdk.development.store_uncommitted_code_diff", True))


def check_before_enqueue(root: Path, what: str) -> list[str]:
    """Refuse (UserError) what an agent could not run as it is here; return the warnings to print."""
    refusals, warnings = problems(inspect(root), diff_is_stored(), what)
    if refusals:
        raise UserError("; ".join(refusals))
    return warnings
