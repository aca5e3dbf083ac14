#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: k8s_job
short_description: Run one Kubernetes Job to completion, once
version_added: "1.0.0"
description:
  - Runs the Job in O(definition) once, in one task. A Job that already completed is left alone,
    a missing one is created with server-side apply, and a running one is waited for.
  - A failed Job stops the task. The message gives the Job's reason, each pod, each container's
    exit code, the Job's events and the tail of its newest pod's log.
  - With O(retry_failed), a failed Job is deleted first and created again. The delete is
    foreground, so its pods go with it.
  - An existing Job's spec is never changed, because a Job's pod template is immutable. Name Jobs
    after what they run for, for example the version they migrate to.
  - The Job's writes go through the same access layer as M(fediverse.mastodon.k8s_objects), so a
    Job that already completed costs one read.
author:
  - Fediverse Mastodon maintainers (@fediverse)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
  - fediverse.mastodon.run_lock
options:
  definition:
    description: The Job, with C(apiVersion) batch/v1, C(kind) Job and C(metadata.name).
    type: dict
    required: true
  namespace:
    description: The namespace, when C(metadata.namespace) is not set.
    type: str
  purpose:
    description: A short name of what the Job does, shown after its name in messages, like V(db-migrate-pre).
    type: str
  retry_failed:
    description: Delete a failed Job and run it again, instead of failing with its reason.
    type: bool
    default: false
  retry_failed_variable:
    description: The name of the variable that sets O(retry_failed), named in the failure message.
    type: str
  wait:
    description:
      - Wait until the Job completed. Without it, the task ends once the Job exists.
      - Skipped in check mode, where no Job runs.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds the Job may run. The wait lasts ten polls longer, so that the Job's own
        C(activeDeadlineSeconds) fails it first and the message can give its reason.
    type: int
    default: 600
  wait_timeout_variable:
    description: The name of the variable that sets O(wait_timeout), named in the timeout message.
    type: str
  poll_interval:
    description: Seconds between two reads of the Job while it runs.
    type: int
    default: 5
  log_lines:
    description: How many lines of the newest pod's log a failure message shows.
    type: int
    default: 30
  failure_hint:
    description: A line added to the failure message, for example what the failure left untouched.
    type: str
attributes:
  check_mode:
    support: full
    description: A missing Job is created with a server-side dry run; nothing runs and nothing is waited for.
  diff_mode:
    support: none
    description: A Job is created or left alone; there is no field diff to show.
'''

EXAMPLES = r'''
- name: Run the database migrations of v4.6.3 once
  fediverse.mastodon.k8s_job:
    namespace: social
    purpose: db-migrate-pre
    definition: "{{ lookup('ansible.builtin.template', 'migrate-job.yml.j2') | ansible.builtin.from_yaml }}"
    wait_timeout: 3600
    retry_failed: "{{ retry_failed_jobs }}"
    retry_failed_variable: retry_failed_jobs
'''

RETURN = r'''
name:
  description: The Job's name.
  returned: always
  type: str
  sample: social-db-migrate-pre-v4-6-3
state:
  description:
    - The Job at the end, one of V(Complete), V(Running) (with O(wait=false), or in check mode) or
      V(Created) (in check mode, where the Job would be created).
  returned: success
  type: str
  sample: Complete
actions:
  description: What the task did, in order, among V(deleted) (a failed Job), V(created), V(waited).
  returned: always
  type: list
  elements: str
  sample: [created, waited]
api_requests:
  description: How many API requests the module sent, by HTTP method.
  returned: always
  type: dict
  sample: {"GET": 1}
