# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The in-cluster S3 server's path, against the lab's real SeaweedFS (tests/lab/services/seaweedfs.sh,
which starts the minio role's own files/seaweedfs-server.sh): minio_bucket and minio_user
(api: seaweedfs) make the media bucket and Mastodon's user, and the server enforces what we
promise: anonymous GET allowed, anonymous LIST and PUT denied, a user that may write only to its
bucket and may not widen its rights."""

import json
import os
import subprocess
import sys
import uuid

import pytest

from s3_checks import denied, s3_client as client  # noqa: E402
from ansible_run import run_module

boto3 = pytest.importorskip("boto3")
requests = pytest.importorskip("requests")
from botocore.exceptions import ClientError  # noqa: E402

from ansible_collections.fediverse.mastodon.plugins.module_utils.s3 import S3Connection  # noqa: E402
from ansible_collections.fediverse.mastodon.plugins.module_utils.seaweedfs_admin import SeaweedfsAdmin  # noqa: E402

RUN_ENV = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}
SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "minio", "files", "seaweedfs-server.sh")

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def iam(sw):
    return SeaweedfsAdmin(S3Connection(sw["endpoint"], sw["access_key"], sw["secret_key"], "us-east-1", True))


@pytest.fixture(scope="module")
def buckets(sw):
    """The media bucket, made by minio_bucket as the provisioning phase does, and another bucket."""
    tag = uuid.uuid4().hex[:10]
    media, other = "sw-media-%s" % tag, "sw-other-%s" % tag
    args = dict(name=media, anonymous_read=True, endpoint=sw["endpoint"], access_key=sw["access_key"],
                secret_key=sw["secret_key"])
    res, dummy = run_module("minio_bucket", args, env=RUN_ENV)
    assert res["changed"] is True, res
    res, dummy = run_module("minio_bucket", args, env=RUN_ENV)
    assert res["changed"] is False, res
    admin = client(sw, sw["access_key"], sw["secret_key"])
    admin.create_bucket(Bucket=other)
    yield media, other
    for bucket in (media, other):
        run_module("minio_bucket", dict(name=bucket, state="absent", force=True, endpoint=sw["endpoint"],
                                        access_key=sw["access_key"], secret_key=sw["secret_key"]), env=RUN_ENV)


@pytest.fixture
def user(iam):
    name = "sw-user-%s" % uuid.uuid4().hex[:10]
    yield name
    try:
        iam.delete_user_policy(name, "%s-mastodon-rw" % name)
        for key in iam.access_keys(name):
            iam.delete_access_key(name, key)
        iam.delete_user(name)
    except Exception:  # pylint: disable=broad-except
        pass


def run(sw, check=False, diff=False, verbosity=0, **args):
    module_args = dict(api="seaweedfs", endpoint=sw["endpoint"], access_key=sw["access_key"], secret_key=sw["secret_key"])
    module_args.update(args)
    return run_module("minio_user", module_args, check=check, diff=diff, verbosity=verbosity, env=RUN_ENV)


def key_of(name):
    return name.replace("-", "")


def test_anonymous_visitors_may_read_media_and_nothing_else(sw, buckets):
    media, dummy_other = buckets
    admin = client(sw, sw["access_key"], sw["secret_key"])
    admin.put_object(Bucket=media, Key="media_attachments/a.png", Body=b"\x89PNG")
    base = "%s/%s" % (sw["endpoint"], media)
    assert requests.get(base + "/media_attachments/a.png", timeout=10).status_code == 200
    assert requests.get(base, timeout=10).status_code == 403, "anonymous LIST"
    assert requests.get(base + "?list-type=2", timeout=10).status_code == 403, "anonymous LIST v2"
    assert requests.put(base + "/evil", data=b"x", timeout=10).status_code == 403, "anonymous PUT"
    assert requests.delete(base + "/media_attachments/a.png", timeout=10).status_code == 403, "anonymous DELETE"
    assert requests.get(sw["endpoint"] + "/", timeout=10).status_code == 403, "anonymous ListBuckets"
    admin.delete_object(Bucket=media, Key="media_attachments/a.png")


def test_user_writes_only_its_bucket_and_rerun_changes_nothing(sw, iam, buckets, user):
    media, other = buckets
    res, dummy = run(sw, check=True, name=user, buckets=[media])
    assert res["changed"] is True and res["created"] is True, res
    assert iam.get_user(user) is None, "check mode created the user"

    res, proc = run(sw, name=user, buckets=[media], diff=True, verbosity=3)
    assert res["changed"] is True and res["created"] is True and res["secret"] == "generated", res
    assert res["user_access_key"] == key_of(user)
    secret = res["user_secret_key"]
    assert secret not in json.dumps(res["diff"]), "the diff must never hold a key"
    assert iam.access_keys(user) == [key_of(user)]
    assert "s3:ListBucketMultipartUploads" not in json.dumps(res["policy"])

    cli = client(sw, key_of(user), secret)
    key = "media_attachments/files/%s/original/a.png" % uuid.uuid4().hex[:8]
    cli.put_object(Bucket=media, Key=key, Body=b"\x89PNG upload", ACL="public-read", ContentType="image/png")
    assert cli.get_object(Bucket=media, Key=key)["Body"].read() == b"\x89PNG upload"
    assert key in [o["Key"] for o in cli.list_objects_v2(Bucket=media, Prefix="media_attachments/").get("Contents", [])]
    assert requests.get("%s/%s/%s" % (sw["endpoint"], media, key), timeout=10).status_code == 200
    upload = cli.create_multipart_upload(Bucket=media, Key=key + ".big")
    part = cli.upload_part(Bucket=media, Key=key + ".big", UploadId=upload["UploadId"], PartNumber=1, Body=b"y" * 64)
    cli.complete_multipart_upload(Bucket=media, Key=key + ".big", UploadId=upload["UploadId"],
                                  MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    cli.delete_object(Bucket=media, Key=key + ".big")
    cli.delete_object(Bucket=media, Key=key)

    assert denied(lambda: cli.put_object(Bucket=other, Key="x", Body=b"x")), "PUT to another bucket"
    assert denied(lambda: cli.list_objects_v2(Bucket=other)), "LIST of another bucket"
    assert denied(lambda: cli.create_bucket(Bucket="sw-own-%s" % uuid.uuid4().hex[:8])), "CreateBucket"
    assert denied(lambda: cli.put_bucket_policy(Bucket=media, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::%s/*" % media]}]}))), \
        "PutBucketPolicy on its own bucket"
    assert denied(lambda: cli.delete_bucket(Bucket=media)), "DeleteBucket"
    as_user = SeaweedfsAdmin(S3Connection(sw["endpoint"], key_of(user), secret, "us-east-1", True))
    with pytest.raises(Exception) as err:
        as_user.create_user("sw-evil-%s" % uuid.uuid4().hex[:6])
    assert getattr(err.value, "status", None) == 403, err.value

    res, dummy = run(sw, name=user, buckets=[media])
    assert res["changed"] is False and res["secret"] == "unchanged", res
    assert "user_secret_key" not in res


def test_store_in_keeps_the_key_and_a_lost_user_comes_back_with_it(sw, iam, buckets, user, kubernetes, core, namespace):
    media, dummy_other = buckets
    store = dict(namespace=namespace, name="media-creds")
    res, proc = run(sw, name=user, buckets=[media], store_in=store, verbosity=3)
    assert res["changed"] is True and "user_secret_key" not in res, res
    import base64
    data = {k: base64.b64decode(v).decode() for k, v in core.read_namespaced_secret("media-creds", namespace).data.items()}
    assert data["AWS_ACCESS_KEY_ID"] == key_of(user)
    assert data["AWS_SECRET_ACCESS_KEY"] not in proc.stdout + proc.stderr
    client(sw, key_of(user), data["AWS_SECRET_ACCESS_KEY"]).put_object(Bucket=media, Key="k", Body=b"1")
    res, dummy = run(sw, name=user, buckets=[media], store_in=store)
    assert res["changed"] is False, res

    # The server loses the user (a restore of an old volume, say): the stored key comes back.
    iam.delete_user_policy(user, "%s-mastodon-rw" % user)
    iam.delete_access_key(user, key_of(user))
    iam.delete_user(user)
    res, dummy = run(sw, name=user, buckets=[media], store_in=store)
    assert res["changed"] is True and res["secret"] == "restored", res
    client(sw, key_of(user), data["AWS_SECRET_ACCESS_KEY"]).delete_object(Bucket=media, Key="k")


def test_policy_drift_is_put_back(sw, iam, buckets, user):
    media, other = buckets
    secret = run(sw, name=user, buckets=[media])[0]["user_secret_key"]
    iam.put_user_policy(user, "%s-mastodon-rw" % user, json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::%s/*" % other]}]}))
    cli = client(sw, key_of(user), secret)
    cli.put_object(Bucket=other, Key="drift", Body=b"x")  # precondition: the widened policy works
    res, dummy = run(sw, name=user, buckets=[media], diff=True)
    assert res["changed"] is True, res
    assert denied(lambda: cli.put_object(Bucket=other, Key="drift2", Body=b"x"))
    client(sw, sw["access_key"], sw["secret_key"]).delete_object(Bucket=other, Key="drift")
    assert run(sw, name=user, buckets=[media])[0]["changed"] is False


def test_rotation_and_access_key_change(sw, iam, buckets, user):
    media, dummy_other = buckets
    first = "A" * 8 + uuid.uuid4().hex
    res, proc = run(sw, name=user, buckets=[media], user_secret_key=first, verbosity=3)
    assert res["changed"] is True and res["secret"] == "set", res
    assert first not in proc.stdout + proc.stderr, "a given key leaked into -vvv output"
    res, dummy = run(sw, name=user, buckets=[media], update_secret="always")
    assert res["changed"] is True and res["secret"] == "rotated", res
    client(sw, key_of(user), res["user_secret_key"]).put_object(Bucket=media, Key="r", Body=b"x")
    with pytest.raises(ClientError):
        client(sw, key_of(user), first).put_object(Bucket=media, Key="r2", Body=b"x")

    second = "B" * 8 + uuid.uuid4().hex
    res, dummy = run(sw, name=user, buckets=[media], user_access_key=key_of(user) + "b", user_secret_key=second, diff=True)
    assert res["changed"] is True and res["diff"]["before"]["other_access_keys"] == 1, res
    assert iam.access_keys(user) == [key_of(user) + "b"]
    client(sw, key_of(user) + "b", second).delete_object(Bucket=media, Key="r")


def test_absent_removes_user_keys_and_policy(sw, iam, buckets, user):
    media, dummy_other = buckets
    run(sw, name=user, buckets=[media])
    res, dummy = run(sw, name=user, state="absent", check=True)
    assert res["changed"] is True and iam.get_user(user) is True
    res, dummy = run(sw, name=user, state="absent")
    assert res["changed"] is True and iam.get_user(user) is None
    assert run(sw, name=user, state="absent")[0]["changed"] is False


def test_clear_errors(sw, iam, buckets, user):
    media, dummy_other = buckets
    res, dummy = run(sw, name=user, buckets=[media], access="add_only")
    assert res.get("failed") is True and "add_only cannot be enforced on SeaweedFS" in res["msg"], res
    res, dummy = run(sw, name=user, buckets=[media], user_access_key="no-dashes")
    assert res.get("failed") is True and res["msg"].startswith("user_access_key:"), res
    wrong = "WRONG" + uuid.uuid4().hex
    res, proc = run(sw, name=user, buckets=[media], secret_key=wrong)
    assert res.get("failed") is True and "rejected the admin credentials" in res["msg"], res
    assert wrong not in proc.stdout + proc.stderr
    assert iam.get_user(user) is None


def test_wrong_server_is_a_clear_error(sw, lab, user):
    """api: seaweedfs pointed at the lab's Ceph RGW stops before writing, naming the fix."""
    res, dummy = run(sw, name=user, buckets=["sw-nowhere"], endpoint=lab["endpoint"], access_key=lab["access_key"],
                     secret_key=lab["secret_key"])
    assert res.get("failed") is True, res
    assert "api:" in res["msg"], res["msg"]


def test_server_script_refuses_to_start_without_an_admin_identity(tmp_path):
    """Without AWS_ACCESS_KEY_ID/SECRET SeaweedFS would let anyone do anything: the role's script stops first."""
    env = dict(os.environ, WEED=os.environ.get("LAB_SEAWEEDFS_BIN", "weed"), DATA_DIR=str(tmp_path))
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    proc = subprocess.run(["sh", SCRIPT], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1 and "refusing to start an open server" in proc.stderr, proc
    assert not list(tmp_path.iterdir()), "nothing may be written before the check"
