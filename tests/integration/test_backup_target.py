# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup target on the lab's real Ceph RGW (issue 15): the backup writer's policy
(module_utils/s3_policy.backup_writer_policy) lets the backup script write a set and refuses
every delete; an overwrite only adds a version; the media bucket's anonymous read does not reach
the backup bucket.

Needs the lab's S3 server (`eval "$(make -s lab-env)"`).
"""

import json
import os
import subprocess
import sys
import uuid

import pytest

from s3_checks import denied, remove_bucket  # noqa: E402
from ansible_run import REPO

boto3 = pytest.importorskip("boto3")
requests = pytest.importorskip("requests")
pyrage = pytest.importorskip("pyrage")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from ansible_collections.fediverse.mastodon.plugins.module_utils import s3_policy  # noqa: E402
from ansible_collections.fediverse.mastodon.plugins.module_utils.ceph_admin import CephAdmin  # noqa: E402
from ansible_collections.fediverse.mastodon.plugins.module_utils.s3 import S3Connection  # noqa: E402

pytestmark = [pytest.mark.lab, pytest.mark.skipif(
    not (os.environ.get("LAB_PG_PASSWORD") and os.environ.get("LAB_S3_ENDPOINT")), reason="needs the lab: eval \"$(make -s lab-env)\"")]

SCRIPT = os.path.join(REPO, "roles", "backup", "files", "mastodon_backup.py")
PREFIX = "social"


def client(lab, access_key, secret_key):
    return boto3.client("s3", endpoint_url=lab["endpoint"], aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                        region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def target(lab):
    """A versioned backup bucket owned by the admin, a media bucket with anonymous read, and a
    backup writer with only the backup writer's policy."""
    tag = uuid.uuid4().hex[:8]
    admin = client(lab, lab["access_key"], lab["secret_key"])
    bucket, media, uid = "it-backups-" + tag, "it-bmedia-" + tag, "it-backup-writer-" + tag
    admin.create_bucket(Bucket=bucket)
    admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    admin.create_bucket(Bucket=media)
    admin.put_bucket_policy(Bucket=media, Policy=json.dumps(
        {"Version": "2012-10-17", "Statement": [s3_policy.anonymous_read_statement(media)]}))
    rgw = CephAdmin(S3Connection(lab["endpoint"], lab["access_key"], lab["secret_key"], "us-east-1", True))
    access_key, secret_key = "BKW" + uuid.uuid4().hex[:17].upper(), uuid.uuid4().hex + uuid.uuid4().hex[:8]
    rgw.create_user(uid, "backup writer (test)", access_key, secret_key)
    rgw.put_user_policy(uid, "backup-write", s3_policy.policy_json(s3_policy.backup_writer_policy(bucket, PREFIX)))
    yield dict(admin=admin, bucket=bucket, media=media, writer=client(lab, access_key, secret_key),
               access_key=access_key, secret_key=secret_key)
    try:
        rgw.delete_user_policy(uid, "backup-write")
        rgw.delete_user(uid, purge_data=True)
    finally:
        for name in (bucket, media):
            remove_bucket(admin, name)


def test_the_writer_adds_objects_under_its_prefix_and_nothing_else(target):
    writer, bucket = target["writer"], target["bucket"]
    key = "%s/%s/probe" % (PREFIX, uuid.uuid4().hex[:8])
    writer.put_object(Bucket=bucket, Key=key, Body=b"one", ACL="bucket-owner-full-control")
    assert denied(lambda: writer.put_object(Bucket=bucket, Key="elsewhere/probe", Body=b"x"))
    assert denied(lambda: writer.put_object(Bucket=target["media"], Key="probe", Body=b"x"))
    assert denied(lambda: writer.get_object(Bucket=bucket, Key=key))
    assert denied(lambda: writer.list_objects_v2(Bucket=bucket))


