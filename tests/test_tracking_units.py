"""audioclf.tracking.decide_offline / clearml_configured: when a stage runs offline. No ClearML task is started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audioclf import tracking

REPO_ROOT = Path(__file__).resolve().parents[1]
CREDENTIAL_VARS = ("CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY", "CLEARML_AUTH_TOKEN",
                   "TRAINS_API_ACCESS_KEY", "TRAINS_API_SECRET_KEY", "TRAINS_AUTH_TOKEN")

# Runs in a fresh interpreter, so the configuration clearml loads at import comes from the env given.
PROBE = """
import json, os
from audioclf import tracking
results = {"none": [tracking.clearml_configured(), *tracking.decide_offline(False)]}
os.environ["CLEARML_API_ACCESS_KEY"] = "only-the-access-key"
results["access_only"] = [tracking.clearml_configured(), *tracking.decide_offline(False)]
print(json.dumps(results))
"""


# --- helpers -------------------------------------------------------------------------------------

def clean_env(monkeypatch, tmp_path: Path) -> None:
    """No credentials in the environment, an empty config file, a HOME without clearml.conf."""
    for name in (*CREDENTIAL_VARS, "CLEARML_OFFLINE_MODE"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    monkeypatch.setenv("CLEARML_CONFIG_FILE", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path))


def run_probe(tmp_path: Path, config_text: str) -> dict:
    """Run PROBE in a subprocess with no credentials in the env and the given config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    config = tmp_path / "clearml.conf"
    config.write_text(config_text)
    home = tmp_path / "home"
    home.mkdir()
    env.update(CLEARML_CONFIG_FILE=str(config), HOME=str(home), CLEARML_CACHE_DIR=str(tmp_path / "cache"),
               CLEARML_LOG_LEVEL="ERROR", PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- in-process: flag and environment ------------------------------------------------------------

def test_offline_flag_wins_even_with_credentials(monkeypatch, tmp_path):
    clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "key")
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "secret")
    offline, why = tracking.decide_offline(True)
    assert offline is True
    assert "--offline" in why


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", " on "])
def test_clearml_offline_mode_env_means_offline(monkeypatch, tmp_path, value):
    clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "key")
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "secret")
    monkeypatch.setenv("CLEARML_OFFLINE_MODE", value)
    offline, why = tracking.decide_offline(False)
    assert offline is True
    assert "CLEARML_OFFLINE_MODE" in why


@pytest.mark.parametrize("value", ["0", "", "false"])
def test_clearml_offline_mode_off_values_do_not_force_offline(monkeypatch, tmp_path, value):
    clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "key")
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "secret")
    monkeypatch.setenv("CLEARML_OFFLINE_MODE", value)
    assert tracking.decide_offline(False) == (False, "ClearML credentials are configured")


def test_env_credentials_mean_online(monkeypatch, tmp_path):
    clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "key")
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "secret")
    assert tracking.clearml_configured() is True
    offline, why = tracking.decide_offline(False)
    assert offline is False
    assert "credentials are configured" in why


def test_auth_token_means_online(monkeypatch, tmp_path):
    clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CLEARML_AUTH_TOKEN", "token")
    assert tracking.clearml_configured() is True
    assert tracking.decide_offline(False)[0] is False


# --- subprocess: what clearml reads from its config file -----------------------------------------

def test_no_credentials_anywhere_means_offline(tmp_path):
    results = run_probe(tmp_path, config_text="")

    configured, offline, why = results["none"]
    assert configured is False
    assert offline is True
    assert "credentials" in why
    # One key without the other is not a credential either.
    assert results["access_only"][:2] == [False, True]


def test_credentials_in_the_config_file_mean_online(tmp_path):
    config = 'api {\n  credentials {\n    access_key: "AKEY"\n    secret_key: "SKEY"\n  }\n}\n'
    results = run_probe(tmp_path, config_text=config)

    assert results["none"] == [True, False, "ClearML credentials are configured"]
