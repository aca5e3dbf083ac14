# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A per-instance run lock kept in a coordination.k8s.io/v1 Lease.

Two runs against the same instance exclude each other through one Lease (for example
``social/social-run-lock``). The Lease says who holds it:

- ``spec.holderIdentity`` is ``<run_id>@<host>``; the run id (everything before the first ``@``)
  is what identifies the holder, so a run id must not contain ``@``;
- ``metadata.annotations`` carry the readable holder fields, so ``kubectl get lease -o yaml``
  names the run: ``mastodon.fediverse/holder-run-id``, ``holder-host``, ``holder-user``,
  ``holder-started`` and ``holder-awx-job-id`` (the last only for AWX jobs), plus
  ``mastodon.fediverse/previous-holder`` after a take-over;
- ``spec.renewTime + spec.leaseDurationSeconds`` is when the lock lapses unless renewed
  (``acquireTime`` stands in when ``renewTime`` is missing; a Lease held without a duration
  never lapses);
- ``spec.leaseTransitions`` counts the changes of holder.

Time. Whether a Lease is live is decided with the API server's clock, never with this host's
wall clock, so a skewed controller cannot take a live lock or keep a dead one: every response
carries an HTTP ``Date`` header (the server's time, whole seconds, truncated), and
``ServerClock`` keeps the latest server time seen plus the monotonic time elapsed since it was
seen. The estimate is a lower bound of the server's clock, behind it by less than one second
(plus nothing for latency: the header is written before the response travels). The
``renewTime`` we write comes from the same estimate. The local wall clock is used only when a
response carries no ``Date`` header.

Writes use optimistic concurrency. A Lease is created with POST (a 409 AlreadyExists means
another run created it first); a take-over or a renewal is a PUT carrying the
``resourceVersion`` that was read (a 409 Conflict means somebody wrote in between); a release
is a DELETE with ``preconditions`` on ``uid`` and ``resourceVersion`` (a 409 means it changed).
After any 409 the Lease is read again and the decision is made again from scratch, so a lock
another run took in the meantime is never overwritten or deleted.

Public API:

- ``lock(api_client, namespace, name, state, holder, duration=900, break_lock=False,
  labels=None, check_mode=False)`` -> dict; what the ``instance_lock`` module does;
- ``renew_if_due(api_client, namespace, name, run_id, every_seconds)`` -> bool; for the long
  wait loops of other modules;
- ``LeaseError`` (API errors), ``LockHeld`` (a live lock of another run),
  ``LockLost`` (this run no longer holds its lock): their messages are one readable line;
- pure helpers used by both and by the unit tests: ``format_identity``, ``parse_identity``,
  ``has_value``, ``format_micro_time``, ``parse_time``, ``parse_http_date``, ``lease_status``,
  ``describe_holder``, ``locked_message``, ``decide``, ``ServerClock``.

Nothing secret is stored in a Lease or returned from here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import datetime
import json
import random
import re
import time

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client

try:
    from email.utils import parsedate_tz, mktime_tz
except ImportError:  # pragma: no cover
    parsedate_tz = mktime_tz = None

try:
    from kubernetes.client import CoordinationV1Api
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - modules report missing_required_lib via k8s_client
    CoordinationV1Api = None
    ApiException = Exception

ANNOTATION_PREFIX = "mastodon.fediverse/"
HOLDER_ANNOTATIONS = (
    ("run_id", ANNOTATION_PREFIX + "holder-run-id"),
    ("host", ANNOTATION_PREFIX + "holder-host"),
    ("user", ANNOTATION_PREFIX + "holder-user"),
    ("started", ANNOTATION_PREFIX + "holder-started"),
    ("awx_job_id", ANNOTATION_PREFIX + "holder-awx-job-id"),
)
PREVIOUS_HOLDER_ANNOTATION = ANNOTATION_PREFIX + "previous-holder"
HOLDER_FIELDS = tuple(field for field, _annotation in HOLDER_ANNOTATIONS)
DEFAULT_DURATION = 900
MAX_DURATION = 2 ** 31 - 1
DEFAULT_MAX_ATTEMPTS = 10
STATES = ("acquired", "renewed", "released", "checked")
BREAK_HINT = "pass -e mastodon_lock_break=true if it is dead"
RUN_ID_RE = re.compile(r"^[^@\s]{1,128}$")
_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|z|[+-]\d{2}:?\d{2})$")


