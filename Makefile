# The two commands of the README. Both bootstrap what they need: uv (into .tools/ when it is
# not on PATH) and the .venv from uv.lock. Nothing else needs to be installed first.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
TWIN_HOME ?= $(CURDIR)/.twin
export TWIN_HOME
# Pass extra arguments with ARGS=..., e.g. make test ARGS="-k packml".
ARGS ?=
# make test runs the suite in this many pytest-xdist workers, a test file per worker at a time (module
# fixtures stay whole), the longest files first (tests/support/file_order.py); TEST_WORKERS=0 runs it in
# one process.
TEST_WORKERS ?= 2

.PHONY: run test lint fmt bench venv venv-run lock codesys help chromium

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

.tools/bin/uv:
	@echo "bootstrapping uv $(UV_VERSION) into .tools/ ..."
	@$(PYTHON) -m venv .tools && .tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Two environments in one .venv, both from uv.lock. `make run` needs only the local twin (the pipeline
# extra: no pyspark, no Azure SDKs); `--inexact` keeps whatever `make test` added. `make test` and
# `make lint` need every extra (cloud, spark) and the dev group (pytest, ruff, mypy, deptry, dg).
.venv/.synced-run: pyproject.toml uv.lock Makefile | $(UV)
	@$(UV) sync --frozen --inexact --no-default-groups --extra pipeline --extra dashboard --quiet
	@touch $@

.venv/.synced: pyproject.toml uv.lock Makefile | $(UV)
	@$(UV) sync --frozen --all-extras --group dev --quiet
	@touch $@ .venv/.synced-run

venv-run: .venv/.synced-run ## Create or update .venv with what the local twin needs (make run)

venv: .venv/.synced ## Create or update .venv with everything (tests, lint, cloud and spark extras)

run: venv-run ## Run the whole twin on the embedded local default: history, live line L1+L2, Dagster UI (twin up)
	.venv/bin/twin up $(ARGS)

lint: venv ## Lint, format check, types, declared dependencies, import rules and the Dagster definitions
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/deptry .
	.venv/bin/lint-imports
	.venv/bin/dg check defs

fmt: venv ## Format and fix what ruff can fix by itself
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# Azurite (Azure Storage emulator) for the cloud tests and node-opcua (an independent OPC UA stack) for the
# collector tests, pinned by package-lock.json; the tests start them
# and stop them on free loopback ports.
node_modules/.package-lock.json: package.json package-lock.json
	@npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

# The browser tests (tests/dashboard/test_browser.py) and the first-render bench drive Debian's chromium
# through Playwright (tests/support/browser.py): Playwright's own browser download cannot reach its host
# here, and the distribution's package is maintained. CI is a fresh Debian 12 machine running as root, so
# `make test` installs it there when it is missing (sudo elsewhere); an installed chromium is left as is.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium: ## Install Debian's chromium when it is missing (the browser tests drive it)
	@command -v chromium >/dev/null || ($(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium)

test: venv lint node_modules/.package-lock.json chromium ## Lint, then run the whole test suite (slow and chaos tests included)
	.venv/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 $(ARGS)

bench: venv ## Run the benchmarks under bench/
	.venv/bin/python bench/run_all.py $(ARGS)

soak-speed: venv ## Soak of an accelerated live line: 60x over two plant days (48 wall min), gold per shift (bench/soak_speed.py)
	.venv/bin/python bench/soak_speed.py $(ARGS)

codesys: venv ## Regenerate the Structured Text derived from plc/tagmap.toml
	.venv/bin/plc-sim export-codesys

lock: | $(UV) ## Re-resolve uv.lock after editing pyproject.toml
	$(UV) lock
