# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fediverse.mastodon.minio_user (api: ceph) against the lab's real Ceph RGW.

What the user may do is checked with boto3 signed by the user's own keys, and with anonymous
HTTP requests. store_in and via_kubernetes need the lab's kube-apiserver (KUBECONFIG) and are
skipped without it.

MinIO users: the same module with ``api: minio`` can be run against your own MinIO server, see
test_minio_own_server_* below and docs/modules/s3.md (MINIO_TEST_ENDPOINT...).
"""

import json
import os
import sys
import uuid

import pytest

from s3_checks import denied, s3_client  # noqa: E402
from ansible_run import run_module

boto3 = pytest.importorskip("boto3")
requests = pytest.importorskip("requests")
from botocore.exceptions import ClientError  # noqa: E402

from ansible_collections.fediverse.mastodon.plugins.module_utils.ceph_admin import CephAdmin, s3_keys  # noqa: E402
from ansible_collections.fediverse.mastodon.plugins.module_utils.s3 import S3Connection  # noqa: E402

RUN_ENV = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def admin(lab):
    return s3_client(lab, lab["access_key"], lab["secret_key"])


@pytest.fixture(scope="module")
def rgw(lab):
    return CephAdmin(S3Connection(lab["endpoint"], lab["access_key"], lab["secret_key"], "us-east-1", True))


def _purge(admin, bucket):
    try:
        for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents") or []:
                admin.delete_object(Bucket=bucket, Key=o["Key"])
        admin.delete_bucket(Bucket=bucket)
    except ClientError:
        pass


@pytest.fixture(scope="module")
def buckets(lab, admin):
    """A media bucket with anonymous read (made by minio_bucket) and another bucket."""
    tag = uuid.uuid4().hex[:10]
    media, other = "it-media-%s" % tag, "it-other-%s" % tag
    res, dummy = run_module("minio_bucket", dict(name=media, anonymous_read=True, endpoint=lab["endpoint"],
                                                 access_key=lab["access_key"], secret_key=lab["secret_key"]),
                            env=RUN_ENV)
    assert res["changed"] is True, res
    admin.create_bucket(Bucket=other)
    yield media, other
    _purge(admin, media)
    _purge(admin, other)


@pytest.fixture
def user(rgw):
    name = "it-user-%s" % uuid.uuid4().hex[:10]
    yield name
    try:
        rgw.delete_user_policy(name, "%s-mastodon-rw" % name)
        rgw.delete_user(name)
    except Exception:  # pylint: disable=broad-except
        pass


def run(lab, check=False, diff=False, verbosity=0, env=None, **args):
    module_args = dict(api="ceph", endpoint=lab["endpoint"], access_key=lab["access_key"],
                       secret_key=lab["secret_key"])
    module_args.update(args)
    run_env = dict(RUN_ENV)
    run_env.update(env or {})
    return run_module("minio_user", module_args, check=check, diff=diff, verbosity=verbosity, env=run_env)


def assert_scoped_access(lab, access_key, secret_key, media, other):
    """The user can do what Mastodon does in its bucket, and nothing elsewhere."""
    cli = s3_client(lab, access_key, secret_key)
    key = "media_attachments/files/%s/original/a.png" % uuid.uuid4().hex[:8]
    cli.put_object(Bucket=media, Key=key, Body=b"\x89PNG upload", ACL="public-read", ContentType="image/png")
    assert cli.get_object(Bucket=media, Key=key)["Body"].read() == b"\x89PNG upload"
    listing = cli.list_objects_v2(Bucket=media, Prefix="media_attachments/")
    assert key in [o["Key"] for o in listing.get("Contents", [])]
    assert requests.get("%s/%s/%s" % (lab["endpoint"], media, key), timeout=10).status_code == 200, \
        "anonymous GET of the user's upload"
    cli.put_object_acl(Bucket=media, Key=key, ACL="public-read")
    upload = cli.create_multipart_upload(Bucket=media, Key=key + ".part")
    cli.abort_multipart_upload(Bucket=media, Key=key + ".part", UploadId=upload["UploadId"])
    cli.delete_object(Bucket=media, Key=key)
    assert requests.get("%s/%s/%s" % (lab["endpoint"], media, key), timeout=10).status_code in (403, 404)

    assert denied(lambda: cli.put_object(Bucket=other, Key="x", Body=b"x")), "PUT to another bucket"
    assert denied(lambda: cli.list_objects_v2(Bucket=other)), "LIST of another bucket"
    assert denied(lambda: cli.create_bucket(Bucket="it-own-%s" % uuid.uuid4().hex[:8])), "CreateBucket"
    assert denied(lambda: cli.put_bucket_policy(Bucket=media, Policy=json.dumps(
        {"Version": "2012-10-17", "Statement": []}))), "PutBucketPolicy on its own bucket"
    assert denied(lambda: cli.delete_bucket(Bucket=media)), "DeleteBucket"


def test_ceph_user_scoped_access_and_idempotence(lab, rgw, buckets, user):
    media, other = buckets
    res, dummy = run(lab, check=True, name=user, buckets=[media])
    assert res["changed"] is True and res["created"] is True, res
    assert rgw.get_user(user) is None, "check mode created the user"

    res, dummy = run(lab, name=user, buckets=[media], diff=True)
    assert res["changed"] is True and res["created"] is True and res["secret"] == "generated", res
    secret = res["user_secret_key"]
    assert len(secret) == 40 and secret.isalnum()
    assert res["diff"]["before"]["exists"] is False and "secret_key" not in json.dumps(res["diff"]["before"])
    assert secret not in json.dumps(res["diff"]), "the diff must never hold a key"
    assert s3_keys(rgw.get_user(user)) == {user: secret}
    assert_scoped_access(lab, user, secret, media, other)

    res, dummy = run(lab, name=user, buckets=[media])
    assert res["changed"] is False, res
    assert "user_secret_key" not in res, "the key is returned only once"
    assert res["secret"] == "unchanged"


def test_policy_drift_and_bucket_change(lab, rgw, buckets, user):
    media, other = buckets
    res, dummy = run(lab, name=user, buckets=[media])
    secret = res["user_secret_key"]
    # Widen the policy by hand: the module puts it back.
    rgw.put_user_policy(user, "%s-mastodon-rw" % user, json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::*"]}]}))
    cli = s3_client(lab, user, secret)
    cli.put_object(Bucket=other, Key="drift", Body=b"x")  # precondition: the widened policy works
    res, dummy = run(lab, name=user, buckets=[media], diff=True)
    assert res["changed"] is True, res
    assert res["diff"]["before"]["policy"]["Statement"][0]["Action"] == ["s3:*"]
    assert denied(lambda: cli.put_object(Bucket=other, Key="drift2", Body=b"x"))

    # Grant the second bucket too; then both work.
    res, dummy = run(lab, name=user, buckets=[media, other], diff=True)
    assert res["changed"] is True and res["diff"]["after"]["buckets"] == sorted([media, other]), res
    cli.put_object(Bucket=other, Key="now-allowed", Body=b"x")
    res, dummy = run(lab, name=user, buckets=[other, media])
    assert res["changed"] is False, res


def test_given_key_and_rotation(lab, rgw, buckets, user):
    media, other = buckets
    first, second = "A" * 8 + uuid.uuid4().hex, "B" * 8 + uuid.uuid4().hex
    res, proc = run(lab, name=user, buckets=[media], user_secret_key=first, verbosity=3)
    assert res["changed"] is True and res["secret"] == "set", res
    assert "user_secret_key" not in res or res["user_secret_key"] != first
    assert first not in proc.stdout + proc.stderr, "a given key leaked into -vvv output"
    s3_client(lab, user, first).put_object(Bucket=media, Key="k1", Body=b"1")

    # on_create (the default): a different given key does not rotate an existing user.
    res, dummy = run(lab, name=user, buckets=[media], user_secret_key=second)
    assert res["changed"] is False and res["secret"] == "unchanged", res
    assert s3_keys(rgw.get_user(user))[user] == first

    res, dummy = run(lab, name=user, buckets=[media], user_secret_key=second, update_secret="always")
    assert res["changed"] is True and res["secret"] == "set", res
    s3_client(lab, user, second).put_object(Bucket=media, Key="k2", Body=b"2")
    with pytest.raises(ClientError) as err:
        s3_client(lab, user, first).put_object(Bucket=media, Key="k3", Body=b"3")
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    res, dummy = run(lab, name=user, buckets=[media], user_secret_key=second, update_secret="always")
    assert res["changed"] is False, res

    # always without a given key: a rotation with a new generated key.
    res, dummy = run(lab, name=user, buckets=[media], update_secret="always")
    assert res["changed"] is True and res["secret"] == "rotated" and res["user_secret_key"] not in (first, second)
    s3_client(lab, user, res["user_secret_key"]).delete_object(Bucket=media, Key="k1")


def test_ceph_access_key_change_removes_the_old_key(lab, rgw, buckets, user):
    media, dummy_other = buckets
    secret = "K" * 8 + uuid.uuid4().hex
    res, dummy = run(lab, name=user, buckets=[media], user_access_key=user + "-a", user_secret_key=secret)
    assert res["changed"] is True and res["user_access_key"] == user + "-a", res
    s3_client(lab, user + "-a", secret).put_object(Bucket=media, Key="ak", Body=b"x")

    res, dummy = run(lab, name=user, buckets=[media], user_access_key=user + "-b", user_secret_key=secret, diff=True)
    assert res["changed"] is True, res
    assert res["diff"]["before"]["other_access_keys"] == 1 and res["diff"]["after"]["other_access_keys"] == 0
    assert sorted(s3_keys(rgw.get_user(user))) == [user + "-b"]
    s3_client(lab, user + "-b", secret).delete_object(Bucket=media, Key="ak")
    with pytest.raises(ClientError) as err:
        s3_client(lab, user + "-a", secret).list_objects_v2(Bucket=media)
    assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    res, dummy = run(lab, name=user, buckets=[media], user_access_key=user + "-b", user_secret_key=secret)
    assert res["changed"] is False, res


def test_check_mode_returns_no_key(lab, rgw, buckets, user):
    media, dummy_other = buckets
    res, dummy = run(lab, name=user, buckets=[media], check=True)
    assert res["changed"] is True and "user_secret_key" not in res, res


def test_user_absent(lab, rgw, buckets, user):
    media, dummy_other = buckets
    run(lab, name=user, buckets=[media])
    res, dummy = run(lab, name=user, state="absent", check=True)
    assert res["changed"] is True and rgw.get_user(user) is not None
    res, dummy = run(lab, name=user, state="absent")
    assert res["changed"] is True and rgw.get_user(user) is None
    assert rgw.get_user_policy(user, "%s-mastodon-rw" % user) is None
    res, dummy = run(lab, name=user, state="absent")
    assert res["changed"] is False


def test_bad_admin_key_is_a_clear_error(lab, rgw, buckets, user):
    media, dummy_other = buckets
    wrong = "WRONG" + uuid.uuid4().hex
    res, proc = run(lab, name=user, buckets=[media], secret_key=wrong)
    assert res.get("failed") is True, res
    assert "rejected the admin credentials" in res["msg"] and "access_key and secret_key" in res["msg"], res["msg"]
    assert wrong not in proc.stdout + proc.stderr
    assert rgw.get_user(user) is None


def test_unreachable_endpoint_is_a_clear_error(lab, buckets, user):
    media, dummy_other = buckets
    secret = "S" * 8 + uuid.uuid4().hex
    res, proc = run(lab, name=user, buckets=[media], endpoint="http://127.0.0.1:1", connect_timeout=2,
                    user_secret_key=secret, verbosity=3)
    assert res.get("failed") is True, res
    assert "unreachable" in res["msg"] and "endpoint" in res["msg"], res["msg"]
    assert secret not in proc.stdout + proc.stderr


def test_invalid_bucket_name_is_a_clear_error(lab, user):
    res, dummy = run(lab, name=user, buckets=["Media_Files"])
    assert res.get("failed") is True, res
    assert "not a valid S3 bucket name" in res["msg"] and "buckets" in res["msg"], res["msg"]


def test_wrong_api_is_a_clear_error(lab, buckets, user):
    pytest.importorskip("minio")
    media, dummy_other = buckets
    res, dummy = run(lab, name=user, buckets=[media], api="minio")
    assert res.get("failed") is True, res
    assert "api: ceph" in res["msg"] or "MinIO" in res["msg"], res["msg"]


# -- Kubernetes: store_in and via_kubernetes ------------------------------------------------------

@pytest.fixture(scope="module")
def kube():
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("no lab Kubernetes: KUBECONFIG not set (eval \"$(make -s lab-env)\")")
    kubernetes = pytest.importorskip("kubernetes")
    try:
        kubernetes.config.load_kube_config()
        core = kubernetes.client.CoreV1Api()
        core.list_namespace(limit=1, _request_timeout=5)
    except Exception as exc:  # pylint: disable=broad-except
        pytest.skip("lab Kubernetes API not reachable: %s" % exc)
    ns = "it-s3-%s" % uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": ns}})
    yield core, ns
    core.delete_namespace(ns)


def read_secret(core, ns, name):
    import base64
    secret = core.read_namespaced_secret(name, ns)
    return dict((k, base64.b64decode(v).decode()) for k, v in (secret.data or {}).items())


def test_store_in_secret_never_in_output_and_credentials_work(lab, rgw, buckets, user, kube):
    core, ns = kube
    media, other = buckets
    store = dict(namespace=ns, name="media-creds", labels={"app.kubernetes.io/part-of": "mastodon"})
    res, proc = run(lab, name=user, buckets=[media], store_in=store, verbosity=3, diff=True)
    assert res["changed"] is True and res["secret"] == "generated", res
    assert "user_secret_key" not in res
    data = read_secret(core, ns, "media-creds")
    assert data["AWS_ACCESS_KEY_ID"] == user
    secret = data["AWS_SECRET_ACCESS_KEY"]
    assert len(secret) == 40
    assert secret not in proc.stdout + proc.stderr, "the generated key leaked into -vvv output"
    assert_scoped_access(lab, data["AWS_ACCESS_KEY_ID"], secret, media, other)

    res, proc = run(lab, name=user, buckets=[media], store_in=store, verbosity=3)
    assert res["changed"] is False, res
    assert secret not in proc.stdout + proc.stderr

    # The server loses the user (a new S3 server, say): it comes back with the stored key.
    rgw.delete_user(user)
    res, dummy = run(lab, name=user, buckets=[media], store_in=store)
    assert res["changed"] is True and res["created"] is True and res["secret"] == "restored", res
    assert read_secret(core, ns, "media-creds")["AWS_SECRET_ACCESS_KEY"] == secret
    s3_client(lab, user, secret).put_object(Bucket=media, Key="after-restore", Body=b"x")

    # Someone changes the key on the server: the Secret's key is put back.
    rgw.set_key(user, user, "tampered-" + uuid.uuid4().hex)
    res, dummy = run(lab, name=user, buckets=[media], store_in=store)
    assert res["changed"] is True and res["secret"] == "restored", res
    s3_client(lab, user, secret).delete_object(Bucket=media, Key="after-restore")

    # Rotation writes the new key into the Secret, never into the output.
    res, proc = run(lab, name=user, buckets=[media], store_in=store, update_secret="always", verbosity=3)
    assert res["changed"] is True and res["secret"] == "rotated", res
    rotated = read_secret(core, ns, "media-creds")["AWS_SECRET_ACCESS_KEY"]
    assert rotated != secret and rotated not in proc.stdout + proc.stderr
    s3_client(lab, user, rotated).put_object(Bucket=media, Key="rotated", Body=b"x")
    s3_client(lab, user, rotated).delete_object(Bucket=media, Key="rotated")


def test_store_in_check_mode_writes_nothing(lab, rgw, buckets, user, kube):
    core, ns = kube
    media, dummy_other = buckets
    res, dummy = run(lab, name=user, buckets=[media], store_in=dict(namespace=ns, name="check-creds"), check=True)
    assert res["changed"] is True, res
    assert rgw.get_user(user) is None
    import kubernetes
    with pytest.raises(kubernetes.client.rest.ApiException) as err:
        core.read_namespaced_secret("check-creds", ns)
    assert err.value.status == 404


def test_via_kubernetes_port_forward(lab, rgw, buckets, user, kube):
    """The in-cluster path: a Service in front of a (simulated) MinIO pod on port 9000.

    In the lab, kwok forwards any pod's port 9000 to the real S3 server on 127.0.0.1, so this runs the
    module's in-process port-forward end to end.
    """
    core, ns = kube
    media, other = buckets
    labels = {"app.kubernetes.io/name": "minio", "it": user}
    core.create_namespaced_pod(ns, {
        "metadata": {"name": "minio-0", "labels": labels},
        "spec": {"containers": [{"name": "minio", "image": "quay.io/minio/minio",
                                 "ports": [{"containerPort": 9000, "name": "s3"}]}]}})
    core.create_namespaced_service(ns, {
        "metadata": {"name": "minio"},
        "spec": {"selector": labels, "ports": [{"port": 9000, "targetPort": "s3"}]}})
    _wait_ready(core, ns, "minio-0")
    via = dict(namespace=ns, service="minio", port=9000, mode="port_forward")
    res, proc = run(lab, name=user, buckets=[media], endpoint=None, via_kubernetes=via,
                    store_in=dict(namespace=ns, name="pf-creds"), verbosity=3)
    assert res["changed"] is True and res["created"] is True, res
    assert res["endpoint"].startswith("127.0.0.1:") or "port-forward" in res["endpoint"], res["endpoint"]
    data = read_secret(core, ns, "pf-creds")
    assert data["AWS_SECRET_ACCESS_KEY"] not in proc.stdout + proc.stderr
    assert_scoped_access(lab, user, data["AWS_SECRET_ACCESS_KEY"], media, other)
    res, dummy = run(lab, name=user, buckets=[media], endpoint=None, via_kubernetes=via,
                     store_in=dict(namespace=ns, name="pf-creds"))
    assert res["changed"] is False, res

    res, dummy = run_module("minio_bucket", dict(name=media, anonymous_read=True, access_key=lab["access_key"],
                                                 secret_key=lab["secret_key"], via_kubernetes=via), env=RUN_ENV)
    assert res["changed"] is False and res["anonymous"]["get"] is True, res

    # admin_secret without a namespace: it is that of via_kubernetes.
    admin_keys_secret(core, ns, lab)
    res, proc = run_module("minio_bucket", dict(name=media, anonymous_read=True, via_kubernetes=via,
                                                admin_secret=dict(name="s3-admin", access_key="root-user",
                                                                  secret_key="root-password")),
                           env=RUN_ENV, verbosity=3)
    assert res["changed"] is False and res["anonymous"]["get"] is True, res
    assert lab["secret_key"] not in proc.stdout + proc.stderr


# -- admin credentials by Secret reference ----------------------------------------------------------

def admin_keys_secret(core, ns, lab, name="s3-admin", data=None):
    """A Secret holding the lab's S3 admin keys (created once per namespace)."""
    import kubernetes
    body = {"metadata": {"name": name},
            "stringData": data if data is not None else {"root-user": lab["access_key"],
                                                         "root-password": lab["secret_key"]}}
    try:
        core.create_namespaced_secret(ns, body)
    except kubernetes.client.rest.ApiException as exc:
        if exc.status != 409:
            raise


