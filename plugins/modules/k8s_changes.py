#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: k8s_changes
short_description: List the objects of an instance that this collection changed since a given time
version_added: "0.1.0"
description:
  - Lists the objects of the given kinds that carry a label selector, and returns those whose
    C(metadata.managedFields) show a write by this collection (field managers starting with
    C(fediverse)) at or after O(since).
  - Read-only; used by the summary at the end of C(site.yml). Secret values are never read into
    the result.
author:
  - Fediverse Mastodon maintainers (@fediverse)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
options:
  namespace:
    description: Namespace to look in.
    type: str
    required: true
  label_selector:
    description: Label selector of the instance's objects.
    type: str
    required: true
  since:
    description: RFC 3339 time (UTC); writes at or after it count. Seconds precision, as the API server records it.
    type: str
    required: true
  kinds:
    description: C(apiVersion/Kind) pairs to look at.
    type: list
    elements: str
    default: [v1/ConfigMap, v1/Secret, v1/Service, v1/ServiceAccount, v1/PersistentVolumeClaim, apps/v1/Deployment,
              apps/v1/StatefulSet, batch/v1/Job, networking.k8s.io/v1/Ingress, networking.k8s.io/v1/NetworkPolicy,
              policy/v1/PodDisruptionBudget, autoscaling/v2/HorizontalPodAutoscaler]
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: Nothing to show.
'''

EXAMPLES = r'''
- name: What this run changed
  fediverse.mastodon.k8s_changes:
    namespace: social
    label_selector: app.kubernetes.io/instance=social
    since: "{{ run_started }}"
  register: changes
'''

RETURN = r'''
changed_objects:
  description: C(Kind/name) of every object written by this collection since O(since), sorted.
  returned: always
  type: list
  elements: str
  sample: ["Deployment/social-web", "Job/social-db-migrate-pre-v4-6-3"]
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_client import (
    HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR, K8S_AUTH_ARG_SPEC, build_api_client)
from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_objects import KubeRest

MANAGER_PREFIX = "fediverse"


def written_since(obj, since):
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if (entry.get("manager") or "").startswith(MANAGER_PREFIX) and (entry.get("time") or "") >= since:
            return True
    return False


def main(module_class=AnsibleModule):
    argument_spec = dict(
        namespace=dict(type="str", required=True),
        label_selector=dict(type="str", required=True),
        since=dict(type="str", required=True),
        kinds=dict(type="list", elements="str", default=[
            "v1/ConfigMap", "v1/Secret", "v1/Service", "v1/ServiceAccount", "v1/PersistentVolumeClaim",
            "apps/v1/Deployment", "apps/v1/StatefulSet", "batch/v1/Job", "networking.k8s.io/v1/Ingress",
            "networking.k8s.io/v1/NetworkPolicy", "policy/v1/PodDisruptionBudget", "autoscaling/v2/HorizontalPodAutoscaler"]),
    )
    argument_spec.update(K8S_AUTH_ARG_SPEC)
    module = module_class(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
    since = module.params["since"].replace("+00:00", "Z")
    rest = KubeRest(build_api_client(module.params))
    found = []
    for entry in module.params["kinds"]:
        api_version, kind = entry.rsplit("/", 1)
        try:
            base, plural, namespaced = rest.resource(api_version, kind)
        except LookupError:
            continue
        path = "%s/namespaces/%s/%s" % (base, module.params["namespace"], plural) if namespaced else "%s/%s" % (base, plural)
        try:
            listing = rest.call("GET", path, query=[("labelSelector", module.params["label_selector"])])
        except Exception as exc:  # ApiException or a connection error
            module.fail_json(msg="cannot list %s in %s: %s" % (kind, module.params["namespace"], exc))
        for item in listing.get("items", []):
            if written_since(item, since):
                found.append("%s/%s" % (kind, item["metadata"]["name"]))
    module.exit_json(changed=False, changed_objects=sorted(found))


if __name__ == "__main__":
    main()
