# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The durable record of a Mastodon instance: a ConfigMap ``<instance>-record``.

The record outlives a default teardown (it does not carry ``app.kubernetes.io/managed-by``,
which teardown selects on), so the version guard and the identity checks still know what the
instance ran and where its data lives after the workloads were deleted. It never holds a
secret: only versions, names, hosts and timestamps.

Pure parts (no network, unit tested):

- ``parse_version(text)`` -> ``(major, minor, patch, prerelease)`` or ``None``;
  ``compare_versions(a, b)`` -> -1, 0 or 1 (semver precedence); ``skips_minor(have, want)``;
  ``build_metadata(text)``; ``valid_image_tag(text)``.
- ``check_problems(record, desired, ...)`` -> list of one-line problems.
- ``plan_update(data, fields, event, now)`` -> ``(new_data, changed_fields)``.

Kubernetes parts (CoreV1Api of the kubernetes client):

- ``read_record(api_client, namespace, instance)`` -> dict or ``None``.
- ``update_record(api_client, namespace, instance, fields, ...)`` -> dict: GET, compare,
  and write only when something differs (create with POST, replace with PUT carrying the
  resourceVersion read; a 409 means another writer was first, so read and plan again).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import functools
import json
import random
import re
import time

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client

try:
    from kubernetes.client import CoreV1Api
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - the module reports missing_required_lib via k8s_client
    CoreV1Api = None
    ApiException = Exception

IDENTITY_FIELDS = ("local_domain", "db_host", "db_name", "db_user", "s3_bucket", "s3_endpoint")
VERSION_FIELDS = ("deployed_version", "migrated_version")
UPDATE_FIELDS = VERSION_FIELDS + IDENTITY_FIELDS
DATA_KEYS = UPDATE_FIELDS + ("created", "updated", "history")
DESIRED_KEYS = ("version",) + IDENTITY_FIELDS
OVERRIDABLE = IDENTITY_FIELDS
HISTORY_LIMIT = 20
DEFAULT_MAX_ATTEMPTS = 10

RECORD_LABEL = "mastodon.fediverse/record"
INSTANCE_LABEL = "app.kubernetes.io/instance"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "fediverse.mastodon"

DEFAULT_VARIABLES = dict((field, field) for field in DESIRED_KEYS)
DEFAULT_VARIABLES.update(allow_downgrade="mastodon_allow_downgrade", version_guard="mastodon_version_guard",
                         overrides="mastodon_record_override")

# SemVer 2.0.0 with an optional leading "v" and without build metadata: numeric identifiers
# have no leading zeros, pre-release identifiers are [0-9A-Za-z-].
_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER_RE = re.compile(r"^v?(%s)\.(%s)\.(%s)(?:-(%s(?:\.%s)*))?\Z" % (_NUM, _NUM, _NUM, _PRE_ID, _PRE_ID))
# What a container image tag may be (OCI distribution spec).
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")


class RecordError(Exception):
    """An API error, an invalid request or exhausted retries, as one readable line."""


# ---------------------------------------------------------------------------------------------
# versions

def parse_version(text):
    """``(major, minor, patch, prerelease)`` for a release tag, or ``None``.

    Accepts ``4.6.3``, ``v4.6.3`` and pre-releases such as ``v4.6.3-rc.1`` (``prerelease`` is a
    tuple of its dot-separated identifiers, numeric ones as ``int``; ``()`` for a release).
    Refuses build metadata (``v4.6.3+build``), missing parts (``4.6``), leading zeros
    (``04.6.3``), surrounding spaces and anything else that is not SemVer.
    """
    if not isinstance(text, str):
        return None
    match = _SEMVER_RE.match(text)
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    prerelease = tuple(int(part) if part.isdigit() else part for part in pre.split(".")) if pre else ()
    return int(major), int(minor), int(patch), prerelease


def _as_version(value):
    if isinstance(value, tuple) and len(value) == 4:
        return value
    parsed = parse_version(value)
    if parsed is None:
        raise ValueError("%r is not a release version like v4.6.3" % (value,))
    return parsed


def _compare_prerelease(a, b):
    if a == b:
        return 0
    if not a:  # a release ranks above its pre-releases
        return 1
    if not b:
        return -1
    for x, y in zip(a, b):
        if x == y:
            continue
        if isinstance(x, int) and isinstance(y, int):
            return -1 if x < y else 1
        if isinstance(x, int):  # numeric identifiers rank below alphanumeric ones
            return -1
        if isinstance(y, int):
            return 1
        return -1 if x < y else 1
    return -1 if len(a) < len(b) else 1


