# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate-once storage of values in a Kubernetes Secret, safe against concurrent runs.

The one rule: a value that is already in the Secret is never replaced unless the caller asks
for exactly that key. Writes use optimistic concurrency:

- an absent Secret is created with POST (create-if-absent); a 409 AlreadyExists means another
  run won the race, so we read its Secret and plan again against it;
- a present Secret is replaced with PUT carrying the resourceVersion we read; a 409 Conflict
  means somebody wrote in between, so we read again and plan again. Keys the other run wrote
  are then "present" and are kept, never overwritten.

Public API (values are plain ``str``; nothing here logs or formats a value into a message):

- ``read_secret(api_client, namespace, name)`` -> ``(values, resource_version)`` or ``None``
- ``apply_secret(api_client, namespace, name, plan, labels=None, check_mode=False)`` -> dict
- ``ensure_secret_keys(api_client, namespace, name, wanted, labels=None, check_mode=False,
  rotate=())`` -> dict
- ``SecretStoreError``: raised for API errors and exhausted retries; its message never holds a value.

The dicts returned carry ``values`` (the final content of the Secret) for the calling Python
code, e.g. to create a MinIO user with the stored key. A module must never return ``values``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import functools
import json
import random
import re
import time

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils import secret_formats

try:
    from kubernetes.client import CoreV1Api
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - modules report missing_required_lib via k8s_client
    CoreV1Api = None
    ApiException = Exception

DEFAULT_MAX_ATTEMPTS = 10
KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")


class SecretStoreError(Exception):
    """A Kubernetes error or an impossible request. The message names keys, never values.

    ``reason`` and ``fix``, when set, say the same in two parts without the option's name, for
    callers that compose their own line."""

    def __init__(self, msg, reason=None, fix=None):
        super(SecretStoreError, self).__init__(msg)
        self.reason, self.fix = reason, fix


def valid_key_name(key):
    """True when ``key`` is a legal Secret data key ([-._a-zA-Z0-9]+, at most 253 chars)."""
    return bool(key) and len(key) <= 253 and bool(KEY_RE.match(key))


def _b64decode(raw):
    return base64.b64decode(raw).decode("utf-8", "surrogateescape")


def _b64encode(value):
    return base64.b64encode(value.encode("utf-8", "surrogateescape")).decode("ascii")


def _api_error(exc, action, namespace, name):
    status, detail = k8s_client.api_error_detail(exc)
    hint = ""
    if status == 404 and action == "create":
        hint = " Create the namespace first, or set namespace to an existing one."
    elif status in (401, 403):
        hint = " Check the Kubernetes credentials (kubeconfig, context, api_key) and their RBAC rights on Secrets."
    return SecretStoreError("Cannot %s Secret %s/%s: HTTP %s %s.%s" % (action, namespace, name, status, detail, hint))


def _read_raw(core, namespace, name):
    """The Secret as a JSON dict, or None when it does not exist."""
    try:
        response = core.read_namespaced_secret(name, namespace, _preload_content=False)
    except ApiException as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise _api_error(exc, "read", namespace, name)
    data = response.data
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data)


def _decode_values(raw):
    return dict((key, _b64decode(value)) for key, value in (raw.get("data") or {}).items())


def read_secret(api_client, namespace, name):
    """Return ``(values, resource_version)`` of Secret namespace/name, or ``None`` when absent.

    ``values`` maps each data key to its decoded ``str`` value.
    """
    raw = _read_raw(CoreV1Api(api_client), namespace, name)
    if raw is None:
        return None
    return _decode_values(raw), raw["metadata"].get("resourceVersion")


def _labels_missing(raw_labels, labels):
    raw_labels = raw_labels or {}
    return dict((k, v) for k, v in (labels or {}).items() if raw_labels.get(k) != v)


