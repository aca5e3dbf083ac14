# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The "Kubernetes kubeconfig" credential type: AWX's creation rules and its injection.

There is no AWX here, so AWX's side is emulated (awx_emulation: same Jinja sandbox, same
namespace, same file/env order as AWX's CredentialType.inject_credential); hence "fake_awx"
in the names. What consumes the injected variables is real: the kubernetes client's kubeconfig
loader, and our modules' argument specs with their K8S_AUTH_* fallbacks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import stat
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import awx_emulation as awx  # noqa: E402  pylint: disable=wrong-import-position

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://127.0.0.1:16443
    insecure-skip-tls-verify: true
users:
- name: deployer
  user:
    token: unit-test-token
contexts:
- name: prod
  context: {cluster: prod, user: deployer, namespace: social}
current-context: prod
"""


def _bearer(configuration):
    """The bearer token header value, whichever key this kubernetes client version stores it under."""
    keys = configuration.api_key or {}
    scheme, token = (keys.get("BearerToken") or keys.get("authorization")).split(" ", 1)
    assert scheme.lower() == "bearer"
    return token


@pytest.fixture(scope="module")
def ctype():
    tasks = awx.declared_tasks({"mastodon_awx_scm_url": "u", "mastodon_awx_ee_image": "i"})
    (params,) = [t["params"] for t in tasks if t["module"] == "credential_type"]
    return params


def test_credential_type_is_named_and_kind_cloud(ctype):
    assert ctype["name"] == "Kubernetes kubeconfig"
    # custom types may only be cloud or net; cloud ones can be attached to job templates
    assert ctype["kind"] == "cloud"


def test_credential_type_passes_fake_awx_creation_rules(ctype):
    assert awx.validate_credential_type(ctype["kind"], ctype["inputs"], ctype["injectors"]) == []


def test_kubeconfig_field_is_secret_and_required(ctype):
    (field,) = ctype["inputs"]["fields"]
    assert field["id"] == "kubeconfig"
    assert field["secret"] is True and field["multiline"] is True
    assert ctype["inputs"]["required"] == ["kubeconfig"]


def _mutations():
    def env(injectors, inputs):
        injectors["env"]["ANSIBLE_CONFIG"] = "{{ tower.filename.kubeconfig }}"

    def path_var(injectors, inputs):
        injectors["env"]["PATH"] = "/tmp"

    def undefined_field(injectors, inputs):
        injectors["file"]["template.kubeconfig"] = "{{ kube_config }}"

    def bad_file_key(injectors, inputs):
        injectors["file"] = {"kubeconfig": "{{ kubeconfig }}"}

    def single_file_reference(injectors, inputs):
        injectors["env"]["K8S_AUTH_KUBECONFIG"] = "{{ tower.filename }}"

    def unknown_file_reference(injectors, inputs):
        injectors["env"]["K8S_AUTH_KUBECONFIG"] = "{{ tower.filename.config }}"

    def reserved_id(injectors, inputs):
        inputs["fields"].append({"id": "tower", "label": "Tower"})

    def duplicate_id(injectors, inputs):
        inputs["fields"].append({"id": "kubeconfig", "label": "Again"})

    def bad_type(injectors, inputs):
        inputs["fields"][0]["type"] = "text"

    def typo_in_field(injectors, inputs):
        inputs["fields"][0]["mulitline"] = True

    def required_unknown(injectors, inputs):
        inputs["required"] = ["kubeconfig_data"]

    def unknown_section(injectors, inputs):
        injectors["environment"] = {"K8S_AUTH_KUBECONFIG": "x"}

    def unsafe_template(injectors, inputs):
        injectors["env"]["K8S_AUTH_CONTEXT"] = "{{ ''.__class__.__mro__ }}"

    return [env, path_var, undefined_field, bad_file_key, single_file_reference, unknown_file_reference,
            reserved_id, duplicate_id, bad_type, typo_in_field, required_unknown, unknown_section, unsafe_template]


@pytest.mark.parametrize("mutate", _mutations(), ids=lambda f: f.__name__)
def test_broken_credential_types_fail_fake_awx_creation_rules(ctype, mutate):
    inputs = copy.deepcopy(ctype["inputs"])
    injectors = copy.deepcopy(ctype["injectors"])
    mutate(injectors, inputs)
    assert awx.validate_credential_type("cloud", inputs, injectors) != []


def test_kind_kubernetes_is_refused_for_custom_types_fake_awx(ctype):
    assert awx.validate_credential_type("kubernetes", ctype["inputs"], ctype["injectors"]) != []


@pytest.fixture
def injected(ctype, tmp_path):
    env, files = awx.inject_credential(ctype["inputs"], ctype["injectors"], {"kubeconfig": KUBECONFIG},
                                       str(tmp_path))
    return env, files, tmp_path


def test_fake_awx_injection_writes_private_kubeconfig_and_sets_env(injected):
    env, files, private_data_dir = injected
    assert sorted(env) == ["K8S_AUTH_KUBECONFIG"]
    path = env["K8S_AUTH_KUBECONFIG"]
    assert files == {"template.kubeconfig": path}
    assert os.path.dirname(path) == str(private_data_dir / "env")
    with open(path) as fh:
        assert fh.read() == KUBECONFIG  # byte for byte: Jinja must not eat the trailing newline etc.
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_fake_awx_injected_kubeconfig_loads_with_kubernetes_client(injected):
    from kubernetes import client, config

    env, dummy_files, dummy_dir = injected
    configuration = client.Configuration()
    config.load_kube_config(config_file=env["K8S_AUTH_KUBECONFIG"], client_configuration=configuration)
    assert configuration.host == "https://127.0.0.1:16443"
    assert _bearer(configuration) == "unit-test-token"


def test_fake_awx_injected_env_feeds_our_modules_auth_options(injected, monkeypatch):
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_client import (
        K8S_AUTH_ARG_SPEC, build_api_client)

    env, dummy_files, dummy_dir = injected
    for var in ("K8S_AUTH_CONTEXT", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    result = ArgumentSpecValidator(K8S_AUTH_ARG_SPEC).validate({})
    assert not result.error_messages, result.error_messages
    params = result.validated_parameters
    assert params["kubeconfig"] == env["K8S_AUTH_KUBECONFIG"]
    assert params["context"] is None  # the credential does not inject an (empty) context
    assert build_api_client(params).configuration.host == "https://127.0.0.1:16443"


def test_fake_awx_injected_env_feeds_via_kubernetes(injected, monkeypatch):
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    try:
        from ansible_collections.fediverse.mastodon.plugins.module_utils.portforward import via_kubernetes_spec
    except ImportError as exc:  # pragma: no cover - portforward is another helper's module
        pytest.skip("plugins/module_utils/portforward.py not importable: %s" % exc)

    env, dummy_files, dummy_dir = injected
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    spec = {"via_kubernetes": via_kubernetes_spec()}
    result = ArgumentSpecValidator(spec).validate({"via_kubernetes": {"namespace": "social", "service": "social-postgresql"}})
    assert not result.error_messages, result.error_messages
    assert result.validated_parameters["via_kubernetes"]["kubeconfig"] == env["K8S_AUTH_KUBECONFIG"]


def test_fake_awx_injection_without_kubeconfig_renders_empty_file(ctype, tmp_path):
    # AWX leaves unset fields undefined; Jinja renders them empty (the field is required, so AWX
    # refuses such a credential; this documents what would happen otherwise)
    env, _files = awx.inject_credential(ctype["inputs"], ctype["injectors"], {}, str(tmp_path))
    with open(env["K8S_AUTH_KUBECONFIG"]) as fh:
        assert fh.read() == ""


def test_fake_awx_injection_keeps_jinja_in_kubeconfig_literal(ctype, tmp_path):
    # a value is data, not a template: "{{" inside a kubeconfig must come out unchanged
    text = KUBECONFIG + "# {{ tower.filename }}\n"
    env, _files = awx.inject_credential(ctype["inputs"], ctype["injectors"], {"kubeconfig": text}, str(tmp_path))
    with open(env["K8S_AUTH_KUBECONFIG"]) as fh:
        assert fh.read() == text


@pytest.fixture
def fake_pod_sa_dir(tmp_path):
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text("in-cluster-token")
    return str(sa_dir)


def _via(monkeypatch, env):
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.fediverse.mastodon.plugins.module_utils.portforward import via_kubernetes_spec

    for var in list(os.environ):
        if var.startswith("K8S_AUTH_"):
            monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    result = ArgumentSpecValidator({"via_kubernetes": via_kubernetes_spec()}).validate(
        {"via_kubernetes": {"namespace": "social", "service": "social-postgresql"}})
    assert not result.error_messages, result.error_messages
    return result.validated_parameters["via_kubernetes"]


def test_fake_pod_job_without_kubeconfig_credential_connects_to_services_directly(monkeypatch, fake_pod_sa_dir):
    from ansible_collections.fediverse.mastodon.plugins.module_utils.portforward import should_connect_directly

    via = _via(monkeypatch, {})
    assert should_connect_directly(via, environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1"}, sa_dir=fake_pod_sa_dir)


def test_fake_pod_job_with_kubeconfig_credential_port_forwards(monkeypatch, injected, fake_pod_sa_dir):
    from ansible_collections.fediverse.mastodon.plugins.module_utils.portforward import should_connect_directly

    env, dummy_files, dummy_dir = injected
    via = _via(monkeypatch, env)
    # the credential names a cluster (maybe another one): the module does not assume it is "here"
    assert not should_connect_directly(via, environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1"}, sa_dir=fake_pod_sa_dir)
    # outside any pod it port-forwards too
    assert not should_connect_directly(via, environ={}, sa_dir=fake_pod_sa_dir)
