# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running one Job to completion, once: its state, and the explanation of a failure.

The module fediverse.mastodon.k8s_job drives it through KubeRest (module_utils/k8s_objects.py);
the functions that only look at objects are plain, so that pytest checks them without a cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_wait


def job_state(job):
    """Absent, Complete, Failed or Running, from the Job's conditions that are True."""
    if not job:
        return "Absent"
    ready, dummy = k8s_wait.readiness(job)
    if ready:
        return "Complete"
    return "Failed" if ready is None else "Running"


def failed_condition(job):
    for cond in ((job or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return cond
    return None


def newest(pods):
    return sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")[-1] if pods else None


def explain(job_name, purpose, outcome, job, pods, events, log_tail, hint, retry_variable, namespace):
    """The failure message: the outcome, the Job's reason, each pod, each container's exit, the
    Job's events, the log tail of its newest pod, the hint, and how to run it again."""
    lines = ["Job %s%s %s." % (job_name, " (%s)" % purpose if purpose else "", outcome)]
    cond = failed_condition(job)
    if cond:
        lines.append("Reason: %s: %s" % (cond.get("reason", ""), cond.get("message", "")))
    for pod in pods:
        status = pod.get("status") or {}
        lines.append(" ".join(x for x in ("Pod %s:" % (pod.get("metadata") or {}).get("name"), status.get("phase", "?"),
                                          status.get("reason", ""), status.get("message", "")) if x))
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated")
            if term:
                lines.append(" ".join(x for x in ("Container exit: code %s" % term.get("exitCode", "?"), term.get("reason", ""),
                                                  term.get("message", "")) if x))
    lines.append("Events: %s" % (" | ".join(events) or "none"))
    if log_tail and log_tail.strip():
        lines.append("Log tail:")
        lines.append(log_tail.strip())
    if hint:
        lines.append(hint)
    again = "rerun with %s=true" % retry_variable if retry_variable else "rerun with retry_failed=true"
    lines.append("Fix the cause, then %s (or delete the Job: kubectl -n %s delete job %s)." % (again, namespace, job_name))
    return "\n".join(lines)


def wait_gone(read, timeout, clock=time.monotonic, pause=time.sleep, sleep=1.0):
    """Poll ``read()`` until it returns None (the object is gone); False after ``timeout`` seconds."""
    deadline = clock() + timeout
    while read() is not None:
        if clock() >= deadline:
            return False
        pause(sleep)
    return True