def compare_versions(a, b):
    """-1, 0 or 1 as version ``a`` ranks below, equal to or above ``b`` (SemVer precedence).

    Takes version strings or tuples from ``parse_version``; raises ``ValueError`` for a string
    that is not a release version. ``v4.6.3`` equals ``4.6.3``; ``4.6.3-rc.1`` ranks below ``4.6.3``.
    """
    a, b = _as_version(a), _as_version(b)
    if a[:3] != b[:3]:
        return -1 if a[:3] < b[:3] else 1
    return _compare_prerelease(a[3], b[3])


def version_lt(a, b):
    """True when version ``a`` ranks below ``b``."""
    return compare_versions(a, b) < 0


def skips_minor(have, want):
    """True when going from ``have`` to ``want`` skips a minor series.

    Allowed: a version not above ``have``; the same or the next minor of the same major
    (4.4.x -> 4.5.y); the next major's .0 series (3.5.x -> 4.0.y). Everything else above
    ``have`` skips a series (4.4.x -> 4.6.0, 3.5.x -> 4.1.0, 3.5.x -> 5.0.0).
    """
    have, want = _as_version(have), _as_version(want)
    if compare_versions(want, have) <= 0:
        return False
    if want[0] == have[0]:
        return want[1] > have[1] + 1
    return not (want[0] == have[0] + 1 and want[1] == 0)


def build_metadata(text):
    """The ``+...`` build metadata of a SemVer-looking string, or ``None``."""
    if not isinstance(text, str) or "+" not in text:
        return None
    base, meta = text.split("+", 1)
    return "+" + meta if parse_version(base) is not None else None


def valid_image_tag(text):
    """True when ``text`` can be a container image tag (what a custom version must be)."""
    return isinstance(text, str) and bool(_TAG_RE.match(text))


def version_value_problem(variable, value, version_guard=True):
    """A one-line problem when ``value`` cannot be used as a version here, else ``None``."""
    meta = build_metadata(value)
    if meta is not None:
        return ("%s: '%s' carries build metadata ('%s'), which an image tag cannot hold; set %s to '%s'"
                % (variable, value, meta, variable, value[:-len(meta)]))
    if not valid_image_tag(value):
        return ("%s: %r is not a valid image tag (letters, digits, '_', '.', '-', at most 128); set %s to a "
                "release like v4.6.3" % (variable, value, variable))
    if version_guard and parse_version(value) is None:
        return ("%s: '%s' is not a release version like v4.6.3 or v4.6.3-rc.1; set %s to a release, or set "
                "mastodon_version_guard=false to deploy a custom tag (the guard then cannot compare versions)"
                % (variable, value, variable))
    return None


_USERINFO_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")


def field_value_problem(option, field, value):
    """Why ``value`` cannot be stored as ``field`` of the record (None when it can).

    Versions must be image tags without build metadata (custom tags are fine here: the guard
    is the check's business). Nothing that looks like a credential is stored: an endpoint with
    ``user:password@`` or a host with ``@`` is refused, and the message does not repeat it.
    """
    if not isinstance(value, str):
        return "%s: %s must be a string" % (option, field)
    if field in VERSION_FIELDS or field == "version":
        return version_value_problem(option, value, version_guard=False)
    if "\n" in value or "\r" in value or len(value) > 1024:
        return "%s: %s must be one line of at most 1024 characters" % (option, field)
    if field == "s3_endpoint" and _USERINFO_RE.match(value):
        return ("%s: s3_endpoint carries credentials (user:password@); give the bare URL, the record must hold no "
                "secret" % option)
    if field == "db_host" and "@" in value:
        return "%s: db_host must be a host name or address, without user or password; the record must hold no secret" % option
    return None


# ---------------------------------------------------------------------------------------------
# the record's content

def record_name(instance):
    """Name of the record ConfigMap of ``instance``."""
    return "%s-record" % instance


def instance_problem(instance):
    """Why ``instance`` cannot name a record (None when it can)."""
    if not isinstance(instance, str) or not _DNS_LABEL_RE.match(instance) or len(instance) > 56:
        return ("instance: %r must be a DNS label (lowercase letters, digits and '-', at most 56 characters) so that "
                "'<instance>-record' is a valid ConfigMap name; set instance to the name of the Mastodon instance" % (instance,))
    return None


