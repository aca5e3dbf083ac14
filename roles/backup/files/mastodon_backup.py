# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One backup set of a Mastodon instance, made, checked and restored; run by the backup Job and,
with backup_runner=controller, on the Ansible controller (the same file).

A set is three objects under ``<prefix>/<set id>/`` on the backup S3 target:

- ``db.dump.age``: ``pg_dump --format=custom`` of the database, encrypted to the age recipients
  while it streams (the dump is never whole in memory or on a disk);
- ``keys.json.age``: Mastodon's generated keys (the data of its Secrets, as JSON), encrypted the
  same way; a database cannot be restored without its Active Record keys;
- ``manifest.json``: the Mastodon version, the schema migration version, LOCAL_DOMAIN, the size
  and SHA-256 of each part (of the encrypted bytes), each table's row count in the dump's own
  snapshot, and the start and end times. Written last: a set without a manifest is incomplete.

Encryption is age's X25519 public-key format (``age1...`` recipients), through pyrage; the files
decrypt with Debian's ``age -d -i KEY`` too. Only the recipients are needed to back up; restoring
needs an identity file (``AGE-SECRET-KEY-1...``), which never enters the cluster.

Commands (settings come from the environment, see ``Settings``; secrets only from there or from
files, never from the command line):

    backup                        make a set; prints its manifest as JSON
    list                          the complete sets, oldest first, as JSON
    check  SET|latest             verify every part's size and SHA-256 against the manifest
    restore-db  SET|latest NAME   check the set, then restore the database into the new, empty
                                  database NAME (created; an existing NAME is refused)
    restore-keys SET|latest PATH  check the set, then write the keys JSON to PATH (mode 0600)
    verify SET|latest NAME        a drill: restore-db into NAME, compare each table's row count
                                  with the manifest, drop NAME; prints the result as JSON
    prune DAYS KEEP               delete the sets older than DAYS days (every version), never the
                                  KEEP newest complete sets (for servers without lifecycle rules)
    mirror-media                  copy the new and changed objects of the media bucket
                                  (MEDIA_S3_ENDPOINT, MEDIA_S3_BUCKET, MEDIA_AWS_*) into
                                  BACKUP_MEDIA_BUCKET of the backup target
    media-replication             the enabled replication rules of the media bucket (fails
                                  without one)
    db-state NAME                 whether database NAME exists, its owner, how many tables it has
    swap-db NEW NAME OWNER KEEP   rename database NAME (if any) to KEEP and NEW to NAME, owned by
                                  OWNER (the restore's last database step)

Exit status 0 on success; 1 with one line on stderr naming what is wrong otherwise. Nothing is
changed before every part of the set has been checked.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

FORMAT = 1
DB_PART = "db.dump.age"
KEYS_PART = "keys.json.age"
MANIFEST = "manifest.json"
SET_ID_RE = re.compile(r"^\d{8}T\d{6}Z$")
DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CHUNK = 1024 * 1024


class Failure(Exception):
    """One readable line for the operator."""


class Settings:
    """Everything the script needs, from the environment.

    PostgreSQL: PGHOST, PGPORT, PGUSER, PGDATABASE and PGPASSWORD (or PGPASSFILE), as libpq reads
    them; BACKUP_PG_DUMP / BACKUP_PG_RESTORE name the programs (default pg_dump, pg_restore).
    S3: BACKUP_S3_ENDPOINT, BACKUP_S3_REGION, BACKUP_S3_BUCKET, BACKUP_S3_PREFIX,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
    age: BACKUP_RECIPIENTS (age1... keys, separated by spaces, commas or new lines);
    BACKUP_IDENTITY_FILE for the commands that decrypt.
    The set: BACKUP_KEYS_DIR (one folder per Secret, a file per key, as Kubernetes mounts
    Secrets) or BACKUP_KEYS_FILE (JSON, written as it is), MASTODON_VERSION, LOCAL_DOMAIN.
    The dump: by default the script runs pg_dump itself. With BACKUP_DUMP_DIR (the backup Job)
    the dump container runs it (files/dump.sh), and the two meet on that shared folder.
    """

    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        self.env = env
        self.endpoint = env.get("BACKUP_S3_ENDPOINT") or None
        self.region = env.get("BACKUP_S3_REGION") or "us-east-1"
        self.bucket = env.get("BACKUP_S3_BUCKET") or ""
        self.prefix = (env.get("BACKUP_S3_PREFIX") or "").strip("/")
        self.recipients = [r for r in re.split(r"[\s,]+", env.get("BACKUP_RECIPIENTS") or "") if r]
        self.identity_file = env.get("BACKUP_IDENTITY_FILE") or None
        self.keys_file = env.get("BACKUP_KEYS_FILE") or None
        self.keys_dir = env.get("BACKUP_KEYS_DIR") or None
        self.dump_dir = env.get("BACKUP_DUMP_DIR") or None
        self.dump_wait = int(env.get("BACKUP_DUMP_WAIT") or 600)
        self.mastodon_version = env.get("MASTODON_VERSION") or None
        self.local_domain = env.get("LOCAL_DOMAIN") or None
        self.pg_dump = env.get("BACKUP_PG_DUMP") or "pg_dump"
        self.pg_restore = env.get("BACKUP_PG_RESTORE") or "pg_restore"
        self.part_size = int(env.get("BACKUP_S3_PART_MB") or 16) * 1024 * 1024

    def key(self, set_id, name=""):
        return "/".join(p for p in (self.prefix, set_id, name) if p)

    def need(self, *names):
        missing = [n for n in names if not any(getattr(self, a) for a in n.split("|"))]
        if missing:
            raise Failure("missing setting(s): %s; see the Settings of %s" % (", ".join(missing), os.path.basename(__file__)))


# ---- age -------------------------------------------------------------------------------------------

def _pyrage():
    try:
        import pyrage  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise Failure("the Python package pyrage is missing (pip install pyrage): %s" % exc)
    return pyrage


def recipients(values):
    pyrage = _pyrage()
    parsed = []
    for value in values:
        try:
            parsed.append(pyrage.x25519.Recipient.from_str(value))
        except Exception:  # pylint: disable=broad-except
            raise Failure("backup_recipients: %r is not an age X25519 recipient (age1...)" % (value[:12] + "...",))
    if not parsed:
        raise Failure("backup_recipients: no recipient; give at least one age public key (age1...)")
    return parsed


def identities(path):
    pyrage = _pyrage()
    try:
        with open(path) as handle:
            lines = [line.strip() for line in handle if line.strip().startswith("AGE-SECRET-KEY-")]
    except OSError as exc:
        raise Failure("restore_identity_file: cannot read %s (%s)" % (path, exc.strerror))
    if not lines:
        raise Failure("restore_identity_file: %s holds no age identity (a line AGE-SECRET-KEY-1...)" % path)
    try:
        return [pyrage.x25519.Identity.from_str(line) for line in lines]
    except Exception:  # pylint: disable=broad-except
        raise Failure("restore_identity_file: %s holds an identity that age cannot read" % path)


class Counted:
    """A binary reader that counts and hashes what passes through it."""

    def __init__(self, raw):
        self.raw = raw
        self.size = 0
        self.sha256 = hashlib.sha256()

    def read(self, size=-1):
        data = self.raw.read(size)
        if data:
            self.size += len(data)
            self.sha256.update(data)
        return data

    def readable(self):
        return True


def _piped(work, source, keys):
    """(reader, thread): ``work(source, writer, keys)`` (pyrage's encrypt_io or decrypt_io) runs in
    a thread and writes into a pipe; the caller reads the other end. ``thread.errors`` holds what
    the thread raised."""
    read_fd, write_fd = os.pipe()
    reader, writer = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    errors = []

    def run():
        try:
            work(source, writer, keys)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
        finally:
            writer.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors
    thread.start()
    return reader, thread


def encrypted_stream(source, to):
    """The age encryption of ``source`` to the recipients ``to``, as a reader (see _piped)."""
    return _piped(_pyrage().encrypt_io, source, to)


def decrypted_stream(source, ids):
    """The age decryption of ``source`` with the identities ``ids``, as a reader (see _piped)."""
    return _piped(_pyrage().decrypt_io, source, ids)


# ---- S3 --------------------------------------------------------------------------------------------

class Store:
    """The backup target: one bucket, one prefix."""

    def __init__(self, settings):
        settings.need("bucket")
        import boto3  # pylint: disable=import-outside-toplevel
        from boto3.s3.transfer import TransferConfig  # pylint: disable=import-outside-toplevel
        from botocore.config import Config  # pylint: disable=import-outside-toplevel
        self.settings = settings
        self.client = boto3.client(
            "s3", endpoint_url=settings.endpoint, region_name=settings.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}))
        self.transfer = TransferConfig(multipart_threshold=settings.part_size, multipart_chunksize=settings.part_size,
                                       max_concurrency=2, use_threads=True)
        # s3transfer keeps this many parts in memory at most (not a constructor argument)
        self.transfer.max_in_memory_upload_chunks = 2

    def upload(self, reader, key):
        # the owner of the bucket (not the backup user) must be able to read every object
        self.client.upload_fileobj(reader, self.settings.bucket, key, Config=self.transfer,
                                   ExtraArgs={"ACL": "bucket-owner-full-control"})

    def put_json(self, key, data):
        self.client.put_object(Bucket=self.settings.bucket, Key=key, Body=json.dumps(data, indent=2, sort_keys=True).encode(),
                               ContentType="application/json", ACL="bucket-owner-full-control")

    def stream(self, key, version_id=None):
        extra = dict(VersionId=version_id) if version_id and version_id != "null" else {}
        return self.client.get_object(Bucket=self.settings.bucket, Key=key, **extra)["Body"]

    def versions(self, prefix):
        """key -> [version ids, newest first], and the keys that carry a delete marker."""
        found, deleted = {}, set()
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=prefix):
            for item in page.get("Versions") or []:
                found.setdefault(item["Key"], []).append((item["LastModified"], item["VersionId"]))
            for item in page.get("DeleteMarkers") or []:
                deleted.add(item["Key"])
        return dict((k, [v for dummy, v in sorted(vs, reverse=True)]) for k, vs in found.items()), deleted

    def delete_markers(self, prefix):
        """(key, version id) of every delete marker under ``prefix``."""
        found = []
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.settings.bucket, Prefix=prefix):
            found.extend((item["Key"], item["VersionId"]) for item in page.get("DeleteMarkers") or [])
        return found

    def delete_versions(self, pairs):
        """Delete these (key, version id) for good, 1000 a request."""
        pairs = list(pairs)
        for start in range(0, len(pairs), 1000):
            chunk = [dict(Key=k, VersionId=v) for k, v in pairs[start:start + 1000]]
            answer = self.client.delete_objects(Bucket=self.settings.bucket, Delete=dict(Objects=chunk, Quiet=True))
            if answer.get("Errors"):
                error = answer["Errors"][0]
                raise Failure("prune: deleting %s failed (%s: %s)" % (error.get("Key"), error.get("Code"), error.get("Message")))

    def set_ids(self):
        """The ids of the complete sets (with a manifest), oldest first."""
        prefix = self.settings.key("") + "/" if self.settings.prefix else ""
        found = set()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=prefix):
            for item in page.get("Contents") or []:
                rest = item["Key"][len(prefix):].split("/")
                if len(rest) == 2 and rest[1] == MANIFEST and SET_ID_RE.match(rest[0]):
                    found.add(rest[0])
        return sorted(found)


