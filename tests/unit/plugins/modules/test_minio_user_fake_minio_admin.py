# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""minio_user with api: minio, against a FAKE MinioAdmin.

No real MinIO server may run here (MinIO is AGPL and the project does not use it), so the thin
api: minio path is checked against this fake, which mimics the minio SDK 7.2 MinioAdmin
methods the module calls (same names, arguments, JSON answers and MinioAdminException
attributes). Everything but MinioAdmin is the real module code. To test against a real MinIO,
see tests/integration/test_minio_user.py::test_minio_own_server_bucket_and_user.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.fediverse.mastodon.plugins.module_utils import minio_admin
from ansible_collections.fediverse.mastodon.plugins.module_utils import s3_policy as sp
from ansible_collections.fediverse.mastodon.plugins.modules import minio_user

pytest.importorskip("boto3")


class FakeMinioAdminException(Exception):
    """Shaped like minio.error.MinioAdminException: _code is the HTTP status, _body MinIO's JSON."""

    def __init__(self, code, body):
        super(FakeMinioAdminException, self).__init__("admin request failed; Status: %s" % code)
        self._code = code
        self._body = body


def _err(status, code):
    return FakeMinioAdminException(str(status), json.dumps({"Code": code, "Message": code}))


class FakeMinioAdmin(object):
    """In-memory MinIO users and canned policies, with the SDK's method signatures."""

    def __init__(self, wrapped_policy_info=False, has_attach=True):
        self.users = {}        # access key -> {"secret": ..., "policies": [...]}
        self.policies = {}     # name -> policy JSON text
        self.calls = []
        self.deny = None       # an error code every call raises, e.g. InvalidAccessKeyId
        self.wrapped = wrapped_policy_info
        if not has_attach:
            self.attach_policy = None

    def _enter(self, name, *args):
        self.calls.append((name,) + args)
        if self.deny:
            raise _err(403, self.deny)

    def user_info(self, access_key):
        self._enter("user_info", access_key)
        if access_key not in self.users:
            raise _err(404, "XMinioAdminNoSuchUser")
        user = self.users[access_key]
        return json.dumps({"policyName": ",".join(user["policies"]), "status": "enabled", "memberOf": None})

    def user_add(self, access_key, secret_key):
        self._enter("user_add", access_key)
        self.users.setdefault(access_key, {"policies": []})["secret"] = secret_key
        return ""

    def user_remove(self, access_key):
        self._enter("user_remove", access_key)
        if access_key not in self.users:
            raise _err(404, "XMinioAdminNoSuchUser")
        del self.users[access_key]
        return ""

    def policy_info(self, policy_name):
        self._enter("policy_info", policy_name)
        if policy_name not in self.policies:
            raise _err(404, "XMinioAdminNoSuchPolicy")
        if self.wrapped:
            return json.dumps({"PolicyName": policy_name, "Policy": json.loads(self.policies[policy_name])})
        return self.policies[policy_name]

    def policy_add(self, policy_name, policy_file=None, policy=None):
        self._enter("policy_add", policy_name)
        with open(policy_file) as handle:
            text = handle.read()
        json.loads(text)
        self.policies[policy_name] = text
        return ""

    def policy_remove(self, policy_name):
        self._enter("policy_remove", policy_name)
        if policy_name not in self.policies:
            raise _err(404, "XMinioAdminNoSuchPolicy")
        del self.policies[policy_name]
        return ""

    def attach_policy(self, policies, user=None, group=None):
        self._enter("attach_policy", tuple(policies), user)
        if user not in self.users:
            raise _err(404, "XMinioAdminNoSuchUser")
        for name in policies:
            if name not in self.policies:
                raise _err(404, "XMinioAdminNoSuchPolicy")
            if name not in self.users[user]["policies"]:
                self.users[user]["policies"].append(name)
        return ""

    def policy_set(self, policy_name, user=None, group=None):
        self._enter("policy_set", policy_name, user)
        self.users[user]["policies"] = [policy_name]
        return ""

    def mutating_calls(self):
        return [c for c in self.calls if c[0] not in ("user_info", "policy_info")]


@pytest.fixture
def fake(monkeypatch):
    admin = FakeMinioAdmin()
    monkeypatch.setattr(minio_admin, "build_admin", lambda conn: admin)

    # MinIO hides secrets; the module then signs one S3 request with the stored key. Against the
    # fake, a key "works" when the fake holds it.
    def key_works(self, secret_key):
        return admin.users.get(self.access_key, {}).get("secret") == secret_key
    monkeypatch.setattr(minio_user.UserModule, "key_works", key_works)
    return admin


