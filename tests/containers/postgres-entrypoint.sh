#!/bin/sh
# Initialise $PGDATA on first start like the official postgres image (superuser POSTGRES_USER with
# POSTGRES_PASSWORD, database POSTGRES_DB, password auth over TCP), then run the server in the
# foreground. Option arguments go to postgres (e.g. `-c listen_addresses=127.0.0.1`).
set -eu
# Like the official image: a command that is not a postgres option runs as is (e.g. psql in a one-shot).
case "${1:-}" in
  "" | -*) ;;
  *) exec "$@" ;;
esac
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\" OWNER \"$user\";" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "postgres-entrypoint: initialised $PGDATA (user $user, database $db)"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
