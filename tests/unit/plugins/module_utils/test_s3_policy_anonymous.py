# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The anonymous-read contract of minio_bucket: which foreign statements restrict_anonymous keeps,
narrows or removes. Pure policy logic; the lab test in tests/integration/test_minio_bucket.py
proves the same against Ceph RGW with anonymous HTTP requests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

import pytest

from ansible_collections.fediverse.mastodon.plugins.module_utils import s3_policy as sp

B = "media"
ALL = ["arn:aws:s3:::media/*"]
PREFIXED = ["arn:aws:s3:::media/media_attachments/*"]
CDN = "arn:aws:iam:::user/cdn"


def st(sid, actions, resources, principal="*", effect="Allow", **extra):
    out = {"Sid": sid, "Effect": effect, "Principal": principal, "Action": actions, "Resource": resources}
    out.update(extra)
    return out


def without(statement, key):
    return dict((k, v) for k, v in statement.items() if k != key)


# (case id, foreign statement, allowed object resources, expected outcome)
# outcome: "kept" (unchanged), "removed", or a dict: the statement after narrowing.
CASES = [
    ("list-star", st("L", "s3:ListBucket", "arn:aws:s3:::media"), ALL, "removed"),
    ("list-aws-star", st("L", ["s3:ListBucket"], ["arn:aws:s3:::media"], {"AWS": "*"}), ALL, "removed"),
    ("list-aws-star-list", st("L", ["s3:ListBucket"], ["arn:aws:s3:::media"], {"AWS": ["*"]}), ALL, "removed"),
    ("put", st("P", "s3:PutObject", "arn:aws:s3:::media/*"), ALL, "removed"),
    ("delete", st("D", "s3:DeleteObject", "arn:aws:s3:::media/*"), ALL, "removed"),
    ("get-and-list", st("GL", ["s3:GetObject", "s3:ListBucket"], ["arn:aws:s3:::media/*", "arn:aws:s3:::media"]),
     ALL, "removed"),
    ("s3-star", st("S", "s3:*", "arn:aws:s3:::media/*"), ALL, "removed"),
    ("star", st("S", "*", "*"), ALL, "removed"),
    ("get-wildcard", st("G", "s3:Get*", "arn:aws:s3:::media/*"), ALL, "removed"),
    ("get-question-mark", st("G", "s3:GetObjec?", "arn:aws:s3:::media/*"), ALL, "removed"),
    ("not-action", without(dict(st("N", None, "arn:aws:s3:::media/*"), NotAction="s3:DeleteObject"), "Action"),
     ALL, "removed"),
    ("not-resource", without(dict(st("N", "s3:GetObject", None), NotResource="arn:aws:s3:::media/private/*"),
                             "Resource"), ALL, "removed"),
    ("not-principal", without(dict(st("NP", "s3:PutObject", "arn:aws:s3:::media/*"), NotPrincipal={"AWS": CDN}),
                              "Principal"), ALL, "removed"),
    ("get-other-bucket", st("G", "s3:GetObject", "arn:aws:s3:::other/*"), ALL, "removed"),
    ("get-all-buckets", st("G", "s3:GetObject", "arn:aws:s3:::*"), ALL, "removed"),
    ("get-bucket-prefix-wildcard", st("G", "s3:GetObject", "arn:aws:s3:::media*"), ALL, "removed"),
    ("get-outside-prefixes", st("G", "s3:GetObject", "arn:aws:s3:::media/backups/*"), PREFIXED, "removed"),
    ("get-whole-bucket-with-prefixes", st("G", "s3:GetObject", "arn:aws:s3:::media/*"), PREFIXED, "removed"),
    ("lower-case-allow", st("L", "s3:listbucket", "arn:aws:s3:::media", effect="allow"), ALL, "removed"),
    # within the contract: kept untouched
    ("get-all-objects", st("G", "s3:GetObject", "arn:aws:s3:::media/*"), ALL, "kept"),
    ("get-one-prefix", st("G", ["s3:getobject"], ["arn:aws:s3:::media/cache/*"]), ALL, "kept"),
    ("get-in-prefix", st("G", "s3:GetObject", "arn:aws:s3:::media/media_attachments/files/*"), PREFIXED, "kept"),
    ("get-with-condition", st("G", "s3:GetObject", "arn:aws:s3:::media/*",
                              Condition={"StringLike": {"aws:Referer": "https://social.example.org/*"}}), ALL, "kept"),
    # not anonymous, or not a grant: never touched
    ("specific-principal", st("C", "s3:*", "arn:aws:s3:::media/*", {"AWS": [CDN]}), ALL, "kept"),
    ("specific-principal-list", st("C", "s3:ListBucket", "arn:aws:s3:::media", {"AWS": CDN}), ALL, "kept"),
    ("deny-anonymous", st("D", "s3:GetObject", "arn:aws:s3:::media/private/*", effect="Deny"), ALL, "kept"),
    ("not-principal-star", without(dict(st("NP", "s3:PutObject", "arn:aws:s3:::media/*"), NotPrincipal="*"),
                                   "Principal"), ALL, "kept"),
    # mixed principals: the star goes, the named principals keep what they had
    ("mixed-list", st("M", "s3:ListBucket", "arn:aws:s3:::media", {"AWS": ["*", CDN]}), ALL,
     st("M", "s3:ListBucket", "arn:aws:s3:::media", {"AWS": [CDN]})),
    ("mixed-keys", st("M", "s3:PutObject", "arn:aws:s3:::media/*", {"AWS": "*", "CanonicalUser": "abc123"}), ALL,
     st("M", "s3:PutObject", "arn:aws:s3:::media/*", {"CanonicalUser": ["abc123"]})),
    # anonymous_read false: no allowed resources, so even a plain GetObject goes
    ("get-when-false", st("G", "s3:GetObject", "arn:aws:s3:::media/*"), [], "removed"),
    ("mixed-get-when-false", st("M", "s3:GetObject", "arn:aws:s3:::media/*", {"AWS": ["*", CDN]}), [],
     st("M", "s3:GetObject", "arn:aws:s3:::media/*", {"AWS": [CDN]})),
    ("specific-when-false", st("C", "s3:GetObject", "arn:aws:s3:::media/*", {"AWS": [CDN]}), [], "kept"),
]


