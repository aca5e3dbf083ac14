# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup role's script (roles/backup/files/mastodon_backup.py), the file the backup Job runs,
run on the host against the lab's real PostgreSQL and Ceph RGW (issue 15): a round trip of a
database with random rows, non-ASCII text and a large object, and of the keys; the parts are
unreadable without the private key; a corrupted part and an existing target are refused before
anything changes; the restore drill compares row counts.

Needs the lab (`eval "$(make -s lab-env)"`), Debian's `age` (the lab installs it) and pyrage.
"""

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
import uuid

import pytest

from ansible_run import REPO
from s3_checks import remove_bucket

SCRIPT = os.path.join(REPO, "roles", "backup", "files", "mastodon_backup.py")
NEEDED = ("LAB_PG_HOST", "LAB_PG_PORT", "LAB_PG_USER", "LAB_PG_PASSWORD", "LAB_S3_ENDPOINT", "LAB_S3_ACCESS_KEY",
          "LAB_S3_SECRET_KEY")
pytestmark = [pytest.mark.lab, pytest.mark.skipif(
    any(not os.environ.get(n) for n in NEEDED), reason="needs the lab: eval \"$(make -s lab-env)\"")]

pyrage = pytest.importorskip("pyrage")
psycopg2 = pytest.importorskip("psycopg2")
boto3 = pytest.importorskip("boto3")

ROWS = 3000
TEXTS = ["Grüße aus Köln", "東京で会いましょう", "Привет, мир", "🐘 toot toot", "plain ascii", "tab\tand\nnew line", "quote ' \" \\"]


def pg(database="postgres"):
    conn = psycopg2.connect(host=os.environ["LAB_PG_HOST"], port=os.environ["LAB_PG_PORT"], user=os.environ["LAB_PG_USER"],
                            password=os.environ["LAB_PG_PASSWORD"], dbname=database)
    conn.autocommit = True
    return conn


def s3():
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=os.environ["LAB_S3_ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id=os.environ["LAB_S3_ACCESS_KEY"], aws_secret_access_key=os.environ["LAB_S3_SECRET_KEY"],
                        config=Config(s3={"addressing_style": "path"}))


def database_exists(name):
    with pg() as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None


def drop_database(name):
    conn = pg()
    try:
        conn.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    finally:
        conn.close()


def fingerprint(database):
    """table -> md5 of every row in order, plus the large objects' bytes."""
    conn = pg(database)
    try:
        cur = conn.cursor()
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        tables = [t for (t,) in cur.fetchall()]
        out = {}
        for table in tables:
            cur.execute('SELECT count(*), md5(coalesce(string_agg(t::text, \'|\' ORDER BY t::text), \'\')) FROM "%s" t' % table)
            out[table] = cur.fetchone()
        cur.execute("SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid")
        out["large objects"] = cur.fetchall()
        return out
    finally:
        conn.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A database with random content, its keys file, an age key pair, a versioned bucket."""
    tag = uuid.uuid4().hex[:8]
    database, bucket = "it_backup_" + tag, "it-backup-" + tag
    rng = random.Random(tag)
    conn = pg()
    conn.cursor().execute('CREATE DATABASE "%s"' % database)
    conn.close()
    conn = pg(database)
    cur = conn.cursor()
    cur.execute("CREATE TABLE schema_migrations (version varchar PRIMARY KEY)")
    cur.execute("INSERT INTO schema_migrations VALUES ('20250101000000'), ('20260915120000')")
    cur.execute("CREATE TABLE statuses (id bigserial PRIMARY KEY, text text NOT NULL, sensitive boolean, created_at timestamptz DEFAULT now())")
    cur.execute("CREATE TABLE media (id bigserial PRIMARY KEY, blob bytea)")
    cur.execute("CREATE TABLE empty_table (id int)")
    for dummy in range(ROWS):
        text = rng.choice(TEXTS) + " " + "".join(rng.choice("abcdefghijklmnopqrstuvwxyzäöü") for dummy in range(rng.randint(1, 200)))
        cur.execute("INSERT INTO statuses (text, sensitive) VALUES (%s, %s)", (text, rng.random() < 0.1))
    for dummy in range(50):
        cur.execute("INSERT INTO media (blob) VALUES (%s)", (bytes(rng.getrandbits(8) for dummy in range(rng.randint(0, 4096))),))
    large = os.urandom(300 * 1024)
    cur.execute("SELECT lo_from_bytea(0, %s)", (psycopg2.Binary(large),))
    conn.close()

    client = s3()
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    directory = tmp_path_factory.mktemp("backup")
    identity = pyrage.x25519.Identity.generate()
    identity_file = directory / "identity.txt"
    identity_file.write_text("# the private key, never in the cluster\n%s\n" % identity)
    keys = dict(SECRET_KEY_BASE=os.urandom(64).hex(), OTP_SECRET=os.urandom(64).hex(),
                ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=base64.b64encode(os.urandom(32)).decode(),
                ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=base64.b64encode(os.urandom(32)).decode(),
                ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=base64.b64encode(os.urandom(32)).decode(),
                VAPID_PRIVATE_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
                VAPID_PUBLIC_KEY=base64.urlsafe_b64encode(os.urandom(65)).decode().rstrip("="))
    keys_file = directory / "keys.json"
    keys_file.write_bytes(json.dumps(keys, sort_keys=True).encode())
    env = dict(os.environ, PGHOST=os.environ["LAB_PG_HOST"], PGPORT=os.environ["LAB_PG_PORT"], PGUSER=os.environ["LAB_PG_USER"],
               PGPASSWORD=os.environ["LAB_PG_PASSWORD"], PGDATABASE=database,
               BACKUP_S3_ENDPOINT=os.environ["LAB_S3_ENDPOINT"], BACKUP_S3_BUCKET=bucket, BACKUP_S3_PREFIX="social/",
               AWS_ACCESS_KEY_ID=os.environ["LAB_S3_ACCESS_KEY"], AWS_SECRET_ACCESS_KEY=os.environ["LAB_S3_SECRET_KEY"],
               BACKUP_RECIPIENTS=str(identity.to_public()), BACKUP_KEYS_FILE=str(keys_file),
               MASTODON_VERSION="v4.6.3", LOCAL_DOMAIN="social.lab.test")
    env.pop("BACKUP_IDENTITY_FILE", None)
    yield dict(database=database, bucket=bucket, env=env, keys=keys, keys_file=keys_file, identity_file=identity_file,
               directory=directory, large=large)
    for name in (database, database + "_drill", database + "_other"):
        drop_database(name)
    remove_bucket(client, bucket)


def script(env, *args):
    proc = subprocess.run([sys.executable, SCRIPT] + list(args), env=env, capture_output=True, text=True, timeout=600, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def parts(world, set_id):
    client = s3()
    prefix = "social/%s/" % set_id
    listing = client.list_objects_v2(Bucket=world["bucket"], Prefix=prefix)
    return dict((item["Key"][len(prefix):], client.get_object(Bucket=world["bucket"], Key=item["Key"])["Body"].read())
                for item in listing.get("Contents") or [])


LATE_ROWS = 5


@pytest.fixture(scope="module")
def made(world):
    """One backup set of the world's database, and the fingerprint of the database it was made
    from. Rows are added while the backup runs (after its snapshot, before pg_dump starts): the
    set must not hold them, neither in the dump nor in the manifest's row counts."""
    before = fingerprint(world["database"])
    wrapper = world["directory"] / "pg_dump_with_late_writes.sh"
    wrapper.write_text("#!/bin/sh\nset -e\npsql -q -v ON_ERROR_STOP=1 -c \"INSERT INTO statuses (text) SELECT 'late ' || g "
                       "FROM generate_series(1, %d) g\" >&2\nexec pg_dump \"$@\"\n" % LATE_ROWS)
    wrapper.chmod(0o755)
    rc, out, err = script(dict(world["env"], BACKUP_PG_DUMP=str(wrapper)), "backup")
    assert rc == 0, err
    assert fingerprint(world["database"])["statuses"][0] == ROWS + LATE_ROWS, "the late rows were not written"
    return json.loads(out), before