BASE = dict(api="minio", endpoint="http://127.0.0.1:9", access_key="root", secret_key="root-secret-123")


def run(capsys, check=False, diff=False, **args):
    module_args = dict(BASE)
    module_args.update(args)
    if check:
        module_args["_ansible_check_mode"] = True
    if diff:
        module_args["_ansible_diff"] = True
    with patch_module_args(module_args):
        with pytest.raises(SystemExit):
            minio_user.main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_fake_minio_admin_creates_user_policy_and_attaches(capsys, fake):
    res = run(capsys, name="social-mastodon", buckets=["social-media"], diff=True)
    assert res["changed"] is True and res["created"] is True and res["secret"] == "generated", res
    secret = res["user_secret_key"]
    assert len(secret) == 40 and secret.isalnum()
    assert fake.users["social-mastodon"]["secret"] == secret
    assert fake.users["social-mastodon"]["policies"] == ["social-mastodon-mastodon-rw"]
    stored = json.loads(fake.policies["social-mastodon-mastodon-rw"])
    assert sp.policies_equal(stored, sp.user_policy(["social-media"]))
    assert secret not in json.dumps(res["diff"])
    assert res["diff"]["before"]["policy_attached"] is False and res["diff"]["after"]["policy_attached"] is True
    assert [c[0] for c in fake.mutating_calls()] == ["user_add", "policy_add", "attach_policy"]


def test_fake_minio_admin_second_run_changes_nothing(capsys, fake):
    run(capsys, name="u1", buckets=["media"])
    fake.calls[:] = []
    res = run(capsys, name="u1", buckets=["media"])
    assert res["changed"] is False and res["secret"] == "unchanged", res
    assert "user_secret_key" not in res
    assert fake.mutating_calls() == []


def test_fake_minio_admin_accepts_wrapped_policy_info_of_newer_servers(capsys, fake):
    run(capsys, name="u1", buckets=["media"])
    fake.wrapped = True
    res = run(capsys, name="u1", buckets=["media"])
    assert res["changed"] is False, res


def test_fake_minio_admin_policy_drift_and_new_bucket_rewrite_policy(capsys, fake):
    run(capsys, name="u1", buckets=["media"])
    fake.policies["u1-mastodon-rw"] = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::*"]}]})
    fake.calls[:] = []
    res = run(capsys, name="u1", buckets=["media"], diff=True)
    assert res["changed"] is True
    assert res["diff"]["before"]["policy"]["Statement"][0]["Action"] == ["s3:*"]
    assert [c[0] for c in fake.mutating_calls()] == ["policy_add"], "attached already: no re-attach"
    assert sp.policies_equal(fake.policies["u1-mastodon-rw"], sp.user_policy(["media"]))

    res = run(capsys, name="u1", buckets=["media", "backup"])
    assert res["changed"] is True
    assert sp.policies_equal(fake.policies["u1-mastodon-rw"], sp.user_policy(["media", "backup"]))


def test_fake_minio_admin_detached_policy_is_attached_again(capsys, fake):
    run(capsys, name="u1", buckets=["media"])
    fake.users["u1"]["policies"] = []
    fake.calls[:] = []
    res = run(capsys, name="u1", buckets=["media"])
    assert res["changed"] is True
    assert [c[0] for c in fake.mutating_calls()] == ["attach_policy"]


def test_fake_minio_admin_older_sdk_uses_policy_set(capsys, monkeypatch):
    admin = FakeMinioAdmin(has_attach=False)
    monkeypatch.setattr(minio_admin, "build_admin", lambda conn: admin)
    res = run(capsys, name="u1", buckets=["media"])
    assert res["changed"] is True
    assert ("policy_set", "u1-mastodon-rw", "u1") in admin.calls


def test_fake_minio_admin_check_mode_calls_nothing_that_writes(capsys, fake):
    res = run(capsys, name="u1", buckets=["media"], check=True)
    assert res["changed"] is True and res["created"] is True
    assert fake.mutating_calls() == [] and fake.users == {} and fake.policies == {}


def test_fake_minio_admin_given_key_on_create_then_rotation_rules(capsys, fake):
    res = run(capsys, name="u1", buckets=["media"], user_secret_key="first-secret-1")
    assert res["secret"] == "set" and "user_secret_key" not in res
    assert fake.users["u1"]["secret"] == "first-secret-1"

    # on_create: an existing user keeps its key, and nothing is written.
    fake.calls[:] = []
    res = run(capsys, name="u1", buckets=["media"], user_secret_key="second-secret-2")
    assert res["changed"] is False and fake.users["u1"]["secret"] == "first-secret-1"
    assert fake.mutating_calls() == []

    # always + given: set once, then idempotent (the key is checked, not blindly rewritten).
    res = run(capsys, name="u1", buckets=["media"], user_secret_key="second-secret-2", update_secret="always")
    assert res["changed"] is True and fake.users["u1"]["secret"] == "second-secret-2"
    fake.calls[:] = []
    res = run(capsys, name="u1", buckets=["media"], user_secret_key="second-secret-2", update_secret="always")
    assert res["changed"] is False and fake.mutating_calls() == []

    # always without a key: rotation.
    res = run(capsys, name="u1", buckets=["media"], update_secret="always")
    assert res["changed"] is True and res["secret"] == "rotated"
    assert fake.users["u1"]["secret"] == res["user_secret_key"] != "second-secret-2"