# ---- PostgreSQL ------------------------------------------------------------------------------------

def _connect(database=None):
    """A connection as libpq's environment says (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE)."""
    import psycopg2  # pylint: disable=import-outside-toplevel
    params = {}
    if database:
        params["dbname"] = database
    return psycopg2.connect(**params)


def table_counts(cursor):
    """table -> exact row count, for every ordinary table of the schemas Mastodon uses."""
    cursor.execute("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
                   "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' "
                   "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
                   "ORDER BY 1")
    counts = {}
    for (table,) in cursor.fetchall():
        cursor.execute("SELECT count(*) FROM %s" % table)  # the name comes quoted from the catalogue
        counts[table] = cursor.fetchone()[0]
    return counts


def schema_version(cursor):
    cursor.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return None
    cursor.execute("SELECT max(version) FROM public.schema_migrations")
    return cursor.fetchone()[0]


def _last_lines(data, count=2):
    return " ".join(data.decode("utf-8", "replace").strip().splitlines()[-count:])


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- commands --------------------------------------------------------------------------------------

def read_keys(settings):
    """The keys to back up, as bytes of JSON. From BACKUP_KEYS_DIR: ``{"secrets": {secret: {key:
    base64 of the value}}}``, one Secret per folder, one key per file (the files Kubernetes mounts
    for a Secret; its hidden ``..data`` entries are skipped), so every value comes back byte for
    byte. From BACKUP_KEYS_FILE: that file's JSON, as it is."""
    try:
        if settings.keys_dir:
            secrets = {}
            for name in sorted(os.listdir(settings.keys_dir)):
                folder = os.path.join(settings.keys_dir, name)
                if name.startswith(".") or not os.path.isdir(folder):
                    continue
                values = secrets[name] = {}
                for key in sorted(os.listdir(folder)):
                    if not key.startswith(".") and os.path.isfile(os.path.join(folder, key)):
                        with open(os.path.join(folder, key), "rb") as handle:
                            values[key] = base64.b64encode(handle.read()).decode("ascii")
            if not secrets:
                raise ValueError("no Secret folder in %s" % settings.keys_dir)
            return json.dumps(dict(secrets=secrets), sort_keys=True).encode()
        with open(settings.keys_file, "rb") as handle:
            keys = handle.read()
        json.loads(keys)
        return keys
    except (OSError, ValueError) as exc:
        raise Failure("the keys to back up cannot be read (%s)" % exc)


