# Two commands set everything up on a fresh machine with Python 3.11: `make demo` and `make test`.
# Installs are pinned by constraints.txt (the lock); `make lock` refreshes it from pyproject.toml,
# `make test-latest` runs the suite against the newest releases so drift is seen before users see it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
LOCK := constraints.txt
# No build isolation: the build backend (setuptools) comes from the lock too.
PIP_LOCKED = $(1)/python -m pip install --quiet --no-build-isolation -c $(LOCK)

.PHONY: demo test test-latest lint bench example lock dist wheelhouse clean services browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip and the build backend first (at the lock's versions, also when the lock moved them).
$(VENV)/.installed: pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade -c $(LOCK) pip setuptools
	$(call PIP_LOCKED,$(BIN)) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade -c $(LOCK) pip setuptools
	$(call PIP_LOCKED,$(BIN)) -e '.[test]'
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
	@echo "== the CLI is now .venv/bin/modelgit (or: . .venv/bin/activate; modelgit --help)"

test: $(VENV)/.installed-test services browser
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks scripts

# The same suite in a separate venv with the newest releases that pyproject's lower bounds allow.
LATEST := .venv-latest
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip setuptools
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager --no-build-isolation -e '.[test]'
	$(LATEST)/bin/python -m pip list --format=freeze > $(LATEST)/versions.txt
	$(LATEST)/bin/ruff check src tests benchmarks scripts
	$(LATEST)/bin/python -m pytest

# $(call apt_if_missing,CHECK,PACKAGE,TESTS): install Debian's PACKAGE with apt-get unless the shell
# command CHECK succeeds; where nothing can be installed (no root, no sudo) say so and let TESTS skip,
# except under CI (CI=true), where that is a failure.
define apt_if_missing
if $(1) >/dev/null 2>&1; then \
	  echo "$(2): installed"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
	  { $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y --no-install-recommends $(2); } || \
	  { echo "warning: could not install $(2); $(3) will be skipped"; [ -z "$$CI" ]; }; \
	fi
endef

# The services the tests run for real: PostgreSQL's server binaries (Debian's `postgresql`), which
# tests/pg_support.py starts as an unprivileged user in a temporary directory. Installed with apt-get
# only when no initdb is found; the tracking tests skip PostgreSQL (and say so) without them.
# `make test` runs it first; where nothing can be installed (no root, no sudo) it says so and the
# PostgreSQL tests skip, except under CI (CI=true), where that is a failure.
services:
	@$(call apt_if_missing,ls /usr/lib/postgresql/*/bin/initdb,postgresql,the PostgreSQL tests)

# The browser the dashboard test drives (tests/test_dashboard_browser.py): Debian's `chromium`, run by
# Playwright through its executable path, so `playwright install` (a browser download) is never
# needed. Installed with apt-get only when it is missing; the test skips (and says so) without it.
CHROMIUM ?= /usr/bin/chromium
browser:
	@$(call apt_if_missing,[ -x "$(CHROMIUM)" ],chromium,the browser test)

# Refresh the lock from pyproject.toml's extras (and the tools above), for every platform.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c $(LOCK) uv
	$(BIN)/uv pip compile pyproject.toml requirements/tools.in --extra test --extra examples \
	  --python-version 3.11 --universal --quiet -o $(LOCK)

# Every benchmark runs even when an earlier one misses a target; the exit status says if any did.
bench: $(VENV)/.installed-test
	status=0; for b in registry scale runtime_open proposals runtime eval reload_memory guard tracking learning api; do \
	  $(BIN)/python benchmarks/bench_$$b.py || status=1; done; \
	$(BIN)/python benchmarks/sim_decisions.py || status=1; exit $$status

example: $(VENV)/.installed-test
	$(BIN)/python scripts/build_example_registry.py

# The wheel and sdist of this version into dist/, built with the locked setuptools (no build
# isolation, nothing fetched): what a release uploads and what `modelgit init`'s workflows pin.
dist: $(VENV)/.installed
	rm -rf dist build src/*.egg-info  # an old egg-info's file list would leak into the build
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	$(BIN)/python -c "import setuptools.build_meta as b; b.build_sdist('dist')" > /dev/null
	rm -rf build
	@ls dist

# The wheels the built modelgit wheel needs, at the lock's versions, in .wheelhouse/ (fetched from
# the package index once): `pip install --no-index --find-links .wheelhouse --find-links dist
# modelgit` then installs offline. tests/test_wheel_install.py makes the same wheelhouse itself.
WHEELHOUSE := .wheelhouse
wheelhouse: dist
	$(BIN)/python -m pip download --quiet --only-binary=:all: -c $(LOCK) -d $(WHEELHOUSE) dist/*.whl
	rm -f $(WHEELHOUSE)/modelgit-*  # only the dependencies: modelgit itself comes from dist/

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache .ruff_cache
