# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.fediverse.mastodon.plugins.module_utils import s3_policy as sp
from ansible_collections.fediverse.mastodon.plugins.module_utils.s3 import bucket_name_problem


def test_anonymous_read_grants_get_only_never_list():
    st = sp.anonymous_read_statement("media")
    assert st["Action"] == ["s3:GetObject"]
    assert st["Resource"] == ["arn:aws:s3:::media/*"]
    assert st["Principal"] == {"AWS": ["*"]}
    policy = {"Version": sp.POLICY_VERSION, "Statement": [st]}
    assert sp.anonymous_access(policy, "media") == (True, False, False)


def test_anonymous_read_prefixes_limit_resources():
    st = sp.anonymous_read_statement("media", ["media_attachments/", "/cache/", "cache/"])
    assert st["Resource"] == ["arn:aws:s3:::media/cache/*", "arn:aws:s3:::media/media_attachments/*"]


def test_user_policy_has_exactly_the_needed_actions():
    pol = sp.user_policy(["b2", "b1", "b1"])
    bucket_st, object_st = pol["Statement"]
    assert bucket_st["Resource"] == ["arn:aws:s3:::b1", "arn:aws:s3:::b2"]
    assert set(bucket_st["Action"]) == {"s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"}
    assert object_st["Resource"] == ["arn:aws:s3:::b1/*", "arn:aws:s3:::b2/*"]
    assert set(object_st["Action"]) == {"s3:PutObject", "s3:PutObjectAcl", "s3:GetObject", "s3:DeleteObject",
                                        "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
    assert not any(a in ("s3:*", "*") for st in pol["Statement"] for a in st["Action"])


@pytest.mark.parametrize("server_form", [
    # what MinIO returns
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]},
                                             "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::m/*"],
                                             "Sid": "X"}]},
    # single values instead of lists, Principal "*", other key order, action case
    {"Statement": {"Resource": "arn:aws:s3:::m/*", "Action": "s3:getobject", "Principal": "*",
                   "Effect": "Allow", "Sid": "X"}, "Version": "2012-10-17"},
    # Principal {"AWS": "*"}, duplicates
    {"Version": "2012-10-17", "Statement": [{"Sid": "X", "Effect": "allow", "Principal": {"AWS": "*"},
                                             "Action": ["s3:GetObject", "s3:GetObject"],
                                             "Resource": "arn:aws:s3:::m/*"}]},
])
def test_normalize_makes_equivalent_forms_equal(server_form):
    ours = {"Version": "2012-10-17", "Statement": [dict(sp.anonymous_read_statement("m"), Sid="X")]}
    assert sp.policies_equal(ours, server_form)
    assert sp.policies_equal(json.dumps(ours, indent=4), json.dumps(server_form))


def test_normalize_sees_real_differences():
    base = {"Version": "2012-10-17", "Statement": [sp.anonymous_read_statement("m")]}
    listing = json.loads(json.dumps(base))
    listing["Statement"][0]["Action"].append("s3:ListBucket")
    assert not sp.policies_equal(base, listing)
    other_resource = json.loads(json.dumps(base))
    other_resource["Statement"][0]["Resource"] = ["arn:aws:s3:::m/cache/*"]
    assert not sp.policies_equal(base, other_resource)
    deny = json.loads(json.dumps(base))
    deny["Statement"][0]["Effect"] = "Deny"
    assert not sp.policies_equal(base, deny)
    assert not sp.policies_equal(base, None)


