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

import fnmatch
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


BACKUP_WRITE_SID = "FediverseMastodonBackupWrite"
BACKUP_DENY_SID = "FediverseMastodonBackupNoDelete"

BACKUP_WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
"""What the backup writer may do: add objects under its prefix (multipart included), nothing else."""

BACKUP_DENIED_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteBucket", "s3:DeleteBucketPolicy",
                         "s3:PutBucketPolicy", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration",
                         "s3:PutBucketObjectLockConfiguration", "s3:PutObjectRetention", "s3:PutObjectLegalHold",
                         "s3:BypassGovernanceRetention", "s3:PutBucketAcl")
"""Denied explicitly, so that even a bucket the writer owned could not lose a backup through it.
GetObject too: RGW lets the owner of an object (the writer) read it back unless a policy denies it."""


def backup_writer_policy(bucket, prefix=""):
    """The backup writer's policy (the key the backup Job holds): it may write new objects under
    ``prefix`` of ``bucket`` and may not delete any object or version, nor change what protects
    them (versioning, lifecycle, object lock, the bucket policy). An overwrite of an existing
    key cannot be refused by a policy: on a versioned bucket it only adds a version, and the
    older one stays (the writer cannot delete versions)."""
    prefix = (prefix or "").strip("/")
    objects = objects_arn(bucket, prefix + "/" if prefix else "")
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Sid": BACKUP_WRITE_SID, "Effect": "Allow", "Action": list(BACKUP_WRITE_ACTIONS), "Resource": [objects]},
            {"Sid": BACKUP_DENY_SID, "Effect": "Deny", "Action": list(BACKUP_DENIED_ACTIONS),
             "Resource": [bucket_arn(bucket), objects_arn(bucket)]},
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


def _matches(pattern, value):
    """IAM wildcard match (``*`` and ``?``), case insensitive: ``s3:Get*`` matches ``s3:getobject``."""
    return fnmatch.fnmatchcase(value.lower(), pattern.lower().replace("[", "[[]"))


def _resource_matches(pattern, value):
    """IAM wildcard match of resources (ARNs are case sensitive)."""
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _principal_values(principal):
    """Every principal named in a Principal/NotPrincipal value, in whatever shape it was written."""
    if principal is None:
        return []
    if isinstance(principal, dict):
        out = []
        for value in principal.values():
            out.extend(_as_sorted_list(value))
        return out
    return _as_sorted_list(principal)


def _is_allow(statement):
    return str(statement.get("Effect", "")).lower() == "allow"


def applies_to_anonymous(statement):
    """True when ``statement`` applies to anonymous visitors.

    That is a ``Principal`` naming ``*`` in any shape (``"*"``, ``{"AWS": "*"}``,
    ``{"AWS": ["*"]}``...), or a ``NotPrincipal`` (everyone except those named, so anonymous
    visitors too) that does not itself name ``*``.
    """
    if "NotPrincipal" in statement:
        return "*" not in _principal_values(statement["NotPrincipal"])
    return "*" in _principal_values(statement.get("Principal"))


def _named_principals(principal):
    """``principal`` without its ``*`` entries: the specific principals, or None when none is left."""
    if not isinstance(principal, dict):
        principal = {"AWS": principal}
    out = {}
    for key, value in principal.items():
        kept = [v for v in _as_sorted_list(value) if v != "*"]
        if kept:
            out[key] = kept
    return out or None


def _within(resource, allowed):
    """Whether every object ``resource`` can name is covered by one of ``allowed`` (``.../prefix*``)."""
    for pattern in allowed:
        if resource == pattern:
            return True
        if pattern.endswith("*") and "*" not in pattern[:-1] and "?" not in pattern[:-1] \
                and resource.startswith(pattern[:-1]):
            return True
    return False


