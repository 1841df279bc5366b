# One command per job; CONTRIBUTING.md lists them. `make test` is the README's test command.
PYTHON ?= python3

.PHONY: install install-test lint typecheck test pytest bench run

install:
	$(PYTHON) -m pip install -q -e .

install-test:
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
	cd build/typecheck && $(PYTHON) -m mypy --config-file ../../pyproject.toml jupyter_ray

pytest:
	$(PYTHON) -m pytest

test: install-test lint typecheck pytest

bench: install
	$(PYTHON) benchmarks/run.py
	$(PYTHON) benchmarks/cluster.py
	$(PYTHON) benchmarks/feed.py

run: install
	$(PYTHON) examples/getting_started.py
