# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run lock as every writing module gets it (k8s_client.guard_writes), against the lab
apiserver: reads and dry runs take no lock; the first real write takes it (creating the
namespace of a first install); another run's write is refused with 423 naming the holder; the
lookup that wait loops use renews only a lock this run holds. Judged by the Lease objects and
the audit log."""

import os
import uuid

import pytest
from kubernetes import client as kube
from kubernetes.client.rest import ApiException

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client, lease, run_lock
from audit import AuditWindow

pytestmark = [pytest.mark.lab, pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs the lab apiserver")]


def holder(run_id, user="bob"):
    return dict(run_id=run_id, host="ci-host", user=user, started="2026-12-01T10:00:00Z", awx_job_id="77")


def locked_client(namespace, run_id, user="bob", **extra):
    lock = dict(namespace=namespace, name="inst-run-lock", holder=holder(run_id, user), duration=900, renew_every=300,
                break_lock=False)
    lock.update(extra)
    return k8s_client.build_api_client(dict(kubeconfig=os.environ["KUBECONFIG"], run_lock=lock)), lock


@pytest.fixture
def namespace():
    name = "it-runlock-" + uuid.uuid4().hex[:8]
    yield name
    core = kube.CoreV1Api(k8s_client.build_api_client(dict(kubeconfig=os.environ["KUBECONFIG"])))
    try:
        core.delete_namespace(name)
    except ApiException:
        pass


def configmap(name):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}}


def read_lease(namespace):
    api = kube.CoordinationV1Api(k8s_client.build_api_client(dict(kubeconfig=os.environ["KUBECONFIG"])))
    try:
        return api.read_namespaced_lease("inst-run-lock", namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_reads_and_dry_runs_take_no_lock(namespace):
    kube.CoreV1Api(k8s_client.build_api_client(dict(kubeconfig=os.environ["KUBECONFIG"]))).create_namespace(
        {"metadata": {"name": namespace}})
    api, dummy = locked_client(namespace, "run-a")
    core = kube.CoreV1Api(api)
    with AuditWindow() as window:
        core.list_namespaced_config_map(namespace)
        core.create_namespaced_config_map(namespace, configmap("dry"), dry_run="All")
    assert read_lease(namespace) is None
    # the dry run itself is in the log (it counts as a write attempt there); no Lease request is
    assert [w for w in window.writes(namespaces={namespace}) if "/leases" in w] == []


def test_first_write_of_a_first_install_creates_the_namespace_and_takes_the_lock(namespace):
    api, dummy = locked_client(namespace, "run-a")
    core = kube.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, configmap("one"))
    core.create_namespaced_config_map(namespace, configmap("two"))
    held = read_lease(namespace)
    assert held is not None and held.spec.holder_identity == "run-a@ci-host"
    assert held.metadata.annotations["mastodon.fediverse/holder-user"] == "bob"
    assert held.metadata.annotations["mastodon.fediverse/holder-awx-job-id"] == "77"


def test_another_runs_write_is_refused_naming_the_holder(namespace):
    api_a, dummy = locked_client(namespace, "run-a")
    kube.CoreV1Api(api_a).create_namespaced_config_map(namespace, configmap("one"))
    api_b, dummy = locked_client(namespace, "run-b", user="carol")
    with pytest.raises(ApiException) as info:
        kube.CoreV1Api(api_b).create_namespaced_config_map(namespace, configmap("two"))
    assert info.value.status == 423
    assert "locked by bob@ci-host" in info.value.reason and "mastodon_lock_break=true" in info.value.reason
    with pytest.raises(ApiException):
        kube.CoreV1Api(api_b).read_namespaced_config_map("two", namespace)
    assert read_lease(namespace).spec.holder_identity == "run-a@ci-host"


def test_break_lock_takes_a_live_lock(namespace):
    api_a, dummy = locked_client(namespace, "run-a")
    kube.CoreV1Api(api_a).create_namespaced_config_map(namespace, configmap("one"))
    api_b, dummy = locked_client(namespace, "run-b", user="carol", break_lock=True)
    kube.CoreV1Api(api_b).create_namespaced_config_map(namespace, configmap("two"))
    assert read_lease(namespace).spec.holder_identity == "run-b@ci-host"


def test_keep_renews_only_a_lock_this_run_holds_and_stops_a_run_whose_lock_was_taken(namespace):
    api_a, lock_a = locked_client(namespace, "run-a", renew_every=1)
    # nothing to keep before the first write
    kube.CoreV1Api(k8s_client.build_api_client(dict(kubeconfig=os.environ["KUBECONFIG"]))).create_namespace(
        {"metadata": {"name": namespace}})
    assert run_lock.keep(api_a, lock_a) is False
    kube.CoreV1Api(api_a).create_namespaced_config_map(namespace, configmap("one"))
    before = read_lease(namespace).spec.renew_time
    import time
    time.sleep(1.5)
    assert run_lock.keep(api_a, lock_a) is True
    assert read_lease(namespace).spec.renew_time > before
    api_b, dummy = locked_client(namespace, "run-b", break_lock=True)
    kube.CoreV1Api(api_b).create_namespaced_config_map(namespace, configmap("two"))
    time.sleep(1.5)
    with pytest.raises(lease.LockLost):
        run_lock.keep(api_a, lock_a)


def test_an_inline_kubeconfig_is_refused():
    with pytest.raises(ValueError, match="path"):
        k8s_client.build_api_client(dict(kubeconfig={"apiVersion": "v1", "clusters": []}))