def now_iso():
    """The current time as ISO-8601 UTC with a Z, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_history(text):
    """The history list stored under ``history`` (``[]`` when absent or unreadable)."""
    if not text:
        return []
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return []
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, dict)]


def dump_history(entries):
    return json.dumps(list(entries)[-HISTORY_LIMIT:], separators=(",", ":"), sort_keys=True)


def decode_record(data):
    """The record as returned by the module: the ConfigMap's data with ``history`` as a list."""
    if data is None:
        return None
    record = dict(data)
    record["history"] = parse_history(data.get("history"))
    return record


def _present(value):
    return value is not None and value != ""


def plan_update(data, fields, event=None, now=None):
    """What the record's data becomes when ``fields`` are set.

    ``data`` is the current ConfigMap data (``None`` when the record does not exist yet).
    ``fields`` maps names of ``UPDATE_FIELDS`` to values; ``None`` or ``""`` leaves a field as
    it is. Returns ``(new_data, changed_fields)``. When no field changes, ``new_data`` is
    ``data`` itself (nothing to write). Otherwise ``updated`` is set to ``now``, ``created``
    too for a new record, and one history entry ``{time, version, event}`` is appended
    (the last ``HISTORY_LIMIT`` entries are kept). Keys that are not ours are kept.
    """
    unknown = sorted(set(fields) - set(UPDATE_FIELDS))
    if unknown:
        raise RecordError("cannot set %s: the record's fields are %s" % (", ".join(unknown), ", ".join(UPDATE_FIELDS)))
    current = dict(data or {})
    changed = [key for key in UPDATE_FIELDS if _present(fields.get(key)) and current.get(key) != str(fields[key])]
    if data is not None and not changed:
        return data, []
    now = now or now_iso()
    new = dict(current)
    for key in changed:
        new[key] = str(fields[key])
    if data is None:
        new["created"] = now
    new.setdefault("created", now)
    new["updated"] = now
    if not event:
        event = "created" if data is None else "updated " + ", ".join(changed)
    history = parse_history(current.get("history"))
    history.append({"time": now, "version": new.get("deployed_version"), "event": event})
    new["history"] = dump_history(history)
    return new, changed


# ---------------------------------------------------------------------------------------------
# check

def _quote(value):
    return "'%s'" % value


def check_problems(record, desired, instance, overrides=(), allow_downgrade=False, version_guard=True,
                   variables=None):
    """The problems of deploying ``desired`` onto an instance whose record is ``record``.

    ``record`` is the record's data (``decode_record`` or raw; ``None`` before the first
    install). ``desired`` maps ``DESIRED_KEYS`` to the values this run would deploy (missing,
    ``None`` or ``""`` = not checked). ``overrides`` lists identity fields the operator allows
    to change. ``variables`` maps fields (and ``allow_downgrade``, ``version_guard``,
    ``overrides``) to the inventory variables named in messages. Returns a list of one-line
    strings, each starting with the variable to fix.
    """
    names = dict(DEFAULT_VARIABLES)
    names.update(dict((k, v) for k, v in (variables or {}).items() if v))
    overrides = list(overrides or ())
    record = record or {}
    problems = []

    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        problems.append("%s: %s cannot be overridden; name only fields of the record: %s"
                        % (names["overrides"], ", ".join(unknown), ", ".join(OVERRIDABLE)))

    for field in IDENTITY_FIELDS:
        want, have = desired.get(field), record.get(field)
        var = names[field]
        if _present(want):
            problem = field_value_problem(var, field, want)
            if problem:
                problems.append(problem)
                continue
        if not _present(want) or not _present(have) or str(want) == have or field in overrides:
            continue
        if field == "local_domain":
            problems.append(
                "%s: %s was installed with the local domain %s and this run asks for %s; Mastodon's LOCAL_DOMAIN can "
                "never change once the instance is set up (accounts, keys and federation are bound to it). Set %s back "
                "to %s, or, only if the instance is being rebuilt from scratch on purpose, add local_domain to %s"
                % (var, instance, _quote(have), _quote(want), var, _quote(have), names["overrides"]))
        elif field == "s3_endpoint" and str(want).startswith("incluster") and str(have).startswith("incluster"):
            servers = dict((value, value.split(":", 1)[1] if ":" in value else "minio") for value in (str(have), str(want)))
            problems.append(
                "minio_s3_server: %s keeps its media in the in-cluster %s and this run asks for the in-cluster %s, which "
                "holds none of them (the servers share no data). Set minio_s3_server: %s to keep it; to move, copy the "
                "bucket to the new server first, then add s3_endpoint to %s"
                % (instance, servers[str(have)], servers[str(want)], servers[str(have)], names["overrides"]))
        else:
            where = "database" if field.startswith("db_") else "bucket"
            problems.append(
                "%s: %s was installed with %s %s and this run asks for %s, which would point Mastodon at another %s "
                "than the one holding its data. Set %s back to %s, or, if the data really moved there, add %s to %s"
                % (var, instance, field, _quote(have), _quote(want), where, var, _quote(have), field, names["overrides"]))

    want = desired.get("version")
    if _present(want):
        problems.extend(_version_problems(record, str(want), instance, allow_downgrade, version_guard, names))
    return problems


