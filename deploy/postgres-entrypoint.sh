#!/bin/sh
# The upstream postgres image's first start, for deploy/postgres.Dockerfile: a cluster in $PGDATA
# whose superuser POSTGRES_USER has POSTGRES_PASSWORD, the database POSTGRES_DB, then the init
# scripts; later starts find the cluster and only serve it. POSTGRES_LISTEN: the addresses to
# listen on (the host's loopback when the stack runs on the host network).
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl --wait --options="-c listen_addresses=''" start >/dev/null
  export PGUSER="$POSTGRES_USER" PGHOST=/var/run/postgresql
  psql -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
  for script in /docker-entrypoint-initdb.d/*.sql; do
    if [ -e "$script" ]; then psql -v ON_ERROR_STOP=1 -d "$POSTGRES_DB" -f "$script" >/dev/null; fi
  done
  pg_ctl --wait --mode=fast stop >/dev/null
fi
exec postgres -c listen_addresses="${POSTGRES_LISTEN:-*}"