def test_statement_order_and_condition_lists_do_not_matter():
    a = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "r1"},
                       {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "r2",
                        "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}
    b = {"Statement": [{"Effect": "Deny", "Action": ["s3:PutObject"], "Resource": ["r2"],
                        "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}},
                       {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["r1"]}]}
    assert sp.policies_equal(a, b)


def test_empty_statement_list_is_no_policy():
    assert sp.normalize_policy({"Version": "2012-10-17", "Statement": []}) is None
    assert sp.normalize_policy(None) is None
    assert sp.normalize_policy("") is None


def test_merge_keeps_foreign_statements_and_replaces_ours():
    foreign = {"Sid": "CDN", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::1:user/cdn"]},
               "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::m/*"]}
    tampered = dict(sp.anonymous_read_statement("m"), Action=["s3:GetObject", "s3:ListBucket"])
    current = {"Version": "2012-10-17", "Statement": [foreign, tampered]}
    merged = sp.merge_owned_statement(current, sp.ANONYMOUS_READ_SID, sp.anonymous_read_statement("m"))
    assert foreign in merged["Statement"]
    assert sp.anonymous_read_statement("m") in merged["Statement"]
    assert len(merged["Statement"]) == 2
    removed = sp.merge_owned_statement(current, sp.ANONYMOUS_READ_SID, None)
    assert removed["Statement"] == [foreign]
    assert sp.merge_owned_statement({"Statement": [tampered]}, sp.ANONYMOUS_READ_SID, None) is None
    assert sp.merge_owned_statement(None, sp.ANONYMOUS_READ_SID, None) is None


def test_anonymous_access_detects_dangerous_foreign_grants():
    policy = {"Statement": [sp.anonymous_read_statement("m"),
                            {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::m",
                                                                                                 "arn:aws:s3:::m/*"]}]}
    assert sp.anonymous_access(policy, "m") == (True, True, True)
    assert sp.anonymous_access(None, "m") == (False, False, False)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"Version": "2012-10-17"}', '{"Statement": [{"Action": "x"}]}'])
def test_load_policy_rejects_non_policies(text):
    with pytest.raises(sp.PolicyError):
        sp.load_policy(text)


def test_display_policy_keeps_action_case():
    shown = sp.display_policy({"Statement": [sp.anonymous_read_statement("m")]})
    assert shown["Statement"][0]["Action"] == ["s3:GetObject"]


@pytest.mark.parametrize("name", ["social-media", "a.b-c", "abc", "x" * 63, "media2"])
def test_valid_bucket_names(name):
    assert bucket_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "ab", "x" * 64, "Media", "media_files", "-media", "media-", "a..b", "a.-b",
                                  "192.168.1.1", "xn--media", "media-s3alias", "me dia"])
def test_invalid_bucket_names(name):
    assert bucket_name_problem(name)


def test_user_policy_comparison_can_ignore_statement_ids():
    ours = sp.user_policy(["media"])
    stripped = {"Version": "2012-10-17",
                "Statement": [dict((k, v) for k, v in st.items() if k != "Sid") for st in ours["Statement"]]}
    assert not sp.policies_equal(ours, stripped)
    assert sp.policies_equal(ours, stripped, ignore_sid=True)
    wider = {"Version": "2012-10-17", "Statement": stripped["Statement"] + [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    assert not sp.policies_equal(ours, wider, ignore_sid=True)


def test_the_backup_writer_may_only_add_objects_under_its_prefix():
    policy = sp.backup_writer_policy("backups", "/social/")
    allow, deny = policy["Statement"]
    assert allow["Effect"] == "Allow" and allow["Resource"] == ["arn:aws:s3:::backups/social/*"]
    assert sorted(allow["Action"]) == ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:PutObject"]
    assert deny["Effect"] == "Deny" and deny["Resource"] == ["arn:aws:s3:::backups", "arn:aws:s3:::backups/*"]
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration"):
        assert action in deny["Action"]
    assert not any(a.startswith("s3:Get") or a.startswith("s3:List") for a in allow["Action"] if a != "s3:ListMultipartUploadParts")
    whole = sp.backup_writer_policy("backups")
    assert whole["Statement"][0]["Resource"] == ["arn:aws:s3:::backups/*"]
    assert sp.policies_equal(policy, sp.load_policy(sp.policy_json(policy)))