def test_fake_minio_admin_existing_user_with_unknown_key_is_left_alone(capsys, fake):
    fake.users["legacy"] = {"secret": "set-by-hand-long", "policies": []}
    res = run(capsys, name="legacy", buckets=["media"])
    assert res["secret"] == "unchanged" and "user_secret_key" not in res
    assert fake.users["legacy"]["secret"] == "set-by-hand-long"
    assert fake.users["legacy"]["policies"] == ["legacy-mastodon-rw"]


def test_fake_minio_admin_absent_removes_user_and_policy(capsys, fake):
    run(capsys, name="u1", buckets=["media"])
    res = run(capsys, name="u1", state="absent", check=True)
    assert res["changed"] is True and "u1" in fake.users
    res = run(capsys, name="u1", state="absent")
    assert res["changed"] is True and fake.users == {} and fake.policies == {}
    res = run(capsys, name="u1", state="absent")
    assert res["changed"] is False


def test_fake_minio_admin_bad_admin_key_is_a_clear_error(capsys, fake):
    fake.deny = "InvalidAccessKeyId"
    res = run(capsys, name="u1", buckets=["media"])
    assert res["failed"] is True
    assert "rejected the admin credentials" in res["msg"] and "access_key and secret_key" in res["msg"], res["msg"]
    assert "root-secret-123" not in json.dumps(res)


def test_fake_minio_admin_missing_admin_rights_is_a_clear_error(capsys, fake):
    fake.deny = "AccessDenied"
    res = run(capsys, name="u1", buckets=["media"])
    assert res["failed"] is True and "denied access" in res["msg"] and "root user" in res["msg"], res["msg"]


def test_fake_minio_admin_user_access_key_must_be_the_name(capsys, fake):
    res = run(capsys, name="u1", buckets=["media"], user_access_key="other")
    assert res["failed"] is True and "user_access_key" in res["msg"]


def test_fake_minio_admin_present_needs_buckets(capsys, fake):
    res = run(capsys, name="u1")
    assert res["failed"] is True and "buckets" in res["msg"]


def test_fake_minio_admin_short_given_key_refused(capsys, fake):
    res = run(capsys, name="u1", buckets=["media"], user_secret_key="short")
    assert res["failed"] is True and "8 to 128" in res["msg"]
    assert fake.calls == []


def test_fake_minio_admin_old_server_without_attach_api_falls_back_to_policy_set(capsys, fake):
    def no_attach_api(policies, user=None, group=None):
        fake.calls.append(("attach_policy", tuple(policies), user))
        raise FakeMinioAdminException("404", "<Error><Code>NotFound</Code></Error>")
    fake.attach_policy = no_attach_api
    res = run(capsys, name="u1", buckets=["media"])
    assert res["changed"] is True, res
    assert fake.users["u1"]["policies"] == ["u1-mastodon-rw"]
    assert [c[0] for c in fake.mutating_calls()] == ["user_add", "policy_add", "attach_policy", "policy_set"]


def test_fake_minio_admin_already_attached_is_not_an_error(capsys, fake):
    run(capsys, name="u1", buckets=["media"])

    def already(policies, user=None, group=None):
        raise _err(400, "XMinioAdminPolicyChangeAlreadyApplied")
    fake.attach_policy = already
    fake.users["u1"]["policies"] = []  # user-info does not list it (an older server's view)
    res = run(capsys, name="u1", buckets=["media"])
    assert res.get("failed") is not True, res


def test_fake_minio_admin_server_that_drops_statement_ids_causes_no_rewrite(capsys, fake):
    run(capsys, name="u1", buckets=["media"])
    doc = json.loads(fake.policies["u1-mastodon-rw"])
    for st in doc["Statement"]:
        st.pop("Sid", None)
    fake.policies["u1-mastodon-rw"] = json.dumps(doc)
    fake.calls[:] = []
    res = run(capsys, name="u1", buckets=["media"])
    assert res["changed"] is False and fake.mutating_calls() == [], res
