#!/usr/bin/env bash
# The lab's S3 server: Ceph RGW (Debian packages) as one monitor, one memstore OSD, no manager,
# and one radosgw. Everything binds 127.0.0.1 only; S3 (and the Admin Ops API) on port 17480.
#
#   s3.sh up       start it (idempotent: a running, healthy server is left alone)
#   s3.sh down     stop the daemons it started (by pid) and drop the in-memory data
#   s3.sh status   exit 0 and print "running" when S3 answers, else exit 1
#   s3.sh env      print export lines: LAB_S3_ENDPOINT, LAB_S3_ACCESS_KEY, LAB_S3_SECRET_KEY,
#                  LAB_BACKUP_IDENTITY_FILE and LAB_BACKUP_RECIPIENT (an age key pair made once)
#
# The admin user has caps users=*;buckets=*;user-policy=* (Admin Ops API and IAM user policies).
# State lives under ${LAB_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/fediverse-mastodon-lab}/ceph.
# The admin keys are generated once and kept there, so they survive down/up.
set -euo pipefail

LAB_STATE="${LAB_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/fediverse-mastodon-lab}"
dir="$LAB_STATE/ceph"
conf="$dir/ceph.conf"
creds="$dir/admin.env"
S3_PORT=17480
MON_PORT=17481
ENDPOINT="http://127.0.0.1:$S3_PORT"
log() { echo "s3: $*" >&2; }

ensure_packages() {
  local missing=()
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing Ceph packages (missing: ${missing[*]})"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends \
    ceph-mon ceph-osd radosgw ceph-common >&2 \
    || { DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update >&2 && \
         DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends \
           ceph-mon ceph-osd radosgw ceph-common >&2; }
}

ensure_creds() {
  [ -s "$creds" ] && return 0
  mkdir -p "$dir"
  local ak sk
  ak="LAB$(head -c 64 /dev/urandom | tr -dc 'A-Z0-9' | head -c 17)"
  sk="$(head -c 256 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 40)"
  (umask 077; printf 'LAB_S3_ACCESS_KEY=%s\nLAB_S3_SECRET_KEY=%s\n' "$ak" "$sk" >"$creds")
}