class LocalDump:
    """pg_dump run by this script (on the controller, or wherever pg_dump is at hand)."""

    def __init__(self, settings, snapshot):
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([settings.pg_dump, "--format=custom", "--no-password", "--snapshot=" + snapshot],
                                     stdout=subprocess.PIPE, stderr=self.errors)
        self.stdout = self.proc.stdout

    def finish(self, stopped):
        """(exit status, the last lines it wrote on stderr), after it ended; ``stopped``: the
        reading side failed, so it is killed rather than waited for."""
        self.stdout.close()
        if self.proc.poll() is None and stopped:
            self.proc.kill()
        self.proc.wait()
        self.errors.seek(0)
        text = _last_lines(self.errors.read())
        self.errors.close()
        return self.proc.returncode, text


class SidecarDump:
    """pg_dump run by the backup Job's dump container (``files/dump.sh``, from the PostgreSQL
    server's own image, so pg_dump is never older than the server). The two containers share the
    folder BACKUP_DUMP_DIR: this side makes the FIFO ``dump`` and writes the snapshot id to
    ``snapshot``; dump.sh then runs pg_dump into the FIFO and writes its exit status to
    ``dump.rc`` and its errors to ``dump.err``. ``abort`` tells dump.sh to give up."""

    def __init__(self, settings, snapshot):
        self.dir, self.wait = settings.dump_dir, settings.dump_wait
        fifo = os.path.join(self.dir, "dump")
        if not os.path.exists(fifo):
            os.mkfifo(fifo, 0o600)
        with open(os.path.join(self.dir, "snapshot.tmp"), "w") as handle:
            handle.write(snapshot)
        os.rename(os.path.join(self.dir, "snapshot.tmp"), os.path.join(self.dir, "snapshot"))
        opened = []
        opener = threading.Thread(target=lambda: opened.append(open(fifo, "rb")), daemon=True)
        opener.start()
        opener.join(self.wait)
        if not opened:
            # free the blocked open with a writer of our own, then give up
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            opener.join()
            opened[0].close()
            self.abort()
            raise Failure("the dump container did not start pg_dump within %d s; see its log" % self.wait)
        self.stdout = opened[0]

    def abort(self):
        with open(os.path.join(self.dir, "abort"), "w"):
            pass

    def finish(self, stopped):
        self.stdout.close()
        if stopped:
            self.abort()
        rc_file = os.path.join(self.dir, "dump.rc")
        for dummy in range(self.wait * 10):
            if os.path.exists(rc_file):
                break
            time.sleep(0.1)
        else:
            return 124, "the dump container did not report its exit status within %d s" % self.wait
        with open(rc_file) as handle:
            code = int(handle.read().strip() or 1)
        try:
            with open(os.path.join(self.dir, "dump.err"), "rb") as handle:
                return code, _last_lines(handle.read())
        except OSError:
            return code, ""