def apply_secret(api_client, namespace, name, plan, labels=None, check_mode=False,
                 max_attempts=DEFAULT_MAX_ATTEMPTS, secret_type="Opaque"):
    """Read the Secret, ask ``plan`` what to write, write it with optimistic concurrency.

    ``plan(current)`` gets the current values (``{}`` when the Secret is absent) and returns
    ``(updates, info)``: ``updates`` maps keys to new ``str`` values (only keys to add or
    replace; keys not named stay as they are), ``info`` is anything the caller wants back.
    ``plan`` is called again after every lost race, against the fresh content, so it must
    decide from ``current`` alone (generate a key only when it is missing there). It may raise
    to abort; nothing is written then.

    ``labels`` are set on creation and added to an existing Secret when missing or different
    (other labels stay). Returns a dict: ``changed``, ``created``, ``updated_keys`` (sorted),
    ``labels_changed``, ``before_keys`` (sorted list, ``None`` when the Secret was absent),
    ``resource_version`` (``None`` in check mode when the Secret is absent), ``values`` (the
    final content: never return it from a module), ``info`` (from the last ``plan`` call) and
    ``attempts``.
    """
    core = CoreV1Api(api_client)
    for attempt in range(1, max_attempts + 1):
        raw = _read_raw(core, namespace, name)
        current = _decode_values(raw) if raw is not None else {}
        updates, info = plan(dict(current))
        updates = dict(updates or {})
        for key in updates:
            if not valid_key_name(key):
                raise SecretStoreError("Secret key name %r is invalid: use only letters, digits, '-', '_' and '.'" % key)
        updates = dict((k, v) for k, v in updates.items() if current.get(k) != v)
        final = dict(current)
        final.update(updates)
        result = dict(changed=False, created=False, updated_keys=sorted(updates), labels_changed=False,
                      before_keys=sorted(current) if raw is not None else None,
                      resource_version=raw["metadata"].get("resourceVersion") if raw is not None else None,
                      values=final, info=info, attempts=attempt)
        if raw is None:
            result.update(changed=True, created=True, labels_changed=bool(labels))
            if check_mode:
                return result
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": secret_type,
                "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
                "data": dict((k, _b64encode(v)) for k, v in final.items()),
            }
            try:
                created = core.create_namespaced_secret(namespace, body, _preload_content=False)
            except ApiException as exc:
                if getattr(exc, "status", None) == 409:
                    _pause(attempt)
                    continue
                raise _api_error(exc, "create", namespace, name)
            result["resource_version"] = _resource_version(created)
            return result

        new_labels = _labels_missing(raw["metadata"].get("labels"), labels)
        if not updates and not new_labels:
            return result
        result.update(changed=True, labels_changed=bool(new_labels))
        if check_mode:
            return result
        raw_data = dict(raw.get("data") or {})
        for key, value in updates.items():
            raw_data[key] = _b64encode(value)
        raw["data"] = raw_data
        if new_labels:
            merged = dict(raw["metadata"].get("labels") or {})
            merged.update(new_labels)
            raw["metadata"]["labels"] = merged
        try:
            replaced = core.replace_namespaced_secret(name, namespace, raw, _preload_content=False)
        except ApiException as exc:
            if getattr(exc, "status", None) in (404, 409):
                _pause(attempt)
                continue
            raise _api_error(exc, "update", namespace, name)
        result["resource_version"] = _resource_version(replaced)
        return result
    raise SecretStoreError("Secret %s/%s kept changing under us: gave up after %d attempts. "
                           "Another writer is active; rerun when it is done." % (namespace, name, max_attempts))


def _resource_version(response):
    data = response.data
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data)["metadata"].get("resourceVersion")


def _pause(attempt):
    time.sleep(random.uniform(0.02, 0.1) * min(attempt, 5))


def ensure_secret_keys(api_client, namespace, name, wanted, labels=None, check_mode=False, rotate=(),
                       max_attempts=DEFAULT_MAX_ATTEMPTS, groups=()):
    """Make sure every key of ``wanted`` exists in the Secret; generate only the missing ones.

    ``wanted`` maps each key to a callable without arguments that returns a new ``str`` value.
    Keys listed in ``rotate`` are regenerated even when present. Keys in the Secret that are
    not in ``wanted`` are left alone. ``groups`` lists sets of keys that belong together (a
    certificate, its key and its CA): when one of them is missing, all are generated anew.
    Returns the dict of ``apply_secret`` plus ``generated``, ``rotated`` and ``kept`` (sorted
    lists of key names).
    """
    unknown = sorted(set(rotate) - set(wanted))
    if unknown:
        raise SecretStoreError("rotate names keys that are not managed here: %s" % ", ".join(unknown))

    def plan(current):
        updates = {}
        generated, rotated, kept = [], [], []
        incomplete = set()
        for group in groups:
            if any(key not in current for key in group):
                incomplete.update(group)
        for key in sorted(wanted):
            if key not in current or key in incomplete:
                updates[key] = wanted[key]()
                generated.append(key)
            elif key in rotate:
                updates[key] = wanted[key]()
                rotated.append(key)
            else:
                kept.append(key)
        return updates, dict(generated=generated, rotated=rotated, kept=kept)

    result = apply_secret(api_client, namespace, name, plan, labels=labels, check_mode=check_mode,
                          max_attempts=max_attempts)
    result.update(result.pop("info"))
    return result


