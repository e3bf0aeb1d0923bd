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

.PHONY: run test bench venv lock codesys help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

.tools/bin/uv:
	@echo "bootstrapping uv $(UV_VERSION) into .tools/ ..."
	@$(PYTHON) -m venv .tools && .tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock Makefile | $(UV)
	@$(UV) sync --frozen --extra dev --extra collector --extra pipeline --extra cloud --quiet
	@touch $@

venv: .venv/.synced ## Create or update .venv from uv.lock

run: venv ## Run the whole twin on the embedded local default: history, live line L1+L2, Dagster UI (twin up)
	.venv/bin/twin up $(ARGS)

# Azurite (Azure Storage emulator) for the cloud tests, pinned by package-lock.json; the tests start
# and stop it themselves on a free loopback port.
node_modules/.package-lock.json: package.json package-lock.json
	@npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

test: venv node_modules/.package-lock.json ## Run the whole test suite (slow and chaos tests included)
	.venv/bin/python -m pytest $(ARGS)

bench: venv ## Run the benchmarks under bench/
	.venv/bin/python bench/run_all.py $(ARGS)

codesys: venv ## Regenerate the Structured Text derived from plc/tagmap.toml
	.venv/bin/plc-sim export-codesys

lock: | $(UV) ## Re-resolve uv.lock after editing pyproject.toml
	$(UV) lock
