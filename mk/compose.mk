# Container stack: docker-compose.yml plus deploy/compose/$(MODE).yml when MODE is set.
# Every command goes through scripts/compose.sh, which insists on Compose v2 (`--wait`, `!reset`).
MODE ?=
SERVICE ?=
# Secrets for ${VAR} interpolation; created with fresh random keys by `make up`.
ENV_FILE ?= .env
# The key files compose mounts as `secrets:`, written from ENV_FILE by every `make up` (docker-compose.yml).
SECRETS_DIR ?= $(ENV_FILE).secrets
export SECRETS_DIR
ifneq ($(filter-out dev ha cloud,$(MODE)),)
$(error MODE=$(MODE) is not one of: dev ha cloud (or unset for the default self-hosted stack))
endif
COMPOSE_SH ?= scripts/compose.sh
# Further override files, applied last (e.g. a site-specific or test override).
COMPOSE_EXTRA ?=
# `make backup` writes BACKUP_DIR/<UTC timestamp>/; `make restore BACKUP=<that dir>` reads one back.
BACKUP_DIR ?= backups
BACKUP ?=
COMPOSE := $(COMPOSE_SH) --env-file $(ENV_FILE) -f docker-compose.yml $(if $(MODE),-f deploy/compose/$(MODE).yml) \
	$(foreach f,$(COMPOSE_EXTRA),-f $(f))

.PHONY: up down logs ps sync send doctor e2e backup restore

# Without Compose v2, stop before doing anything with exactly one line saying what to install.
ifneq ($(filter up down logs ps sync doctor e2e backup restore,$(MAKECMDGOALS)),)
COMPOSE_MISSING := $(shell $(COMPOSE_SH) version >/dev/null 2>&1 || $(COMPOSE_SH) version 2>&1 >/dev/null)
ifneq ($(COMPOSE_MISSING),)
$(error $(COMPOSE_MISSING))
endif
endif

# Compose only says "container X is unhealthy": show the last lines of each service that is not healthy,
# where a server that cannot boot prints its own reason (e.g. a bad signing key), then fail.
UP_FAILED = { for s in $$($(COMPOSE) ps -a --format '{{.Service}} {{.Health}}' | awk '$$2 != "healthy" {print $$1}'); do \
	  $(COMPOSE) logs --no-color --tail=5 $$s >&2; done; \
	  echo "make up: a service did not become healthy (its last log lines above); see make ps" >&2; exit 1; }

# `up --wait` treats a one-shot job as long-running (it fails once the job has exited, even with 0)
# and `compose wait` no longer sees an exited container: so wait for the long-running services, then
# run the sync job in the foreground; its exit code (and its one-line reason) decide.
up: ## Start the stack (MODE=dev|ha|cloud) and return once the app is synced
	@$(PYTHON) scripts/make_env.py $(ENV_FILE)
	$(COMPOSE) up -d --build --wait --wait-timeout 300 $$($(COMPOSE) config --services | grep -vxE 'sync|migrate|app-db-init') || $(UP_FAILED)
	@$(COMPOSE) run --rm --no-deps sync || { \
	  echo "make up: the sync job failed (reason above); fix it, then run: make sync" >&2; exit 1; }
	@echo "stack up and synced: app http://127.0.0.1:$${APP_PORT:-8000}  inngest http://127.0.0.1:8288  prometheus http://127.0.0.1:9090"

down: ## Stop the stack (VOLUMES=1 also deletes its data)
	$(COMPOSE) down --remove-orphans $(if $(VOLUMES),--volumes)

logs: ## Follow the logs (SERVICE=app|inngest|sync|... for one service)
	$(COMPOSE) logs -f --tail=200 $(SERVICE)

ps: ## Show the containers, their health and exit codes
	$(COMPOSE) ps -a

sync: ## Sync the app with the server again and verify it (run after every redeploy)
	$(COMPOSE) run --rm --no-deps sync

send: ## Send the test/integration event through the app's event API
	@ENV_FILE=$(ENV_FILE) $(PYTHON) scripts/send_event.py test/integration '{"message": "Hello"}'

doctor: ## Diagnose the running app's Inngest configuration
	$(COMPOSE) exec app python -m app doctor

e2e: ## End to end with real images (Docker + registry): up, send, run Completed "Hello", down -v
	ENV_FILE=$(ENV_FILE) $(PYTHON) scripts/e2e.py

backup: ## Back up the server's SQLite and the app's database into BACKUP_DIR/<timestamp> (stops the server briefly)
	@COMPOSE="$(COMPOSE)" MODE="$(MODE)" $(PYTHON) scripts/backup.py backup "$(BACKUP_DIR)"

# The restored server may hold an older function list: `make up` starts what restore stopped and re-syncs.
restore: ## Restore BACKUP=<dir> written by make backup (replaces the current state), then make up
	@COMPOSE="$(COMPOSE)" MODE="$(MODE)" $(PYTHON) scripts/backup.py restore "$(BACKUP)"
	@$(MAKE) --no-print-directory up
