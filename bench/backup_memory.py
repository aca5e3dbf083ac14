"""Memory of a backup and a restore as the database grows (issue 15, "Size"), in the lab.

For each size in SIZES_MB, a database of that many megabytes of incompressible rows (1 MiB of
random bytes a row) is backed up and restored with the backup role's own script
(roles/backup/files/mastodon_backup.py) against the lab's PostgreSQL and Ceph RGW, exactly as
tests/integration/test_backup_script.py runs it. While each command runs, the resident memory
(VmRSS) of the script and of its child (pg_dump or pg_restore) is sampled every 0.1 s. The peaks
go to bench/results/<date>-backup-memory.json. Memory is flat when the peak at the largest size is
about the peak at the smallest: the dump streams through a pipe and 16 MiB upload parts.

Run with ``make bench-backup`` (the lab must have room for the largest size twice in PostgreSQL
and once in RGW's memstore).
"""

import datetime
import json
import os
import subprocess
import sys
import time
import uuid

import boto3
import psycopg2
import pyrage
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "roles", "backup", "files", "mastodon_backup.py")
SIZES_MB = [int(s) for s in os.environ.get("BENCH_BACKUP_SIZES_MB", "128,1100").split(",")]
ROW = 1024 * 1024


def pg(database="postgres"):
    conn = psycopg2.connect(host=os.environ["LAB_PG_HOST"], port=os.environ["LAB_PG_PORT"], user=os.environ["LAB_PG_USER"],
                            password=os.environ["LAB_PG_PASSWORD"], dbname=database)
    conn.autocommit = True
    return conn


def sql(statement, database="postgres"):
    conn = pg(database)
    try:
        cur = conn.cursor()
        cur.execute(statement)
        return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return [int(c) for c in handle.read().split()]
    except OSError:
        return []


def measured(env, *args):
    """(seconds, peak RSS of the script in MiB, peak RSS of its children in MiB, stdout)."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, SCRIPT] + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    own = child = 0
    while proc.poll() is None:
        own = max(own, rss_kib(proc.pid))
        child = max([child] + [rss_kib(c) for c in children(proc.pid)])
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode:
        sys.exit("bench/backup_memory: %s failed: %s" % (" ".join(args), err.decode()[-2000:]))
    return time.monotonic() - start, round(own / 1024, 1), round(child / 1024, 1), out.decode()


def one_size(size_mb, env, s3, bucket):
    database = "bench_backup_%dm" % size_mb
    sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % database)
    sql('DROP DATABASE IF EXISTS "%s_restored" WITH (FORCE)' % database)
    sql('CREATE DATABASE "%s"' % database)
    conn = pg(database)
    cur = conn.cursor()
    # EXTERNAL storage: no TOAST compression, so the database really is this large on disk
    cur.execute("CREATE TABLE blobs (id int PRIMARY KEY, data bytea)")
    cur.execute("ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL")
    for row in range(size_mb):
        cur.execute("INSERT INTO blobs VALUES (%s, %s)", (row, psycopg2.Binary(os.urandom(ROW))))
    cur.execute("SELECT pg_database_size(current_database())")
    db_bytes = cur.fetchone()[0]
    conn.close()
    env = dict(env, PGDATABASE=database)
    backup_s, backup_rss, dump_rss, out = measured(env, "backup")
    manifest = json.loads(out)
    restore_s, restore_rss, pg_restore_rss, dummy = measured(env, "restore-db", manifest["id"], database + "_restored")
    restored = sql("SELECT count(*), sum(length(data)) FROM blobs", database + "_restored")[0]
    for name in (database, database + "_restored"):
        sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in page.get("Versions") or []:
            s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
    return dict(size_mb=size_mb, database_bytes=db_bytes, dump_encrypted_bytes=manifest["parts"]["db.dump.age"]["size"],
                rows_restored=restored[0], bytes_restored=int(restored[1] or 0),
                backup=dict(seconds=round(backup_s, 1), script_peak_rss_mib=backup_rss, pg_dump_peak_rss_mib=dump_rss),
                restore=dict(seconds=round(restore_s, 1), script_peak_rss_mib=restore_rss, pg_restore_peak_rss_mib=pg_restore_rss))


def main():
    bucket = "bench-backup-" + uuid.uuid4().hex[:8]
    s3 = boto3.client("s3", endpoint_url=os.environ["LAB_S3_ENDPOINT"], region_name="us-east-1",
                      aws_access_key_id=os.environ["LAB_S3_ACCESS_KEY"], aws_secret_access_key=os.environ["LAB_S3_SECRET_KEY"],
                      config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    identity = pyrage.x25519.Identity.generate()
    identity_file = "/tmp/bench-backup-%s.key" % bucket
    fd = os.open(identity_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("%s\n" % identity)
    keys_file = identity_file + ".keys.json"
    with open(keys_file, "w") as handle:
        json.dump({"SECRET_KEY_BASE": "bench"}, handle)
    env = dict(os.environ, PGHOST=os.environ["LAB_PG_HOST"], PGPORT=os.environ["LAB_PG_PORT"], PGUSER=os.environ["LAB_PG_USER"],
               PGPASSWORD=os.environ["LAB_PG_PASSWORD"], BACKUP_S3_ENDPOINT=os.environ["LAB_S3_ENDPOINT"], BACKUP_S3_BUCKET=bucket,
               BACKUP_S3_PREFIX="bench", AWS_ACCESS_KEY_ID=os.environ["LAB_S3_ACCESS_KEY"],
               AWS_SECRET_ACCESS_KEY=os.environ["LAB_S3_SECRET_KEY"], BACKUP_RECIPIENTS=str(identity.to_public()),
               BACKUP_KEYS_FILE=keys_file, BACKUP_IDENTITY_FILE=identity_file, MASTODON_VERSION="v4.6.3",
               LOCAL_DOMAIN="bench.lab.test")
    results = []
    try:
        for size in SIZES_MB:
            results.append(one_size(size, env, s3, bucket))
            print(json.dumps(results[-1]), flush=True)
    finally:
        os.unlink(identity_file)
        os.unlink(keys_file)
        s3.delete_bucket(Bucket=bucket)
    smallest, largest = results[0], results[-1]
    flat = all(largest[k]["script_peak_rss_mib"] <= 2 * smallest[k]["script_peak_rss_mib"] + 16 for k in ("backup", "restore"))
    report = dict(date=datetime.date.today().isoformat(), what="peak resident memory of the backup script and of "
                  "pg_dump/pg_restore while a database of each size is backed up and restored (lab, 2 cores)",
                  part_size_mib=16, sizes=results, memory_flat=flat)
    path = os.path.join(REPO, "bench", "results", "%s-backup-memory.json" % report["date"])
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    print("bench/backup_memory: %s (memory flat: %s)" % (path, flat))
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
