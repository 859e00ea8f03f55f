"""Test-wide set-up: ClearML offline sessions go to a private folder, never to ~/.clearml."""

import os
import tempfile

# Before anything imports clearml: it reads these when it loads its configuration.
_CLEARML_CACHE = tempfile.mkdtemp(prefix="audioclf-tests-clearml-")
os.environ["CLEARML_CACHE_DIR"] = _CLEARML_CACHE
os.environ.setdefault("CLEARML_LOG_LEVEL", "ERROR")
os.environ.setdefault("TQDM_DISABLE", "1")
# Every dataset a test reads is checked against its registered sha256, not only its sizes.
os.environ.setdefault("AUDIOCLF_VERIFY", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def clearml_cache_dir():
    from pathlib import Path

    return Path(_CLEARML_CACHE)