def conforms_to_anonymous_read(statement, allowed_resources):
    """Whether an anonymous Allow ``statement`` grants no more than ``s3:GetObject`` on ``allowed_resources``.

    ``NotAction`` and ``NotResource`` never conform (they grant everything they do not name), nor
    does a wildcard action such as ``s3:Get*`` or ``s3:*``.
    """
    if "NotAction" in statement or "NotResource" in statement:
        return False
    actions = _as_sorted_list(statement.get("Action"), lower=True)
    resources = _as_sorted_list(statement.get("Resource"))
    if not actions or not resources:
        return False
    if any(a != "s3:getobject" for a in actions):
        return False
    return all(_within(r, allowed_resources) for r in resources)


def restrict_anonymous(policy, allowed_resources=None, keep_sid=None):
    """``policy`` with every anonymous Allow beyond ``s3:GetObject`` on ``allowed_resources`` taken out.

    ``allowed_resources`` lists the object ARNs anonymous visitors may read (the Resource of the
    anonymous-read statement); empty or None means they may do nothing, so every anonymous
    Allow goes. The statement whose Sid is ``keep_sid`` (the module's own) is left alone.

    A foreign anonymous Allow statement is

    - kept as it is when it grants only ``s3:GetObject`` within ``allowed_resources``;
    - narrowed when it also names specific principals (``"*"`` is taken out of its Principal,
      so those principals keep exactly what they had);
    - removed otherwise (including ``NotPrincipal``, ``NotAction`` and ``NotResource`` tricks,
      and wildcard actions such as ``s3:*`` or ``s3:Get*``).

    Deny statements and statements for specific principals are never touched.

    Returns ``(policy, revoked)``: the new policy (None when no statement is left, so the bucket
    policy is deleted) and the list of ``(statement as it was, "removed" | "narrowed")``.
    """
    policy = load_policy(policy)
    if policy is None:
        return None, []
    allowed = list(allowed_resources or [])
    statements = policy["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    kept, revoked = [], []
    for st in statements:
        if (keep_sid is not None and st.get("Sid") == keep_sid) or not _is_allow(st) \
                or not applies_to_anonymous(st):
            kept.append(st)
            continue
        if allowed and conforms_to_anonymous_read(st, allowed):
            kept.append(st)
            continue
        named = None if "NotPrincipal" in st else _named_principals(st.get("Principal"))
        if named:
            narrowed = dict(st)
            narrowed["Principal"] = named
            kept.append(narrowed)
            revoked.append((st, "narrowed"))
        else:
            revoked.append((st, "removed"))
    if not kept:
        return None, revoked
    out = dict(policy)
    out["Statement"] = kept
    return out, revoked


def anonymous_access(policy, bucket):
    """What an anonymous visitor may do on ``bucket`` by ``policy``: (get, list, put) booleans.

    A coarse check of the Allow statements that apply to anonymous visitors (conditions and Deny
    statements are ignored; wildcards, NotAction, NotResource and NotPrincipal are understood),
    used to warn when a statement grants anonymous listing or writing.
    """
    policy = load_policy(policy)
    get = lst = put = False
    if not policy:
        return get, lst, put
    statements = policy["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    bucket_target = bucket_arn(bucket)
    object_target = bucket_arn(bucket) + "/any-object"
    for st in statements:
        if not _is_allow(st) or not applies_to_anonymous(st):
            continue

        def allowed(action, st=st):
            if "NotAction" in st:
                return not any(_matches(a, action) for a in _as_sorted_list(st["NotAction"]))
            return any(_matches(a, action) for a in _as_sorted_list(st.get("Action")))

        def covers(target, st=st):
            if "NotResource" in st:
                return not any(_resource_matches(r, target) for r in _as_sorted_list(st["NotResource"]))
            return any(_resource_matches(r, target) or (r.startswith(bucket_target + "/") and target == object_target)
                       for r in _as_sorted_list(st.get("Resource")))
        lst = lst or (covers(bucket_target) and allowed("s3:ListBucket"))
        get = get or (covers(object_target) and allowed("s3:GetObject"))
        put = put or (covers(object_target) and allowed("s3:PutObject"))
    return get, lst, put
