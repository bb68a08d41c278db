# Two commands set everything up on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench example clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

# The main job on the bundled example registry: validate it at HEAD (from git objects), show it,
# preview a promotion as a pull request would carry it, and read a model's history.
demo: $(VENV)/.installed
	@echo "== modelgit validate   (registry at HEAD: strict YAML, schema, rules, sha256, ONNX signatures)"
	$(BIN)/modelgit validate
	@echo "== modelgit show"
	$(BIN)/modelgit show
	@echo "== modelgit show calling_score"
	$(BIN)/modelgit show calling_score
	@echo "== modelgit promote calling_score v2.0-real --dry-run   (the diff a pull request would carry)"
	$(BIN)/modelgit promote calling_score v2.0-real --dry-run
	@echo "== modelgit history calling_score"
	$(BIN)/modelgit history calling_score -n 5

test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks scripts

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_registry.py
	$(BIN)/python benchmarks/bench_proposals.py
	$(BIN)/python benchmarks/bench_runtime.py
	$(BIN)/python benchmarks/bench_eval.py

example: $(VENV)/.installed-test
	$(BIN)/python scripts/build_example_registry.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
