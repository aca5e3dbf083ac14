# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-compare-apply of Kubernetes objects with as few API requests as possible.

An object is written only when one of its desired fields differs from the live object, so a
rerun that changes nothing sends only GETs. Writes are server-side apply with one field manager.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import json
from decimal import Decimal, InvalidOperation

try:
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - the module reports the missing library
    ApiException = Exception

FIELD_MANAGER = "fediverse-mastodon"
IMMUTABLE_KINDS = frozenset([("batch", "Job")])
REDACTED = "**redacted**"

_SUFFIXES = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def parse_quantity(value):
    """A Kubernetes quantity ("500m", "1Gi", 2) as a Decimal, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str) or not value:
        return None
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and value.endswith(suffix):
            number = value[:-len(suffix)]
            break
    else:
        suffix, number = "", value
    try:
        return Decimal(number) * _SUFFIXES[suffix]
    except InvalidOperation:
        return None


def _is_empty(value):
    if isinstance(value, bool):
        return value is False
    if isinstance(value, (int, float)):
        return value == 0
    return value is None or value in ("", [], {})


def scalars_equal(desired, live):
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired == live and isinstance(desired, bool) and isinstance(live, bool)
    if str(desired) == str(live):
        return True
    quantity_d, quantity_l = parse_quantity(desired), parse_quantity(live)
    return quantity_d is not None and quantity_d == quantity_l


def is_subset(desired, live):
    """True when every field set in `desired` has the same value in `live`.

    Fields that the API server drops when they hold their zero value (false, 0, "", {}, [])
    count as equal to a missing field.
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return not desired and live is None
        for key, value in desired.items():
            if key not in live:
                if not _is_empty(value):
                    return False
            elif not is_subset(value, live[key]):
                return False
        return True
    if isinstance(desired, list):
        if not isinstance(live, list):
            return not desired and live is None
        return len(desired) == len(live) and all(is_subset(d, l) for d, l in zip(desired, live))
    if live is None:
        return _is_empty(desired)
    return scalars_equal(desired, live)


def _list_item_for(key, items):
    """The item of `items` that a managedFields list key ``k:{"name":"web"}`` names, or None."""
    try:
        wanted = json.loads(key[2:])
    except ValueError:
        return None
    for item in items:
        if isinstance(item, dict) and all(scalars_equal(v, item.get(k)) for k, v in wanted.items()):
            return item
    return None


def _dropped(owned, desired):
    """True when `owned` (a fieldsV1 tree) holds a field that `desired` no longer sets."""
    if not isinstance(owned, dict):
        return False
    for key, sub in owned.items():
        if key.startswith("f:"):
            if not isinstance(desired, dict):
                return False
            name = key[2:]
            if name not in desired:
                return True
            if _dropped(sub, desired[name]):
                return True
        elif key.startswith("k:") and isinstance(desired, list):
            item = _list_item_for(key, desired)
            if item is None or _dropped(sub, item):
                return True
    return False


def owned_field_dropped(definition, live, field_manager):
    """True when the live object holds a field that `field_manager` set by server-side apply and
    that `definition` no longer sets: a label, a nodeSelector, an env entry that was removed.

    `is_subset` cannot see those (it only looks at what the definition sets), and a server-side
    apply removes exactly them, so such an object must be applied again.
    """
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == field_manager and entry.get("operation") == "Apply":
            if _dropped(entry.get("fieldsV1") or {}, definition):
                return True
    return False


def project(live, shape):
    """The part of `live` that has the keys of `shape`, for a readable --diff."""
    if isinstance(shape, dict) and isinstance(live, dict):
        return dict((k, project(live[k], v)) for k, v in shape.items() if k in live)
    if isinstance(shape, list) and isinstance(live, list):
        return [project(l, shape[i]) if i < len(shape) else l for i, l in enumerate(live)]
    return live


