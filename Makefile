# One entry point for the stack. `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: help venv test lint run inngest-bin

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt services/app/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e services/app
	touch $@

venv: $(VENV)/.installed ## Create the virtualenv with the app and the test tools

test: venv checkov-venv ## Run every test (lint, unit, contract, end to end, containers, manifests)
	$(MAKE) --no-print-directory lint
	@$(PYTHON) scripts/inngest_bin.py >/dev/null || echo "make test: no real Inngest server; its tests will skip (fail under REQUIRE_ALL=1)" >&2
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv ## ruff + mypy
	$(VENV)/bin/ruff check services tests benchmarks
	$(VENV)/bin/ruff format --check services tests benchmarks
	$(VENV)/bin/mypy

inngest-bin: ## Print the path of the real Inngest server binary at the pinned version (built once with Go)
	@$(PYTHON) scripts/inngest_bin.py

run: venv ## Run the app locally in dev mode against a dev server on :8288
	INNGEST_MODE=dev $(PY) -m app

-include mk/*.mk