class LeaseError(Exception):
    """An API error or an invalid request; the message is one readable line.

    ``holder`` is the current holder (see ``holder_from_lease``) when the error is about one.
    """

    def __init__(self, message, holder=None):
        super(LeaseError, self).__init__(message)
        self.holder = holder


class LockHeld(LeaseError):
    """Another run holds a live lock (and break_lock is false)."""


class LockLost(LeaseError):
    """This run was asked to renew a lock it no longer holds."""


# ---------------------------------------------------------------------------- pure helpers

def has_value(value):
    """False for the ways a template renders "no value": None, "", "None", "null"."""
    return value is not None and ("%s" % value).strip() not in ("", "None", "null")


def format_identity(run_id, host):
    """The Lease's ``holderIdentity``: ``<run_id>@<host>`` (just ``run_id`` without a host)."""
    return "%s@%s" % (run_id, host) if has_value(host) else "%s" % run_id


def parse_identity(identity):
    """``(run_id, host)`` from a ``holderIdentity``; ``(None, None)`` when empty."""
    if not identity:
        return None, None
    run_id, sep, host = identity.partition("@")
    return run_id, (host if sep else None)


def check_run_id(run_id):
    """A problem with ``run_id`` as one line, or ``None`` when it is usable."""
    if run_id is None or not RUN_ID_RE.match("%s" % run_id):
        return ("holder.run_id: %r is not a usable run id: give 1 to 128 characters without '@' or spaces, "
                "unique per run (e.g. the playbook's run uuid)" % (run_id,))
    return None


def format_micro_time(epoch):
    """RFC 3339 UTC with microseconds, as the API server writes a MicroTime."""
    moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=int(round(epoch * 1000000)))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_time(epoch):
    """RFC 3339 UTC in whole seconds (for return values and messages)."""
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def parse_time(text):
    """Seconds since the epoch from an RFC 3339 time (``Time`` or ``MicroTime``); None if unparsable."""
    if not text or not isinstance(text, str):
        return None
    match = _TIME_RE.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    try:
        epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if match.group(7):
        epoch += float("0" + match.group(7))
    zone = match.group(8)
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        epoch -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return epoch


def parse_http_date(text):
    """Seconds since the epoch from an HTTP ``Date`` header (RFC 7231); None if unparsable."""
    if not text or parsedate_tz is None:
        return None
    parsed = parsedate_tz(text)
    if parsed is None:
        return None
    return float(mktime_tz(parsed))


def _header(headers, name):
    if not headers:
        return None
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter(name)
        if value is None:
            value = getter(name.lower())
        return value
    for key, value in headers:  # a list of pairs
        if key.lower() == name.lower():
            return value
    return None


class ServerClock(object):
    """The API server's clock, estimated from the ``Date`` headers of its responses.

    ``observe(date)`` records a header; ``now()`` returns the latest lower bound of the server
    time: the best of (``Date`` + monotonic seconds elapsed since it was received). With no
    observation yet it returns the local wall clock.
    """

    def __init__(self, wall=time.time, monotonic=time.monotonic):
        self._wall = wall
        self._monotonic = monotonic
        self._base = None  # (server epoch, local monotonic) of the best observation

    @property
    def synced(self):
        return self._base is not None

    def observe(self, date_header):
        server = parse_http_date(date_header)
        if server is None:
            return False
        mono = self._monotonic()
        if self._base is None or server > self._base[0] + (mono - self._base[1]):
            self._base = (server, mono)
        return True

    def now(self):
        if self._base is None:
            return self._wall()
        return self._base[0] + (self._monotonic() - self._base[1])


def _annotations(raw):
    return dict(((raw or {}).get("metadata") or {}).get("annotations") or {})