def test_the_set_has_a_manifest_that_describes_it(made, world):
    manifest, before = made
    assert manifest["mastodon_version"] == "v4.6.3" and manifest["local_domain"] == "social.lab.test"
    assert manifest["schema_version"] == "20260915120000"
    assert manifest["tables"]['public.statuses'] == ROWS and manifest["tables"]["public.empty_table"] == 0
    assert manifest["started"] <= manifest["finished"]
    stored = parts(world, manifest["id"])
    assert sorted(stored) == ["db.dump.age", "keys.json.age", "manifest.json"]
    for name in ("db.dump.age", "keys.json.age"):
        assert manifest["parts"][name]["size"] == len(stored[name])
        assert manifest["parts"][name]["sha256"] == hashlib.sha256(stored[name]).hexdigest()
    assert json.loads(stored["manifest.json"]) == manifest
    rc, out, err = script(world["env"], "list")
    assert rc == 0 and json.loads(out) == [manifest["id"]], err


def test_the_parts_are_unreadable_without_the_private_key(made, world):
    manifest, dummy = made
    stored = parts(world, manifest["id"])
    for name in ("db.dump.age", "keys.json.age"):
        data = stored[name]
        assert data.startswith(b"age-encryption.org/v1\n-> X25519 "), name
        assert b"PGDMP" not in data, "%s holds pg_dump's magic bytes in clear" % name
        for key, value in world["keys"].items():
            assert value.encode() not in data, "%s holds %s in clear" % (name, key)
    for value in world["keys"].values():
        assert value.encode() not in stored["manifest.json"]
    # the same files decrypt with Debian's age: the format is age's, not pyrage's
    encrypted = world["directory"] / "db.dump.age"
    encrypted.write_bytes(stored["db.dump.age"])
    proc = subprocess.run(["age", "--decrypt", "--identity", str(world["identity_file"]), str(encrypted)],
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"PGDMP")


