# Hatthasilpa Integrity — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install docs bench bench-checks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hatthasilpa demo --reset --summary

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

docs: $(STAMP)
	$(BIN)/python -m checks.statedocs

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

bench-checks: $(STAMP)
	$(BIN)/python benchmarks/checks_bench.py

clean:
	rm -rf $(VENV) var .pytest_cache
