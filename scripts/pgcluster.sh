#!/usr/bin/env bash
# The private PostgreSQL cluster under var/pg: the embedded default database.
#
#   pgcluster.sh start    create (first time) and start it, or reuse the running one;
#                         print its libpq connection string on stdout (the schema is
#                         applied by `faasbill migrate`)
#   pgcluster.sh stop     stop it (no error when it is not running)
#   pgcluster.sh status   exit 0 and print the connection string when it runs, 1 when not
#   pgcluster.sh conninfo print the connection string (running or not)
#
# The server listens on 127.0.0.1 only, on a free port chosen at creation, and trusts local
# connections: it is a private development cluster. PostgreSQL refuses to run as root, so
# when started by root the server runs as the unprivileged user "postgres" (or
# $FAASMETER_PG_USER); its data then lives in a folder that user can reach.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state=$root/var/pg
db=faasmeter
role=faasmeter

die() { echo "pgcluster: $*" >&2; exit 1; }

pg_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null || true)
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  fi
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] || die "no PostgreSQL server found (run make deps)"
  echo "$d"
}

# Run a server-side command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$owner" -- "$@"
  else
    "$@"
  fi
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

conninfo() {
  echo "host=127.0.0.1 port=$(cat "$state/port") user=$role dbname=$db"
}

datadir() { cat "$state/datadir"; }

running() {
  [ -f "$state/port" ] && [ -f "$state/datadir" ] || return 1
  as_owner "$bindir/pg_ctl" -D "$(datadir)" status >/dev/null 2>&1
}

create() {
  mkdir -p "$state"
  local dir=$state/data
  if [ "$(id -u)" -eq 0 ]; then
    id "$owner" >/dev/null 2>&1 || die "user $owner does not exist (set FAASMETER_PG_USER)"
    mkdir -p "$dir"
    chown "$owner" "$dir"
    # The server's user must reach the data folder through every parent folder.
    if ! runuser -u "$owner" -- test -w "$dir" 2>/dev/null; then
      rmdir "$dir"
      dir=$(mktemp -d "${TMPDIR:-/tmp}/faasmeter-pg.XXXXXX")
      chown "$owner" "$dir"
    fi
  fi
  echo "$dir" >"$state/datadir"
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" && break
  done
  echo "$port" >"$state/port"
  as_owner "$bindir/initdb" -D "$dir" -U "$role" --auth=trust -E UTF8 --locale=C \
    >"$state/initdb.log" 2>&1 || { cat "$state/initdb.log" >&2; die "initdb failed"; }
  cat >>"$dir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 200
shared_buffers = 256MB
synchronous_commit = on
fsync = on
log_min_messages = warning
EOF
}

ensure_database() {
  local psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$(cat "$state/port") user=$role dbname=postgres")
  if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    "${psql[@]}" -c "CREATE DATABASE $db" >/dev/null
  fi
}

start() {
  if running; then
    ensure_database
    conninfo
    return
  fi
  [ -f "$state/datadir" ] && [ -f "$(datadir)/PG_VERSION" ] || create
  local log=$state/server.log
  touch "$log"
  [ "$(id -u)" -eq 0 ] && chown "$owner" "$log"
  # A port taken since creation: choose another.
  if ! port_free "$(cat "$state/port")"; then
    local port
    for _ in $(seq 1 50); do
      port=$((20000 + RANDOM % 40000))
      port_free "$port" && break
    done
    echo "$port" >"$state/port"
    sed -i "s/^port = .*/port = $port/" "$(datadir)/postgresql.conf"
  fi
  as_owner "$bindir/pg_ctl" -D "$(datadir)" -l "$log" -w -t 60 start >/dev/null \
    || { tail -n 20 "$log" >&2; die "the server did not start (log: var/pg/server.log)"; }
  ensure_database
  conninfo
}

stop() {
  running || return 0
  as_owner "$bindir/pg_ctl" -D "$(datadir)" -m fast -w stop >/dev/null
}

owner=${FAASMETER_PG_USER:-postgres}
bindir=$(pg_bindir)
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running && conninfo ;;
  conninfo) [ -f "$state/port" ] || die "no cluster yet (run: $0 start)"; conninfo ;;
  *) echo "usage: $0 start|stop|status|conninfo" >&2; exit 2 ;;
esac
