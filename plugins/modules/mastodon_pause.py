#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: mastodon_pause
short_description: Stop a Mastodon instance's Deployments for maintenance, and start them again as they were
version_added: "1.0.0"
description:
  - V(stopped) scales the instance's web, streaming and sidekiq Deployments (every sidekiq worker
    Deployment) to zero replicas and waits until their pods are gone, and suspends the instance's
    CronJobs. What each had (replicas, suspend) is kept in its annotation
    C(restore.fediverse.mastodon/replicas) or C(restore.fediverse.mastodon/suspend), in the same
    request, so an interrupted run loses nothing.
  - V(started) gives each object that carries the annotation what it had, and removes the
    annotation.
  - The objects are found by their labels (C(app.kubernetes.io/instance) = O(instance), and
    C(app.kubernetes.io/name) web, streaming or sidekiq for the Deployments; C(app.kubernetes.io/part-of)
    mastodon for the CronJobs). An instance without them (a new, empty one) is left as it is.
  - The playbook C(restore.yml) uses it around a restore, so nothing writes to the database while it
    is replaced.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
  - fediverse.mastodon.run_lock
options:
  namespace:
    description: The namespace of the Deployments.
    type: str
    required: true
  instance:
    description: The instance's name (its objects' C(app.kubernetes.io/instance) label).
    type: str
    required: true
  state:
    description: V(stopped) or V(started).
    type: str
    choices: [stopped, started]
    required: true
  wait_timeout:
    description: Seconds to wait for the pods to go, with V(stopped).
    type: int
    default: 300
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
requirements:
  - kubernetes (Python library)
'''

EXAMPLES = r'''
- name: Stop web, streaming and sidekiq
  fediverse.mastodon.mastodon_pause:
    namespace: social
    instance: social
    state: stopped
'''

RETURN = r'''
objects:
  description: Each object (C(Kind/name)) and what was done (V(stopped), V(started), V(unchanged)).
  returned: always
  type: dict
  sample: {Deployment/social-web: stopped, CronJob/social-media-remove: stopped}
'''

import copy
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client

try:
    from kubernetes.client import AppsV1Api, BatchV1Api
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - reported through missing_required_lib
    AppsV1Api = BatchV1Api = None
    ApiException = Exception

ANNOTATION = "restore.fediverse.mastodon/replicas"
SUSPEND_ANNOTATION = "restore.fediverse.mastodon/suspend"
FIELD_MANAGER = "fediverse-mastodon-restore"


def cronjob_plan(cronjob, state):
    """(patch or None, what) for one CronJob: suspended while stopped, as it was after."""
    annotations = cronjob.metadata.annotations or {}
    suspended = bool(cronjob.spec.suspend)
    if state == "stopped":
        if SUSPEND_ANNOTATION in annotations and suspended:
            return None, "unchanged"
        kept = annotations.get(SUSPEND_ANNOTATION, "true" if suspended else "false")
        return {"metadata": {"annotations": {SUSPEND_ANNOTATION: kept}}, "spec": {"suspend": True}}, "stopped"
    if SUSPEND_ANNOTATION not in annotations:
        return None, "unchanged"
    return ({"metadata": {"annotations": {SUSPEND_ANNOTATION: None}}, "spec": {"suspend": annotations[SUSPEND_ANNOTATION] == "true"}},
            "started")


def plan(deployment, state):
    """(patch or None, what) for one Deployment (None: absent) and the wanted state."""
    if deployment is None:
        return None, "absent"
    annotations = deployment.metadata.annotations or {}
    replicas = deployment.spec.replicas or 0
    if state == "stopped":
        if ANNOTATION in annotations and replicas == 0:
            return None, "unchanged"
        kept = annotations.get(ANNOTATION, str(replicas))
        return {"metadata": {"annotations": {ANNOTATION: kept}}, "spec": {"replicas": 0}}, "stopped"
    if ANNOTATION not in annotations:
        return None, "unchanged"
    return {"metadata": {"annotations": {ANNOTATION: None}}, "spec": {"replicas": int(annotations[ANNOTATION])}}, "started"


def main():
    spec = dict(namespace=dict(type="str", required=True), instance=dict(type="str", required=True),
                state=dict(type="str", required=True, choices=["stopped", "started"]),
                wait_timeout=dict(type="int", default=300))
    spec.update(copy.deepcopy(k8s_client.K8S_AUTH_ARG_SPEC))
    spec.update(copy.deepcopy(k8s_client.RUN_LOCK_ARG_SPEC))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if AppsV1Api is None:
        module.fail_json(msg=missing_required_lib("kubernetes"))
    p = module.params
    try:
        api = k8s_client.build_api_client(k8s_client.auth_params(p))
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="cannot set up the Kubernetes client: %s; check kubeconfig/context" % to_native(exc))
    if p["run_lock"]:
        k8s_client.guard_writes(api, p["run_lock"])
    apps, batch, ns = AppsV1Api(api), BatchV1Api(api), p["namespace"]
    report, changed = {}, False
    try:
        deployments = apps.list_namespaced_deployment(
            ns, label_selector="app.kubernetes.io/instance=%s,app.kubernetes.io/name in (web,streaming,sidekiq)" % p["instance"]).items
        cronjobs = batch.list_namespaced_cron_job(
            ns, label_selector="app.kubernetes.io/instance=%s,app.kubernetes.io/part-of=mastodon" % p["instance"]).items
        for kind, items, planner, patcher in (
                ("CronJob", cronjobs, cronjob_plan, batch.patch_namespaced_cron_job),
                ("Deployment", deployments, plan, apps.patch_namespaced_deployment)):
            for item in sorted(items, key=lambda i: i.metadata.name):
                patch, what = planner(item, p["state"])
                report["%s/%s" % (kind, item.metadata.name)] = what
                if patch is None:
                    continue
                changed = True
                if not module.check_mode:
                    patcher(item.metadata.name, ns, patch, field_manager=FIELD_MANAGER)
        if p["state"] == "stopped" and not module.check_mode:
            deadline = time.monotonic() + p["wait_timeout"]
            waiting = [d.metadata.name for d in deployments]
            while waiting:
                waiting = [n for n in waiting if (apps.read_namespaced_deployment(n, ns).status.replicas or 0) > 0]
                if waiting and time.monotonic() > deadline:
                    module.fail_json(msg="the pods of %s were still running after %d s (wait_timeout); nothing else was "
                                         "changed; run again to keep waiting" % (", ".join(waiting), p["wait_timeout"]),
                                     changed=changed, objects=report)
                if waiting:
                    time.sleep(1)
    except ApiException as exc:
        module.fail_json(msg="the objects of %s in %s: %s" % (p["instance"], ns, k8s_client.api_error_detail(exc)),
                         changed=changed, objects=report)
    module.exit_json(changed=changed, objects=report)


if __name__ == "__main__":
    main()
