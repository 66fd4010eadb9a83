# The two commands of the README: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench dist venv blender clean

demo: $(STAMP) blender
	$(BIN)/homefarm demo

test: $(STAMP) blender
	$(BIN)/python -m pytest -rP

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

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache tests/artifacts
