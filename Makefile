# Two commands set everything up on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench example clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	@echo "== modelgit validate (the bundled example registry, at HEAD)"
	$(BIN)/modelgit validate --worktree
	@echo "== modelgit show"
	$(BIN)/modelgit show --ref HEAD
	@echo "== modelgit show calling_score"
	$(BIN)/modelgit show calling_score
	@echo "== modelgit diff HEAD HEAD (semantic diff)"
	$(BIN)/modelgit history calling_score -n 3

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_registry.py

example: $(STAMP)
	$(BIN)/python scripts/build_example_registry.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
