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

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

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