def names_diff(before_keys, report):
    """An Ansible ``diff`` of key names only: ``(stored)`` before, ``(generated)`` etc. after."""
    before = dict((key, "(stored)") for key in before_keys or [])
    after = dict(before)
    for state in ("generated", "rotated", "stored"):
        for key in report.get(state, ()):
            after[key] = "(%s)" % state
    return dict(before=before, after=after)


SECRET_REF_OPTIONS = dict(
    name=dict(type="str", required=True),
    key=dict(type="str", required=True, no_log=False),
    namespace=dict(type="str"),
)
"""The suboptions of a Secret reference option: ``{name, key, namespace}`` (namespace defaults
to the module's own). Modules take credentials this way, so the value never passes through an
Ansible variable, a fact or a log: the module reads it from the cluster itself."""


def secret_ref_spec(**extra):
    """An argument-spec entry for a Secret reference option (``type: dict`` with its suboptions)."""
    spec = dict(type="dict", options=dict((k, dict(v)) for k, v in SECRET_REF_OPTIONS.items()))
    spec.update(extra)
    return spec


def read_secret_value(api_client, namespace, ref, option="secret reference"):
    """The decoded value that ``ref`` (``{name, key[, namespace]}``) points at.

    ``option`` names the module option in the error, so the message tells the operator which
    setting to fix. Raises SecretStoreError when the Secret or the key is missing; the message
    names the Secret and the key, never a value.
    """
    ns = ref.get("namespace") or namespace
    found = read_secret(api_client, ns, ref["name"])
    if found is None:
        reason = "Secret %s/%s does not exist" % (ns, ref["name"])
        raise SecretStoreError("%s: %s; create it, or point %s at the Secret that holds the credential"
                               % (option, reason, option), reason=reason, fix="create that Secret")
    values = found[0]
    if ref["key"] not in values:
        reason = "Secret %s/%s has no key %s (it has: %s)" % (ns, ref["name"], ref["key"], ", ".join(sorted(values)) or "none")
        raise SecretStoreError("%s: %s" % (option, reason), reason=reason, fix="add the key to that Secret")
    return values[ref["key"]]


def build_generators(keys):
    """Map each key to a generator; returns (generators, problems)."""
    generators, problems = {}, []
    for key in sorted(keys):
        spec = keys[key]
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            problems.append("keys.%s: must be a dict with format and length" % key)
            continue
        extra = sorted(set(spec) - set(["format", "length"]))
        fmt, length = spec.get("format", "alphanumeric"), spec.get("length", 32)
        if isinstance(length, str) and length.isdigit():
            length = int(length)
        problem = ("unknown option(s) %s (use format and length)" % ", ".join(extra) if extra else
                   "is not a valid Secret key name (letters, digits, '-', '_', '.')" if not valid_key_name(key)
                   else secret_formats.check_spec(fmt, length))
        if problem:
            problems.append("keys.%s: %s" % (key, problem))
            continue
        generators[key] = functools.partial(secret_formats.generate, fmt, length)
    return generators, problems


def build_tls_generators(spec):
    """Generators for ``ca.crt``, ``tls.crt`` and ``tls.key`` that share one new bundle
    (secret_formats.generate_tls_bundle), made only when a key is asked for; returns
    (generators, group, problems)."""
    spec = dict(spec or {})
    extra = sorted(set(spec) - set(["common_name", "organization", "names", "days"]))
    if extra:
        return {}, (), ["tls: unknown option(s) %s (use common_name, organization, names, days)" % ", ".join(extra)]
    bundle = {}

    def value(key):
        if not bundle:
            bundle.update(secret_formats.generate_tls_bundle(
                spec.get("common_name"), spec.get("organization"), spec.get("names") or (), int(spec.get("days") or 3650)))
        return bundle[key]
    if not spec.get("common_name") or not isinstance(spec.get("common_name"), str):
        return {}, (), ["tls.common_name must be a non-empty string"]
    generators = dict((key, functools.partial(value, key)) for key in secret_formats.TLS_KEYS)
    return generators, secret_formats.TLS_KEYS, []
