# Every target sets itself up: a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## start the local stack, run the demo, serve until Ctrl-C
	$(BIN)/tagsmith up

test: $(STAMP)  ## the whole test suite (what CI runs)
	$(BIN)/pytest -q

bench: $(STAMP)  ## accuracy and throughput figures for docs/benchmarks.md
	$(BIN)/python -m benchmarks.run

lint: $(STAMP)
	$(BIN)/ruff check shared functions tests
	$(BIN)/ruff format --check shared functions tests

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache
