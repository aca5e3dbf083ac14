# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The "Kubernetes kubeconfig" credential type, end to end against the lab.

The injector declared in awx/configure.yml is rendered the way AWX renders it for a job (the
lab's kubeconfig as the credential input; file injector -> private file; env injector ->
K8S_AUTH_KUBECONFIG), then REAL tasks run through ansible-playbook with only that environment:
kubernetes.core.k8s_info, and our postgresql_app_db through via_kubernetes (in-process
port-forward through the lab's kube-apiserver to the lab PostgreSQL).
$KUBECONFIG points at a missing file in those runs, so only the injected variable can work.
Needs KUBECONFIG from `make -s lab-env` (and LAB_PG_* for the via_kubernetes test).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys
import time
import uuid

import pytest

from ansible_run import run_module

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit", "awx"))

import awx_emulation as awx  # noqa: E402  pylint: disable=wrong-import-position

KUBECONFIG = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(not (KUBECONFIG and os.path.isfile(KUBECONFIG)),
                       reason="lab Kubernetes not configured (KUBECONFIG from make -s lab-env)"),
]
LAB_PG = dict((k, os.environ.get("LAB_PG_" + k)) for k in ("HOST", "PORT", "USER", "PASSWORD"))
NO_KUBECONFIG = "/nonexistent/fediverse-mastodon/kubeconfig"


@pytest.fixture(scope="module")
def credential_type():
    tasks = awx.declared_tasks({"mastodon_awx_scm_url": "u", "mastodon_awx_ee_image": "i"})
    (params,) = [t["params"] for t in tasks if t["module"] == "credential_type"]
    return params


@pytest.fixture(scope="module")
def injected_env(credential_type, tmp_path_factory):
    """What a job's environment gets from a credential holding the lab's kubeconfig."""
    with open(KUBECONFIG) as fh:
        kubeconfig_text = fh.read()
    private_data_dir = str(tmp_path_factory.mktemp("awx-private-data"))
    env, files = awx.inject_credential(credential_type["inputs"], credential_type["injectors"],
                                       {"kubeconfig": kubeconfig_text}, private_data_dir)
    assert list(env) == ["K8S_AUTH_KUBECONFIG"]
    assert env["K8S_AUTH_KUBECONFIG"] == files["template.kubeconfig"]
    assert env["K8S_AUTH_KUBECONFIG"] != KUBECONFIG
    return env


@pytest.fixture
def only_injected(monkeypatch):
    """The job's environment: no K8S_AUTH_* of the caller, $KUBECONFIG unusable."""
    for var in list(os.environ):
        if var.startswith("K8S_AUTH_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("KUBECONFIG", NO_KUBECONFIG)


def _env(extra=None):
    env = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    env.update(extra or {})
    return env


def test_injected_kubeconfig_runs_kubernetes_core_k8s_info(injected_env, only_injected):
    result, proc = run_module("kubernetes.core.k8s_info", {"kind": "Namespace", "name": "kube-system"},
                              env=_env(injected_env))
    assert not result.get("failed"), (result, proc.stderr[-2000:])
    assert result["api_found"] is True
    assert [r["metadata"]["name"] for r in result["resources"]] == ["kube-system"]


def test_without_the_injected_variable_k8s_info_fails(injected_env, only_injected):
    # negative control: the same task with the credential left out cannot reach the cluster
    result, proc = run_module("kubernetes.core.k8s_info", {"kind": "Namespace", "name": "kube-system"}, env=_env())
    assert result.get("failed") is True, (result, proc.stdout[-2000:])
    assert "kube-config" in result.get("msg", ""), result


@pytest.fixture(scope="module")
def pg_target():
    """A Deployment + Service in a fresh namespace; kwok forwards pod port 5432 to the lab PostgreSQL."""
    if not all(LAB_PG.values()):
        pytest.skip("LAB_PG_* not set (make -s lab-env)")
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=KUBECONFIG)
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    ns = "awx-injector-%s" % uuid.uuid4().hex[:6]
    labels = {"app": "pg"}
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    try:
        apps.create_namespaced_deployment(ns, client.V1Deployment(
            metadata=client.V1ObjectMeta(name="pg"),
            spec=client.V1DeploymentSpec(
                replicas=1, selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(
                        name="postgres", image="postgres:15",
                        ports=[client.V1ContainerPort(name="postgres", container_port=5432)])])))))
        core.create_namespaced_service(ns, client.V1Service(
            metadata=client.V1ObjectMeta(name="pg"),
            spec=client.V1ServiceSpec(selector=labels, ports=[
                client.V1ServicePort(name="sql", port=5432, target_port="postgres")])))
        deadline = time.time() + 120
        while time.time() < deadline:
            pods = core.list_namespaced_pod(ns, label_selector="app=pg").items
            if any(p.status.phase == "Running" and any(c.type == "Ready" and c.status == "True"
                                                       for c in p.status.conditions or []) for p in pods):
                break
            time.sleep(1)
        else:
            pytest.fail("the pg pod never became Running and Ready in %s" % ns)
        yield ns
    finally:
        core.delete_namespace(ns)


def test_injected_kubeconfig_reaches_postgresql_through_via_kubernetes(injected_env, only_injected, pg_target):
    name = "awxinj_%s" % uuid.uuid4().hex[:6]
    module_args = {
        "login_user": LAB_PG["USER"], "login_password": LAB_PG["PASSWORD"],
        "database": name, "role": name, "password": "pw-" + uuid.uuid4().hex,
        # no kubeconfig here: it must come from K8S_AUTH_KUBECONFIG, as in an AWX job
        "via_kubernetes": {"namespace": pg_target, "service": "pg", "mode": "port_forward"},
    }
    # check mode: connects through the port-forward and reads, creates nothing
    result, proc = run_module("postgresql_app_db", module_args, check=True, env=_env(injected_env))
    assert not result.get("failed"), (result, proc.stderr[-2000:])
    assert result.get("changed") is True, result
    # negative control: without the credential the same module cannot open the port-forward
    result, proc = run_module("postgresql_app_db", module_args, check=True, env=_env())
    assert result.get("failed") is True, result
    assert "via_kubernetes" in result.get("msg", "") and "kube-config" in result.get("msg", ""), result
