"""Which ClearML server the integration suite writes to: never a configured one without the explicit opt-in."""

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def clearml_env():
    spec = importlib.util.spec_from_file_location("clearml_env_under_test", HERE / "integration" / "clearml_env.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


CONFIGURED = {"CLEARML_API_HOST": "https://api.example.invalid", "CLEARML_API_ACCESS_KEY": "k",
              "CLEARML_API_SECRET_KEY": "s"}


def launcher(tmp_path: Path) -> Path:
    folder = tmp_path / "server"
    folder.mkdir()
    for name in ("start.sh", "stop.sh"):
        (folder / name).write_text("#!/bin/sh\n")
    return folder


def test_configured_credentials_alone_are_not_used(clearml_env):
    kind, why = clearml_env.server_source(CONFIGURED)
    assert kind == "none"
    assert "AUDIOCLF_IT_SERVER=1" in why


def test_configured_server_with_the_opt_in(clearml_env):
    assert clearml_env.server_source({**CONFIGURED, "AUDIOCLF_IT_SERVER": "1"}) == ("configured", None)


def test_opt_in_without_credentials_names_what_is_missing(clearml_env):
    kind, why = clearml_env.server_source({"AUDIOCLF_IT_SERVER": "1", "CLEARML_API_HOST": "http://h"})
    assert kind == "none"
    assert "CLEARML_API_ACCESS_KEY" in why and "CLEARML_API_SECRET_KEY" in why


def test_a_launcher_comes_before_configured_credentials_without_opt_in(clearml_env, tmp_path):
    folder = launcher(tmp_path)
    assert clearml_env.server_source({**CONFIGURED, "AUDIOCLF_TEST_SERVER": str(folder)}) == ("launcher", str(folder))


def test_a_launcher_without_its_scripts_is_refused(clearml_env, tmp_path):
    kind, why = clearml_env.server_source({"AUDIOCLF_TEST_SERVER": str(tmp_path)})
    assert kind == "none" and "start.sh" in why


def test_nothing_configured_says_how_to_start_a_server(clearml_env):
    kind, why = clearml_env.server_source({})
    assert kind == "none"
    assert "docker compose" in why and "AUDIOCLF_TEST_SERVER" in why
