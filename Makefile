# `make demo` and `make test` set up .venv on first use (pinned CPU-capable torch, see
# constraints.txt) and then run the main job / the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.floodxr-installed

.PHONY: demo test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/floodxr demo --out floodxr-demo --overwrite

lint: $(STAMP)
	$(BIN)/ruff check floodxr tests examples benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) floodxr-demo .pytest_cache .mypy_cache .ruff_cache
