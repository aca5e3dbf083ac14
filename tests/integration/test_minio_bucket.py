# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fediverse.mastodon.minio_bucket against a real S3 server.

In the lab that is Ceph RGW on 127.0.0.1 (LAB_S3_* from `make -s lab-env`). Every assertion on
access is checked with plain HTTP requests (anonymous) or boto3 (admin), not with the module's
own report. Bucket names are unique per run; everything is deleted afterwards.
"""

import json
import os
import sys
import uuid

import pytest

from ansible_run import run_module

boto3 = pytest.importorskip("boto3")
requests = pytest.importorskip("requests")
from botocore.config import Config  # noqa: E402  (after importorskip)
from botocore.exceptions import ClientError  # noqa: E402

RUN_ENV = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}

pytestmark = pytest.mark.lab
SID = "FediverseMastodonAnonymousRead"


@pytest.fixture(scope="module")
def admin(lab):
    return boto3.client("s3", endpoint_url=lab["endpoint"], aws_access_key_id=lab["access_key"],
                        aws_secret_access_key=lab["secret_key"], region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def _purge(admin, bucket):
    try:
        for page in admin.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for v in (page.get("Versions") or []) + (page.get("DeleteMarkers") or []):
                admin.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents") or []:
                admin.delete_object(Bucket=bucket, Key=o["Key"])
        admin.delete_bucket(Bucket=bucket)
    except ClientError:
        pass


@pytest.fixture
def bucket(admin):
    name = "it-bucket-%s" % uuid.uuid4().hex[:12]
    yield name
    _purge(admin, name)


def bucket_exists(admin, name):
    try:
        admin.head_bucket(Bucket=name)
        return True
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise


def server_policy(admin, name):
    try:
        return json.loads(admin.get_bucket_policy(Bucket=name)["Policy"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchBucketPolicy":
            return None
        raise


def run(lab, check=False, diff=False, verbosity=0, **args):
    module_args = dict(endpoint=lab["endpoint"], access_key=lab["access_key"], secret_key=lab["secret_key"])
    module_args.update(args)
    return run_module("minio_bucket", module_args, check=check, diff=diff, verbosity=verbosity, env=RUN_ENV)


def anon(lab, method, path, **kw):
    return requests.request(method, lab["endpoint"].rstrip("/") + path, timeout=10, **kw).status_code


def test_create_check_mode_then_real_then_noop(lab, admin, bucket):
    res, dummy = run(lab, check=True, name=bucket)
    assert res["changed"] is True and res["created"] is True, res
    assert not bucket_exists(admin, bucket), "check mode created the bucket"

    res, dummy = run(lab, name=bucket)
    assert res["changed"] is True and res["created"] is True, res
    assert bucket_exists(admin, bucket)

    res, dummy = run(lab, name=bucket)
    assert res["changed"] is False and res["created"] is False, res


def test_anonymous_read_get_200_list_and_put_403_then_revoked(lab, admin, bucket):
    res, dummy = run(lab, name=bucket, anonymous_read=True)
    assert res["changed"] is True, res
    assert res["anonymous"] == {"get": True, "list": False, "put": False}
    admin.put_object(Bucket=bucket, Key="media_attachments/files/1/original/a.png", Body=b"\x89PNG-test")

    assert anon(lab, "GET", "/%s/media_attachments/files/1/original/a.png" % bucket) == 200
    assert anon(lab, "GET", "/%s" % bucket) == 403, "anonymous LIST must be refused"
    assert anon(lab, "GET", "/%s?list-type=2" % bucket) == 403, "anonymous LIST v2 must be refused"
    assert anon(lab, "PUT", "/%s/evil.txt" % bucket, data=b"x") == 403, "anonymous PUT must be refused"

    res, dummy = run(lab, name=bucket, anonymous_read=True)
    assert res["changed"] is False, res

    res, dummy = run(lab, name=bucket, anonymous_read=False, diff=True)
    assert res["changed"] is True, res
    assert res["diff"]["before"]["policy"]["Statement"][0]["Sid"] == SID
    assert res["diff"]["after"]["policy"] is None
    assert server_policy(admin, bucket) is None
    assert anon(lab, "GET", "/%s/media_attachments/files/1/original/a.png" % bucket) == 403

    res, dummy = run(lab, name=bucket, anonymous_read=False)
    assert res["changed"] is False, res


def test_drift_repair_and_foreign_statements_kept(lab, admin, bucket):
    run(lab, name=bucket, anonymous_read=True)
    admin.put_object(Bucket=bucket, Key="cache/x.jpg", Body=b"jpg")
    # Someone "fixes" the policy by hand: our statement now also allows listing, and another
    # statement (a CDN user) is added.
    cdn = {"Sid": "Cdn", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/cdn"]},
           "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::%s/*" % bucket]}
    tampered = {"Version": "2012-10-17", "Statement": [
        {"Sid": SID, "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": ["arn:aws:s3:::%s/*" % bucket, "arn:aws:s3:::%s" % bucket]}, cdn]}
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tampered))
    assert anon(lab, "GET", "/%s" % bucket) == 200, "precondition: the tampered policy allows listing"

    res, dummy = run(lab, name=bucket, anonymous_read=True, check=True, diff=True)
    assert res["changed"] is True, res
    assert anon(lab, "GET", "/%s" % bucket) == 200, "check mode repaired the policy"

    res, dummy = run(lab, name=bucket, anonymous_read=True, diff=True)
    assert res["changed"] is True, res
    before_actions = [st["Action"] for st in res["diff"]["before"]["policy"]["Statement"] if st.get("Sid") == SID]
    assert before_actions == [["s3:GetObject", "s3:ListBucket"]]
    assert anon(lab, "GET", "/%s" % bucket) == 403, "drift not repaired: anonymous listing still works"
    assert anon(lab, "GET", "/%s/cache/x.jpg" % bucket) == 200
    sids = sorted(st.get("Sid") for st in server_policy(admin, bucket)["Statement"])
    assert sids == ["Cdn", SID], "the foreign statement must be kept"

    # Someone deletes the whole policy: it comes back.
    admin.delete_bucket_policy(Bucket=bucket)
    assert anon(lab, "GET", "/%s/cache/x.jpg" % bucket) == 403
    res, dummy = run(lab, name=bucket, anonymous_read=True)
    assert res["changed"] is True
    assert anon(lab, "GET", "/%s/cache/x.jpg" % bucket) == 200
    res, dummy = run(lab, name=bucket, anonymous_read=True)
    assert res["changed"] is False


def test_equivalent_policy_shape_is_not_rewritten(lab, admin, bucket):
    run(lab, name=bucket, anonymous_read=True)
    # The same grant in another shape: "*" principal, single strings, other key order.
    same = {"Statement": [{"Resource": "arn:aws:s3:::%s/*" % bucket, "Action": "s3:getobject", "Principal": "*",
                           "Effect": "Allow", "Sid": SID}], "Version": "2012-10-17"}
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps(same))
    res, dummy = run(lab, name=bucket, anonymous_read=True)
    assert res["changed"] is False, res
    assert server_policy(admin, bucket) == same, "an equivalent policy was rewritten"


def test_anonymous_read_prefixes(lab, admin, bucket):
    res, dummy = run(lab, name=bucket, anonymous_read=True, anonymous_read_prefixes=["media_attachments/"])
    assert res["changed"] is True
    admin.put_object(Bucket=bucket, Key="media_attachments/a.png", Body=b"a")
    admin.put_object(Bucket=bucket, Key="backups/db.dump", Body=b"secret")
    assert anon(lab, "GET", "/%s/media_attachments/a.png" % bucket) == 200
    assert anon(lab, "GET", "/%s/backups/db.dump" % bucket) == 403
    res, dummy = run(lab, name=bucket, anonymous_read=True, anonymous_read_prefixes=["media_attachments/"])
    assert res["changed"] is False


def test_prefixes_without_anonymous_read_is_an_error(lab, bucket):
    res, dummy = run(lab, name=bucket, anonymous_read_prefixes=["cache/"])
    assert res.get("failed") is True and "anonymous_read" in res["msg"], res


def test_full_policy_option(lab, admin, bucket):
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Own", "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"],
         "Resource": ["arn:aws:s3:::%s/public/*" % bucket]}]}
    res, dummy = run(lab, name=bucket, policy=policy)
    assert res["changed"] is True, res
    assert server_policy(admin, bucket)["Statement"][0]["Sid"] == "Own"
    admin.put_object(Bucket=bucket, Key="public/a", Body=b"a")
    admin.put_object(Bucket=bucket, Key="private/a", Body=b"a")
    assert anon(lab, "GET", "/%s/public/a" % bucket) == 200
    assert anon(lab, "GET", "/%s/private/a" % bucket) == 403
    res, dummy = run(lab, name=bucket, policy=json.dumps(policy))
    assert res["changed"] is False, res


def test_non_empty_bucket_absent_is_refused_and_data_stays(lab, admin, bucket):
    run(lab, name=bucket)
    admin.put_object(Bucket=bucket, Key="accounts/avatars/1.png", Body=b"keep me")

    res, dummy = run(lab, name=bucket, state="absent")
    assert res.get("failed") is True, res
    assert "not empty" in res["msg"] and "force: true" in res["msg"], res["msg"]
    assert admin.get_object(Bucket=bucket, Key="accounts/avatars/1.png")["Body"].read() == b"keep me"

    res, dummy = run(lab, name=bucket, state="absent", force=True, check=True)
    assert res["changed"] is True
    assert bucket_exists(admin, bucket), "check mode deleted the bucket"

    res, dummy = run(lab, name=bucket, state="absent", force=True)
    assert res["changed"] is True and res["deleted_objects"] == 1, res
    assert not bucket_exists(admin, bucket)

    res, dummy = run(lab, name=bucket, state="absent")
    assert res["changed"] is False, res


def test_empty_bucket_absent(lab, admin, bucket):
    run(lab, name=bucket)
    res, dummy = run(lab, name=bucket, state="absent")
    assert res["changed"] is True, res
    assert not bucket_exists(admin, bucket)


def test_admin_key_never_in_verbose_output(lab, bucket):
    res, proc = run(lab, name=bucket, anonymous_read=True, verbosity=3, diff=True)
    assert res["changed"] is True
    output = proc.stdout + proc.stderr
    assert lab["secret_key"] not in output
    assert "secret_key" in output, "the run did not log its arguments at -vvv; the check above proves nothing"


def test_bad_admin_key_is_a_clear_error(lab, admin, bucket):
    wrong = "WRONG" + lab["secret_key"][5:] if len(lab["secret_key"]) > 5 else "wrong-secret"
    res, proc = run(lab, name=bucket, secret_key=wrong)
    assert res.get("failed") is True, res
    assert "rejected the credentials" in res["msg"] and "access_key and secret_key" in res["msg"], res["msg"]
    assert wrong not in proc.stdout + proc.stderr
    assert not bucket_exists(admin, bucket)

    res, dummy = run(lab, name=bucket, access_key="NOSUCHKEY123")
    assert res.get("failed") is True
    assert "rejected the credentials" in res["msg"], res["msg"]


def test_unreachable_endpoint_is_a_clear_error(lab, bucket):
    res, dummy = run(lab, name=bucket, endpoint="http://127.0.0.1:1", connect_timeout=2)
    assert res.get("failed") is True, res
    assert "unreachable" in res["msg"] and "endpoint" in res["msg"], res["msg"]


@pytest.mark.parametrize("name", ["Media_Bucket", "ab", "-media", "192.168.0.1"])
def test_invalid_bucket_name_is_a_clear_error(lab, name):
    res, dummy = run(lab, name=name)
    assert res.get("failed") is True, res
    assert "not a valid S3 bucket name" in res["msg"] and "Fix name" in res["msg"], res["msg"]


def test_versioning_enable_suspend_and_force_delete_of_versions(lab, admin, bucket):
    res, dummy = run(lab, name=bucket, versioning=True, diff=True)
    assert res["changed"] is True and res["versioning"] == "Enabled", res
    assert admin.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    admin.put_object(Bucket=bucket, Key="media_attachments/v.png", Body=b"one")
    admin.put_object(Bucket=bucket, Key="media_attachments/v.png", Body=b"two")
    admin.delete_object(Bucket=bucket, Key="media_attachments/v.png")  # leaves versions and a delete marker
    listing = admin.list_object_versions(Bucket=bucket)
    assert len(listing.get("Versions", [])) == 2 and len(listing.get("DeleteMarkers", [])) == 1
    res, dummy = run(lab, name=bucket, versioning=True)
    assert res["changed"] is False, res

    res, dummy = run(lab, name=bucket, versioning=False)
    assert res["changed"] is True and res["versioning"] == "Suspended", res
    assert admin.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    res, dummy = run(lab, name=bucket, versioning=False)
    assert res["changed"] is False, res

    # The bucket looks empty to ListObjects, but old versions are data: refused without force.
    res, dummy = run(lab, name=bucket, state="absent")
    assert res.get("failed") is True and "not empty" in res["msg"], res
    res, dummy = run(lab, name=bucket, state="absent", force=True)
    assert res["changed"] is True and res["deleted_objects"] == 3, res
    assert not bucket_exists(admin, bucket)


def _preflight(lab, bucket, origin):
    return requests.options("%s/%s/media_attachments/a.png" % (lab["endpoint"], bucket), timeout=10,
                            headers={"Origin": origin, "Access-Control-Request-Method": "GET"})


def test_cors_rules_are_applied_and_compared(lab, admin, bucket):
    rules = [{"allowed_origins": ["https://social.example.org"], "allowed_methods": ["HEAD", "GET"],
              "max_age_seconds": 3000}]
    res, dummy = run(lab, name=bucket, cors=rules, diff=True)
    assert res["changed"] is True, res
    assert res["diff"]["before"]["cors"] == [] and res["diff"]["after"]["cors"][0]["AllowedMethods"] == ["GET", "HEAD"]
    answer = _preflight(lab, bucket, "https://social.example.org")
    assert answer.status_code == 200, answer.text
    assert answer.headers.get("Access-Control-Allow-Origin") == "https://social.example.org"
    assert _preflight(lab, bucket, "https://evil.example.com").headers.get("Access-Control-Allow-Origin") is None

    res, dummy = run(lab, name=bucket, cors=[dict(rules[0], allowed_methods=["GET", "HEAD", "GET"])])
    assert res["changed"] is False, res

    res, dummy = run(lab, name=bucket, cors=[])
    assert res["changed"] is True, res
    assert _preflight(lab, bucket, "https://social.example.org").headers.get("Access-Control-Allow-Origin") is None
    res, dummy = run(lab, name=bucket, cors=[])
    assert res["changed"] is False, res


# -- the anonymous-read contract is enforced against foreign statements ---------------------------

CDN = "arn:aws:iam:::user/cdn"


def _sids(policy):
    return sorted(st.get("Sid") for st in (policy or {}).get("Statement", []))


def test_foreign_anonymous_list_and_put_are_revoked(lab, admin, bucket):
    """A policy that already lets anonymous visitors list and write: after anonymous_read: true they
    may only GET objects; the statement for a specific principal stays exactly as it was."""
    admin.create_bucket(Bucket=bucket)
    admin.put_object(Bucket=bucket, Key="media_attachments/a.png", Body=b"\x89PNG-a")
    cdn = {"Sid": "Cdn", "Effect": "Allow", "Principal": {"AWS": [CDN]},
           "Action": ["s3:GetObject", "s3:ListBucket"],
           "Resource": ["arn:aws:s3:::%s" % bucket, "arn:aws:s3:::%s/*" % bucket]}
    seeded = {"Version": "2012-10-17", "Statement": [
        {"Sid": "PublicList", "Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket",
         "Resource": "arn:aws:s3:::%s" % bucket},
        {"Sid": "PublicWrite", "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:PutObject"],
         "Resource": ["arn:aws:s3:::%s/*" % bucket]},
        cdn]}
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps(seeded))
    # Preconditions: the seeded policy really lets anonymous visitors list and write, and not read.
    assert anon(lab, "GET", "/%s" % bucket) == 200, "precondition: anonymous LIST allowed"
    assert anon(lab, "PUT", "/%s/pre.txt" % bucket, data=b"x") == 200, "precondition: anonymous PUT allowed"
    admin.delete_object(Bucket=bucket, Key="pre.txt")
    assert anon(lab, "GET", "/%s/media_attachments/a.png" % bucket) == 403

    res, dummy = run(lab, name=bucket, anonymous_read=True, check=True, diff=True)
    assert res["changed"] is True, res
    assert sorted(r["statement"]["Sid"] for r in res["anonymous_revoked"]) == ["PublicList", "PublicWrite"], res
    assert server_policy(admin, bucket) == seeded, "check mode changed the policy"
    assert anon(lab, "GET", "/%s" % bucket) == 200, "check mode changed what anonymous visitors may do"

    res, dummy = run(lab, name=bucket, anonymous_read=True, diff=True)
    assert res["changed"] is True, res
    assert res.get("failed") is not True, res
    # The diff names what was removed: before has the foreign statements, after has not.
    assert _sids(res["diff"]["before"]["policy"]) == ["Cdn", "PublicList", "PublicWrite"], res["diff"]
    assert _sids(res["diff"]["after"]["policy"]) == ["Cdn", SID], res["diff"]
    revoked = dict((r["statement"]["Sid"], r) for r in res["anonymous_revoked"])
    assert sorted(revoked) == ["PublicList", "PublicWrite"] and all(r["action"] == "removed" for r in revoked.values())
    assert revoked["PublicList"]["statement"]["Action"] == ["s3:ListBucket"]
    assert any("PublicList" in w and "PublicWrite" in w for w in res.get("warnings", [])), res.get("warnings")

    # What the server now allows, seen by anonymous HTTP requests.
    assert anon(lab, "GET", "/%s" % bucket) == 403, "anonymous LIST must be refused"
    assert anon(lab, "GET", "/%s?list-type=2" % bucket) == 403, "anonymous LIST v2 must be refused"
    assert anon(lab, "PUT", "/%s/evil.txt" % bucket, data=b"x") == 403, "anonymous PUT must be refused"
    assert anon(lab, "GET", "/%s/media_attachments/a.png" % bucket) == 200, "anonymous GET must work"
    policy = server_policy(admin, bucket)
    assert _sids(policy) == ["Cdn", SID]
    assert [st for st in policy["Statement"] if st.get("Sid") == "Cdn"] == [cdn], "the Cdn statement was changed"

    res, dummy = run(lab, name=bucket, anonymous_read=True, diff=True)
    assert res["changed"] is False and res["anonymous_revoked"] == [], res
    assert server_policy(admin, bucket) == policy


def test_foreign_wildcard_and_mixed_principal_statements(lab, admin, bucket):
    """s3:Get* and s3:* for everyone go; a statement for everyone and the CDN keeps only the CDN."""
    admin.create_bucket(Bucket=bucket)
    admin.put_object(Bucket=bucket, Key="cache/x.jpg", Body=b"jpg")
    seeded = {"Version": "2012-10-17", "Statement": [
        {"Sid": "GetStar", "Effect": "Allow", "Principal": "*", "Action": "s3:Get*",
         "Resource": "arn:aws:s3:::%s/*" % bucket},
        {"Sid": "AllS3", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:*",
         "Resource": ["arn:aws:s3:::%s" % bucket, "arn:aws:s3:::%s/*" % bucket]},
        {"Sid": "Mixed", "Effect": "Allow", "Principal": {"AWS": ["*", CDN]}, "Action": ["s3:ListBucket"],
         "Resource": ["arn:aws:s3:::%s" % bucket]}]}
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps(seeded))
    assert anon(lab, "GET", "/%s" % bucket) == 200, "precondition: anonymous LIST allowed"
    assert anon(lab, "DELETE", "/%s/cache/x.jpg" % bucket) == 204, "precondition: anonymous DELETE allowed"
    admin.put_object(Bucket=bucket, Key="cache/x.jpg", Body=b"jpg")

    res, dummy = run(lab, name=bucket, anonymous_read=True, diff=True)
    assert res["changed"] is True, res
    actions = dict((r["statement"]["Sid"], r["action"]) for r in res["anonymous_revoked"])
    assert actions == {"GetStar": "removed", "AllS3": "removed", "Mixed": "narrowed"}, res["anonymous_revoked"]
    assert anon(lab, "GET", "/%s" % bucket) == 403
    assert anon(lab, "DELETE", "/%s/cache/x.jpg" % bucket) == 403
    assert anon(lab, "PUT", "/%s/cache/y.jpg" % bucket, data=b"y") == 403
    assert anon(lab, "GET", "/%s/cache/x.jpg" % bucket) == 200
    mixed = [st for st in server_policy(admin, bucket)["Statement"] if st.get("Sid") == "Mixed"]
    assert mixed == [{"Sid": "Mixed", "Effect": "Allow", "Principal": {"AWS": [CDN]}, "Action": ["s3:ListBucket"],
                      "Resource": ["arn:aws:s3:::%s" % bucket]}], mixed
    res, dummy = run(lab, name=bucket, anonymous_read=True)
    assert res["changed"] is False, res


def test_anonymous_read_false_removes_every_anonymous_allow(lab, admin, bucket):
    run(lab, name=bucket, anonymous_read=True)
    admin.put_object(Bucket=bucket, Key="media_attachments/a.png", Body=b"a")
    policy = server_policy(admin, bucket)
    cdn = {"Sid": "Cdn", "Effect": "Allow", "Principal": {"AWS": [CDN]}, "Action": ["s3:GetObject"],
           "Resource": ["arn:aws:s3:::%s/*" % bucket]}
    policy["Statement"] += [
        {"Sid": "AlsoPublic", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::%s/media_attachments/*" % bucket},
        {"Sid": "PublicList", "Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket",
         "Resource": "arn:aws:s3:::%s" % bucket},
        cdn]
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert anon(lab, "GET", "/%s" % bucket) == 200, "precondition"

    res, dummy = run(lab, name=bucket, anonymous_read=False, diff=True)
    assert res["changed"] is True, res
    assert _sids(res["diff"]["after"]["policy"]) == ["Cdn"], res["diff"]
    assert sorted(r["statement"]["Sid"] for r in res["anonymous_revoked"]) == ["AlsoPublic", "PublicList"]
    assert anon(lab, "GET", "/%s/media_attachments/a.png" % bucket) == 403
    assert anon(lab, "GET", "/%s" % bucket) == 403
    assert server_policy(admin, bucket)["Statement"] == [cdn]
    res, dummy = run(lab, name=bucket, anonymous_read=False)
    assert res["changed"] is False, res


def test_anonymous_read_unset_leaves_foreign_statements_and_warns(lab, admin, bucket):
    """Without anonymous_read the module does not manage the policy: it only warns."""
    admin.create_bucket(Bucket=bucket)
    seeded = {"Version": "2012-10-17", "Statement": [
        {"Sid": "PublicList", "Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket",
         "Resource": "arn:aws:s3:::%s" % bucket}]}
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps(seeded))
    res, dummy = run(lab, name=bucket)
    assert res["changed"] is False and res["anonymous"]["list"] is True, res
    assert any("list it" in w for w in res.get("warnings", [])), res
    assert server_policy(admin, bucket) == seeded
    assert anon(lab, "GET", "/%s" % bucket) == 200


# -- admin credentials by Secret reference ---------------------------------------------------------

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
    ns = "it-s3b-%s" % uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": ns}})
    yield core, ns
    core.delete_namespace(ns)


def _secret(core, ns, name, data):
    core.create_namespaced_secret(ns, {"metadata": {"name": name}, "stringData": data})


def run_by_ref(lab, admin_secret, check=False, diff=False, verbosity=0, **args):
    module_args = dict(endpoint=lab["endpoint"], admin_secret=admin_secret)
    module_args.update(args)
    return run_module("minio_bucket", module_args, check=check, diff=diff, verbosity=verbosity, env=RUN_ENV)


def test_admin_secret_reference_works_and_never_shows_the_key(lab, admin, bucket, kube):
    core, ns = kube
    _secret(core, ns, "s3-admin", {"root-user": lab["access_key"], "root-password": lab["secret_key"]})
    ref = dict(namespace=ns, name="s3-admin", access_key="root-user", secret_key="root-password")

    res, proc = run_by_ref(lab, ref, name=bucket, anonymous_read=True, verbosity=3, diff=True)
    assert res["changed"] is True and res["created"] is True, res
    output = proc.stdout + proc.stderr
    assert lab["secret_key"] not in output, "the admin secret key leaked into -vvv output"
    assert "root-password" in output, "the run did not log its arguments at -vvv; the check above proves nothing"
    assert bucket_exists(admin, bucket)
    admin.put_object(Bucket=bucket, Key="media_attachments/a.png", Body=b"a")
    assert anon(lab, "GET", "/%s/media_attachments/a.png" % bucket) == 200
    assert anon(lab, "GET", "/%s" % bucket) == 403

    res, proc = run_by_ref(lab, ref, name=bucket, anonymous_read=True)
    assert res["changed"] is False, res

    # Keys that the server rejects: the message points at the Secret, not at access_key.
    _secret(core, ns, "s3-wrong", {"root-user": lab["access_key"], "root-password": "WRONG-" + uuid.uuid4().hex})
    res, proc = run_by_ref(lab, dict(ref, name="s3-wrong"), name=bucket, anonymous_read=True)
    assert res.get("failed") is True, res
    assert "rejected the credentials" in res["msg"] and "admin_secret" in res["msg"], res["msg"]
    assert "%s/s3-wrong" % ns in res["msg"], res["msg"]


def test_admin_secret_missing_key_fails_naming_the_option(lab, admin, bucket, kube):
    core, ns = kube
    _secret(core, ns, "s3-partial", {"root-user": lab["access_key"], "other": "x"})
    ref = dict(namespace=ns, name="s3-partial", access_key="root-user", secret_key="root-password")
    res, proc = run_by_ref(lab, ref, name=bucket)
    assert res.get("failed") is True, res
    assert res["msg"].startswith("admin_secret:"), res["msg"]
    assert "root-password" in res["msg"] and "%s/s3-partial" % ns in res["msg"], res["msg"]
    assert "admin_secret.secret_key" in res["msg"], res["msg"]
    assert lab["secret_key"] not in proc.stdout + proc.stderr
    assert not bucket_exists(admin, bucket)

    res, dummy = run_by_ref(lab, dict(ref, name="no-such-secret"), name=bucket)
    assert res.get("failed") is True and "admin_secret" in res["msg"] and "does not exist" in res["msg"], res
    assert not bucket_exists(admin, bucket)


def test_admin_secret_option_rules(lab, bucket):
    """Exactly one way to give the keys; a Secret without a namespace needs one from somewhere."""
    ref = dict(name="s3-admin", access_key="root-user", secret_key="root-password")
    res, dummy = run_by_ref(lab, dict(ref, namespace="x"), name=bucket, access_key=lab["access_key"],
                            secret_key=lab["secret_key"])
    assert res.get("failed") is True and "mutually exclusive" in res["msg"] and "admin_secret" in res["msg"], res
    res, dummy = run_module("minio_bucket", dict(endpoint=lab["endpoint"], name=bucket), env=RUN_ENV)
    assert res.get("failed") is True and "access_key" in res["msg"] and "admin_secret" in res["msg"], res
    res, dummy = run_by_ref(lab, ref, name=bucket)
    assert res.get("failed") is True and "admin_secret.namespace" in res["msg"], res


@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs the lab apiserver for the run lock")
def test_run_lock_is_taken_before_the_first_s3_write_and_another_runs_lock_refuses_it(lab, admin, bucket):
    """S3 writes are writes like any other: another run's live lock refuses them before any request
    that changes something; this run's first write takes the lock; a no-op takes none."""
    import datetime
    from kubernetes import client as kube
    from kubernetes.config import new_client_from_config

    api = new_client_from_config(os.environ["KUBECONFIG"])
    core, coordination = kube.CoreV1Api(api), kube.CoordinationV1Api(api)
    namespace = "it-s3lock-" + uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": namespace}})
    lock = dict(namespace=namespace, name="inst-run-lock", duration=900, renew_every=300,
                holder=dict(run_id="mine", host="ci-host", user="mine", started="2026-12-01T10:00:00Z"))
    try:
        coordination.create_namespaced_lease(namespace, {"metadata": {"name": "inst-run-lock"}, "spec": {
            "holderIdentity": "other@ci-host", "leaseDurationSeconds": 900,
            "renewTime": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}})
        res, dummy = run(lab, name=bucket, run_lock=lock)
        assert res.get("failed") and "run_lock:" in res["msg"] and "locked by" in res["msg"], res
        assert "nothing was changed on the S3 server" in res["msg"]
        assert not bucket_exists(admin, bucket)

        coordination.delete_namespaced_lease("inst-run-lock", namespace)
        res, dummy = run(lab, name=bucket, run_lock=lock)
        assert res["changed"] is True and bucket_exists(admin, bucket), res
        assert coordination.read_namespaced_lease("inst-run-lock", namespace).spec.holder_identity == "mine@ci-host"

        coordination.delete_namespaced_lease("inst-run-lock", namespace)
        res, dummy = run(lab, name=bucket, run_lock=lock)
        assert res["changed"] is False, res
        assert not coordination.list_namespaced_lease(namespace).items, "a run that changed nothing took the lock"
    finally:
        core.delete_namespace(namespace)
