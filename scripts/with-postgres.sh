#!/usr/bin/env bash
# Run a command with TEST_DATABASE_URL pointing at PostgreSQL: the one already given, or a
# throwaway server started here on a free port with its data in a temporary directory
# (removed afterwards). Tests create and drop their own databases on it.
set -euo pipefail
if [ -n "${TEST_DATABASE_URL:-}" ]; then exec "$@"; fi

bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
data=$(mktemp -d /tmp/callcenter-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_owner=()
if [ "$(id -u)" -eq 0 ]; then   # PostgreSQL refuses to run as root
  chown postgres "$data"
  as_owner=(runuser -u postgres --)
fi
"${as_owner[@]}" "$bindir/initdb" -D "$data/db" -U postgres --auth=trust -E UTF8 >/dev/null
"${as_owner[@]}" "$bindir/pg_ctl" -D "$data/db" -l "$data/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c max_connections=300" start >/dev/null
cleanup() { "${as_owner[@]}" "$bindir/pg_ctl" -D "$data/db" -m fast stop >/dev/null 2>&1 || true; rm -rf "$data"; }
trap cleanup EXIT
export TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
echo "throwaway PostgreSQL on port $port"
"$@"
