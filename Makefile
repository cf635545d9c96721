# `make demo` and `make test` set up .venv on first use (pinned CPU-capable torch, see
# constraints.txt) and then run the main job / the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.floodxr-installed

.PHONY: demo test lint install docs clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/floodxr demo --out floodxr-demo --overwrite

# the docs site: runs the example notebooks, renders the API reference; warnings are errors
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

lint: $(STAMP)
	$(BIN)/ruff check floodxr floodxr_command.py tests examples benchmarks
	$(BIN)/ruff format --check floodxr floodxr_command.py tests examples benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) floodxr-demo .pytest_cache .mypy_cache .ruff_cache docs/_build docs/generated docs/_generated docs/examples