def test_a_round_trip_restores_the_data_and_the_keys_identically(made, world):
    manifest, before = made
    env = dict(world["env"], BACKUP_IDENTITY_FILE=str(world["identity_file"]))
    drop_database(world["database"])
    world["keys_file"].unlink()
    rc, out, err = script(env, "restore-db", "latest", world["database"])
    assert rc == 0, err
    assert json.loads(out)["id"] == manifest["id"]
    assert fingerprint(world["database"]) == before
    restored_keys = world["directory"] / "restored-keys.json"
    rc, out, err = script(env, "restore-keys", manifest["id"], str(restored_keys))
    assert rc == 0, err
    assert restored_keys.read_bytes() == json.dumps(world["keys"], sort_keys=True).encode()
    assert oct(restored_keys.stat().st_mode & 0o777) == "0o600"
    world["keys_file"].write_bytes(restored_keys.read_bytes())


def test_the_drill_compares_row_counts_and_leaves_nothing(made, world):
    manifest, dummy = made
    env = dict(world["env"], BACKUP_IDENTITY_FILE=str(world["identity_file"]))
    rc, out, err = script(env, "verify", "latest", world["database"] + "_drill")
    assert rc == 0, err
    result = json.loads(out)
    assert result == dict(id=manifest["id"], ok=True, tables=len(manifest["tables"]), differences={})
    assert not database_exists(world["database"] + "_drill")


def test_restoring_over_an_existing_database_is_refused(made, world):
    env = dict(world["env"], BACKUP_IDENTITY_FILE=str(world["identity_file"]))
    before = fingerprint(world["database"])
    rc, dummy, err = script(env, "restore-db", "latest", world["database"])
    assert rc == 1 and "already exists" in err, err
    assert fingerprint(world["database"]) == before


def test_a_wrong_key_is_refused_naming_the_variable(made, world):
    other = world["directory"] / "other.txt"
    other.write_text("%s\n" % pyrage.x25519.Identity.generate())
    env = dict(world["env"], BACKUP_IDENTITY_FILE=str(other))
    rc, dummy, err = script(env, "restore-db", "latest", world["database"] + "_other")
    assert rc == 1 and "restore_identity_file" in err and "nothing was changed" in err, err
    assert not database_exists(world["database"] + "_other")


