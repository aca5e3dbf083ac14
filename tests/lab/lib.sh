# shellcheck shell=bash
# Shared helpers for the lab scripts. Sourced, never executed.
# Everything the lab writes lives under $LAB_STATE (outside the repo);
# built binaries live under $LAB_CACHE (see build-binaries.sh).

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB_STATE="${LAB_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/fediverse-mastodon-lab}"
LAB_CACHE="${LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fediverse-mastodon-lab}"
export LAB_STATE LAB_CACHE

# Fixed loopback ports (documented in docs/lab.md). LAB_PORT_OFFSET shifts them all, to run a
# second, throw-away lab next to the usual one (S3 is not shifted: services/s3.sh has its own).
LAB_HOST=127.0.0.1
LAB_PORT_OFFSET="${LAB_PORT_OFFSET:-0}"
LAB_PG_PORT=$((15432 + LAB_PORT_OFFSET))
LAB_REDIS_PORT=$((16379 + LAB_PORT_OFFSET))
LAB_S3_PORT=17480
LAB_OPENSEARCH_PORT=$((19200 + LAB_PORT_OFFSET))
LAB_OPENSEARCH_TRANSPORT_PORT=$((19300 + LAB_PORT_OFFSET))
LAB_SMTP_PORT=$((19587 + LAB_PORT_OFFSET))
# SeaweedFS: its S3 port, and the master, volume and filer ports (each with its gRPC port + 1).
LAB_SEAWEEDFS_S3_PORT=$((18300 + LAB_PORT_OFFSET))
LAB_SEAWEEDFS_MASTER_PORT=$((18333 + LAB_PORT_OFFSET))
LAB_SEAWEEDFS_VOLUME_PORT=$((18080 + LAB_PORT_OFFSET))
LAB_SEAWEEDFS_FILER_PORT=$((18888 + LAB_PORT_OFFSET))
# The apiserver; kube.sh puts the other control-plane ports just below it.
LAB_KUBE_PORT=$((32766 + LAB_PORT_OFFSET))

log() { echo "lab: $*" >&2; }
die() { echo "lab: ERROR: $*" >&2; exit 1; }

# A random secret made of [a-z0-9] only, so it is safe in URLs and shell.
gen_secret() {
  local s
  s="$(head -c 4096 /dev/urandom | LC_ALL=C tr -dc 'a-z0-9')"
  printf '%s' "${s:0:${1:-32}}"
}

# secret NAME: print the secret stored in $LAB_STATE/secrets/NAME, creating it once.
secret() {
  local f="$LAB_STATE/secrets/$1"
  if [ ! -s "$f" ]; then
    mkdir -p "$LAB_STATE/secrets" && chmod 700 "$LAB_STATE/secrets"
    (umask 077 && gen_secret 32 >"$f.tmp" && mv "$f.tmp" "$f")
  fi
  cat "$f"
}

# pid_alive PID [PATTERN]: the process exists (and its command line matches PATTERN).
pid_alive() {
  local pid="$1" pat="${2:-}"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [ -z "$pat" ] && return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pat"
}

# pidfile_alive FILE [PATTERN]
pidfile_alive() {
  [ -s "$1" ] || return 1
  pid_alive "$(head -n1 "$1")" "${2:-}"
}

# stop_pid PID [SIGNAL] [SECONDS]: signal a process and wait for it to exit; SIGKILL after the wait.
stop_pid() {
  local pid="$1" sig="${2:-TERM}" wait="${3:-20}" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -s "$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < wait * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "pid $pid did not exit after SIG$sig; sending SIGKILL"
  kill -s KILL "$pid" 2>/dev/null || true
  sleep 0.2
}

# wait_port PORT [SECONDS]: wait until 127.0.0.1:PORT accepts TCP connections.
wait_port() {
  local port="$1" wait="${2:-30}" i
  for ((i = 0; i < wait * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# port_in_use PORT: something listens on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# apt_install PKG...: install missing Debian packages (apt-get update at most once per run).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root or sudo to install ${missing[*]}"
    sudo=(sudo)
  fi
  log "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${LAB_APT_UPDATED:-}" ]; then
    "${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed"
    export LAB_APT_UPDATED=1
  fi
  # Keep the packages' init scripts from starting their own (non-lab) servers, unless the
  # machine already has a policy.
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod 755 "$policy"
  fi
  local rc=0
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || rc=$?
  [ -n "$policy" ] && "${sudo[@]}" rm -f "$policy"
  [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed"
}

# status_line NAME STATE DETAIL
status_line() { printf '%-12s %-8s %s\n' "$1" "$2" "$3"; }

# stop_pidfile NAME PIDFILE PATTERN SECONDS: stop the service whose pid file is PIDFILE (when its
# process still matches PATTERN), then forget the pid file.
stop_pidfile() {
  local name="$1" pidfile="$2" pattern="$3" wait="${4:-20}" p
  if pidfile_alive "$pidfile" "$pattern"; then
    p="$(cat "$pidfile")"
    log "$name: stopping pid $p"
    stop_pid "$p" TERM "$wait"
  fi
  rm -f "$pidfile"
}

# service_main "$@": the command line of a service script, which defines up, down, status and env_lines.
service_main() {
  case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    env) env_lines ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
  esac
}