def holder_from_lease(raw):
    """The holder of a Lease as a dict (``run_id``, ``host``, ``user``, ``started``, ``awx_job_id``,
    ``identity``), or ``None`` when nobody holds it. Annotation fields that name another run than
    ``holderIdentity`` are ignored (somebody edited the Lease by hand)."""
    spec = (raw or {}).get("spec") or {}
    identity = spec.get("holderIdentity")
    if not identity:
        return None
    run_id, host = parse_identity(identity)
    annotations = _annotations(raw)
    holder = dict((field, None) for field in HOLDER_FIELDS)
    if annotations.get(ANNOTATION_PREFIX + "holder-run-id") in (None, run_id):
        for field, annotation in HOLDER_ANNOTATIONS:
            holder[field] = annotations.get(annotation)
    holder["run_id"] = run_id
    holder["host"] = holder["host"] or host
    holder["identity"] = identity
    return holder


def lease_status(raw, server_now):
    """Who holds the Lease ``raw`` (a JSON dict, or None when absent) and until when.

    Returns a dict: ``exists``, ``held`` (a non-empty holderIdentity), ``holder`` (see
    ``holder_from_lease``), ``run_id``, ``renewed_at`` (epoch of renewTime, else acquireTime,
    else None), ``duration`` (leaseDurationSeconds or None), ``expires_at`` (None when it cannot
    lapse), ``renewed_ago`` and ``expires_in`` (seconds, from ``server_now``; ``expires_in`` is
    negative when lapsed, None when it cannot lapse) and ``live`` (held and not lapsed).
    """
    if raw is None:
        return dict(exists=False, held=False, holder=None, run_id=None, renewed_at=None, duration=None,
                    expires_at=None, renewed_ago=None, expires_in=None, live=False, transitions=0)
    spec = raw.get("spec") or {}
    holder = holder_from_lease(raw)
    renewed_at = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    expires_at = None
    if renewed_at is not None and isinstance(duration, int) and not isinstance(duration, bool):
        expires_at = renewed_at + duration
    else:
        duration = duration if isinstance(duration, int) else None
    renewed_ago = None if renewed_at is None else max(0.0, server_now - renewed_at)
    expires_in = None if expires_at is None else expires_at - server_now
    held = holder is not None
    live = held and (expires_in is None or expires_in > 0)
    return dict(exists=True, held=held, holder=holder, run_id=holder["run_id"] if held else None,
                renewed_at=renewed_at, duration=duration, expires_at=expires_at, renewed_ago=renewed_ago,
                expires_in=expires_in, live=live, transitions=spec.get("leaseTransitions") or 0)


def describe_holder(holder, acquired_at=None):
    """``user@host since <started> (AWX job N)`` (or ``(run <run_id>)`` outside AWX)."""
    if not holder:
        return "nobody"
    who = holder.get("identity") or holder.get("run_id") or "?"
    if holder.get("user") and holder.get("host"):
        who = "%s@%s" % (holder["user"], holder["host"])
    elif holder.get("host"):
        who = holder["host"]
    since = holder.get("started") or (format_time(acquired_at) if acquired_at is not None else "an unknown time")
    if holder.get("awx_job_id"):
        tail = "AWX job %s" % holder["awx_job_id"]
    else:
        tail = "run %s" % holder.get("run_id")
    return "%s since %s (%s)" % (who, since, tail)


def _seconds(value):
    return int(round(value)) if value is not None else None


def _timing(status):
    renewed = "renewed %ss ago" % _seconds(status["renewed_ago"]) if status["renewed_ago"] is not None \
        else "never renewed"
    if status["expires_in"] is None:
        expiry = "never expires (no leaseDurationSeconds)"
    elif status["expires_in"] > 0:
        expiry = "expires in %ss" % max(1, _seconds(status["expires_in"]))
    else:
        expiry = "expired %ss ago" % _seconds(-status["expires_in"])
    return renewed, expiry


def _acquired_at(raw):
    return parse_time(((raw or {}).get("spec") or {}).get("acquireTime"))