def _version_problems(record, want, instance, allow_downgrade, version_guard, names):
    var = names["version"]
    problem = version_value_problem(var, want, version_guard)
    if problem:
        return [problem]
    deployed, migrated = record.get("deployed_version"), record.get("migrated_version")
    want_v = parse_version(want)
    problems = []
    recorded = [(label, value) for label, value in (("deployed", deployed), ("migrated", migrated)) if _present(value)]
    if want_v is None:  # a custom tag, allowed because the guard is off: nothing to compare
        return problems
    comparable = []
    for label, value in recorded:
        parsed = parse_version(value)
        if parsed is None:
            if version_guard and value != want:
                problems.append(
                    "%s: %s last %s the custom tag %s, so the guard cannot tell whether %s is an upgrade; set %s=false "
                    "for this run if you know the database schema fits %s"
                    % (var, instance, "deployed" if label == "deployed" else "completed migrations for", _quote(value),
                       want, names["version_guard"], want))
            continue
        comparable.append((label, value, parsed))
    if not allow_downgrade:
        newer = [(label, value) for label, value, parsed in comparable if compare_versions(want_v, parsed) < 0]
        if newer:
            what = " and ".join("%s %s" % ("deployed" if label == "deployed" else "completed the migrations of", value)
                                for label, value in newer)
            floor = max(comparable, key=lambda item: functools.cmp_to_key(compare_versions)(item[2]))[1]
            problems.append(
                "%s: %s has %s, and %s is a downgrade; migrations are not reverted, so the older code would run on a "
                "newer schema. Set %s to %s or later, restore a backup taken before that upgrade, or set %s=true if "
                "you know the schema is compatible" % (var, instance, what, want, var, floor, names["allow_downgrade"]))
    if version_guard:
        base = [(value, parsed) for label, value, parsed in comparable if label == "deployed"] or \
            [(value, parsed) for label, value, parsed in comparable]
        if base:
            have, have_v = base[0]
            if skips_minor(have_v, want_v):
                if want_v[0] == have_v[0]:
                    missing = "%d.%d" % (have_v[0], have_v[1] + 1)
                else:
                    missing = "%d.0" % (have_v[0] + 1)
                problems.append(
                    "%s: %s runs %s, and going straight to %s skips a minor series; deploy the latest %s.x first "
                    "(every minor series must run its migrations), then %s. %s=false disables this check"
                    % (var, instance, have, want, missing, want, names["version_guard"]))
    return problems


# ---------------------------------------------------------------------------------------------
# Kubernetes

def _api_error(exc, action, namespace, name):
    status, detail = k8s_client.api_error_detail(exc)
    hint = ""
    if status == 404 and action == "create":
        hint = " Create the namespace first, or set namespace to the instance's namespace."
    elif status in (401, 403):
        hint = " Check the Kubernetes credentials (kubeconfig, context, api_key) and their RBAC rights on ConfigMaps."
    elif status == 422:
        hint = " Check the labels option and the record's values."
    return RecordError("Cannot %s ConfigMap %s/%s: HTTP %s %s.%s" % (action, namespace, name, status, detail, hint))


def _json(response):
    data = response.data
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data)


def read_raw(api_client, namespace, instance):
    """The record ConfigMap as a JSON dict, or ``None`` when it (or its namespace) does not exist."""
    name = record_name(instance)
    try:
        response = CoreV1Api(api_client).read_namespaced_config_map(name, namespace, _preload_content=False)
    except ApiException as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise _api_error(exc, "read", namespace, name)
    return _json(response)