def secret_string_data_to_data(definition):
    """Secrets: fold stringData into base64 data, so desired and live compare like for like."""
    if definition.get("kind") != "Secret" or not definition.get("stringData"):
        return definition
    definition = copy.deepcopy(definition)
    data = definition.setdefault("data", {}) or {}
    for key, value in definition.pop("stringData").items():
        data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
    definition["data"] = data
    return definition


def secret_values(definitions):
    """Every value of every Secret in `definitions`, plain and base64, to be masked in output."""
    values = set()
    for definition in definitions:
        if definition.get("kind") != "Secret":
            continue
        for value in (definition.get("stringData") or {}).values():
            values.add(str(value))
        for value in (definition.get("data") or {}).values():
            values.add(str(value))
            try:
                values.add(base64.b64decode(value).decode("utf-8"))
            except (ValueError, TypeError, UnicodeDecodeError):
                pass
    return set(v for v in values if v)


def redact(obj):
    """A copy of an object safe to print: Secret values are replaced."""
    if not isinstance(obj, dict) or obj.get("kind") != "Secret":
        return obj
    obj = copy.deepcopy(obj)
    for field in ("data", "stringData"):
        if isinstance(obj.get(field), dict):
            obj[field] = dict((k, REDACTED) for k in obj[field])
    annotations = obj.get("metadata", {}).get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    return obj


def split_api_version(api_version):
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


class KubeRest(object):
    """Tiny REST layer over kubernetes.client.ApiClient, with discovery cached per group-version."""

    def __init__(self, api_client):
        self.api = api_client
        self._resources = {}
        self.requests = []

    def request_counts(self):
        """How many requests were sent, by HTTP method (the modules' api_requests)."""
        counts = {}
        for method, dummy in self.requests:
            counts[method] = counts.get(method, 0) + 1
        return counts

    def call(self, method, path, body=None, query=None, content_type="application/json", accept="application/json"):
        raw = self.call_raw(method, path, body=body, query=query, content_type=content_type, accept=accept)
        return json.loads(raw) if raw else {}

    def call_raw(self, method, path, body=None, query=None, content_type="application/json", accept="application/json"):
        """The response body as bytes (a pod's log is text, not JSON)."""
        self.requests.append((method, path))
        headers = {"Accept": accept, "Content-Type": content_type}
        response = self.api.call_api(path, method, query_params=list(query or []), header_params=headers,
                                     body=body, auth_settings=["BearerToken"], _preload_content=False,
                                     _return_http_data_only=True)
        return response.data

    def resource(self, api_version, kind):
        group, version = split_api_version(api_version)
        key = (group, version)
        if key not in self._resources:
            base = "/api/%s" % version if not group else "/apis/%s/%s" % (group, version)
            try:
                listing = self.call("GET", base)
            except ApiException as exc:
                if getattr(exc, "status", None) == 404:
                    raise LookupError("the cluster does not serve API version %s (is the CRD of %s installed?)" % (api_version, kind))
                raise
            self._resources[key] = dict(
                (r["kind"], (base, r["name"], r.get("namespaced", False)))
                for r in listing.get("resources", []) if "/" not in r["name"])
        if kind not in self._resources[key]:
            raise LookupError("the cluster does not serve kind %s in %s (is its CRD installed?)" % (kind, api_version))
        return self._resources[key][kind]

    def path(self, api_version, kind, name, namespace):
        base, plural, namespaced = self.resource(api_version, kind)
        if namespaced:
            if not namespace:
                raise ValueError("%s/%s needs a namespace" % (kind, name))
            return "%s/namespaces/%s/%s/%s" % (base, namespace, plural, name)
        return "%s/%s/%s" % (base, plural, name)

    def list_metadata(self, api_version, kind, namespace, label_selector):
        """Identities (apiVersion, kind, metadata.name/namespace) of the objects a selector matches.

        Asks for PartialObjectMetadataList, so the server sends metadata only: listing Secrets this
        way never transfers (or exposes) their data."""
        base, plural, namespaced = self.resource(api_version, kind)
        path = "%s/namespaces/%s/%s" % (base, namespace, plural) if namespaced else "%s/%s" % (base, plural)
        query = [("labelSelector", label_selector)] if label_selector else []
        listing = self.call("GET", path, query=query,
                            accept="application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json")
        out = []
        for item in listing.get("items") or []:
            meta = item.get("metadata") or {}
            ident = dict(name=meta.get("name"))
            if meta.get("namespace"):
                ident["namespace"] = meta["namespace"]
            out.append(dict(apiVersion=api_version, kind=kind, metadata=ident))
        return out

    def get(self, path):
        try:
            return self.call("GET", path)
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def apply(self, path, body, field_manager, dry_run=False):
        query = [("fieldManager", field_manager), ("force", "true")]
        if dry_run:
            query.append(("dryRun", "All"))
        return self.call("PATCH", path, body=body, query=query,
                         content_type="application/apply-patch+yaml")

    def delete(self, path, dry_run=False, propagation="Background"):
        query = [("propagationPolicy", propagation)]
        if dry_run:
            query.append(("dryRun", "All"))
        try:
            self.call("DELETE", path, query=query)
            return True
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return False
            raise


