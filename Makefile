# Hatthasilpa Integrity — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# `make demo` materializes into this persistent Dagster instance and `make ui` serves it.
DAGSTER_HOME_DIR := $(CURDIR)/.dagster_home

.PHONY: demo ui test install docs bench bench-checks soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME_DIR)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME_DIR)
	cp dagster.yaml $@

demo: $(STAMP) $(DAGSTER_HOME_DIR)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) $(BIN)/hatthasilpa demo --reset --summary

ui: $(STAMP) $(DAGSTER_HOME_DIR)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) $(BIN)/dagster dev

# The suite runs on two workers (pytest-xdist): most of its time is spent waiting on PostgreSQL
# and on the processes it starts. `make test PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --durations=15

docs: $(STAMP)
	$(BIN)/python -m checks.statedocs

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

bench-checks: $(STAMP)
	$(BIN)/python benchmarks/checks_bench.py

# 10 minutes of operators, a manager, two relays and the monitor on PostgreSQL, one of them
# SIGKILLed every ~20 s; exits 1 when an end condition fails (docs/reliability.md)
soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py

clean:
	rm -rf $(VENV) var .pytest_cache .dagster_home
