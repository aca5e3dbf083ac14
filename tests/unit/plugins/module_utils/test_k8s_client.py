# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""In-cluster detection (AWX execution pods) and how build_api_client picks its configuration.

No pod exists here, so these tests use a fake environment and a temporary directory standing
in for /var/run/secrets/kubernetes.io/serviceaccount: hence "fake" in their names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
from kubernetes import config as k8s_config
from kubernetes.config import incluster_config

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_client import (
    K8S_AUTH_ARG_SPEC,
    SERVICE_ACCOUNT_DIR,
    build_api_client,
    running_in_cluster,
)

IN_POD_ENV = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: outside
  cluster:
    server: https://127.0.0.1:16443
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: kubeconfig-token
contexts:
- name: outside
  context: {cluster: outside, user: admin}
current-context: outside
"""


def _bearer(configuration):
    """The bearer token header value, whichever key this kubernetes client version stores it under."""
    keys = configuration.api_key or {}
    scheme, token = (keys.get("BearerToken") or keys.get("authorization")).split(" ", 1)
    assert scheme.lower() == "bearer"
    return token


@pytest.fixture
def fake_sa_dir(tmp_path):
    """A service account directory as the kubelet mounts it: token, ca.crt, namespace."""
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text("in-cluster-token")
    (sa_dir / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nnot-used\n-----END CERTIFICATE-----\n")
    (sa_dir / "namespace").write_text("awx")
    return str(sa_dir)


@pytest.fixture
def kubeconfig_path(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


# ------------------------------------------------------------------- running_in_cluster()

def test_fake_env_and_fake_token_dir_is_in_cluster(fake_sa_dir):
    assert running_in_cluster(environ=dict(IN_POD_ENV), sa_dir=fake_sa_dir) is True


def test_fake_env_without_service_host_is_not_in_cluster(fake_sa_dir):
    # a token left on disk (e.g. a copied directory) is not enough without the kubelet's env
    assert running_in_cluster(environ={}, sa_dir=fake_sa_dir) is False


def test_fake_env_with_empty_service_host_is_not_in_cluster(fake_sa_dir):
    assert running_in_cluster(environ={"KUBERNETES_SERVICE_HOST": ""}, sa_dir=fake_sa_dir) is False


def test_fake_env_without_token_file_is_not_in_cluster(fake_sa_dir):
    os.unlink(os.path.join(fake_sa_dir, "token"))
    # automountServiceAccountToken: false → env present, no token
    assert running_in_cluster(environ=dict(IN_POD_ENV), sa_dir=fake_sa_dir) is False


def test_fake_env_with_missing_token_dir_is_not_in_cluster(tmp_path):
    missing = str(tmp_path / "does-not-exist")
    assert running_in_cluster(environ=dict(IN_POD_ENV), sa_dir=missing) is False


def test_fake_env_token_path_that_is_a_directory_is_not_in_cluster(tmp_path):
    sa_dir = tmp_path / "sa"
    (sa_dir / "token").mkdir(parents=True)
    assert running_in_cluster(environ=dict(IN_POD_ENV), sa_dir=str(sa_dir)) is False


def test_fake_env_defaults_read_process_environment(monkeypatch, fake_sa_dir):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    assert running_in_cluster(sa_dir=fake_sa_dir) is True
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert running_in_cluster(sa_dir=fake_sa_dir) is False


def test_default_token_path_is_the_kubelet_mount():
    assert SERVICE_ACCOUNT_DIR == "/var/run/secrets/kubernetes.io/serviceaccount"


def test_this_test_machine_is_not_in_cluster():
    # the real default path: no service account is mounted on a laptop or CI machine
    if os.path.isfile(os.path.join(SERVICE_ACCOUNT_DIR, "token")):
        pytest.skip("a service account token is mounted here")
    assert running_in_cluster() is False


# ------------------------------------------------------------------- build_api_client()

@pytest.fixture
def fake_pod(monkeypatch, fake_sa_dir):
    """Pretend this process is in a pod: the detection sees the fake env + dir, and the real
    kubernetes InClusterConfigLoader reads the token and CA from the fake directory."""
    env = dict(IN_POD_ENV)
    monkeypatch.setattr(k8s_client, "running_in_cluster",
                        lambda environ=None, sa_dir=None: running_in_cluster(environ=env, sa_dir=fake_sa_dir))

    def load_incluster_config(client_configuration=None, try_refresh_token=True):
        loader = incluster_config.InClusterConfigLoader(
            token_filename=os.path.join(fake_sa_dir, "token"),
            cert_filename=os.path.join(fake_sa_dir, "ca.crt"),
            try_refresh_token=try_refresh_token,
            environ=env)
        loader.load_and_set(client_configuration)

    monkeypatch.setattr(k8s_config, "load_incluster_config", load_incluster_config)
    for var in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return fake_sa_dir


def _auth_params(**given):
    """Module params as AnsibleModule would build them from K8S_AUTH_ARG_SPEC (env fallbacks too)."""
    result = ArgumentSpecValidator(K8S_AUTH_ARG_SPEC).validate(given)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def test_fake_pod_without_options_uses_the_service_account(fake_pod):
    api = build_api_client(_auth_params())
    cfg = api.configuration
    assert cfg.host == "https://127.0.0.1:6443"
    assert _bearer(cfg) == "in-cluster-token"
    assert cfg.ssl_ca_cert == os.path.join(fake_pod, "ca.crt")


def test_fake_pod_with_awx_kubeconfig_credential_uses_the_kubeconfig(fake_pod, kubeconfig_path, monkeypatch):
    # the "Kubernetes kubeconfig" credential sets K8S_AUTH_KUBECONFIG: it names another cluster
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", kubeconfig_path)
    params = _auth_params()
    assert params["kubeconfig"] == kubeconfig_path
    cfg = build_api_client(params).configuration
    assert cfg.host == "https://127.0.0.1:16443"
    assert _bearer(cfg) == "kubeconfig-token"


def test_fake_pod_with_explicit_host_uses_the_host(fake_pod):
    cfg = build_api_client(_auth_params(host="https://127.0.0.2:6443", api_key="explicit")).configuration
    assert cfg.host == "https://127.0.0.2:6443"
    assert _bearer(cfg) == "explicit"


def test_fake_env_outside_cluster_uses_the_default_kubeconfig(monkeypatch, kubeconfig_path):
    from kubernetes.config import kube_config

    monkeypatch.setattr(k8s_client, "running_in_cluster", lambda environ=None, sa_dir=None: False)
    monkeypatch.delenv("K8S_AUTH_KUBECONFIG", raising=False)
    # $KUBECONFIG is read by the kubernetes client when it is imported; stand in for it
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kubeconfig_path)
    cfg = build_api_client(_auth_params()).configuration
    assert cfg.host == "https://127.0.0.1:16443"
