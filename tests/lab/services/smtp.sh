#!/usr/bin/env bash
# The lab's SMTP server: 127.0.0.1:19587 only, STARTTLS required before AUTH (PLAIN or LOGIN), one
# user with a generated password, its own CA. Every accepted message is kept in a Maildir under
# $LAB_STATE/smtp/maildir. It runs aiosmtpd with the project's venv (make venv).
# Usage: smtp.sh up|down|status|env
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(cd "$(dirname "$0")/.." && pwd)/lib.sh"

SDIR="$LAB_STATE/smtp"
PIDFILE="$SDIR/smtp.pid"
REPO="$(cd "$LAB_DIR/../.." && pwd)"
PYTHON="${LAB_PYTHON:-$REPO/.venv/bin/python}"

smtp_running() { pidfile_alive "$PIDFILE" smtp_server.py; }

certificates() {
  [ -s "$SDIR/tls.key" ] && return 0
  (umask 077
   openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=fediverse.mastodon/CN=lab smtp CA" \
     -keyout "$SDIR/ca.key" -out "$SDIR/ca.crt" 2>/dev/null
   openssl req -newkey rsa:2048 -nodes -subj "/CN=$LAB_HOST" -keyout "$SDIR/tls.key" -out "$SDIR/tls.csr" 2>/dev/null
   printf 'subjectAltName=IP:%s,DNS:localhost\nextendedKeyUsage=serverAuth\n' "$LAB_HOST" >"$SDIR/ext"
   openssl x509 -req -in "$SDIR/tls.csr" -CA "$SDIR/ca.crt" -CAkey "$SDIR/ca.key" -CAcreateserial -days 3650 \
     -extfile "$SDIR/ext" -out "$SDIR/tls.crt" 2>/dev/null
   rm -f "$SDIR/tls.csr" "$SDIR/ext" "$SDIR/ca.srl" "$SDIR/ca.key") || die "smtp: openssl failed"
}

up() {
  mkdir -p "$SDIR" && chmod 700 "$SDIR"
  if smtp_running; then
    log "smtp: already running (pid $(cat "$PIDFILE"))"
    return 0
  fi
  [ -x "$PYTHON" ] || die "smtp: no Python with aiosmtpd at $PYTHON (run make venv first, or set LAB_PYTHON)"
  "$PYTHON" -c 'import aiosmtpd' 2>/dev/null || die "smtp: $PYTHON has no aiosmtpd (make venv)"
  port_in_use "$LAB_SMTP_PORT" && die "smtp: 127.0.0.1:$LAB_SMTP_PORT is taken by a process the lab did not start"
  certificates
  (umask 077 && echo "mastodon@lab.test" >"$SDIR/user" && secret smtp >"$SDIR/password")
  log "smtp: starting on $LAB_HOST:$LAB_SMTP_PORT"
  nohup "$PYTHON" "$LAB_DIR/services/smtp_server.py" "$LAB_HOST" "$LAB_SMTP_PORT" "$SDIR" \
    >"$SDIR/smtp.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  wait_port "$LAB_SMTP_PORT" 30 || { tail -n 20 "$SDIR/smtp.log" >&2; die "smtp: not listening on $LAB_HOST:$LAB_SMTP_PORT"; }
  log "smtp: running (pid $(cat "$PIDFILE"))"
}

down() { stop_pidfile smtp "$PIDFILE" smtp_server.py 10; }

status() {
  if smtp_running && port_in_use "$LAB_SMTP_PORT"; then status_line smtp up "pid $(cat "$PIDFILE") $LAB_HOST:$LAB_SMTP_PORT"
  else status_line smtp down "$SDIR"; return 1
  fi
}

env_lines() {
  echo "export LAB_SMTP_HOST=$LAB_HOST"
  echo "export LAB_SMTP_PORT=$LAB_SMTP_PORT"
  echo "export LAB_SMTP_USER=mastodon@lab.test"
  echo "export LAB_SMTP_PASSWORD=$(secret smtp)"
  echo "export LAB_SMTP_CA_CERT=$SDIR/ca.crt"
  echo "export LAB_SMTP_MAILDIR=$SDIR/maildir"
}

service_main "$@"
