# The two set-up commands (README): `make demo` and `make test`.
# Each creates the virtual environment in .venv when it is missing or requirements.txt changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade-strategy only-if-needed -r requirements.txt
	touch $@

install: $(VENV)/.installed

demo: install  ## the whole pipeline, offline, on the built-in synthetic data
	$(PY) pipeline.py --offline

test: install  ## the test suite
	$(PY) -m pytest -q tests

clean:  ## remove generated datasets and run folders (not the environment)
	rm -rf outputs