def test_the_writer_cannot_delete_or_destroy_a_version(target):
    writer, admin, bucket = target["writer"], target["admin"], target["bucket"]
    key = "%s/%s/set-part" % (PREFIX, uuid.uuid4().hex[:8])
    writer.put_object(Bucket=bucket, Key=key, Body=b"the backup", ACL="bucket-owner-full-control")
    first = admin.head_object(Bucket=bucket, Key=key)["VersionId"]
    assert denied(lambda: writer.delete_object(Bucket=bucket, Key=key))
    assert denied(lambda: writer.delete_object(Bucket=bucket, Key=key, VersionId=first))
    try:
        answer = writer.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key, "VersionId": first}, {"Key": key}]})
        assert not answer.get("Deleted") and answer.get("Errors"), answer
        assert all(error["Code"] == "AccessDenied" for error in answer["Errors"]), answer
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied"
    assert admin.head_object(Bucket=bucket, Key=key, VersionId=first)["ContentLength"] == len(b"the backup")
    assert denied(lambda: writer.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}))
    assert denied(lambda: writer.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "wipe", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]}))
    assert denied(lambda: writer.delete_bucket(Bucket=bucket))
    # an overwrite cannot be refused by a policy; on the versioned bucket it only adds a version
    writer.put_object(Bucket=bucket, Key=key, Body=b"garbage", ACL="bucket-owner-full-control")
    versions = admin.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert len(versions) == 2
    assert admin.get_object(Bucket=bucket, Key=key, VersionId=first)["Body"].read() == b"the backup"


def test_the_backup_script_writes_a_set_with_only_the_writers_keys(target, tmp_path):
    database = "it_btarget_" + uuid.uuid4().hex[:8]
    import psycopg2
    conn = psycopg2.connect(host=os.environ["LAB_PG_HOST"], port=os.environ["LAB_PG_PORT"], user=os.environ["LAB_PG_USER"],
                            password=os.environ["LAB_PG_PASSWORD"], dbname="postgres")
    conn.autocommit = True
    conn.cursor().execute('CREATE DATABASE "%s"' % database)
    try:
        keys = tmp_path / "keys.json"
        keys.write_text(json.dumps({"SECRET_KEY_BASE": uuid.uuid4().hex * 4}))
        env = dict(os.environ, PGHOST=os.environ["LAB_PG_HOST"], PGPORT=os.environ["LAB_PG_PORT"], PGUSER=os.environ["LAB_PG_USER"],
                   PGPASSWORD=os.environ["LAB_PG_PASSWORD"], PGDATABASE=database, BACKUP_S3_ENDPOINT=os.environ["LAB_S3_ENDPOINT"],
                   BACKUP_S3_BUCKET=target["bucket"], BACKUP_S3_PREFIX=PREFIX, AWS_ACCESS_KEY_ID=target["access_key"],
                   AWS_SECRET_ACCESS_KEY=target["secret_key"], BACKUP_KEYS_FILE=str(keys),
                   BACKUP_RECIPIENTS=str(pyrage.x25519.Identity.generate().to_public()))
        proc = subprocess.run([sys.executable, SCRIPT, "backup"], env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        manifest = json.loads(proc.stdout)
        # the bucket's owner reads every part the writer wrote (bucket-owner-full-control)
        for name in ("db.dump.age", "keys.json.age", "manifest.json"):
            body = target["admin"].get_object(Bucket=target["bucket"], Key="%s/%s/%s" % (PREFIX, manifest["id"], name))["Body"].read()
            assert body
    finally:
        conn.cursor().execute('DROP DATABASE IF EXISTS "%s"' % database)
        conn.close()


def test_the_media_buckets_anonymous_read_does_not_reach_the_backups(target, lab):
    key = "%s/%s/anon" % (PREFIX, uuid.uuid4().hex[:8])
    target["admin"].put_object(Bucket=target["bucket"], Key=key, Body=b"private")
    target["admin"].put_object(Bucket=target["media"], Key="public.png", Body=b"public")
    assert requests.get("%s/%s/public.png" % (lab["endpoint"], target["media"]), timeout=10).status_code == 200
    assert requests.get("%s/%s/%s" % (lab["endpoint"], target["bucket"], key), timeout=10).status_code == 403
    assert requests.get("%s/%s" % (lab["endpoint"], target["bucket"]), timeout=10).status_code == 403
