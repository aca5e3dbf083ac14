#!/usr/bin/env bash
# The lab's PostgreSQL: its own initdb cluster under $LAB_STATE/postgresql, listening on
# 127.0.0.1:15432 only, superuser `lab` with a generated password (scram-sha-256).
# Usage: postgresql.sh up|down|status|env
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(cd "$(dirname "$0")/.." && pwd)/lib.sh"

PGROOT="$LAB_STATE/postgresql"
PGDATA="$PGROOT/data"
PGUSER_LAB=lab

pg_bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
  [ -n "$d" ] && [ -x "$d/postgres" ] || return 1
  echo "$d"
}

# How the server runs. PostgreSQL refuses to run as root:
#  self     - we are not root: run as ourselves;
#  postgres - root, and the Debian `postgres` user can reach $PGROOT: run as `postgres`;
#  userns   - root, but $PGROOT sits below a directory `postgres` cannot enter (e.g. /root is
#             0700): run in an unprivileged user namespace in which our uid maps to the
#             `postgres` uid, so PostgreSQL does not see uid 0 and files stay ours.
pg_mode() {
  if [ -s "$PGROOT/mode" ]; then cat "$PGROOT/mode"; return; fi
  local m
  if [ "$(id -u)" -ne 0 ]; then m=self
  elif runuser -u postgres -- test -x "$PGROOT" 2>/dev/null; then m=postgres
  elif unshare --user --map-user="$(id -u postgres)" --map-group="$(id -g postgres)" true 2>/dev/null; then m=userns
  else die "postgresql: cannot run PostgreSQL as non-root: user 'postgres' cannot enter $PGROOT and user namespaces are unavailable; set LAB_STATE to a directory that user can reach"
  fi
  echo "$m" >"$PGROOT/mode"
  echo "$m"
}

pg_run() {
  case "$(pg_mode)" in
    self) "$@" ;;
    postgres) runuser -u postgres -- "$@" ;;
    userns) unshare --user --map-user="$(id -u postgres)" --map-group="$(id -g postgres)" -- "$@" ;;
  esac
}

pg_pid() { [ -s "$PGDATA/postmaster.pid" ] && head -n1 "$PGDATA/postmaster.pid"; }
pg_running() { local p; p="$(pg_pid)" && pid_alive "$p" postgres; }
pg_ready() { "$(pg_bindir)/pg_isready" -q -h "$LAB_HOST" -p "$LAB_PG_PORT" -t 2 >/dev/null 2>&1; }

up() {
  pg_bindir >/dev/null || apt_install postgresql
  # the backup role's script is tested with Debian's age next to pg_dump (tests/integration/test_backup_script.py)
  command -v age >/dev/null || apt_install age
  # the postgresql role's pgbouncer.ini runs in Debian's PgBouncer (tests/integration/test_rendered_servers.py)
  [ -x /usr/sbin/pgbouncer ] || apt_install pgbouncer
  local bin; bin="$(pg_bindir)" || die "postgresql: no server binaries under /usr/lib/postgresql"
  mkdir -p "$PGROOT"
  local mode; mode="$(pg_mode)"
  if pg_running; then
    pg_ready || die "postgresql: pid $(pg_pid) runs but 127.0.0.1:$LAB_PG_PORT is not ready; see $PGROOT/postgresql.log"
    log "postgresql: already running (pid $(pg_pid))"
    return 0
  fi
  port_in_use "$LAB_PG_PORT" && die "postgresql: 127.0.0.1:$LAB_PG_PORT is taken by a process the lab did not start"
  local pw; pw="$(secret postgresql)"
  mkdir -p "$PGROOT/run"
  [ "$mode" = postgres ] && chown postgres:postgres "$PGROOT" "$PGROOT/run"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    log "postgresql: initdb $PGDATA (mode $mode)"
    rm -rf "$PGDATA"
    # The password goes in through a pipe, never on a command line.
    printf '%s\n' "$pw" | pg_run "$bin/initdb" -D "$PGDATA" -U "$PGUSER_LAB" --pwfile=/dev/stdin \
      --auth-host=scram-sha-256 --auth-local=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-instructions \
      >"$PGROOT/initdb.log" 2>&1 || { cat "$PGROOT/initdb.log" >&2; die "postgresql: initdb failed"; }
    cat >>"$PGDATA/postgresql.conf" <<EOF

# --- fediverse-mastodon lab ---
listen_addresses = '$LAB_HOST'
port = $LAB_PG_PORT
unix_socket_directories = '$PGROOT/run'
password_encryption = 'scram-sha-256'
max_connections = 200
# A throwaway test database: durability is not needed.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi
  log "postgresql: starting on $LAB_HOST:$LAB_PG_PORT"
  pg_run "$bin/pg_ctl" -D "$PGDATA" -l "$PGROOT/postgresql.log" -w -t 60 start >/dev/null \
    || { tail -n 30 "$PGROOT/postgresql.log" >&2; die "postgresql: start failed"; }
  pg_ready || die "postgresql: started but not ready on $LAB_HOST:$LAB_PG_PORT"
  log "postgresql: running (pid $(pg_pid))"
}

down() {
  local p
  if p="$(pg_pid)" && pid_alive "$p" postgres; then
    log "postgresql: stopping pid $p"
    stop_pid "$p" INT 30
  fi
}

status() {
  if pg_running && pg_ready; then status_line postgresql up "pid $(pg_pid) $LAB_HOST:$LAB_PG_PORT data=$PGDATA"
  elif pg_running; then status_line postgresql starting "pid $(pg_pid) not accepting connections"
  else status_line postgresql down "$PGDATA"; return 1
  fi
}

env_lines() {
  echo "export LAB_PG_HOST=$LAB_HOST"
  echo "export LAB_PG_PORT=$LAB_PG_PORT"
  echo "export LAB_PG_USER=$PGUSER_LAB"
  echo "export LAB_PG_PASSWORD=$(secret postgresql)"
}

service_main "$@"