def locked_message(namespace, name, status, acquired_at=None):
    """The one-line failure for a live lock held by another run."""
    renewed, expiry = _timing(status)
    return ("mastodon_lock: instance %s/%s is locked by %s, %s, %s; wait for that run, or %s"
            % (namespace, name, describe_holder(status["holder"], acquired_at), renewed, expiry, BREAK_HINT))


def decide(state, status, run_id, break_lock=False):
    """What to do with a Lease in ``status`` (from ``lease_status``) for ``state`` and this ``run_id``.

    Returns ``(action, outcome)``. ``action`` is ``create``, ``take_over`` (a Lease nobody or
    another run holds becomes ours), ``renew``, ``delete`` or ``none``. ``outcome`` is one of
    ``free``, ``ours``, ``lapsed`` (another run's lock lapsed), ``broken`` (another run's live
    lock, broken on request), ``locked`` (another run's live lock: fail), ``gone`` (renew: no
    Lease or nobody holds it) and ``taken`` (renew: another run holds it).
    """
    if state not in STATES:
        raise ValueError("unknown state %r" % (state,))
    if not status["held"]:
        outcome = "free"
    elif status["run_id"] == run_id:
        outcome = "ours"
    elif not status["live"]:
        outcome = "lapsed"
    else:
        outcome = "broken" if break_lock else "locked"
    if state == "checked":
        return "none", outcome
    if state == "acquired":
        if outcome == "locked":
            return "none", outcome
        if outcome == "ours":
            return "renew", outcome
        return ("create" if not status["exists"] else "take_over"), outcome
    if state == "renewed":
        if outcome == "ours":
            return "renew", outcome
        return "none", ("gone" if outcome == "free" else "taken")
    # released
    return ("delete" if outcome == "ours" else "none"), outcome


# ---------------------------------------------------------------------------- API access

_CLOCKS = {}


def clock_for(api_client):
    """The ServerClock of the API server behind ``api_client`` (one per server URL and process)."""
    host = getattr(getattr(api_client, "configuration", None), "host", None)
    if host not in _CLOCKS:
        _CLOCKS[host] = ServerClock()
    return _CLOCKS[host]


def _body(response):
    data = response.data
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data) if data else None


def _api_error(exc, action, namespace, name):
    status, detail = k8s_client.api_error_detail(exc)
    hint = ""
    if status == 404 and action == "create":
        hint = " Create the namespace first, or set namespace to an existing one."
    elif status in (401, 403):
        hint = (" Check the Kubernetes credentials (kubeconfig, context, api_key) and their RBAC rights on "
                "leases.coordination.k8s.io (get, create, update, delete) in namespace %s." % namespace)
    elif status == 422:
        hint = " Check namespace, name and labels (they must be valid Kubernetes names)."
    return LeaseError("mastodon_lock: cannot %s Lease %s/%s: HTTP %s %s.%s" % (action, namespace, name, status, detail, hint))


class _Leases(object):
    """CoordinationV1Api calls on one Lease, feeding the server clock from every response."""

    def __init__(self, api_client, namespace, name):
        self.api = CoordinationV1Api(api_client)
        self.clock = clock_for(api_client)
        self.namespace, self.name = namespace, name

    def _observe(self, headers):
        self.clock.observe(_header(headers, "Date"))

    def read(self):
        """The Lease as a JSON dict, or None when absent."""
        try:
            response = self.api.read_namespaced_lease(self.name, self.namespace, _preload_content=False)
        except ApiException as exc:
            self._observe(getattr(exc, "headers", None))
            if getattr(exc, "status", None) == 404:
                return None
            raise _api_error(exc, "read", self.namespace, self.name)
        self._observe(response.headers)
        return _body(response)

    def _write(self, action, call, *args, **kwargs):
        """The written object, or None after a 409 (or a 404: it vanished); raises otherwise."""
        try:
            response = call(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            self._observe(getattr(exc, "headers", None))
            if getattr(exc, "status", None) == 409 or (action != "create" and getattr(exc, "status", None) == 404):
                return None
            raise _api_error(exc, action, self.namespace, self.name)
        self._observe(response.headers)
        return _body(response) or {}

    def create(self, body):
        return self._write("create", self.api.create_namespaced_lease, self.namespace, body)

    def replace(self, body):
        return self._write("update", self.api.replace_namespaced_lease, self.name, self.namespace, body)

    def delete(self, uid, resource_version):
        preconditions = {"uid": uid, "resourceVersion": resource_version}
        return self._write("delete", self.api.delete_namespaced_lease, self.name, self.namespace,
                           body={"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": preconditions})


def _pause(attempt):
    time.sleep(random.uniform(0.02, 0.1) * min(attempt, 5))


def _holder_annotations(holder):
    return dict((annotation, ("%s" % holder[field]).strip()) for field, annotation in HOLDER_ANNOTATIONS
                if has_value(holder.get(field)))


def _new_lease(namespace, name, holder, duration, labels, now):
    stamp = format_micro_time(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {}),
                     "annotations": _holder_annotations(holder)},
        "spec": {"holderIdentity": format_identity(holder["run_id"], holder.get("host")),
                 "leaseDurationSeconds": duration, "acquireTime": stamp, "renewTime": stamp,
                 "leaseTransitions": 0},
    }


