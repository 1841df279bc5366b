# One command per job; CONTRIBUTING.md lists them. `make test` is the README's test command.
#
# Everything runs in a virtual environment that these rules create (.venv, git-ignored);
# `make test VENV=/some/venv` uses another one, as .ci/run does with a fresh one per run.
BOOTSTRAP_PYTHON ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: install install-test lint typecheck test pytest bench run

$(PYTHON):
	$(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip

install: $(PYTHON)
	$(PYTHON) -m pip install -q -e .

install-test: $(PYTHON)
	$(PYTHON) -m pip install -q -e ".[test]"

lint:
	$(PYTHON) -m ruff check jupyter_ray runtime tests benchmarks examples
	$(PYTHON) -m ruff format --check jupyter_ray runtime tests benchmarks examples

# mypy cannot follow the package-dir mapping of runtime/ to jupyter_ray.runtime, so it
# checks a copy of the installed layout.
typecheck:
	rm -rf build/typecheck && mkdir -p build/typecheck
	cp -r jupyter_ray build/typecheck/jupyter_ray
	cp -r runtime build/typecheck/jupyter_ray/runtime
	cd build/typecheck && $(abspath $(PYTHON)) -m mypy --config-file ../../pyproject.toml jupyter_ray

pytest:
	$(PYTHON) -m pytest

test: install-test lint typecheck pytest

bench: install
	$(PYTHON) benchmarks/run.py
	$(PYTHON) benchmarks/cluster.py
	$(PYTHON) benchmarks/feed.py

run: install
	$(PYTHON) examples/getting_started.py