def run_by_ref(lab, admin_secret, check=False, diff=False, verbosity=0, **args):
    """minio_user with the admin keys given only by admin_secret (no access_key/secret_key)."""
    module_args = dict(api="ceph", endpoint=lab["endpoint"], admin_secret=admin_secret)
    module_args.update(args)
    return run_module("minio_user", module_args, check=check, diff=diff, verbosity=verbosity, env=RUN_ENV)


def test_admin_secret_reference_creates_user_and_never_shows_the_key(lab, rgw, buckets, user, kube):
    core, ns = kube
    media, other = buckets
    admin_keys_secret(core, ns, lab)
    # No admin_secret.namespace: it defaults to that of store_in.
    ref = dict(name="s3-admin", access_key="root-user", secret_key="root-password")
    store = dict(namespace=ns, name="ref-creds")
    res, proc = run_by_ref(lab, ref, name=user, buckets=[media], store_in=store, verbosity=3, diff=True)
    assert res["changed"] is True and res["created"] is True and res["secret"] == "generated", res
    output = proc.stdout + proc.stderr
    assert lab["secret_key"] not in output, "the admin secret key leaked into -vvv output"
    assert "root-password" in output, "the run did not log its arguments at -vvv; the check above proves nothing"
    assert rgw.get_user(user) is not None
    data = read_secret(core, ns, "ref-creds")
    assert data["AWS_SECRET_ACCESS_KEY"] not in output
    assert_scoped_access(lab, data["AWS_ACCESS_KEY_ID"], data["AWS_SECRET_ACCESS_KEY"], media, other)

    res, proc = run_by_ref(lab, dict(ref, namespace=ns), name=user, buckets=[media], store_in=store)
    assert res["changed"] is False, res

    res, proc = run_by_ref(lab, dict(ref, namespace=ns), name=user, state="absent")
    assert res["changed"] is True and rgw.get_user(user) is None, res