def backup(settings, store=None, set_id=None):
    """Make one set; returns its manifest."""
    settings.need("bucket", "recipients", "keys_dir|keys_file")
    to = recipients(settings.recipients)
    store = store or Store(settings)
    started = datetime.datetime.now(datetime.timezone.utc)
    set_id = set_id or started.strftime("%Y%m%dT%H%M%SZ")
    if not SET_ID_RE.match(set_id):
        raise Failure("BACKUP_SET_ID: %r is not a set id like 20261202T031500Z" % (set_id,))
    keys = read_keys(settings)

    # one snapshot for the dump and the row counts: the manifest describes exactly what was dumped
    conn = _connect()
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    parts = {}
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot = cursor.fetchone()[0]
        dump = (SidecarDump if settings.dump_dir else LocalDump)(settings, snapshot)
        reader, thread = encrypted_stream(dump.stdout, to)
        counted = Counted(reader)
        uploaded = False
        try:
            store.upload(counted, settings.key(set_id, DB_PART))
            uploaded = True
        finally:
            # whatever happened, nothing is left running: a stopped upload stops the encryption
            # (its pipe closes), which stops pg_dump (its pipe closes)
            reader.close()
            thread.join()
            code, errors = dump.finish(stopped=not uploaded or bool(thread.errors))
        if code != 0:
            raise Failure("pg_dump failed (exit %d): %s" % (code, errors))
        if thread.errors:
            raise Failure("encrypting the dump failed: %s" % thread.errors[0])
        parts[DB_PART] = dict(size=counted.size, sha256=counted.sha256.hexdigest())
        counts = table_counts(cursor)
        version = schema_version(cursor)
    finally:
        conn.rollback()
        conn.close()

    reader, thread = encrypted_stream(io.BytesIO(keys), to)
    counted = Counted(reader)
    store.upload(counted, settings.key(set_id, KEYS_PART))
    thread.join()
    if thread.errors:
        raise Failure("encrypting the keys failed: %s" % thread.errors[0])
    parts[KEYS_PART] = dict(size=counted.size, sha256=counted.sha256.hexdigest())

    manifest = dict(format=FORMAT, id=set_id, mastodon_version=settings.mastodon_version, schema_version=version,
                    local_domain=settings.local_domain, database=settings.env.get("PGDATABASE"),
                    started=started.strftime("%Y-%m-%dT%H:%M:%SZ"), finished=_now(), parts=parts, tables=counts,
                    recipients=len(to))
    store.put_json(settings.key(set_id, MANIFEST), manifest)
    return manifest