def test_a_rewritten_or_corrupted_part_is_refused_before_anything_changes(made, world):
    manifest, dummy = made
    key = "social/%s/db.dump.age" % manifest["id"]
    client = s3()
    original = client.head_object(Bucket=world["bucket"], Key=key)["VersionId"]
    data = bytearray(client.get_object(Bucket=world["bucket"], Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    env = dict(world["env"], BACKUP_IDENTITY_FILE=str(world["identity_file"]))
    target = world["database"] + "_other"
    # written over (what a compromised writer can do): the older version is kept, the set refused
    client.put_object(Bucket=world["bucket"], Key=key, Body=bytes(data))
    rc, dummy, err = script(env, "restore-db", manifest["id"], target)
    assert rc == 1 and "set %s was written over" % manifest["id"] in err and "nothing was changed" in err, err
    assert not database_exists(target)
    # corrupted in place (one version, wrong bytes): the checksum refuses it
    client.delete_object(Bucket=world["bucket"], Key=key, VersionId=original)
    rc, dummy, err = script(env, "restore-db", manifest["id"], target)
    assert rc == 1 and "db.dump.age of set %s is corrupt" % manifest["id"] in err and "nothing was changed" in err, err
    assert not database_exists(target)
    rc, dummy, err = script(env, "check", "latest")
    assert rc == 1 and "corrupt" in err


DUMP_SH = os.path.join(REPO, "roles", "backup", "files", "dump.sh")


def test_the_jobs_two_containers_make_a_set_that_restores(made, world, tmp_path):
    """The backup Job as the lab cannot run it: files/dump.sh (the dump container) and the script
    with BACKUP_DUMP_DIR and BACKUP_KEYS_DIR (the backup container, Secrets mounted as folders)
    meet on a shared folder; the set restores with the same row counts and byte-identical keys."""
    shared, keys_dir = tmp_path / "shared", tmp_path / "keys"
    shared.mkdir()
    secrets = {"social-mastodon": {"SECRET_KEY_BASE": os.urandom(64).hex().encode(), "BINARY": os.urandom(48)},
               "social-mastodon-s3": {"AWS_SECRET_ACCESS_KEY": b"k" * 40}}
    for name, values in secrets.items():
        (keys_dir / name).mkdir(parents=True)
        for key, value in values.items():
            (keys_dir / name / key).write_bytes(value)
    (keys_dir / "..data").mkdir()  # what a Secret volume holds besides its keys: skipped
    env = dict(world["env"], BACKUP_DUMP_DIR=str(shared), BACKUP_KEYS_DIR=str(keys_dir), BACKUP_DUMP_WAIT="60")
    env.pop("BACKUP_KEYS_FILE")
    dumper = subprocess.Popen(["/bin/sh", DUMP_SH], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rc, out, err = script(env, "backup")
    dumper.wait(timeout=120)
    assert rc == 0, err
    assert dumper.returncode == 0 and (shared / "dump.rc").read_text().strip() == "0", dumper.stderr.read()
    manifest = json.loads(out)
    env = dict(world["env"], BACKUP_IDENTITY_FILE=str(world["identity_file"]))
    restored = tmp_path / "restored.json"
    rc, dummy, err = script(env, "restore-keys", manifest["id"], str(restored))
    assert rc == 0, err
    back = json.loads(restored.read_bytes())["secrets"]
    assert dict((n, dict((k, base64.b64decode(v)) for k, v in vs.items())) for n, vs in back.items()) == secrets
    rc, out, err = script(env, "verify", manifest["id"], world["database"] + "_drill")
    assert rc == 0 and json.loads(out)["ok"], err + out


def test_the_dump_container_gives_up_when_told(tmp_path):
    (tmp_path / "abort").write_text("")
    proc = subprocess.run(["/bin/sh", DUMP_SH], env=dict(os.environ, BACKUP_DUMP_DIR=str(tmp_path)), capture_output=True,
                          text=True, timeout=30, check=False)
    assert proc.returncode == 1 and "no snapshot to dump" in proc.stderr
    assert (tmp_path / "dump.rc").read_text().strip() == "1"


def test_prune_deletes_old_sets_for_good_but_never_the_newest(world):
    """prune, for servers without lifecycle rules: every version of a set older than the horizon
    goes, an unfinished old set too, and the newest complete sets stay whatever their age."""
    client, bucket = s3(), world["bucket"]
    old = ["20200101T000000Z", "20200102T000000Z", "20200103T000000Z"]
    for set_id in old:
        for name in ("db.dump.age", "keys.json.age"):
            client.put_object(Bucket=bucket, Key="social/%s/%s" % (set_id, name), Body=b"x")
            client.put_object(Bucket=bucket, Key="social/%s/%s" % (set_id, name), Body=b"y")  # a second version
        if set_id != old[-1]:  # the last one never finished
            client.put_object(Bucket=bucket, Key="social/%s/manifest.json" % set_id, Body=b"{}")
    rc, out, err = script(world["env"], "list")
    recent = [i for i in json.loads(out) if i not in old]
    assert recent, "the module's set must be there"
    rc, out, err = script(world["env"], "prune", "30", "1")
    assert rc == 0, err
    assert json.loads(out)["deleted"] == old
    left = set(item["Key"].split("/")[1] for item in client.list_object_versions(Bucket=bucket, Prefix="social/").get("Versions", []))
    assert left == set(recent)
    # everything old: the newest complete set is kept
    env = dict(world["env"], BACKUP_S3_PREFIX="other")
    for set_id in old[:2]:
        client.put_object(Bucket=bucket, Key="other/%s/manifest.json" % set_id, Body=b"{}")
    rc, out, err = script(env, "prune", "30", "1")
    assert rc == 0 and json.loads(out) == dict(deleted=[old[0]], kept=[old[1]], horizon=json.loads(out)["horizon"]), out + err
    rc, dummy, err = script(env, "prune", "0", "1")
    assert rc == 1 and "at least 1 day" in err


def test_the_media_mirror_copies_everything_once_then_only_what_changed(world):
    client, tag = s3(), uuid.uuid4().hex[:8]
    source, target = "it-media-" + tag, "it-media-copy-" + tag
    for name in (source, target):
        client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=target, VersioningConfiguration={"Status": "Enabled"})  # as the role makes it
    objects = dict(("media_attachments/files/%03d/original/%s.png" % (i, uuid.uuid4().hex), os.urandom(1000 + i))
                   for i in range(12))
    for key, body in objects.items():
        client.put_object(Bucket=source, Key=key, Body=body, ContentType="image/png")
    env = dict(world["env"], MEDIA_S3_ENDPOINT=os.environ["LAB_S3_ENDPOINT"], MEDIA_S3_BUCKET=source, BACKUP_MEDIA_BUCKET=target,
               MEDIA_AWS_ACCESS_KEY_ID=os.environ["LAB_S3_ACCESS_KEY"], MEDIA_AWS_SECRET_ACCESS_KEY=os.environ["LAB_S3_SECRET_KEY"])
    try:
        rc, out, err = script(env, "mirror-media")
        assert rc == 0, err
        first = json.loads(out)
        assert (first["objects"], first["copied"], first["unchanged"]) == (12, 12, 0)
        assert first["copied_bytes"] == sum(len(b) for b in objects.values())
        for key, body in objects.items():
            copy = client.get_object(Bucket=target, Key=key)
            assert copy["Body"].read() == body and copy["ContentType"] == "image/png"
        changed = sorted(objects)[3]
        client.put_object(Bucket=source, Key=changed, Body=b"changed")
        client.put_object(Bucket=source, Key="new/one.png", Body=b"new")
        client.delete_object(Bucket=source, Key=sorted(objects)[0])
        rc, out, err = script(env, "mirror-media")
        second = json.loads(out)
        assert (second["objects"], second["copied"], second["unchanged"]) == (12, 2, 10), second
        assert client.get_object(Bucket=target, Key=changed)["Body"].read() == b"changed"
        # what Mastodon removed stays in the copy
        assert client.get_object(Bucket=target, Key=sorted(objects)[0])["Body"].read() == objects[sorted(objects)[0]]
        # the index keeps one version, not one a save
        index = client.list_object_versions(Bucket=target, Prefix=".fediverse-mastodon-mirror.json")["Versions"]
        assert len(index) == 1
    finally:
        for name in (source, target):
            remove_bucket(client, name)
