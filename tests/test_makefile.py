"""The Makefile's own targets, run for real with make in a copy of the project's Makefile."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def test_clean_keeps_the_downloads_cache(tmp_path):
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    archive = tmp_path / "outputs" / "downloads" / "UrbanSound8K.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"a cached 6 GB archive")
    for made in ("runs/training-1/model.pt", "datasets/abc/dataset.json", "staging/synthetic/x.wav"):
        (tmp_path / "outputs" / made).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "outputs" / made).write_text("x")
    subprocess.run(["make", "clean"], cwd=tmp_path, check=True, capture_output=True)
    assert archive.read_bytes() == b"a cached 6 GB archive"
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["downloads"]


def test_clean_without_outputs_is_fine(tmp_path):
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    subprocess.run(["make", "clean"], cwd=tmp_path, check=True, capture_output=True)


def test_cpu_install_takes_the_pinned_torch_packages_from_the_cpu_index(tmp_path):
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copy(REPO / "requirements.txt", tmp_path / "requirements.txt")
    plan = subprocess.run(["make", "-n", "install", "CPU=1", "VENV=v"], cwd=tmp_path, check=True,
                          capture_output=True, text=True).stdout.splitlines()
    cpu = [line for line in plan if "--index-url" in line]
    assert len(cpu) == 1 and "https://download.pytorch.org/whl/cpu" in cpu[0]
    assert plan.index(cpu[0]) < next(i for i, line in enumerate(plan) if "-r requirements.txt" in line)
    # What the shell makes of the line: exactly the three torch pins of requirements.txt.
    packages = subprocess.run(["bash", "-c", "echo " + cpu[0].split("whl/cpu", 1)[1]], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.split()
    pins = [line for line in (REPO / "requirements.txt").read_text().splitlines() if line.startswith("torch")]
    assert packages == pins and len(pins) == 3


def test_the_default_install_does_not_use_the_cpu_index(tmp_path):
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copy(REPO / "requirements.txt", tmp_path / "requirements.txt")
    plan = subprocess.run(["make", "-n", "install", "VENV=v"], cwd=tmp_path, check=True, capture_output=True,
                          text=True).stdout
    assert "--index-url" not in plan