def resolve(store, wanted):
    # a set id from the future (a clock gone wrong, or a writer that wants to stay "latest" for
    # good) is never picked as the latest; it can still be named
    horizon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    ids = store.set_ids()
    if wanted == "latest":
        ids = [i for i in ids if i <= horizon]
        if not ids:
            raise Failure("restore_backup=latest: there is no complete set under s3://%s/%s"
                          % (store.settings.bucket, store.settings.prefix))
        return ids[-1]
    if not SET_ID_RE.match(wanted or ""):
        raise Failure("restore_backup: %r is not a set id (like 20261202T031500Z) or latest" % (wanted,))
    if wanted not in ids:
        raise Failure("restore_backup: no complete set %s under s3://%s/%s" % (wanted, store.settings.bucket, store.settings.prefix))
    return wanted


def check(settings, wanted, store=None):
    """The manifest of the set, after every part's size and SHA-256 matched it. Each object of the
    set must have exactly one version and no delete marker: a set that was written over (the
    backup writer may add versions, never remove them) is refused, not guessed at. The manifest
    returned carries the version id of each part (``versions``), which the restore then reads."""
    store = store or Store(settings)
    set_id = resolve(store, wanted)
    versions, deleted = store.versions(settings.key(set_id) + "/")
    rewritten = sorted(k for k, v in versions.items() if len(v) != 1) + sorted(deleted)
    if rewritten:
        raise Failure("restore_backup: set %s was written over after it was made (%s has several versions or a delete "
                      "marker); nothing was changed. Check the bucket's history before you trust this set"
                      % (set_id, ", ".join(k.rsplit("/", 1)[-1] for k in rewritten)))
    pinned = dict((k.rsplit("/", 1)[-1], v[0]) for k, v in versions.items())
    manifest = json.loads(store.stream(settings.key(set_id, MANIFEST), pinned.get(MANIFEST)).read())
    if manifest.get("format") != FORMAT or manifest.get("id") != set_id:
        raise Failure("restore_backup: the manifest of %s is not a format-%d manifest of that set" % (set_id, FORMAT))
    for name in (DB_PART, KEYS_PART):
        expected = (manifest.get("parts") or {}).get(name)
        if not expected or name not in pinned:
            raise Failure("restore_backup: set %s has no %s" % (set_id, name))
        body = store.stream(settings.key(set_id, name), pinned[name])
        digest, size = hashlib.sha256(), 0
        for chunk in iter(lambda: body.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
        if size != expected["size"] or digest.hexdigest() != expected["sha256"]:
            raise Failure("restore_backup: %s of set %s is corrupt (size %d, expected %d; SHA-256 %s, expected %s); "
                          "nothing was changed" % (name, set_id, size, expected["size"], digest.hexdigest()[:12],
                                                   expected["sha256"][:12]))
    manifest["versions"] = pinned
    if settings.identity_file:
        # the private key decrypts the set: proven before anything is changed
        _keys(settings, manifest, identities(settings.identity_file), store)
    return manifest


def _keys(settings, manifest, ids, store):
    """The decrypted keys of a checked set (small: read whole)."""
    body = store.stream(settings.key(manifest["id"], KEYS_PART), manifest["versions"][KEYS_PART])
    try:
        return _pyrage().decrypt(body.read(), ids)
    except Exception as exc:  # pylint: disable=broad-except
        raise Failure("restore_identity_file: it cannot decrypt set %s (%s); give the private key of one of its "
                      "recipients; nothing was changed" % (manifest["id"], exc))


def _drop(database):
    admin = _connect("postgres")
    admin.autocommit = True
    try:
        admin.cursor().execute('DROP DATABASE IF EXISTS "%s"' % database)
    finally:
        admin.close()


def restore_db(settings, wanted, database, store=None):
    """Check the set and the private key, then restore its database into the new database
    ``database``; on a failure that database is dropped again, so nothing is left behind."""
    settings.need("identity_file")
    if not DB_NAME_RE.match(database or ""):
        raise Failure("restore database name %r: use lowercase letters, digits and '_'" % (database,))
    ids = identities(settings.identity_file)
    store = store or Store(settings)
    manifest = check(settings, wanted, store)
    _keys(settings, manifest, ids, store)  # the key works before anything is created
    admin = _connect("postgres")
    admin.autocommit = True
    try:
        cursor = admin.cursor()
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if cursor.fetchone():
            raise Failure("restore: the database %s already exists; restore only into a new database" % database)
        cursor.execute('CREATE DATABASE "%s" TEMPLATE template0 ENCODING \'UTF8\'' % database)
    finally:
        admin.close()
    try:
        _pg_restore(settings, manifest, ids, store, database)
    except BaseException:
        _drop(database)
        raise
    return manifest


def _pg_restore(settings, manifest, ids, store, database):
    body = store.stream(settings.key(manifest["id"], DB_PART), manifest["versions"][DB_PART])
    reader, thread = decrypted_stream(body, ids)
    env = dict(settings.env, PGDATABASE=database)
    with tempfile.TemporaryFile() as errors:
        # owners and grants as dumped: the database role must exist (provisioning creates it first)
        proc = subprocess.Popen([settings.pg_restore, "--no-password", "--exit-on-error", "--single-transaction",
                                 "--dbname=" + database], stdin=reader, stderr=errors, env=env)
        reader.close()  # only pg_restore reads the pipe now: if it stops, the decryption stops too
        proc.wait()
        thread.join()
        if proc.returncode:
            errors.seek(0)
            decrypting = " (decrypting failed too: %s)" % thread.errors[0] if thread.errors else ""
            raise Failure("restore: pg_restore into %s failed (exit %d): %s%s"
                          % (database, proc.returncode, _last_lines(errors.read()), decrypting))
    if thread.errors:
        raise Failure("restore: decrypting %s failed (%s)" % (DB_PART, thread.errors[0]))


def restore_keys(settings, wanted, path, store=None):
    """Check the set, then write its keys (JSON) to ``path``, readable by the owner only."""
    settings.need("identity_file")
    ids = identities(settings.identity_file)
    store = store or Store(settings)
    manifest = check(settings, wanted, store)
    data = _keys(settings, manifest, ids, store)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return manifest


def database_state(name):
    """Whether the database ``name`` exists, and how many tables it holds outside the system
    schemas (a database with tables holds data a restore would replace)."""
    admin = _connect("postgres")
    try:
        cursor = admin.cursor()
        cursor.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,))
        row = cursor.fetchone()
    finally:
        admin.close()
    others = _databases_like(name + "_")
    if not row:
        return dict(database=name, exists=False, tables=0, owner=None, others=others)
    conn = _connect(name)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                       "AND n.nspname NOT LIKE 'pg_toast%%'")
        tables = cursor.fetchone()[0]
    finally:
        conn.close()
    return dict(database=name, exists=True, tables=tables, owner=row[0], others=others)


