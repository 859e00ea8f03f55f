# The two set-up commands (README, "Set-up: two commands"): `make demo` and `make test`.
# Each creates the virtual environment in .venv when it is missing or a requirements file changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The demo's training settings: a narrower CNN and fewer epochs than training.py's defaults, so that the
# whole pipeline runs in minutes on a laptop CPU (README: "Set-up").
DEMO_TRAINING ?= --width 16 --epochs 20
# CPU=1: PyTorch's CPU-only wheels from its own index instead of PyPI's CUDA build (docs/install.md).
CPU ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install install-dev demo test test-unit test-integration clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
ifeq ($(CPU),1)
	$(PY) -m pip install --index-url $(TORCH_CPU_INDEX) $$(grep -E '^torch(vision|audio)?[<>=]' requirements.txt)
endif
	$(PY) -m pip install --upgrade-strategy only-if-needed -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt requirements-serving.txt
	$(PY) -m pip install --upgrade-strategy only-if-needed -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install  ## the whole pipeline, offline, on the built-in synthetic data
	$(PY) pipeline.py --offline $(DEMO_TRAINING)

test: install-dev  ## the test suite: unit tests, then the integration tests against a ClearML server
	$(PY) -m pytest -q tests

test-unit: install-dev
	$(PY) -m pytest -q tests --ignore=tests/integration

test-integration: install-dev
	$(PY) -m pytest -q tests/integration

clean:  ## remove generated datasets, run folders and work folders; keeps outputs/downloads and the environment
	if [ -d outputs ]; then find outputs -mindepth 1 -maxdepth 1 ! -name downloads -exec rm -rf {} +; fi
