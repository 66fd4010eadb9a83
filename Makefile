# The two commands of the README: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

NODE_STAMP := clients/typescript/node_modules/.installed
# The deployment template's linters (cfn-lint, checkov) in a venv of their own: checkov pins older boto3 and
# packaging than the server is tested with.
LINT_VENV ?= .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed
# Newer Blenders as Python modules (PyPI's bpy: 5.0 and 4.5 LTS), for the tests of what depends on Blender's
# version; the 4.5 one also fills pip's cache for the worker's own install of 4.5 on demand.
BPY_VENV ?= .venv-bpy
BPY_STAMP := $(BPY_VENV)/.installed
BPY45_VENV ?= .venv-bpy45

.PHONY: demo test check bench dist venv blender tools node lint-tools bpy clean

demo: $(STAMP) blender
	$(BIN)/homefarm demo

test: $(STAMP) blender tools node lint-tools bpy
	$(BIN)/python -m pytest -rP

# The fast tier: no Blender, no database engines, no display; under a minute on two cores.
check: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/python bench/claim_latency.py

# The onedir bundle, a tarball and a .deb (Linux); see installer/README.md for Windows and macOS.
dist: $(STAMP)
	$(BIN)/python -m pip install --quiet 'pyinstaller>=6.5'
	sh installer/build_linux.sh $(BIN)/python dist

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

blender:
	@sh installer/ensure_blender.sh

# What the suites start for real (Blender, PostgreSQL, MariaDB, nginx, Xvfb and a tray host, dbus-daemon): installed
# with apt where it can be, else the suites that need them skip and say why (installer/ensure_test_tools.sh).
tools:
	@sh installer/ensure_test_tools.sh

# The TypeScript client's packages and the OpenAPI linters, for its tests; without npm those tests say so and skip.
node: $(NODE_STAMP)

$(NODE_STAMP): clients/typescript/package-lock.json
	@if command -v npm >/dev/null; then \
		cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the TypeScript client's tests will be skipped (apt-get install nodejs npm)"; fi

# cfn-lint and checkov for installer/server/aws/homefarm.yaml (tests/server/test_aws_stack.py).
lint-tools: $(LINT_STAMP)

$(LINT_STAMP): installer/server/aws/lint-requirements.txt
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet -r installer/server/aws/lint-requirements.txt
	touch $@

# Blender 5.0 and 4.5 as modules (about 1 GB each; Python 3.11 only): tests/e2e/test_newer_blender.py.
bpy: $(BPY_STAMP)

$(BPY_STAMP): tests/blender/bpy-requirements.txt tests/blender/bpy45-requirements.txt
	@if $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then \
		$(PYTHON) -m venv $(BPY45_VENV) && $(BPY45_VENV)/bin/python -m pip install --quiet \
			-r tests/blender/bpy45-requirements.txt \
		&& $(PYTHON) -m venv $(BPY_VENV) && $(BPY_VENV)/bin/python -m pip install --quiet \
			-r tests/blender/bpy-requirements.txt \
		&& touch $@; \
	else echo "PyPI's bpy needs Python 3.11: the newer Blender's tests will be skipped"; fi

clean:
	rm -rf $(VENV) $(LINT_VENV) $(BPY_VENV) $(BPY45_VENV) build dist *.egg-info .pytest_cache tests/artifacts clients/typescript/node_modules clients/typescript/dist
