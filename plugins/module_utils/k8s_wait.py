# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""When a workload is ready, waiting for it, and saying why it is not.

One readiness test for the whole collection (the backing services' StatefulSets and Deployments,
Mastodon's rollout, setup Jobs), written as plain functions over the objects the API server
returns, so that pytest checks them without a cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

WAITABLE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


class WaitTimeout(Exception):
    """Not every object was ready in time; the message explains why, in lines."""


class WaitFailed(Exception):
    """An object can never become ready (a Job that failed)."""


def readiness(obj):
    """(ready, why) of a live Deployment, StatefulSet, DaemonSet or Job; ready is None for a Job
    that failed (it will never be ready)."""
    if not obj:
        return False, "does not exist"
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if kind == "Job":
        conditions = dict((c.get("type"), c) for c in status.get("conditions") or [] if c.get("status") == "True")
        if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
            return True, "complete"
        if "Failed" in conditions:
            failed = conditions["Failed"]
            return None, ("failed: %s %s" % (failed.get("reason", ""), failed.get("message", ""))).rstrip()
        return False, "not complete (%s active, %s failed pods)" % (status.get("active", 0), status.get("failed", 0))
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False, "the controller has not seen the latest spec yet"
    if kind == "DaemonSet":
        wanted = status.get("desiredNumberScheduled", 0)
        for field in ("updatedNumberScheduled", "numberAvailable"):
            if status.get(field, 0) != wanted:
                return False, "%s of %s pods %s" % (status.get(field, 0), wanted, field)
        return True, "ready"
    wanted = spec.get("replicas", 1)
    fields = ["updatedReplicas", "readyReplicas"]
    fields += ["availableReplicas", "replicas"] if kind == "Deployment" else ["availableReplicas"]
    for field in fields:
        if status.get(field, 0) != wanted:
            return False, "%s %s of %s" % (field, status.get(field, 0), wanted)
    if kind == "Deployment" and status.get("unavailableReplicas", 0) > 0:
        return False, "%s replicas unavailable" % status["unavailableReplicas"]
    on_delete = ((spec.get("updateStrategy") or {}).get("type") == "OnDelete")
    if (kind == "StatefulSet" and not on_delete and status.get("updateRevision")
            and status.get("currentRevision") != status.get("updateRevision")):
        return False, "pods still run revision %s, not %s" % (status.get("currentRevision"), status.get("updateRevision"))
    return True, "ready"


def selector_string(obj):
    """The label selector of a workload's pods, as ``a=b,c=d``."""
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if obj.get("kind") == "Job" and not labels:
        labels = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    return ",".join("%s=%s" % kv for kv in sorted(labels.items()))


def describe_pods(pods):
    """One line per pod: phase, the conditions that are not True, the containers not ready."""
    lines = []
    for pod in pods:
        status = pod.get("status") or {}
        parts = ["phase=%s" % status.get("phase", "unknown")]
        for cond in status.get("conditions") or []:
            if cond.get("status") != "True":
                parts.append("%s=%s%s" % (cond.get("type"), cond.get("status"),
                                          " (%s: %s)" % (cond.get("reason", ""), cond.get("message", ""))
                                          if cond.get("reason") else ""))
        for cs in status.get("containerStatuses") or []:
            if not cs.get("ready"):
                state = cs.get("state") or {}
                why = (state.get("waiting") or state.get("terminated") or {}).get("reason", "")
                reason = " (%s)" % why if why else ""
                parts.append("container %s not ready%s, %s restarts" % (cs.get("name"), reason, cs.get("restartCount", 0)))
        lines.append("- pod %s: %s" % ((pod.get("metadata") or {}).get("name"), "; ".join(parts)))
    return lines or ["- (no pods)"]


def describe_events(events, limit=15):
    """The latest events, oldest first, one line each."""
    def when(event):
        return event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get("creationTimestamp") or ""
    lines = []
    for event in sorted(events, key=when)[-limit:]:
        involved = event.get("involvedObject") or {}
        lines.append("- %s/%s %s %s: %s" % (involved.get("kind"), involved.get("name"), event.get("type"),
                                            event.get("reason"), event.get("message")))
    return lines or ["- (none)"]


def wait_until_ready(read, targets, timeout, explain, sleep=2.0, tick=None, clock=time.monotonic, pause=time.sleep):
    """Poll until every target is ready.

    ``read(target)`` returns the live object (or None); ``targets`` are opaque identities with a
    ``label`` key; ``explain(not_ready)`` returns the lines that say why; ``tick()`` runs once per
    poll (the run lock's renewal). Raises WaitFailed at once for a failed Job and WaitTimeout
    after ``timeout`` seconds.
    """
    deadline = clock() + timeout
    pending = list(targets)
    while True:
        still = []
        for target in pending:
            obj = read(target)
            ready, why = readiness(obj)
            if ready is None:
                raise WaitFailed("\n".join(["%s %s" % (target["label"], why)] + explain([(target, obj, why)])))
            if not ready:
                still.append((target, obj, why))
        if not still:
            return
        if clock() >= deadline:
            head = "not ready within %ss: %s" % (timeout, "; ".join("%s (%s)" % (t["label"], why) for t, o, why in still))
            raise WaitTimeout("\n".join([head] + explain(still)))
        pending = [t for t, o, why in still]
        if tick:
            tick()
        pause(sleep)