def read_record(api_client, namespace, instance):
    """``(record, resource_version)``: the decoded record (``None`` when absent) and its resourceVersion."""
    raw = read_raw(api_client, namespace, instance)
    if raw is None:
        return None, None
    return decode_record(raw.get("data") or {}), raw["metadata"].get("resourceVersion")


def required_labels(instance, labels=None):
    """The record's labels: ``labels`` plus the identifying ones; never managed-by=fediverse.mastodon."""
    merged = dict(labels or {})
    merged.update({INSTANCE_LABEL: instance, PART_OF_LABEL: "mastodon", RECORD_LABEL: "true"})
    return merged


def labels_problem(labels, instance=None):
    """Why the ``labels`` option cannot be used (None when it can).

    The three labels the module sets may be given with the value the module sets anyway.
    """
    for key, value in (labels or {}).items():
        if key == MANAGED_BY_LABEL and value == MANAGED_BY_VALUE:
            return ("labels: %s=%s would let teardown select and delete the record; drop that label"
                    % (MANAGED_BY_LABEL, MANAGED_BY_VALUE))
        if key in (INSTANCE_LABEL, PART_OF_LABEL, RECORD_LABEL):
            wanted = required_labels(instance or value)[key]
            if value != wanted:
                return "labels: %s is set by the module to %s; drop it from labels" % (key, wanted)
            continue
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE_RE.match(value):
            return ("labels: the value of %s must be a string of at most 63 letters, digits, '-', '_' or '.', starting "
                    "and ending with a letter or digit" % key)
    return None


def update_record(api_client, namespace, instance, fields, event=None, labels=None, check_mode=False,
                  max_attempts=DEFAULT_MAX_ATTEMPTS, now=None):
    """Set ``fields`` in the record, writing only when something differs.

    Returns a dict: ``changed``, ``created``, ``changed_fields`` (list), ``labels_changed``,
    ``before`` (data before, ``None`` when absent), ``after`` (data after), ``resource_version``
    (``None`` in check mode for an absent record), ``writes`` (requests that changed the
    ConfigMap: 0 or 1) and ``attempts``.
    """
    core = CoreV1Api(api_client)
    name = record_name(instance)
    wanted_labels = required_labels(instance, labels)
    for attempt in range(1, max_attempts + 1):
        raw = read_raw(api_client, namespace, instance)
        before = dict(raw.get("data") or {}) if raw is not None else None
        after, changed_fields = plan_update(before, fields, event=event, now=now)
        result = dict(changed=False, created=raw is None, changed_fields=changed_fields, labels_changed=False,
                      before=before, after=dict(after), writes=0, attempts=attempt,
                      resource_version=raw["metadata"].get("resourceVersion") if raw is not None else None)
        if raw is None:
            result.update(changed=True, labels_changed=True)
            if check_mode:
                return result
            body = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": namespace, "labels": wanted_labels},
                    "data": after}
            try:
                created = core.create_namespaced_config_map(namespace, body, _preload_content=False)
            except ApiException as exc:
                if getattr(exc, "status", None) == 409:
                    _pause(attempt)
                    continue
                raise _api_error(exc, "create", namespace, name)
            result.update(writes=1, resource_version=_json(created)["metadata"].get("resourceVersion"))
            return result

        current_labels = dict(raw["metadata"].get("labels") or {})
        new_labels = dict(current_labels)
        new_labels.update(wanted_labels)
        if new_labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE:
            del new_labels[MANAGED_BY_LABEL]
        labels_changed = new_labels != current_labels
        if not changed_fields and not labels_changed:
            return result
        result.update(changed=True, labels_changed=labels_changed)
        if check_mode:
            return result
        raw["data"] = after
        raw["metadata"]["labels"] = new_labels
        try:
            replaced = core.replace_namespaced_config_map(name, namespace, raw, _preload_content=False)
        except ApiException as exc:
            if getattr(exc, "status", None) in (404, 409):
                _pause(attempt)
                continue
            raise _api_error(exc, "update", namespace, name)
        result.update(writes=1, resource_version=_json(replaced)["metadata"].get("resourceVersion"))
        return result
    raise RecordError("ConfigMap %s/%s kept changing under us: gave up after %d attempts. Another run is writing "
                      "the record; rerun when it is done." % (namespace, name, max_attempts))


def _pause(attempt):
    time.sleep(random.uniform(0.02, 0.1) * min(attempt, 5))