def _merge_labels(metadata, labels):
    merged = dict(metadata.get("labels") or {})
    merged.update(labels or {})
    if merged:
        metadata["labels"] = merged


def _take_over_body(raw, holder, duration, labels, now, previous):
    body = json.loads(json.dumps(raw))
    metadata = body.setdefault("metadata", {})
    metadata.pop("managedFields", None)
    annotations = dict((k, v) for k, v in (metadata.get("annotations") or {}).items()
                       if k not in dict(HOLDER_ANNOTATIONS).values() and k != PREVIOUS_HOLDER_ANNOTATION)
    annotations.update(_holder_annotations(holder))
    if previous is not None:
        annotations[PREVIOUS_HOLDER_ANNOTATION] = "%s, identity %s" % (describe_holder(previous), previous["identity"])
    metadata["annotations"] = annotations
    _merge_labels(metadata, labels)
    spec = body.setdefault("spec", {})
    stamp = format_micro_time(now)
    identity = format_identity(holder["run_id"], holder.get("host"))
    if spec.get("holderIdentity") != identity:
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
    spec.update(holderIdentity=identity, leaseDurationSeconds=duration, acquireTime=stamp, renewTime=stamp)
    return body


def _renew_body(raw, duration, labels, now):
    body = json.loads(json.dumps(raw))
    body.setdefault("metadata", {}).pop("managedFields", None)
    _merge_labels(body["metadata"], labels)
    spec = body.setdefault("spec", {})
    spec["renewTime"] = format_micro_time(now)
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    return body


def _lost_message(namespace, name, outcome, status, acquired_at=None):
    if outcome == "taken":
        renewed, expiry = _timing(status)
        return ("mastodon_lock: the lock on instance %s/%s was taken by %s (%s, %s): it was broken or lapsed; stop: "
                "this run no longer holds the instance" % (namespace, name, describe_holder(status["holder"], acquired_at),
                                                           renewed, expiry))
    what = "the Lease no longer exists" if not status["exists"] else "nobody holds it any more"
    return ("mastodon_lock: the lock on instance %s/%s is gone (%s: released or deleted by someone else); stop: "
            "this run no longer holds the instance" % (namespace, name, what))


def _result(status, now, action, outcome):
    return dict(changed=False, action=action, outcome=outcome, holder=status["holder"],
                expires=format_time(status["expires_at"]) if status["held"] else None,
                expires_in=_seconds(status["expires_in"]) if status["held"] else None,
                taken_over=False, previous_holder=None, resource_version=None, warnings=[],
                before=None, server_time=format_time(now))


def _summary(status):
    if not status["held"]:
        return dict(holder=None, expires=None)
    return dict(holder=status["holder"]["identity"], expires=format_time(status["expires_at"]))