def test_admin_secret_missing_key_fails_naming_the_option(lab, rgw, buckets, user, kube):
    core, ns = kube
    media, dummy_other = buckets
    admin_keys_secret(core, ns, lab, name="s3-admin-partial", data={"root-password": lab["secret_key"]})
    ref = dict(namespace=ns, name="s3-admin-partial", access_key="root-user", secret_key="root-password")
    res, proc = run_by_ref(lab, ref, name=user, buckets=[media], verbosity=3)
    assert res.get("failed") is True, res
    assert res["msg"].startswith("admin_secret:"), res["msg"]
    assert "root-user" in res["msg"] and "admin_secret.access_key" in res["msg"], res["msg"]
    assert "%s/s3-admin-partial" % ns in res["msg"], res["msg"]
    assert lab["secret_key"] not in proc.stdout + proc.stderr
    assert rgw.get_user(user) is None

    res, dummy = run_by_ref(lab, ref, name=user, buckets=[media], access_key=lab["access_key"])
    assert res.get("failed") is True and "mutually exclusive" in res["msg"], res
    res, dummy = run_by_ref(lab, dict(ref, namespace=None), name=user, buckets=[media])
    assert res.get("failed") is True and "admin_secret.namespace" in res["msg"], res
    assert rgw.get_user(user) is None


