#!/usr/bin/env bash
# The lab's Redis: 127.0.0.1:16379 only, with a generated requirepass, data under $LAB_STATE/redis.
# Usage: redis.sh up|down|status|env
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(cd "$(dirname "$0")/.." && pwd)/lib.sh"

RDIR="$LAB_STATE/redis"
PIDFILE="$RDIR/redis.pid"

redis_running() { pidfile_alive "$PIDFILE" redis-server; }
redis_ping() {
  [ "$(REDISCLI_AUTH="$(secret redis)" redis-cli -h "$LAB_HOST" -p "$LAB_REDIS_PORT" --no-auth-warning ping 2>/dev/null)" = PONG ]
}

up() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server redis-tools
  mkdir -p "$RDIR" && chmod 700 "$RDIR"
  if redis_running; then
    redis_ping || die "redis: pid $(cat "$PIDFILE") runs but does not answer PING on $LAB_HOST:$LAB_REDIS_PORT"
    log "redis: already running (pid $(cat "$PIDFILE"))"
    return 0
  fi
  port_in_use "$LAB_REDIS_PORT" && die "redis: 127.0.0.1:$LAB_REDIS_PORT is taken by a process the lab did not start"
  # The config file holds the password, so it is private to us.
  (umask 077 && cat >"$RDIR/redis.conf" <<EOF
bind $LAB_HOST
port $LAB_REDIS_PORT
protected-mode yes
requirepass $(secret redis)
daemonize yes
pidfile $PIDFILE
logfile $RDIR/redis.log
dir $RDIR
appendonly no
save ""
databases 16
EOF
  )
  log "redis: starting on $LAB_HOST:$LAB_REDIS_PORT"
  rm -f "$PIDFILE"
  redis-server "$RDIR/redis.conf" || die "redis: start failed; see $RDIR/redis.log"
  local i
  for ((i = 0; i < 100; i++)); do redis_ping && break; sleep 0.1; done
  redis_ping || { tail -n 20 "$RDIR/redis.log" >&2; die "redis: not answering on $LAB_HOST:$LAB_REDIS_PORT"; }
  log "redis: running (pid $(cat "$PIDFILE"))"
}

down() { stop_pidfile redis "$PIDFILE" redis-server 20; }

status() {
  if redis_running && redis_ping; then status_line redis up "pid $(cat "$PIDFILE") $LAB_HOST:$LAB_REDIS_PORT"
  elif redis_running; then status_line redis starting "pid $(cat "$PIDFILE") not answering"
  else status_line redis down "$RDIR"; return 1
  fi
}

env_lines() { echo "export LAB_REDIS_URL=redis://default:$(secret redis)@$LAB_HOST:$LAB_REDIS_PORT/0"; }

service_main "$@"