def ensure_object(rest, definition, state, field_manager, check_mode, force_apply=False):
    """Converge one object. Returns (action, before, after) with action one of
    created, updated, unchanged, deleted, absent.

    ``force_apply`` sends the apply even when the live object already holds the desired values,
    so that ``field_manager`` takes the fields over (the replicas handover to an HPA); it is
    reported as updated only when the ownership really changed."""
    definition = secret_string_data_to_data(definition)
    meta = definition["metadata"]
    group, dummy = split_api_version(definition["apiVersion"])
    path = rest.path(definition["apiVersion"], definition["kind"], meta["name"], meta.get("namespace"))
    live = rest.get(path)
    if state == "absent":
        if live is None:
            return "absent", None, None
        if not check_mode:
            rest.delete(path)
        return "deleted", live, None
    if live is None:
        after = rest.apply(path, definition, field_manager, dry_run=check_mode)
        return "created", None, after
    if (group, definition["kind"]) in IMMUTABLE_KINDS:
        return "unchanged", live, live
    if force_apply:
        after = rest.apply(path, definition, field_manager, dry_run=check_mode)
        owners = [_managers(live), _managers(after)]
        return ("unchanged" if owners[0] == owners[1] and _same_object(after, live) else "updated"), live, after
    dropped = owned_field_dropped(definition, live, field_manager)
    if is_subset(definition, live) and not dropped:
        return "unchanged", live, live
    # The quick comparison saw a difference; ask the server what an apply would produce, so a
    # difference that is only a server-side default or normalisation does not cause a write. A
    # dropped field that another manager also owns keeps its value: then only the ownership
    # changes, and that is written too (the field must stop being ours).
    preview = rest.apply(path, definition, field_manager, dry_run=True)
    if _same_object(preview, live) and not (dropped and _managers(preview) != _managers(live)):
        return "unchanged", live, live
    after = preview if check_mode else rest.apply(path, definition, field_manager)
    return "updated", live, after


def _managers(obj):
    """Which manager owns which fields, without the timestamps."""
    return sorted((m.get("manager"), m.get("operation"), json.dumps(m.get("fieldsV1"), sort_keys=True))
                  for m in (obj.get("metadata") or {}).get("managedFields") or [])


def _strip_volatile(obj):
    obj = copy.deepcopy(obj)
    meta = obj.get("metadata", {})
    for key in ("managedFields", "resourceVersion", "generation"):
        meta.pop(key, None)
    obj.pop("status", None)
    return obj


def _same_object(a, b):
    return _strip_volatile(a) == _strip_volatile(b)
