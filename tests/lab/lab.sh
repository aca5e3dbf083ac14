#!/usr/bin/env bash
# The lab: real peers for the integration tests, all on 127.0.0.1.
#   lab.sh up      start whatever is down (idempotent); installs/builds what is missing
#   lab.sh down    stop every process the lab started, by pid
#   lab.sh status  one line per component; exit 1 if any is down
#   lab.sh env     `export VAR=value` lines only (eval them, or `make -s lab-env`)
# Environment: LAB_STATE, LAB_CACHE (see lib.sh), LAB_KUBECONFIG=<path> to use an existing
# cluster instead of building and starting one, LAB_COMPONENTS, LAB_PORT_OFFSET. See docs/lab.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/lab/lib.sh
. "$here/lib.sh"

# LAB_COMPONENTS limits the lab to some components (default: all of them).
components() {
  local want="${LAB_COMPONENTS:-postgresql redis s3 seaweedfs opensearch smtp kubernetes}" name script
  printf '%s\n' "postgresql $here/services/postgresql.sh" "redis $here/services/redis.sh" \
    "s3 $here/services/s3.sh" "seaweedfs $here/services/seaweedfs.sh" "opensearch $here/services/opensearch.sh" \
    "smtp $here/services/smtp.sh" "kubernetes $here/kube.sh" |
    while read -r name script; do
      case " $want " in *" $name "*) echo "$name $script" ;; esac
    done
}

has() { [ -f "$1" ]; }

cmd_up() {
  mkdir -p "$LAB_STATE" && chmod 700 "$LAB_STATE"
  local name script failed=()
  while read -r name script; do
    if ! has "$script"; then
      log "$name: SKIPPED: $script is not there yet"
      continue
    fi
    # 9>&-: the daemons a script starts must not inherit (and so hold) the lock.
    bash "$script" up 9>&- || failed+=("$name")
  done < <(components)
  if [ "${#failed[@]}" -gt 0 ]; then
    log "up: FAILED: ${failed[*]}"
    return 1
  fi
  log "up: done; run \`eval \"\$(bash $here/lab.sh env)\"\` to use it"
}

cmd_down() {
  local name script rc=0 lines
  # Reverse order: Kubernetes first, the services it forwards to last.
  lines="$(components | tac)"
  while read -r name script; do
    has "$script" || continue
    bash "$script" down 9>&- || rc=1
  done <<<"$lines"
  return "$rc"
}

cmd_status() {
  local name script rc=0
  while read -r name script; do
    if ! has "$script"; then
      status_line "$name" absent "$script is not there yet"
      continue
    fi
    bash "$script" status || rc=1
  done < <(components)
  return "$rc"
}

cmd_env() {
  local name script
  while read -r name script; do
    if ! has "$script"; then
      log "env: $name not available ($script is missing); its variables are not printed"
      continue
    fi
    bash "$script" env | grep -E '^export [A-Za-z_][A-Za-z0-9_]*=' || true
  done < <(components)
  echo "export LAB_STATE=$LAB_STATE"
}

# up and down take a lock, so that several callers (parallel test jobs) do not race.
lock() {
  mkdir -p "$LAB_STATE" && chmod 700 "$LAB_STATE"
  exec 9>"$LAB_STATE/.lock"
  flock -w 1800 9 || die "could not get the lab lock $LAB_STATE/.lock within 30 minutes"
}

case "${1:-}" in
  up) lock; cmd_up ;;
  down) lock; cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