def test_admin_secret_rejected_keys_point_at_the_secret(lab, rgw, buckets, user, kube):
    core, ns = kube
    media, dummy_other = buckets
    wrong = "WRONG" + uuid.uuid4().hex
    admin_keys_secret(core, ns, lab, name="s3-admin-wrong", data={"ak": lab["access_key"], "sk": wrong})
    res, proc = run_by_ref(lab, dict(namespace=ns, name="s3-admin-wrong", access_key="ak", secret_key="sk"),
                           name=user, buckets=[media], verbosity=3)
    assert res.get("failed") is True, res
    assert "rejected the admin credentials" in res["msg"] and "admin_secret" in res["msg"], res["msg"]
    assert "%s/s3-admin-wrong" % ns in res["msg"], res["msg"]
    assert wrong not in proc.stdout + proc.stderr
    assert rgw.get_user(user) is None


def _wait_ready(core, ns, name, timeout=60):
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        pod = core.read_namespaced_pod(name, ns)
        conds = dict((c.type, c.status) for c in (pod.status.conditions or []))
        if pod.status.phase == "Running" and conds.get("Ready") == "True":
            return
        time.sleep(0.5)
    pytest.fail("pod %s/%s did not become Ready (is the lab's kwok running?)" % (ns, name))


# -- your own MinIO server ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def own_minio():
    names = ("MINIO_TEST_ENDPOINT", "MINIO_TEST_ACCESS_KEY", "MINIO_TEST_SECRET_KEY")
    if not all(os.environ.get(n) for n in names):
        pytest.skip("api: minio against a real MinIO runs only on your own server: set %s" % ", ".join(names))
    pytest.importorskip("minio")
    return dict(endpoint=os.environ["MINIO_TEST_ENDPOINT"], access_key=os.environ["MINIO_TEST_ACCESS_KEY"],
                secret_key=os.environ["MINIO_TEST_SECRET_KEY"])