def lock(api_client, namespace, name, state, holder, duration=DEFAULT_DURATION, break_lock=False, labels=None,
         check_mode=False, max_attempts=DEFAULT_MAX_ATTEMPTS):
    """Bring the run lock namespace/name to ``state`` for ``holder`` (a dict with ``run_id``, and
    ``host``, ``user``, ``started``, ``awx_job_id`` written as annotations when this run takes it).

    Raises ``LockHeld`` (acquired/checked against another run's live lock without
    ``break_lock``), ``LockLost`` (renewed by a run that no longer holds it) or ``LeaseError``.
    Returns a dict: ``changed``, ``action`` (what was done, or would be in check mode),
    ``outcome`` (see ``decide``), ``holder`` (the holder afterwards, None when nobody),
    ``expires`` (RFC 3339, server time), ``expires_in``, ``taken_over``, ``previous_holder``,
    ``resource_version``, ``warnings`` (lines for the operator), ``before``/``after``
    (holder identity and expiry, for a diff), ``server_time`` and ``attempts``.
    """
    problem = check_run_id(holder.get("run_id"))
    if problem:
        raise LeaseError(problem)
    if state not in STATES:
        raise LeaseError("state: %r is not one of %s" % (state, ", ".join(STATES)))
    if duration is not None and not 1 <= duration <= MAX_DURATION:
        raise LeaseError("duration: %s is out of range: give 1 to %d seconds" % (duration, MAX_DURATION))
    leases = _Leases(api_client, namespace, name)
    run_id = holder["run_id"]
    for attempt in range(1, max_attempts + 1):
        raw = leases.read()
        now = leases.clock.now()
        status = lease_status(raw, now)
        action, outcome = decide(state, status, run_id, break_lock)
        result = _result(status, now, action, outcome)
        result.update(attempts=attempt, before=_summary(status), after=_summary(status),
                      resource_version=((raw or {}).get("metadata") or {}).get("resourceVersion"))
        acquired_at = _acquired_at(raw)
        previous = status["holder"] if outcome in ("lapsed", "broken") else None
        if outcome == "locked" and state in ("acquired", "checked"):
            raise LockHeld(locked_message(namespace, name, status, acquired_at), holder=status["holder"])
        if state == "renewed" and action == "none":
            raise LockLost(_lost_message(namespace, name, outcome, status, acquired_at), holder=status["holder"])
        if outcome == "lapsed" and state in ("acquired", "checked"):
            renewed, expiry = _timing(status)
            verb = "took over" if state == "acquired" and not check_mode else "will take over"
            result["warnings"].append("mastodon_lock: %s the lapsed lock on instance %s/%s from %s (%s, %s)"
                                      % (verb, namespace, name, describe_holder(previous, acquired_at), renewed, expiry))
        if outcome == "broken" and state in ("acquired", "checked"):
            renewed, expiry = _timing(status)
            verb = "broke" if state == "acquired" and not check_mode else "will break"
            result["warnings"].append("mastodon_lock: %s the LIVE lock on instance %s/%s held by %s (%s, %s) because "
                                      "break_lock is true; make sure that run is really dead"
                                      % (verb, namespace, name, describe_holder(previous, acquired_at), renewed, expiry))
        if state == "released" and outcome in ("lapsed", "broken", "locked"):
            result["warnings"].append("mastodon_lock: left the lock on instance %s/%s alone: it is held by %s, not by "
                                      "this run (%s)" % (namespace, name, describe_holder(status["holder"], acquired_at),
                                                         run_id))
        if state == "renewed" and status["expires_in"] is not None and status["expires_in"] <= 0:
            result["warnings"].append("mastodon_lock: the lock on instance %s/%s had lapsed %ss ago; %s it (no other "
                                      "run took it in between)" % (namespace, name, _seconds(-status["expires_in"]),
                                                                   "would renew" if check_mode else "renewed"))
        if action == "none":
            return result

        new_holder = dict(holder)
        new_holder["identity"] = format_identity(run_id, holder.get("host"))
        if action == "renew":
            new_holder = status["holder"]
        lease_duration = duration if duration is not None else (status["duration"] or DEFAULT_DURATION)
        result.update(changed=True, taken_over=previous is not None, previous_holder=previous)
        if action == "delete":
            result.update(holder=None, expires=None, expires_in=None, after=dict(holder=None, expires=None))
        else:
            result.update(holder=dict((k, new_holder.get(k)) for k in HOLDER_FIELDS + ("identity",)),
                          expires=format_time(now + lease_duration), expires_in=lease_duration,
                          after=dict(holder=new_holder["identity"], expires=format_time(now + lease_duration)))
        if check_mode:
            return result

        if action == "create":
            written = leases.create(_new_lease(namespace, name, holder, lease_duration, labels, now))
        elif action == "take_over":
            written = leases.replace(_take_over_body(raw, holder, lease_duration, labels, now, previous))
        elif action == "renew":
            written = leases.replace(_renew_body(raw, lease_duration, labels, now))
        else:
            metadata = raw.get("metadata") or {}
            written = leases.delete(metadata.get("uid"), metadata.get("resourceVersion"))
            if written is not None:
                result["resource_version"] = None
                return result
        if written is None:  # lost a race: read again, decide again
            _pause(attempt)
            continue
        result["resource_version"] = (written.get("metadata") or {}).get("resourceVersion")
        _LAST_RENEW[_renew_key(api_client, namespace, name, run_id)] = time.monotonic()
        return result
    raise LeaseError("mastodon_lock: Lease %s/%s kept changing under us: gave up after %d attempts; another run is "
                     "fighting for it, rerun when it is done" % (namespace, name, max_attempts))


