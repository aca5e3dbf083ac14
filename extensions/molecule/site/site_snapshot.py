# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot the objects of one Mastodon instance for the site tests.

usage: site_snapshot.py NAMESPACE OUTPUT_FILE     (KUBECONFIG or K8S_AUTH_* as for the modules)

Writes JSON (mode 0600, it holds secret values):
  secrets:      {name: {key: base64 value}}
  pvcs:         {name: uid}
  jobs:         {name: {created, completed, succeeded, failed}}
  replicasets:  [{name, owner, created, images}]
  workloads:    ["Kind/name", ...] of Deployments, StatefulSets, Jobs, CronJobs, Services,
                ConfigMaps (those the instance's labels mark), Ingresses, NetworkPolicies, PDBs
  namespace:    true when the namespace exists
Also importable: snapshot(namespace) returns the same dict.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "collections"))

from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_client import K8S_AUTH_ARG_SPEC, build_api_client  # noqa: E402
from kubernetes import client  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

# Not "fediverse.mastodon...": the audit-log checks count that agent as the playbooks' own.
USER_AGENT = "site-scenario-snapshot"


def api_client():
    """An API client configured as the modules configure theirs (K8S_AUTH_*, else KUBECONFIG)."""
    params = dict((key, spec["fallback"][0]() if spec.get("fallback") else None) for key, spec in K8S_AUTH_ARG_SPEC.items())
    api = build_api_client(params)
    api.user_agent = USER_AGENT
    return api


def _ts(value):
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def snapshot(namespace, api=None):
    api = api or api_client()
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    net, policy = client.NetworkingV1Api(api), client.PolicyV1Api(api)
    try:
        core.read_namespace(namespace)
        exists = True
    except ApiException as exc:
        if exc.status != 404:
            raise
        exists = False
    snap = {"namespace": exists, "secrets": {}, "pvcs": {}, "jobs": {}, "replicasets": [], "workloads": []}
    if not exists:
        return snap
    for item in core.list_namespaced_secret(namespace).items:
        snap["secrets"][item.metadata.name] = dict(item.data or {})
    for item in core.list_namespaced_persistent_volume_claim(namespace).items:
        snap["pvcs"][item.metadata.name] = item.metadata.uid
    for item in batch.list_namespaced_job(namespace).items:
        snap["jobs"][item.metadata.name] = {
            "created": _ts(item.metadata.creation_timestamp),
            "completed": _ts(item.status.completion_time),
            "succeeded": item.status.succeeded or 0,
            "failed": item.status.failed or 0,
        }
    for item in apps.list_namespaced_replica_set(namespace).items:
        snap["replicasets"].append({
            "name": item.metadata.name,
            "owner": (item.metadata.owner_references or [None])[0] and item.metadata.owner_references[0].name,
            "created": _ts(item.metadata.creation_timestamp),
            "images": [c.image for c in item.spec.template.spec.containers],
        })
    managed = "app.kubernetes.io/managed-by=fediverse.mastodon"
    listers = [
        ("Deployment", apps.list_namespaced_deployment), ("StatefulSet", apps.list_namespaced_stateful_set),
        ("Job", batch.list_namespaced_job), ("CronJob", batch.list_namespaced_cron_job),
        ("Service", core.list_namespaced_service), ("ConfigMap", core.list_namespaced_config_map),
        ("Ingress", net.list_namespaced_ingress), ("NetworkPolicy", net.list_namespaced_network_policy),
        ("PodDisruptionBudget", policy.list_namespaced_pod_disruption_budget),
    ]
    for kind, lister in listers:
        for item in lister(namespace, label_selector=managed).items:
            snap["workloads"].append("%s/%s" % (kind, item.metadata.name))
    return snap


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    data = snapshot(argv[1])
    fd = os.open(argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
