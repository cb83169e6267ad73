# Two commands a user needs: `make run` (the main job: the live demonstration, `phobos demo`)
# and `make test` (the default test suite).
# Each creates .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: anything else pulling it in first fetches a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements.lock -e ".[dev]"
	$(BIN)/pip check
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/phobos demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/phobos bench env --write docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
