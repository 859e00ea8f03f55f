"""Push offline results to a ClearML server: local datasets (lineage kept) and offline task sessions.

    python push_offline.py                                  # every dataset in ./outputs/datasets
    python push_offline.py --sessions ~/.clearml/cache/offline/offline-*/
    python push_offline.py --datasets local-1a2b... --output-dir /data/outputs

Needs a configured server (clearml-init or CLEARML_API_* variables). Datasets
are created parents first, each child with its parent's new id, so the
features dataset again uploads only the spectrograms. The local -> ClearML id
mapping is written to <store>/clearml_ids.json; a rerun skips what is there.
A training session's model file is registered as its task's output model (named,
labelled and tagged as training.py does online); its id is printed for
serve.py --model-id and predict.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audioclf import cli, sync, tracking
from audioclf.store import LocalStore


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=tracking.default_output_dir(),
                        help="the folder whose datasets/ holds the local store (default: %(default)s)")
    parser.add_argument("--datasets", nargs="*", default=None,
                        help="local dataset ids to push, with their ancestors, comma- or space-separated "
                             "(default: all)")
    parser.add_argument("--sessions", nargs="*", type=Path, default=[],
                        help="offline session folders or zips to import as tasks; those of failed or stopped "
                             "runs are left out (default: none)")
    parser.add_argument("--include-failed", action="store_true",
                        help="also import the sessions of runs that failed or were stopped (they would show as "
                             "completed tasks: an offline session records no status)")
    parser.add_argument("--no-datasets", action="store_true", help="import sessions only")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    missing = [str(s) for s in args.sessions if not s.exists()]
    if missing:
        parser.error(f"--sessions: no such session folder or zip: {', '.join(missing)}")
    args.datasets = cli.name_list(args.datasets) if args.datasets is not None else None
    offline, why = tracking.decide_offline(False)
    if offline:
        # Pushing in offline mode would only write new offline sessions and record their offline-* ids.
        if tracking.clearml_configured():
            tracking.fail(f"cannot push while ClearML is offline ({why}): unset CLEARML_OFFLINE_MODE and rerun")
        tracking.fail("no ClearML server is configured: run clearml-init or set CLEARML_API_HOST, "
                      "CLEARML_API_ACCESS_KEY and CLEARML_API_SECRET_KEY first")
    result = {"datasets": {}, "sessions": {}, "models": {}}
    if not args.no_datasets:
        result["datasets"] = sync.push_datasets(LocalStore(args.output_dir / "datasets"), args.datasets)
    sessions = args.sessions if args.include_failed else [s for s in args.sessions if not _failed(s)]
    if sessions:
        result["sessions"] = sync.import_sessions(sessions)
        # A training session's model file becomes its task's output model: serve.py and predict.py take its id.
        result["models"] = {session: models for session, task_id in result["sessions"].items()
                            if (models := sync.register_models(Path(session), task_id))}
    return result


def _failed(session: Path) -> bool:
    """True (and says so) for the session of a run that failed or was stopped (tracking.SESSION_STATUS_FILE; a
    zip is judged by the folder it was made from)."""
    folder = session.with_suffix("") if session.suffix == ".zip" else session
    marker = folder / tracking.SESSION_STATUS_FILE
    if not marker.is_file():
        return False
    status = json.loads(marker.read_text())
    print(f"skipping {session}: its run {status.get('status')} ({status.get('reason') or 'no reason recorded'}); "
          "pass --include-failed to import it anyway", file=sys.stderr)
    return True


if __name__ == "__main__":
    main(sys.argv[1:])
