#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster on 127.0.0.1, then removes the cluster:
#
#   .ci/postgres.sh .venv/bin/python -m pytest      # the whole suite against PostgreSQL
#
# The command sees FEEDWORKER_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/feedworker_test
# (tests/conftest.py gives each test session its own database on that server, and each test a
# schema of it through FEEDWORKER_STATE_URL, see tests/backend.py; feedworker never reads it). The cluster lives in a
# temporary folder (initdb, trust authentication on 127.0.0.1 only, fsync off: it is thrown away)
# and is stopped and deleted on exit, whatever the command's outcome. Run as root (CI), the server
# runs as the `postgres` user the Debian package creates.
#
# Exit 3 without running anything when PostgreSQL is not installed (apt-get install postgresql).
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi

bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$bindir" ] && command -v pg_config >/dev/null; then
    bindir="$(pg_config --bindir)"
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "$0: PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 3
fi

as_server() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port="${FEEDWORKER_TEST_PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
dir="$(mktemp -d /tmp/feedworker-pg.XXXXXX)"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$dir"
fi

stop() {
    as_server "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT

as_server "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" \
    || { cat "$dir/initdb.log" >&2; exit 1; }
as_server "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -h 127.0.0.1 -p $port -F -c max_connections=300" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
"$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres feedworker_test

export FEEDWORKER_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/feedworker_test"
echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port for: $*" >&2
set +e
"$@"
status=$?
set -e
exit "$status"
