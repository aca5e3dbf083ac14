# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 policy documents: what minio_bucket and minio_user write, and how we compare them.

Servers hand a policy back in their own shape: keys reordered, a one-element list turned into
a plain string (or the other way round), ``"Principal": "*"`` written as ``{"AWS": ["*"]}``,
whitespace changed. ``normalize_policy`` maps all of these to one canonical form, so a module
writes a policy only when it really differs. Nothing here talks to a server.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

POLICY_VERSION = "2012-10-17"

ANONYMOUS_READ_SID = "FediverseMastodonAnonymousRead"
"""Sid of the bucket-policy statement minio_bucket owns; other statements are left alone."""

USER_BUCKET_SID = "FediverseMastodonBucket"
USER_OBJECT_SID = "FediverseMastodonObjects"

USER_BUCKET_ACTIONS = ("s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads")
"""What the service user may do on each of its buckets."""

USER_OBJECT_ACTIONS = ("s3:PutObject", "s3:PutObjectAcl", "s3:GetObject", "s3:DeleteObject",
                       "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
"""What it may do on the objects of its buckets. Mastodon uploads with an ACL: PutObjectAcl."""

_LIST_KEYS = ("Action", "NotAction", "Resource", "NotResource")
_CASE_INSENSITIVE_KEYS = ("Action", "NotAction")


class PolicyError(ValueError):
    """A policy document that is not valid JSON or not a policy."""


def bucket_arn(bucket):
    return "arn:aws:s3:::%s" % bucket


def objects_arn(bucket, prefix=""):
    return "arn:aws:s3:::%s/%s*" % (bucket, prefix or "")


def anonymous_read_statement(bucket, prefixes=None):
    """Everyone may GET objects (all, or those under ``prefixes``). No ListBucket, ever."""
    prefixes = [p.lstrip("/") for p in (prefixes or [])] or [""]
    resources = sorted(set(objects_arn(bucket, p) for p in prefixes))
    return {
        "Sid": ANONYMOUS_READ_SID,
        "Effect": "Allow",
        "Principal": {"AWS": ["*"]},
        "Action": ["s3:GetObject"],
        "Resource": resources,
    }


def user_policy(buckets):
    """The service user's policy: read/write the objects of ``buckets`` and nothing else."""
    buckets = sorted(set(buckets))
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": USER_BUCKET_SID,
                "Effect": "Allow",
                "Action": list(USER_BUCKET_ACTIONS),
                "Resource": [bucket_arn(b) for b in buckets],
            },
            {
                "Sid": USER_OBJECT_SID,
                "Effect": "Allow",
                "Action": list(USER_OBJECT_ACTIONS),
                "Resource": [objects_arn(b) for b in buckets],
            },
        ],
    }


def load_policy(policy):
    """A policy given as a JSON string or a dict, as a dict. Raises PolicyError."""
    if policy is None or policy == "":
        return None
    if isinstance(policy, (bytes, bytearray)):
        policy = policy.decode("utf-8")
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError as exc:
            raise PolicyError("not valid JSON: %s" % exc)
    if not isinstance(policy, dict):
        raise PolicyError("a policy must be a JSON object with a Statement list")
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        raise PolicyError("the policy has no Statement list")
    for st in statements:
        if not isinstance(st, dict) or "Effect" not in st:
            raise PolicyError("every Statement must be an object with an Effect")
    return policy


def _as_sorted_list(value, lower=False):
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        value = [value]
    items = [str(v) for v in value]
    if lower:
        items = [v.lower() for v in items]
    return sorted(set(items))


def _normalize_principal(principal):
    if principal is None:
        return None
    if principal == "*":
        return {"AWS": ["*"]}
    if isinstance(principal, dict):
        return dict((k, _as_sorted_list(v)) for k, v in principal.items())
    return {"AWS": _as_sorted_list(principal)}


def _normalize_condition(condition):
    if not condition:
        return None
    out = {}
    for operator, checks in condition.items():
        if isinstance(checks, dict):
            out[operator] = dict((k, _as_sorted_list(v)) for k, v in checks.items())
        else:
            out[operator] = checks
    return out


