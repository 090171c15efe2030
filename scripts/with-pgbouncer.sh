#!/usr/bin/env bash
# Run a command with TEST_DATABASE_URL pointing at PgBouncer (Debian's) in transaction mode, in
# front of the PostgreSQL server of TEST_DATABASE_URL (scripts/with-postgres.sh starts one):
#   scripts/with-postgres.sh scripts/with-pgbouncer.sh .venv/bin/python -m pytest -m db
# Every database on the server is reachable through it (a "*" entry), so the tests' fresh
# databases are too. DATABASE_POOL_MODE=transaction tells the services (shared/db.py) that
# server connections change between transactions: no prepared statements.
set -euo pipefail
: "${TEST_DATABASE_URL:?run me under scripts/with-postgres.sh}"
server=$(python3 - "$TEST_DATABASE_URL" <<'PY'
import sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
print(url.hostname or "127.0.0.1", url.port or 5432, url.username or "postgres")
PY
)
read -r host port user <<< "$server"
dir=$(mktemp -d /tmp/callcenter-pgbouncer.XXXXXX)
listen=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
max_db_connections = 60
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
echo "\"$user\" \"\"" > "$dir/users.txt"
as_owner=()
if [ "$(id -u)" -eq 0 ]; then   # PgBouncer refuses to run as root
  chown -R postgres "$dir"
  as_owner=(runuser -u postgres --)
fi
"${as_owner[@]}" /usr/sbin/pgbouncer -d "$dir/pgbouncer.ini"
cleanup() { kill "$(cat "$dir/pgbouncer.pid" 2>/dev/null)" 2>/dev/null || true; sleep 0.2; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $listen), 1)" 2>/dev/null && break
  sleep 0.1
done
# The tests' database templates are made and copied past the pooler (tests/conftest.py).
export TEST_DATABASE_DIRECT_URL="$TEST_DATABASE_URL"
export TEST_DATABASE_URL="postgresql+psycopg://$user@127.0.0.1:$listen/postgres"
export DATABASE_POOL_MODE=transaction
echo "PgBouncer (transaction mode) on port $listen in front of PostgreSQL on $port"
"$@"