@pytest.mark.parametrize("foreign, allowed, outcome", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_restrict_anonymous_table(foreign, allowed, outcome):
    own = sp.anonymous_read_statement(B) if allowed == ALL else None
    if allowed == PREFIXED:
        own = sp.anonymous_read_statement(B, ["media_attachments/"])
    keeper = {"Sid": "Keeper", "Effect": "Allow", "Principal": {"AWS": [CDN]}, "Action": ["s3:GetObject"],
              "Resource": ["arn:aws:s3:::media/*"]}
    statements = [keeper, foreign] + ([own] if own else [])
    policy = {"Version": "2012-10-17", "Statement": statements}
    original = copy.deepcopy(policy)

    result, revoked = sp.restrict_anonymous(policy, allowed, keep_sid=sp.ANONYMOUS_READ_SID)

    assert policy == original, "the input policy must not be modified"
    assert result["Version"] == "2012-10-17"
    assert result["Statement"][0] == keeper, "a specific-principal statement must stay untouched"
    if own:
        assert own in result["Statement"], "the module's own statement must stay"
    if outcome == "kept":
        assert foreign in result["Statement"]
        assert revoked == []
    elif outcome == "removed":
        assert foreign not in result["Statement"]
        assert len(result["Statement"]) == len(statements) - 1
        assert revoked == [(foreign, "removed")]
    else:
        assert outcome in result["Statement"] and foreign not in result["Statement"]
        assert revoked == [(foreign, "narrowed")]
    get, lst, put = sp.anonymous_access(result, B)
    assert not lst and not put, "after the contract, anonymous visitors may neither list nor write"
    if not allowed:
        assert not get


def test_result_has_only_anonymous_getobject_on_objects():
    """Many foreign grants at once; afterwards the one anonymous permission is GetObject on media/*."""
    foreign = [c[1] for c in CASES if c[2] == ALL and c[3] != "kept"]
    policy = {"Version": "2012-10-17", "Statement": foreign + [sp.anonymous_read_statement(B)]}
    result, revoked = sp.restrict_anonymous(policy, ALL, keep_sid=sp.ANONYMOUS_READ_SID)
    assert len(revoked) == len(foreign)
    anonymous = [s for s in result["Statement"] if sp.applies_to_anonymous(s) and s["Effect"] == "Allow"]
    assert anonymous == [sp.anonymous_read_statement(B)]
    assert sp.anonymous_access(result, B) == (True, False, False)


def test_nothing_left_means_no_policy():
    policy = {"Version": "2012-10-17", "Statement": [st("L", "s3:ListBucket", "arn:aws:s3:::media")]}
    assert sp.restrict_anonymous(policy, []) == (None, [(policy["Statement"][0], "removed")])
    assert sp.restrict_anonymous(None, ALL) == (None, [])


def test_policy_as_json_text_and_single_statement_object():
    text = json.dumps({"Version": "2012-10-17", "Statement": st("L", "s3:ListBucket", "arn:aws:s3:::media")})
    result, revoked = sp.restrict_anonymous(text, ALL)
    assert result is None and [action for dummy, action in revoked] == ["removed"]


def test_own_statement_is_never_touched_even_if_wide():
    """The module replaces its own statement before; restrict_anonymous leaves it to the caller."""
    own = dict(sp.anonymous_read_statement(B), Action=["s3:GetObject", "s3:ListBucket"])
    result, revoked = sp.restrict_anonymous({"Statement": [own]}, ALL, keep_sid=sp.ANONYMOUS_READ_SID)
    assert result["Statement"] == [own] and revoked == []


@pytest.mark.parametrize("statement, expected", [
    (st("x", "s3:GetObject", "r"), True),
    (st("x", "s3:GetObject", "r", {"AWS": "*"}), True),
    (st("x", "s3:GetObject", "r", {"AWS": ["*"]}), True),
    (st("x", "s3:GetObject", "r", {"AWS": [CDN, "*"]}), True),
    (st("x", "s3:GetObject", "r", {"AWS": [CDN]}), False),
    (st("x", "s3:GetObject", "r", CDN), False),
    (without(dict(st("x", "s3:GetObject", "r"), NotPrincipal={"AWS": [CDN]}), "Principal"), True),
    (without(dict(st("x", "s3:GetObject", "r"), NotPrincipal={"AWS": "*"}), "Principal"), False),
    (without(st("x", "s3:GetObject", "r"), "Principal"), False),
])
def test_applies_to_anonymous(statement, expected):
    assert sp.applies_to_anonymous(statement) is expected


@pytest.mark.parametrize("statement, expected", [
    (st("x", "s3:ListBucket", "arn:aws:s3:::media"), (False, True, False)),
    (st("x", "s3:List*", "arn:aws:s3:::media*"), (False, True, False)),
    (st("x", "s3:*", "arn:aws:s3:::*"), (True, True, True)),
    (st("x", "s3:Put*", "arn:aws:s3:::media/uploads/*"), (False, False, True)),
    (without(dict(st("x", None, "arn:aws:s3:::media/*"), NotAction="s3:GetObject"), "Action"), (False, False, True)),
    (without(dict(st("x", "s3:GetObject", None), NotResource="arn:aws:s3:::other/*"), "Resource"),
     (True, False, False)),
    (st("x", "s3:*", "arn:aws:s3:::media/*", effect="Deny"), (False, False, False)),
    (st("x", "s3:*", "arn:aws:s3:::media/*", {"AWS": [CDN]}), (False, False, False)),
])
def test_anonymous_access_understands_wildcards_and_not_keys(statement, expected):
    assert sp.anonymous_access({"Statement": [statement]}, B) == expected