@pytest.mark.optional_peer("a real MinIO server, which this project may not build or run here")
def test_minio_own_server_bucket_and_user(own_minio):
    """The same checks on a real MinIO (not run in CI here: MinIO is AGPL and not part of the lab)."""
    tag = uuid.uuid4().hex[:10]
    media, other, name = "it-media-%s" % tag, "it-other-%s" % tag, "it-user-%s" % tag
    base = dict(endpoint=own_minio["endpoint"], access_key=own_minio["access_key"], secret_key=own_minio["secret_key"])
    admin = s3_client(own_minio, own_minio["access_key"], own_minio["secret_key"])
    try:
        res, dummy = run_module("minio_bucket", dict(base, name=media, anonymous_read=True), env=RUN_ENV)
        assert res["changed"] is True, res
        admin.create_bucket(Bucket=other)
        res, dummy = run_module("minio_user", dict(base, api="minio", name=name, buckets=[media]), env=RUN_ENV)
        assert res["changed"] is True and res["secret"] == "generated", res
        assert_scoped_access(own_minio, name, res["user_secret_key"], media, other)
        res, dummy = run_module("minio_user", dict(base, api="minio", name=name, buckets=[media]), env=RUN_ENV)
        assert res["changed"] is False, res
        res, dummy = run_module("minio_bucket", dict(base, name=media, anonymous_read=True), env=RUN_ENV)
        assert res["changed"] is False, res
    finally:
        run_module("minio_user", dict(base, api="minio", name=name, state="absent"), env=RUN_ENV)
        run_module("minio_bucket", dict(base, name=media, state="absent", force=True), env=RUN_ENV)
        _purge(admin, other)
