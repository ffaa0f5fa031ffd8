#!/usr/bin/env bash
# Start the machine's PostgreSQL cluster if it is down and wait until it accepts connections.
set -euo pipefail
host=${PGHOST:-127.0.0.1}
port=${PGPORT:-5432}
if ! pg_isready -q -h "$host" -p "$port"; then
  version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf "%f\n" | sort -n | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 30); do
  pg_isready -q -h "$host" -p "$port" && exit 0
  sleep 1
done
echo "PostgreSQL on $host:$port is not accepting connections" >&2
exit 1