def _databases_like(prefix):
    """The databases whose names start with ``prefix`` (earlier restores' copies and leftovers)."""
    admin = _connect("postgres")
    try:
        cursor = admin.cursor()
        cursor.execute("SELECT datname FROM pg_database WHERE left(datname, %s) = %s ORDER BY 1", (len(prefix), prefix))
        return [row[0] for row in cursor.fetchall()]
    finally:
        admin.close()


def swap_db(new, target, owner, keep_as):
    """Put the restored database ``new`` in the place of ``target``. An existing ``target`` is
    renamed to ``keep_as`` (kept, never dropped: the operator drops it once the restore is
    trusted), after its sessions were ended. ``target`` then belongs to ``owner``."""
    for name in (new, target, keep_as):
        if not DB_NAME_RE.match(name or ""):
            raise Failure("restore database name %r: use lowercase letters, digits and '_'" % (name,))
    admin = _connect("postgres")
    admin.autocommit = True
    try:
        cursor = admin.cursor()
        cursor.execute("SELECT datname FROM pg_database WHERE datname IN (%s, %s, %s)", (new, target, keep_as))
        present = set(row[0] for row in cursor.fetchall())
        if new not in present:
            raise Failure("restore: the restored database %s is missing; nothing was swapped" % new)
        if keep_as in present:
            raise Failure("restore: %s already exists (an earlier restore's copy of the old database); drop or rename it "
                          "first; nothing was swapped" % keep_as)
        if target in present:
            cursor.execute('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS false' % target)
            for attempt in range(10):
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                               "AND pid <> pg_backend_pid()", (target,))
                try:
                    cursor.execute('ALTER DATABASE "%s" RENAME TO "%s"' % (target, keep_as))
                    break
                except Exception:  # pylint: disable=broad-except
                    if attempt == 9:
                        cursor.execute('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % target)
                        raise
                    time.sleep(0.5)
            cursor.execute('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % keep_as)
        cursor.execute('ALTER DATABASE "%s" RENAME TO "%s"' % (new, target))
        cursor.execute('ALTER DATABASE "%s" OWNER TO "%s"' % (target, owner.replace('"', '""')))
    finally:
        admin.close()
    return dict(database=target, kept=keep_as if target in present else None)


def prune(settings, days, keep, store=None, now=None):
    """Delete the sets older than ``days`` days, every version of every object, but never the
    ``keep`` newest complete sets; parts of an unfinished set (no manifest) go after ``days``
    too. For a target whose server has no lifecycle rules; run with keys that may delete (the
    admin's, never the writer's). Returns what was deleted and what was kept."""
    days, keep = int(days), int(keep)
    if days < 1 or keep < 1:
        raise Failure("prune: keep sets at least 1 day, and at least 1 set (got %d days, %d sets)" % (days, keep))
    store = store or Store(settings)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    horizon = (now - datetime.timedelta(days=days)).strftime("%Y%m%dT%H%M%SZ")
    future = (now + datetime.timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    complete = store.set_ids()
    # sets dated in the future (a wrong clock, or a writer that wants real sets pruned) never
    # count among the newest ones that are kept
    protected = set([i for i in complete if i <= future][-keep:])
    base = settings.key("") + "/" if settings.prefix else ""
    versions, dummy = store.versions(base)
    doomed = {}
    for key, ids in versions.items():
        set_id = key[len(base):].split("/", 1)[0]
        if SET_ID_RE.match(set_id) and set_id < horizon and set_id not in protected:
            doomed.setdefault(set_id, []).extend((key, v) for v in ids)
    markers = store.delete_markers(base)
    for key, version in markers:
        set_id = key[len(base):].split("/", 1)[0]
        if set_id in doomed:
            doomed[set_id].append((key, version))
    for set_id in sorted(doomed):
        store.delete_versions(doomed[set_id])
    return dict(deleted=sorted(doomed), kept=[i for i in complete if i not in doomed], horizon=horizon)


MEDIA_INDEX = ".fediverse-mastodon-mirror.json"


def mirror_media(settings, store=None, media=None):
    """Copy the media bucket (MEDIA_S3_*) into the bucket BACKUP_MEDIA_BUCKET of the backup
    target, incrementally: an object is copied when it is new or its ETag changed since the last
    run, which the index object MEDIA_INDEX of the target bucket remembers. Objects are streamed
    (never whole in memory), keep their keys and content types, and are never deleted from the
    copy (a media backup keeps what Mastodon removed; the bucket's own rules decide). Runs with
    keys that may read the target (the admin's): the backup Job's writer may not."""
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.config import Config  # pylint: disable=import-outside-toplevel
    from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel
    env = settings.env
    target_bucket = env.get("BACKUP_MEDIA_BUCKET")
    source_bucket = env.get("MEDIA_S3_BUCKET")
    if not (target_bucket and source_bucket):
        raise Failure("mirror-media: set MEDIA_S3_BUCKET and BACKUP_MEDIA_BUCKET (backup_media_bucket)")
    store = store or Store(settings)
    media = media or boto3.client(
        "s3", endpoint_url=env.get("MEDIA_S3_ENDPOINT") or None, region_name=env.get("MEDIA_S3_REGION") or "us-east-1",
        aws_access_key_id=env.get("MEDIA_AWS_ACCESS_KEY_ID"), aws_secret_access_key=env.get("MEDIA_AWS_SECRET_ACCESS_KEY"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}))
    started = _now()
    try:
        index = json.loads(store.client.get_object(Bucket=target_bucket, Key=MEDIA_INDEX)["Body"].read()).get("objects") or {}
    except ClientError as exc:
        if (exc.response.get("Error") or {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        index = {}
    counts = dict(objects=0, copied=0, copied_bytes=0, unchanged=0)

    def save():
        written = store.client.put_object(Bucket=target_bucket, Key=MEDIA_INDEX, ContentType="application/json",
                                          Body=json.dumps(dict(source=source_bucket, updated=_now(), objects=index)).encode())
        # on a versioned bucket, drop the index's older versions, so they do not pile up
        if written.get("VersionId") in (None, "", "null"):
            return
        listing = store.client.list_object_versions(Bucket=target_bucket, Prefix=MEDIA_INDEX)
        for item in listing.get("Versions") or []:
            if item["Key"] == MEDIA_INDEX and item["VersionId"] != written.get("VersionId"):
                store.client.delete_object(Bucket=target_bucket, Key=MEDIA_INDEX, VersionId=item["VersionId"])

    for page in media.get_paginator("list_objects_v2").paginate(Bucket=source_bucket):
        for item in page.get("Contents") or []:
            key, etag = item["Key"], item["ETag"]
            counts["objects"] += 1
            if index.get(key) == etag:
                counts["unchanged"] += 1
                continue
            source = media.get_object(Bucket=source_bucket, Key=key)
            extra = dict(ContentType=source["ContentType"]) if source.get("ContentType") else {}
            store.client.upload_fileobj(source["Body"], target_bucket, key, Config=store.transfer, ExtraArgs=extra)
            index[key] = etag
            counts["copied"] += 1
            counts["copied_bytes"] += item["Size"]
            if counts["copied"] % 2000 == 0:
                save()  # an interrupted mirror resumes from here
    save()
    return dict(counts, source=source_bucket, target=target_bucket, started=started, finished=_now())


def media_replication(settings, media=None):
    """The replication rules of the media bucket (MEDIA_S3_*, keys that may read its
    configuration): backup_media=replication relies on the S3 server to copy the media away."""
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.config import Config  # pylint: disable=import-outside-toplevel
    from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel
    env = settings.env
    bucket = env.get("MEDIA_S3_BUCKET")
    media = media or boto3.client(
        "s3", endpoint_url=env.get("MEDIA_S3_ENDPOINT") or None, region_name=env.get("MEDIA_S3_REGION") or "us-east-1",
        aws_access_key_id=env.get("MEDIA_AWS_ACCESS_KEY_ID"), aws_secret_access_key=env.get("MEDIA_AWS_SECRET_ACCESS_KEY"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}))
    try:
        rules = (media.get_bucket_replication(Bucket=bucket).get("ReplicationConfiguration") or {}).get("Rules") or []
    except ClientError as exc:
        code = (exc.response.get("Error") or {}).get("Code")
        if code not in ("ReplicationConfigurationNotFoundError", "NoSuchReplicationConfiguration", "NotImplemented", "XNotImplemented"):
            raise
        rules = []
    enabled = [r for r in rules if r.get("Status") == "Enabled"]
    if not enabled:
        raise Failure("backup_media: replication, but the media bucket %s has no enabled replication rule on its S3 server; "
                      "set one up there (docs/backups.md), or use backup_media: mirror" % bucket)
    return dict(bucket=bucket, rules=[dict(id=r.get("ID"), destination=(r.get("Destination") or {}).get("Bucket"))
                                      for r in enabled])


def verify(settings, wanted, database, store=None):
    """The restore drill: restore into ``database``, compare row counts with the manifest, drop it."""
    manifest = restore_db(settings, wanted, database, store)
    try:
        conn = _connect(database)
        try:
            restored = table_counts(conn.cursor())
        finally:
            conn.close()
    finally:
        _drop(database)
    expected = manifest.get("tables") or {}
    differences = dict((t, dict(expected=expected.get(t), restored=restored.get(t)))
                       for t in sorted(set(expected) | set(restored)) if expected.get(t) != restored.get(t))
    return dict(id=manifest["id"], ok=not differences, tables=len(expected), differences=differences)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = Settings()
    commands = dict(backup=(0, lambda: backup(settings, set_id=os.environ.get("BACKUP_SET_ID") or None)),
                    list=(0, lambda: Store(settings).set_ids()),
                    check=(1, lambda: check(settings, argv[1])),
                    verify=(2, lambda: verify(settings, argv[1], argv[2])))
    commands["restore-db"] = (2, lambda: restore_db(settings, argv[1], argv[2]))
    commands["restore-keys"] = (2, lambda: restore_keys(settings, argv[1], argv[2]))
    commands["db-state"] = (1, lambda: database_state(argv[1]))
    commands["prune"] = (2, lambda: prune(settings, argv[1], argv[2]))
    commands["mirror-media"] = (0, lambda: mirror_media(settings))
    commands["media-replication"] = (0, lambda: media_replication(settings))
    commands["swap-db"] = (4, lambda: swap_db(argv[1], argv[2], argv[3], argv[4]))
    if not argv or argv[0] not in commands or len(argv) != commands[argv[0]][0] + 1:
        sys.stderr.write(__doc__.split("Commands", 1)[1].split("Exit status", 1)[0])
        return 2
    try:
        result = commands[argv[0]][1]()
    except Failure as exc:
        sys.stderr.write("%s\n" % exc)
        return 1
    except Exception as exc:  # pylint: disable=broad-except
        # the S3 or PostgreSQL client's own error, as one line (no traceback, no credential: the
        # clients do not put them in their messages)
        sys.stderr.write("%s: %s\n" % (type(exc).__name__, " ".join(str(exc).split())))
        return 1
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    if argv[0] == "verify" and not result["ok"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
