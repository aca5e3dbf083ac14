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
  - V(stopped) scales each Deployment in O(deployments) to zero replicas and waits until its pods
    are gone. The replicas it had are kept in the Deployment's annotation
    C(restore.fediverse.mastodon/replicas), in the same request, so an interrupted run loses nothing.
  - V(started) gives each Deployment that carries the annotation its replicas back, and removes
    the annotation.
  - The playbook C(restore.yml) uses it around a restore, so nothing writes to the database while it
    is replaced. A Deployment that does not exist is skipped (a new, empty instance).
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
  deployments:
    description: The Deployments' names.
    type: list
    elements: str
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
    deployments: [social-web, social-streaming, social-sidekiq]
    state: stopped
'''

RETURN = r'''
deployments:
  description: Each Deployment and what was done (V(stopped), V(started), V(unchanged), V(absent)).
  returned: always
  type: dict
  sample: {social-web: stopped}
'''

import copy
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client

try:
    from kubernetes.client import AppsV1Api
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - reported through missing_required_lib
    AppsV1Api = None
    ApiException = Exception

ANNOTATION = "restore.fediverse.mastodon/replicas"
FIELD_MANAGER = "fediverse-mastodon-restore"


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
    spec = dict(namespace=dict(type="str", required=True), deployments=dict(type="list", elements="str", required=True),
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
    apps = AppsV1Api(api)
    report, changed = {}, False
    try:
        for name in p["deployments"]:
            try:
                current = apps.read_namespaced_deployment(name, p["namespace"])
            except ApiException as exc:
                if getattr(exc, "status", None) != 404:
                    raise
                current = None
            patch, what = plan(current, p["state"])
            report[name] = what
            if patch is None:
                continue
            changed = True
            if not module.check_mode:
                apps.patch_namespaced_deployment(name, p["namespace"], patch, field_manager=FIELD_MANAGER)
        if p["state"] == "stopped" and not module.check_mode:
            deadline = time.monotonic() + p["wait_timeout"]
            waiting = [n for n, what in report.items() if what != "absent"]
            while waiting:
                waiting = [n for n in waiting if (apps.read_namespaced_deployment(n, p["namespace"]).status.replicas or 0) > 0]
                if waiting and time.monotonic() > deadline:
                    module.fail_json(msg="the pods of %s were still running after %d s (wait_timeout); nothing else was "
                                         "changed; run again to keep waiting" % (", ".join(waiting), p["wait_timeout"]),
                                     changed=changed, deployments=report)
                if waiting:
                    time.sleep(1)
    except ApiException as exc:
        module.fail_json(msg="Deployments in %s: %s" % (p["namespace"], k8s_client.api_error_detail(exc)), changed=changed,
                         deployments=report)
    module.exit_json(changed=changed, deployments=report)


if __name__ == "__main__":
    main()