pid_alive() { # name
  local f="$dir/run/$1.pid"
  [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

s3_answers() {
  # An anonymous ListBuckets answers 200 with an empty list on a healthy RGW.
  local code
  code="$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$ENDPOINT/" 2>/dev/null || true)"
  [ "$code" = "200" ] || [ "$code" = "403" ]
}

write_conf() {
  local fsid="$1"
  mkdir -p "$dir/run" "$dir/log" "$dir/mon" "$dir/osd" "$dir/rgw"
  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon_initial_members = a
mon_host = v1:127.0.0.1:$MON_PORT
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
ms_bind_msgr2 = false
ms_bind_port_min = 17482
ms_bind_port_max = 17499
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
keyring = $dir/keyring
osd_pool_default_size = 1
osd_crush_chooseleaf_type = 0
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_objectstore = memstore
memstore_device_bytes = 2147483648
run_dir = $dir/run
pid_file = $dir/run/\$name.pid
log_file = $dir/log/\$cluster-\$name.log
crash_dir = $dir/crash
exporter_sock_dir = $dir/run
debug_ms = 0
[mon]
admin_socket = $dir/run/\$cluster-\$name.asok
mon_data = $dir/mon/\$cluster-\$id
mon_data_avail_crit = 1
[osd]
admin_socket = $dir/run/\$cluster-\$name.asok
osd_data = $dir/osd/\$cluster-\$id
# The OSD places itself by mon commands at boot, which races its monmap (intermittent
# "wrong fsid"); the script places it in the CRUSH map before it starts instead.
osd_crush_update_on_start = false
osd_class_update_on_start = false
[client.rgw.a]
admin_socket = $dir/run/\$cluster-\$name.asok
rgw_frontends = beast endpoint=127.0.0.1:$S3_PORT
rgw_data = $dir/rgw
rgw_enable_usage_log = false
rgw_dns_name = 127.0.0.1
EOF
  : >"$dir/keyring"
}

stop_daemons() {
  local name pid n
  for name in client.rgw.a osd.0 mon.a; do
    local f="$dir/run/$name.pid"
    [ -s "$f" ] || continue
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for n in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

ceph_cli() { ceph -c "$conf" --connect-timeout 10 "$@"; }

start() {
  ensure_packages
  ensure_creds
  if pid_alive mon.a && pid_alive osd.0 && pid_alive client.rgw.a && s3_answers; then
    log "already running at $ENDPOINT"
    return 0
  fi
  # memstore keeps data in RAM only: any partial state is rebuilt from scratch.
  stop_daemons
  local port
  for port in "$S3_PORT" "$MON_PORT"; do
    if port_busy "$port"; then
      log "127.0.0.1:$port is in use by a process this lab did not start (see: ss -ltnp | grep $port); stop it first"
      exit 1
    fi
  done
  rm -rf "$dir/mon" "$dir/osd" "$dir/rgw" "$dir/run" "$dir/crash" "$dir/monmap"
  mkdir -p "$dir/log"
  local fsid osd_uuid t0
  t0=$(date +%s)
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  write_conf "$fsid"
  monmaptool --create --clobber --fsid "$fsid" --addv a "[v1:127.0.0.1:$MON_PORT]" "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" -i a 2>>"$dir/log/mon-stderr.log"
  osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
  ceph_cli osd new "$osd_uuid" >/dev/null
  ceph_cli osd crush add osd.0 1.0 root=default host=lab >/dev/null 2>&1
  mkdir -p "$dir/osd/ceph-0"
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1
  ceph-osd -c "$conf" -i 0 2>>"$dir/log/osd-stderr.log"
  local n
  for n in $(seq 1 100); do
    ceph_cli osd stat 2>/dev/null | grep -q '1 up' && break
    sleep 0.2
  done
  ceph_cli osd stat 2>/dev/null | grep -q '1 up' || { log "OSD did not come up; see $dir/log"; exit 1; }
  radosgw -c "$conf" -n client.rgw.a 2>>"$dir/log/rgw-stderr.log"
  for n in $(seq 1 150); do s3_answers && break; sleep 0.2; done
  s3_answers || { log "radosgw did not answer on $ENDPOINT; see $dir/log"; exit 1; }
  # shellcheck disable=SC1090
  . "$creds"
  radosgw-admin -c "$conf" user create --uid=admin --display-name="lab admin" \
    --access-key="$LAB_S3_ACCESS_KEY" --secret-key="$LAB_S3_SECRET_KEY" >/dev/null
  radosgw-admin -c "$conf" caps add --uid=admin --caps="users=*;buckets=*;user-policy=*;metadata=read;usage=read" >/dev/null
  log "running at $ENDPOINT ($(( $(date +%s) - t0 ))s)"
}

case "${1:-}" in
  up) start ;;
  down)
    stop_daemons
    rm -rf "$dir/mon" "$dir/osd" "$dir/rgw" "$dir/run"
    log "stopped"
    ;;
  status)
    # Same layout as lib.sh's status_line: NAME STATE DETAIL.
    if pid_alive mon.a && pid_alive osd.0 && pid_alive client.rgw.a && s3_answers; then
      printf '%-12s %-8s %s\n' s3 up "pid $(cat "$dir/run/client.rgw.a.pid") $ENDPOINT (Ceph RGW; mon pid $(cat "$dir/run/mon.a.pid"), osd pid $(cat "$dir/run/osd.0.pid"))"
    elif pid_alive client.rgw.a; then
      printf '%-12s %-8s %s\n' s3 starting "radosgw pid $(cat "$dir/run/client.rgw.a.pid") not answering on $ENDPOINT"; exit 1
    else
      printf '%-12s %-8s %s\n' s3 down "$dir"; exit 1
    fi
    ;;
  env)
    ensure_creds
    # shellcheck disable=SC1090
    . "$creds"
    echo "export LAB_S3_ENDPOINT=$ENDPOINT"
    echo "export LAB_S3_ACCESS_KEY=$LAB_S3_ACCESS_KEY"
    echo "export LAB_S3_SECRET_KEY=$LAB_S3_SECRET_KEY"
    # The lab's backup key pair (docs/backups.md): the inventory encrypts to the public key;
    # restore.yml is given the private key's file, which stays outside the repo and the cluster.
    identity="$LAB_STATE/secrets/backup-identity.txt"
    if [ ! -s "$identity" ]; then
      mkdir -p "$LAB_STATE/secrets" && chmod 700 "$LAB_STATE/secrets"
      (umask 077 && age-keygen -o "$identity" 2>/dev/null)
    fi
    echo "export LAB_BACKUP_IDENTITY_FILE=$identity"
    echo "export LAB_BACKUP_RECIPIENT=$(sed -n 's/^# public key: //p' "$identity")"
    ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
