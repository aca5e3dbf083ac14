#!/bin/sh
# The dump container of the backup Job. It runs in the PostgreSQL server's own image, so pg_dump
# is never older than the server. It meets the backup container (mastodon_backup.py with
# BACKUP_DUMP_DIR) on the folder both mount:
#   1. waits for the file `snapshot` (the id of the snapshot the backup container exported);
#   2. runs pg_dump of that snapshot in custom format into the FIFO `dump`, which the backup
#      container encrypts and uploads as it reads: the dump never lands on a disk;
#   3. writes pg_dump's errors to `dump.err` and its exit status to `dump.rc`.
# It gives up when the file `abort` appears, or after BACKUP_DUMP_WAIT seconds without a snapshot.
# The connection comes from libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).
set -u
dir="${BACKUP_DUMP_DIR:?BACKUP_DUMP_DIR is not set}"
wait="${BACKUP_DUMP_WAIT:-600}"

report() {
  echo "$1" >"$dir/dump.rc.tmp" && mv "$dir/dump.rc.tmp" "$dir/dump.rc"
  exit "$1"
}

waited=0
while [ ! -s "$dir/snapshot" ]; do
  if [ -e "$dir/abort" ] || [ "$waited" -ge "$wait" ]; then
    echo "dump.sh: no snapshot to dump after ${waited} s" | tee "$dir/dump.err" >&2
    report 1
  fi
  sleep 1
  waited=$((waited + 1))
done
pg_dump --format=custom --no-password --snapshot="$(cat "$dir/snapshot")" >"$dir/dump" 2>"$dir/dump.err"
status=$?
cat "$dir/dump.err" >&2
report "$status"