# ---------------------------------------------------------------------------- renewal from wait loops

_LAST_RENEW = {}


def _renew_key(api_client, namespace, name, run_id):
    host = getattr(getattr(api_client, "configuration", None), "host", None)
    return (host, namespace, name, run_id)


def renew_if_due(api_client, namespace, name, run_id, every_seconds, max_attempts=DEFAULT_MAX_ATTEMPTS):
    """Renew this run's lock if ``every_seconds`` have passed since it was last renewed; cheap otherwise.

    For the long wait loops of other modules (a rollout or a migration Job that takes longer than
    the lock's duration): call it on every iteration.

    - ``run_id`` empty or None: the caller runs without a lock; returns False, no request.
    - A renewal (by this function or by ``lock``) less than ``every_seconds`` ago in this process
      (monotonic clock): returns False, no request.
    - Otherwise it reads the Lease. On the first call of a process, a ``renewTime`` less than
      ``every_seconds`` old (server time) counts as a renewal and nothing is written. Else it
      PUTs a new ``renewTime`` with the ``resourceVersion`` it read (the duration is kept) and
      returns True.
    - Raises ``LockLost`` when the Lease is gone or held by another run (the lock was broken, or
      lapsed and was taken): the caller must stop and fail with ``str(exc)``. Raises
      ``LeaseError`` on API errors.

    Choose ``every_seconds`` well below the lock's duration (a third of it, e.g. 300 for 900).
    """
    if not run_id:
        return False
    key = _renew_key(api_client, namespace, name, run_id)
    last = _LAST_RENEW.get(key)
    if last is not None and time.monotonic() - last < every_seconds:
        return False
    leases = _Leases(api_client, namespace, name)
    for attempt in range(1, max_attempts + 1):
        raw = leases.read()
        now = leases.clock.now()
        status = lease_status(raw, now)
        action, outcome = decide("renewed", status, run_id)
        if action != "renew":
            raise LockLost(_lost_message(namespace, name, outcome, status, _acquired_at(raw)), holder=status["holder"])
        if last is None and status["renewed_ago"] is not None and status["renewed_ago"] < every_seconds:
            _LAST_RENEW[key] = time.monotonic() - status["renewed_ago"]
            return False
        written = leases.replace(_renew_body(raw, None, None, now))
        if written is None:
            _pause(attempt)
            continue
        _LAST_RENEW[key] = time.monotonic()
        return True
    raise LeaseError("mastodon_lock: Lease %s/%s kept changing under us: gave up renewing after %d attempts"
                     % (namespace, name, max_attempts))
