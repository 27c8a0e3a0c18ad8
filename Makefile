# Two commands do all set-up on a fresh machine (see README):
#   make run    create .venv, install feedworker, run the worker on config/ (SQLite state, feeds/)
#   make test   create .venv, install feedworker with its test extras, lint, type-check, run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run once test bench bench-cluster bench-render venv

venv:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip

run: venv
	$(BIN)/python -m pip install -q -e .
	$(BIN)/feedworker run

once: venv
	$(BIN)/python -m pip install -q -e .
	$(BIN)/feedworker run --once

# The suite runs twice: on SQLite, then on a throwaway PostgreSQL (.ci/postgres.sh; exit 3 when
# PostgreSQL is not installed: said aloud, and an error when FEEDWORKER_REQUIRE_POSTGRES is set).
# The browser tests need headless Chromium (chromium-headless-shell): without it they are
# skipped, said aloud, and fail when FEEDWORKER_REQUIRE_BROWSER is set (.ci/run sets both).
test: venv
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest
	@command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || \
	    echo "make test: no headless Chromium: the browser tests were SKIPPED (apt-get install chromium-headless-shell)"
	@status=0; .ci/postgres.sh $(BIN)/python -m pytest -q || status=$$?; \
	if [ $$status -eq 3 ] && [ -z "$$FEEDWORKER_REQUIRE_POSTGRES" ]; then \
	    echo "make test: PostgreSQL is not installed: the PostgreSQL pass was SKIPPED (apt-get install postgresql)"; \
	elif [ $$status -ne 0 ]; then exit $$status; fi

bench: venv
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python bench/extract.py

bench-render: venv
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python bench/render.py

bench-cluster: venv
	$(BIN)/python -m pip install -q -e '.[test]'
	.ci/postgres.sh $(BIN)/python bench/cluster.py
