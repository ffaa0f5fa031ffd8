#!/usr/bin/env bash
# What the official postgres image's entrypoint does, for the part compose.yaml uses: on an empty data
# directory, initdb with $POSTGRES_USER / $POSTGRES_PASSWORD, create $POSTGRES_DB, run the *.sql and *.sh of
# /docker-entrypoint-initdb.d once; then run the server as the postgres user, listening on every address.
set -euo pipefail

if [ "$(id -u)" = 0 ]; then  # the volume may be root's: make it the server's, then drop root
  mkdir -p "$PGDATA"
  chown -R postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
  # UTF8, as the official image's: without a locale initdb picks SQL_ASCII, whose text clients read as bytes
  initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") --auth-host=scram-sha-256 \
    --auth-local=trust --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  # set-up on the socket only: nothing can connect before it is done
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$database" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres -q -c "create database \"$database\""
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sql) psql -v ON_ERROR_STOP=1 --username="$user" --dbname="$database" -q -f "$script" ;;
      *.sh) bash "$script" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi

exec "$@"
