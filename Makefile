# Two commands do all set-up on a fresh machine (see README):
#   make run    create .venv, install feedworker, run the worker on config/ (SQLite state, feeds/)
#   make test   create .venv, install feedworker with its test extras, lint, run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run once test bench venv

venv:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip

run: venv
	$(BIN)/python -m pip install -q -e .
	$(BIN)/feedworker run

once: venv
	$(BIN)/python -m pip install -q -e .
	$(BIN)/feedworker run --once

test: venv
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python bench/extract.py