def normalize_statement(statement, fold_case=True):
    """One statement in canonical form: lists sorted and deduplicated, action names lower case.

    ``fold_case=False`` keeps the case of action names (for display).
    """
    out = {}
    for key, value in statement.items():
        if key in _LIST_KEYS:
            out[key] = _as_sorted_list(value, lower=fold_case and key in _CASE_INSENSITIVE_KEYS)
        elif key in ("Principal", "NotPrincipal"):
            out[key] = _normalize_principal(value)
        elif key == "Condition":
            cond = _normalize_condition(value)
            if cond:
                out[key] = cond
        elif key == "Effect":
            out[key] = str(value).capitalize()
        elif key == "Sid":
            if value:
                out[key] = str(value)
        else:
            out[key] = value
    return out


def _sort_key(statement):
    return json.dumps(statement, sort_keys=True)


def normalize_policy(policy, fold_case=True):
    """Canonical form of a policy (dict or JSON text), for comparison. None stays None.

    An empty Statement list is the same as no policy at all. S3 action names are case
    insensitive, so they are compared in lower case; ``fold_case=False`` keeps their case (for
    showing a policy in a diff or a result).
    """
    policy = load_policy(policy)
    if policy is None:
        return None
    statements = policy["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    statements = [normalize_statement(s, fold_case) for s in statements]
    if not statements:
        return None
    unique = dict((_sort_key(s), s) for s in statements)
    return {
        "Version": policy.get("Version") or POLICY_VERSION,
        "Statement": [unique[k] for k in sorted(unique)],
    }


def policies_equal(left, right, ignore_sid=False):
    """Whether two policies grant the same. ``ignore_sid`` for documents we own whole (user
    policies), where a server that drops or renames statement ids must not cause a rewrite."""
    a, b = normalize_policy(left), normalize_policy(right)
    if ignore_sid:
        a, b = _without_sids(a), _without_sids(b)
    return a == b


def _without_sids(norm):
    if norm is None:
        return None
    statements = [dict((k, v) for k, v in st.items() if k != "Sid") for st in norm["Statement"]]
    unique = dict((_sort_key(st), st) for st in statements)
    return {"Version": norm["Version"], "Statement": [unique[k] for k in sorted(unique)]}


def display_policy(policy):
    """A policy in canonical order with its action names as written, or None."""
    return normalize_policy(policy, fold_case=False)


def policy_json(policy):
    """Stable JSON text of a policy dict (what we send)."""
    return json.dumps(policy, sort_keys=True, separators=(",", ":"))


def merge_owned_statement(current, owned_sid, statement):
    """``current`` with the statement named ``owned_sid`` replaced by ``statement`` (or dropped).

    Other statements stay as they are. Returns None when no statement remains (no policy).
    """
    current = load_policy(current)
    others = []
    version = POLICY_VERSION
    if current is not None:
        version = current.get("Version") or POLICY_VERSION
        statements = current["Statement"]
        if isinstance(statements, dict):
            statements = [statements]
        others = [s for s in statements if s.get("Sid") != owned_sid]
    statements = list(others)
    if statement is not None:
        statements.append(statement)
    if not statements:
        return None
    return {"Version": version, "Statement": statements}


def anonymous_access(policy, bucket):
    """What an anonymous visitor may do on ``bucket`` by ``policy``: (get, list, put) booleans.

    A coarse check of Allow statements for the principal ``*`` (conditions are ignored), used to
    warn when another statement grants anonymous listing or writing.
    """
    norm = normalize_policy(policy)
    get = lst = put = False
    if not norm:
        return get, lst, put
    for st in norm["Statement"]:
        if st.get("Effect") != "Allow" or "*" not in (st.get("Principal") or {}).get("AWS", []):
            continue
        actions = st.get("Action", [])
        resources = st.get("Resource", [])

        def allowed(action, actions=actions):
            return any(a in ("*", "s3:*", action) for a in actions)
        on_bucket = any(r in (bucket_arn(bucket), "*", "arn:aws:s3:::*") for r in resources)
        on_objects = any(r.startswith(bucket_arn(bucket) + "/") or r in ("*", "arn:aws:s3:::*") for r in resources)
        lst = lst or (on_bucket and allowed("s3:listbucket"))
        get = get or (on_objects and allowed("s3:getobject"))
        put = put or (on_objects and allowed("s3:putobject"))
    return get, lst, put
