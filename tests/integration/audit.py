# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab kube-apiserver's audit log as a judge: what a piece of a test sent to the API.

    with AuditWindow() as window:
        ...run a playbook...
    assert window.writes() == []

A window is a byte range of the log (its size before and after), so tests never parse events of
earlier runs. ``writes()`` lists every mutating request (create, update, patch, delete,
deletecollection; dry runs and refused writes included) sent by any client that is not a
control-plane component (the controllers, the scheduler, kwok keep their own leases and
status up to date all the time). A SelfSubjectAccessReview is not a write: the API server
stores nothing for it.
"""

import json
import os
import time

# The userAgents of a playbook run: our module_utils, and the kubernetes Python client that
# kubernetes.core and the lookups use.
ANSIBLE_AGENTS = ("fediverse.mastodon", "OpenAPI-Generator")
MUTATING = {"create", "update", "patch", "delete", "deletecollection"}
CONTROL_PLANE_AGENTS = ("kube-controller-manager/", "kube-scheduler/", "kube-apiserver/", "kwok-controller/")
CONTROL_PLANE_USERS = ("system:kube-controller-manager", "system:kube-scheduler", "system:apiserver")
NOT_STORED = {"selfsubjectaccessreviews", "selfsubjectrulesreviews", "subjectaccessreviews", "tokenreviews"}


def audit_log():
    return os.environ.get("LAB_AUDIT_LOG") or None


def is_control_plane(event):
    agent = event.get("userAgent") or ""
    user = (event.get("user") or {}).get("username") or ""
    return (agent.startswith(CONTROL_PLANE_AGENTS) or user.startswith(CONTROL_PLANE_USERS)
            or user.startswith("system:serviceaccount:kube-system:") or user.startswith("system:node:"))


class AuditWindow(object):
    def __init__(self, path=None):
        self.path = path or audit_log()
        if not self.path:
            raise RuntimeError("LAB_AUDIT_LOG is not set: eval \"$(bash tests/lab/lab.sh env)\"")
        self.start = self.end = None

    def __enter__(self):
        self.start = os.path.getsize(self.path)
        return self

    def __exit__(self, *exc):
        # the API server writes an event once the response is complete: give the last ones a moment
        time.sleep(1.0)
        self.end = os.path.getsize(self.path)
        return False

    def events(self):
        with open(self.path, "rb") as handle:
            handle.seek(self.start)
            data = handle.read((self.end if self.end is not None else os.path.getsize(self.path)) - self.start)
        for raw in data.splitlines():
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if event.get("stage") == "ResponseComplete":
                yield event

    def writes(self, namespaces=None, agents=ANSIBLE_AGENTS):
        """Mutating requests of non-control-plane clients (optionally only in these namespaces).

        ``agents`` keeps only the requests whose userAgent starts with one of them: by default
        the clients a playbook run uses (our modules, the kubernetes client under
        kubernetes.core), so that the lab's own helpers (the PV recycler runs kubectl) and the
        test's set-up (kubectl) are not counted. None counts every client."""
        out = []
        for event in self.events():
            if event.get("verb") not in MUTATING or is_control_plane(event):
                continue
            if agents and not (event.get("userAgent") or "").startswith(tuple(agents)):
                continue
            ref = event.get("objectRef") or {}
            if ref.get("resource") in NOT_STORED:
                continue
            # a namespace filter keeps the requests in those namespaces, on those Namespace objects,
            # and on every cluster-scoped object (what else could a run have touched there?)
            if namespaces is not None and ref.get("namespace") and ref.get("namespace") not in namespaces:
                continue
            if (namespaces is not None and ref.get("resource") == "namespaces" and ref.get("name")
                    and ref.get("name") not in namespaces):
                continue
            out.append("%s %s (%s, %s)" % (event.get("verb"), event.get("requestURI"), event.get("userAgent"),
                                           (event.get("responseStatus") or {}).get("code")))
        return out
