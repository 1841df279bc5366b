# One command per job; CONTRIBUTING.md lists them. `make test` is the README's test command.
#
# Everything runs in a virtual environment that these rules create (.venv, git-ignored);
# `make test VENV=/some/venv` uses another one, as .ci/run does with a fresh one per run.
BOOTSTRAP_PYTHON ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: install install-test lint typecheck test pytest bench run example \
	system-deps node-deps labextension lint-js test-js lab

$(PYTHON):
	$(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip

NODE_CHECK := const [a, b] = process.versions.node.split(".").map(Number); if (a < 20 || (a === 20 && b < 19)) { console.error("Node.js >= 20.19 is needed to build the Lab extension, found " + process.version); process.exit(1); }

# Debian packages the browser tests need (Chromium, fonts for its screenshots), and a
# check that Node.js can build the Lab extension. Run as root on a fresh machine.
system-deps:
	@command -v chromium >/dev/null && fc-list | grep -q . || { \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
			--no-install-recommends chromium fonts-dejavu-core; }
	@node -e '$(NODE_CHECK)'

# The Lab extension's npm modules, reinstalled when package-lock.json changes.
labextension/node_modules/.package-lock.json: labextension/package-lock.json
	cd labextension && npm ci --no-audit --no-fund
	touch $@

node-deps: labextension/node_modules/.package-lock.json

# Rebuild the Lab extension into jupyter_ray/labextension (pip install builds it too);
# `make install` then copies it where JupyterLab looks.
labextension: node-deps $(PYTHON)
	cd labextension && PATH="$(abspath $(VENV))/bin:$$PATH" npm run build

install: $(PYTHON)
	$(PYTHON) -m pip install -q -e .

install-test: $(PYTHON) system-deps node-deps
	$(PYTHON) -m pip install -q -e ".[test,ray]"

lint: lint-js
	$(PYTHON) -m ruff check jupyter_ray runtime tests benchmarks examples setup.py
	$(PYTHON) -m ruff format --check jupyter_ray runtime tests benchmarks examples setup.py

lint-js: node-deps
	cd labextension && npm run lint && npm run typecheck

test-js: node-deps
	cd labextension && npm test

# mypy cannot follow the package-dir mapping of runtime/ to jupyter_ray.runtime, so it
# checks a copy of the installed layout.
typecheck:
	rm -rf build/typecheck && mkdir -p build/typecheck
	cp -r jupyter_ray build/typecheck/jupyter_ray
	cp -r runtime build/typecheck/jupyter_ray/runtime
	cd build/typecheck && $(abspath $(PYTHON)) -m mypy --config-file ../../pyproject.toml jupyter_ray

pytest:
	$(PYTHON) -m pytest

test: install-test lint typecheck test-js pytest

bench: install
	$(PYTHON) benchmarks/run.py
	$(PYTHON) benchmarks/cluster.py
	$(PYTHON) benchmarks/feed.py

# The main job: JupyterLab on 127.0.0.1 with the sidebar, a runtime the server owns and
# the getting-started notebook open; Jupyter prints the URL with its token. Root needs
# --allow-root.
run: lab

# The getting-started example as a plain script, on the embedded runtime (no Jupyter).
example: install
	$(PYTHON) examples/getting_started.py

LAB_NOTEBOOK ?= notebooks/00_getting_started.ipynb
lab: install
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_NOTEBOOK)
