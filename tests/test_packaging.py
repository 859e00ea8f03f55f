"""`pip install .` installs the package with the pinned dependencies and its resources."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("setuptools")
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "audioclf"
    # A copy without outputs/ and .venv/, as a fresh clone has it.
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", "outputs", ".git", "__pycache__", "build",
                                                                "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(source)], check=True, capture_output=True, text=True)
    (built,) = out.glob("audioclf-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_the_package_and_its_resources(wheel):
    names = set(wheel.namelist())
    assert "audioclf/__init__.py" in names and "audioclf/inference.py" in names
    assert "audioclf/resources/UrbanSound8K.csv" in names


def test_the_wheel_requires_exactly_the_pins_of_requirements_txt(wheel):
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    text = wheel.read(metadata).decode()
    required = sorted(line.split(": ", 1)[1].replace(" ", "") for line in text.splitlines()
                      if line.startswith("Requires-Dist: "))
    pins = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    from packaging.requirements import Requirement

    assert sorted(str(Requirement(r)) for r in required) == sorted(str(Requirement(p)) for p in pins)
    assert "License-Expression: Apache-2.0" in text