'''

import copy
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_job, k8s_wait, run_lock
from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_client import (
    HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR, K8S_AUTH_ARG_SPEC, RUN_LOCK_ARG_SPEC, build_api_client)
from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_objects import KubeRest, ensure_object

FIELD_MANAGER = "fediverse-mastodon"
DELETE_TIMEOUT = 120


class JobRun(object):
    """One Job, its reads and writes, and the module's result so far."""

    def __init__(self, module, rest, definition):
        self.module = module
        self.rest = rest
        self.definition = definition
        self.name = definition["metadata"]["name"]
        self.namespace = definition["metadata"]["namespace"]
        self.path = rest.path("batch/v1", "Job", self.name, self.namespace)
        self.actions = []

    def result(self, **extra):
        return dict(name=self.name, actions=self.actions, api_requests=self.rest.request_counts(), **extra)

    def fail(self, msg):
        self.module.fail_json(msg=msg, **self.result(changed=bool(set(self.actions) & {"created", "deleted"})))

    def explain(self, outcome, job):
        params = self.module.params
        pods = self._safe(lambda: self.rest.call("GET", "/api/v1/namespaces/%s/pods" % self.namespace,
                                                 query=[("labelSelector", "batch.kubernetes.io/job-name=" + self.name)]
                                                 ).get("items", []), [])
        events = self._safe(lambda: self.rest.call("GET", "/api/v1/namespaces/%s/events" % self.namespace).get("items", []), [])
        messages = []
        for event in events:
            if ((event.get("involvedObject") or {}).get("name") or "").startswith(self.name) and event.get("message") not in messages:
                messages.append(event.get("message"))
        last = k8s_job.newest(pods)
        log = ""
        if last and params["log_lines"] > 0:
            raw = self._safe(lambda: self.rest.call_raw(
                "GET", "/api/v1/namespaces/%s/pods/%s/log" % (self.namespace, last["metadata"]["name"]),
                query=[("tailLines", str(params["log_lines"]))], accept="*/*"), b"")
            log = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        return k8s_job.explain(self.name, params["purpose"], outcome, job, pods, messages, log, params["failure_hint"],
                               params["retry_failed_variable"], self.namespace)

    @staticmethod
    def _safe(read, default):
        """A read for the failure message only: its own failure must not hide the Job's."""
        try:
            return read()
        except Exception:  # pylint: disable=broad-except
            return default

    def run(self):
        params, check_mode = self.module.params, self.module.check_mode
        job = self.rest.get(self.path)
        state = k8s_job.job_state(job)
        if state == "Failed":
            if not params["retry_failed"]:
                self.fail(self.explain("failed", job))
            if not check_mode:
                self.rest.delete(self.path, propagation="Foreground")
                if not k8s_job.wait_gone(lambda: self.rest.get(self.path), DELETE_TIMEOUT):
                    self.fail("Job %s: the failed Job was deleted but is still there after %ds; its pods may not stop"
                              % (self.name, DELETE_TIMEOUT))
            self.actions.append("deleted")
            state = "Absent"
        if state == "Complete":
            return self.result(changed=bool(self.actions), state=state)
        if state == "Absent":
            ensure_object(self.rest, self.definition, "present", FIELD_MANAGER, check_mode)
            self.actions.append("created")
            if check_mode:
                return self.result(changed=True, state="Created")
        if not params["wait"] or check_mode:
            return self.result(changed=bool(self.actions), state="Running")
        return self.wait()

    def wait(self):
        params = self.module.params
        interval = max(1, params["poll_interval"])
        target = dict(label="Job %s/%s" % (self.namespace, self.name))

        def keep_lock():
            try:
                run_lock.keep(self.rest.api, params["run_lock"])
            except run_lock.lease.LeaseError as exc:
                self.fail("stopped waiting for Job %s: %s" % (self.name, exc))

        self.actions.append("waited")
        try:
            k8s_wait.wait_until_ready(lambda t: self.rest.get(self.path), [target], params["wait_timeout"] + 10 * interval,
                                      lambda not_ready: [], sleep=interval, tick=keep_lock)
        except k8s_wait.WaitFailed:
            self.fail(self.explain("failed", self.rest.get(self.path)))
        except k8s_wait.WaitTimeout:
            variable = params["wait_timeout_variable"]
            self.fail(self.explain("did not finish within %ss%s" % (params["wait_timeout"], " (%s)" % variable if variable else ""),
                                   self.rest.get(self.path)))
        return self.result(changed=True, state="Complete")


def main(module_class=AnsibleModule):
    argument_spec = dict(
        definition=dict(type="dict", required=True),
        namespace=dict(type="str"),
        purpose=dict(type="str"),
        retry_failed=dict(type="bool", default=False),
        retry_failed_variable=dict(type="str"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        wait_timeout_variable=dict(type="str"),
        poll_interval=dict(type="int", default=5),
        log_lines=dict(type="int", default=30),
        failure_hint=dict(type="str"),
    )
    argument_spec.update(K8S_AUTH_ARG_SPEC)
    argument_spec.update(RUN_LOCK_ARG_SPEC)
    module = module_class(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))

    definition = copy.deepcopy(module.params["definition"])
    meta = definition.get("metadata") or {}
    if definition.get("apiVersion") != "batch/v1" or definition.get("kind") != "Job" or not meta.get("name"):
        module.fail_json(msg="definition must be a Job: apiVersion batch/v1, kind Job and metadata.name")
    meta.setdefault("namespace", module.params["namespace"])
    if not meta.get("namespace"):
        module.fail_json(msg="definition needs metadata.namespace, or give namespace")
    definition["metadata"] = meta
    try:
        rest = KubeRest(build_api_client(module.params))
    except Exception as exc:  # kubeconfig problems come in many exception types
        module.fail_json(msg="cannot configure the Kubernetes client: %s. Check kubeconfig/context or K8S_AUTH_* variables"
                         % exc)
    try:
        job = JobRun(module, rest, definition)
        module.exit_json(**job.run())
    except Exception as exc:  # ApiException, or a connection error of urllib3
        status = getattr(exc, "status", None)
        name = "Job %s/%s" % (meta["namespace"], meta["name"])
        if status:
            module.fail_json(msg="%s: the API server refused it (HTTP %s): %s" % (name, status, getattr(exc, "body", None) or exc))
        module.fail_json(msg="%s: %s" % (name, exc), exception=traceback.format_exc())


if __name__ == "__main__":
    main()
