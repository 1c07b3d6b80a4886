#!/bin/sh
# Hash the password from the environment (never written to disk), then serve. A missing password stops
# the proxy instead of serving the UI open.
set -eu
: "${INNGEST_UI_PASSWORD:?INNGEST_UI_PASSWORD is empty: run make up to create .env}"
INNGEST_UI_PASSWORD_HASH=$(caddy hash-password --plaintext "$INNGEST_UI_PASSWORD")
export INNGEST_UI_PASSWORD_HASH
exec caddy run --config "${CADDYFILE:-/etc/caddy/Caddyfile}" --adapter caddyfile
