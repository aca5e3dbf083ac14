# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fediverse.mastodon.mastodon_secrets and vapid_keys through the real ansible-playbook.

Offline mode (and vapid_keys) needs no lab: it checks that kept values come back intact although
they came in through no_log options, and that a no_log task shows nothing even at -vvv.
Kubernetes mode needs KUBECONFIG from `make -s lab-env` (the lab's real kube-apiserver); each
run uses its own namespace and deletes it at the end. What the module did is read back with
the kubernetes client.
"""

import base64
import json
import os
import sys
import threading

import pytest

from ansible_run import run_module, run_playbook

NAMESPACE_PREFIX = "it-msecrets"

ENV = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}
AR = ["ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY", "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT",
      "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"]
REQUIRED = ["SECRET_KEY_BASE", "VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"] + AR
VERSION = "4.6.3"


def sf():
    from ansible_collections.fediverse.mastodon.plugins.module_utils import secret_formats
    return secret_formats


def assert_valid_set(values, names=None):
    for name in names or REQUIRED:
        assert sf().check_mastodon_secret(name, values[name]) is None, name
    assert sf().check_vapid_pair(values["VAPID_PRIVATE_KEY"], values["VAPID_PUBLIC_KEY"]) is None


# --- offline mode: no lab needed -----------------------------------------------------------

def test_offline_mode_returns_kept_values_intact_through_ansible():
    first, proc = run_module("mastodon_secrets", {"mastodon_version": VERSION, "existing": {}}, env=ENV)
    assert first.get("failed") is not True, first.get("msg") or proc.stderr
    assert first["changed"] is True and first["generated"] == sorted(REQUIRED)
    secrets = first["secrets"]
    assert_valid_set(secrets)
    # the same values go back in through the no_log option `existing` and must come out unmasked
    second, proc = run_module("mastodon_secrets", {"mastodon_version": VERSION, "existing": secrets}, env=ENV)
    assert second["changed"] is False and second["kept"] == sorted(REQUIRED)
    assert second["secrets"] == secrets
    assert "********" not in json.dumps(second["secrets"])
    # operator-supplied values (no_log too) come back intact as well
    private, public = sf().generate_vapid_keys()
    third, proc = run_module("mastodon_secrets", {"mastodon_version": VERSION, "existing": {},
                                                  "values": {"VAPID_PRIVATE_KEY": private}}, env=ENV)
    assert third["secrets"]["VAPID_PRIVATE_KEY"] == private and third["secrets"]["VAPID_PUBLIC_KEY"] == public
    assert third["stored"] == ["VAPID_PRIVATE_KEY"]


def test_vapid_keys_returns_a_kept_private_key_intact_through_ansible():
    first, proc = run_module("vapid_keys", {}, env=ENV)
    assert first["changed"] is True
    second, proc = run_module("vapid_keys", {"private_key": first["private_key"]}, env=ENV)
    assert second["changed"] is False
    assert second["private_key"] == first["private_key"] and second["public_key"] == first["public_key"]


def test_offline_mode_with_no_log_shows_nothing_even_at_vvv(tmp_path):
    out_file = tmp_path / "secrets.json"
    plays = [{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [
            {"name": "keep secrets", "fediverse.mastodon.mastodon_secrets": {"mastodon_version": VERSION, "existing": {}},
             "register": "kept", "no_log": True},
            {"name": "again with the first output", "fediverse.mastodon.mastodon_secrets": {
                "mastodon_version": VERSION, "existing": "{{ kept.secrets }}"}, "register": "again", "no_log": True},
            {"name": "store", "ansible.builtin.copy": {
                "content": "{{ {'first': kept.secrets, 'second': again.secrets, 'changed': again.changed} | to_json }}",
                "dest": str(out_file), "mode": "0600"}, "no_log": True},
        ],
    }]
    proc = run_playbook(plays, ["-vvv"], env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out_file.read_text())
    assert data["first"] == data["second"] and data["changed"] is False
    assert_valid_set(data["first"])
    for value in data["first"].values():
        assert value not in proc.stdout and value not in proc.stderr
    assert "the output has been hidden" in proc.stdout


def test_offline_mode_failure_names_the_secret_not_the_value():
    secrets = run_module("mastodon_secrets", {"mastodon_version": VERSION, "existing": {}}, env=ENV)[0]["secrets"]
    broken = dict(secrets, VAPID_PUBLIC_KEY=sf().generate_vapid_keys()[1])
    result, proc = run_module("mastodon_secrets", {"mastodon_version": VERSION, "existing": broken}, env=ENV,
                              verbosity=3)
    assert result["failed"] is True and "VAPID keys (stored): VAPID_PUBLIC_KEY does not belong" in result["msg"]
    for value in broken.values():
        assert value not in proc.stdout and value not in proc.stderr


# --- Kubernetes mode: the lab apiserver ----------------------------------------------------

needs_lab = pytest.mark.skipif(not os.environ.get("KUBECONFIG"),
                               reason="lab Kubernetes not configured: run `eval $(make -s lab-env)` (KUBECONFIG)")


def read(core, namespace, name):
    obj = core.read_namespaced_secret(name, namespace)
    return dict((k, base64.b64decode(v).decode()) for k, v in (obj.data or {}).items()), obj


def k8s_args(namespace, name, **extra):
    args = {"namespace": namespace, "name": name, "mastodon_version": VERSION}
    args.update(extra)
    return args


@needs_lab
def test_kubernetes_mode_lifecycle(core, namespace):
    labels = {"app.kubernetes.io/part-of": "mastodon", "app.kubernetes.io/managed-by": "fediverse.mastodon"}
    # check mode first: reports the change, creates nothing
    check, proc = run_module("mastodon_secrets", k8s_args(namespace, "app", labels=labels), check=True, diff=True, env=ENV)
    assert check.get("failed") is not True, check.get("msg") or proc.stderr
    assert check["changed"] is True and check["resource_version"] is None
    assert check["diff"]["after"] == dict((n, "(generated)") for n in REQUIRED)
    assert core.list_namespaced_secret(namespace, field_selector="metadata.name=app").items == []

    # first run: creates the Secret with every key
    first, proc = run_module("mastodon_secrets", k8s_args(namespace, "app", labels=labels), env=ENV, verbosity=3)
    assert first["changed"] is True and first["generated"] == sorted(REQUIRED)
    values, obj = read(core, namespace, "app")
    assert sorted(values) == sorted(REQUIRED)
    assert_valid_set(values)
    assert obj.metadata.labels == labels and obj.type == "Opaque"
    assert first["resource_version"] == obj.metadata.resource_version
    for value in values.values():
        assert value not in proc.stdout and value not in proc.stderr
    assert "secrets" not in first

    # second run: nothing changes, same resourceVersion
    second, proc = run_module("mastodon_secrets", k8s_args(namespace, "app", labels=labels), env=ENV, verbosity=4)
    assert second["changed"] is False and second["kept"] == sorted(REQUIRED) and second["generated"] == []
    values2, obj2 = read(core, namespace, "app")
    assert values2 == values
    assert second["resource_version"] == obj.metadata.resource_version == obj2.metadata.resource_version
    for value in values.values():
        assert value not in proc.stdout and value not in proc.stderr

    # one key deleted by hand: only it is regenerated, the rest stays byte for byte
    core.patch_namespaced_secret("app", namespace, [{"op": "remove", "path": "/data/ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"}])
    third, proc = run_module("mastodon_secrets", k8s_args(namespace, "app"), env=ENV, diff=True)
    assert third["changed"] is True and third["generated"] == ["ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"]
    assert third["diff"]["after"]["ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"] == "(generated)"
    values3, obj3 = read(core, namespace, "app")
    for name in REQUIRED:
        if name != "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY":
            assert values3[name] == values[name]
    assert values3["ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"] != values["ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"]
    assert_valid_set(values3)

    # the public VAPID key deleted by hand is re-derived, identical
    core.patch_namespaced_secret("app", namespace, [{"op": "remove", "path": "/data/VAPID_PUBLIC_KEY"}])
    fourth, proc = run_module("mastodon_secrets", k8s_args(namespace, "app"), env=ENV)
    assert fourth["generated"] == ["VAPID_PUBLIC_KEY"]
    assert read(core, namespace, "app")[0] == values3

    # rotate only what is named; Active Record keys only with the data-loss flag
    fifth, proc = run_module("mastodon_secrets", k8s_args(namespace, "app", rotate=["SECRET_KEY_BASE"]), env=ENV)
    assert fifth["rotated"] == ["SECRET_KEY_BASE"]
    values5 = read(core, namespace, "app")[0]
    assert values5["SECRET_KEY_BASE"] != values3["SECRET_KEY_BASE"]
    assert dict((k, v) for k, v in values5.items() if k != "SECRET_KEY_BASE") == \
        dict((k, v) for k, v in values3.items() if k != "SECRET_KEY_BASE")
    refused, proc = run_module("mastodon_secrets", k8s_args(namespace, "app", rotate=[AR[0]]), env=ENV)
    assert refused["failed"] is True and "i_understand_data_loss" in refused["msg"]
    assert read(core, namespace, "app")[0] == values5


@needs_lab
def test_kubernetes_mode_invalid_stored_value_fails_without_writing(core, namespace):
    run_module("mastodon_secrets", k8s_args(namespace, "broken"), env=ENV)
    values, obj = read(core, namespace, "broken")
    truncated = values["VAPID_PRIVATE_KEY"][:43]
    core.patch_namespaced_secret("broken", namespace, {"data": {
        "VAPID_PRIVATE_KEY": base64.b64encode(truncated.encode()).decode()}})
    before = read(core, namespace, "broken")[1].metadata.resource_version
    result, proc = run_module("mastodon_secrets", k8s_args(namespace, "broken"), env=ENV, verbosity=3)
    assert result["failed"] is True
    assert "Secret %s/broken" % namespace in result["msg"] and "VAPID_PRIVATE_KEY (stored)" in result["msg"]
    assert truncated not in proc.stdout and truncated not in proc.stderr
    assert read(core, namespace, "broken")[1].metadata.resource_version == before


@needs_lab
def test_kubernetes_mode_operator_values_win(core, namespace):
    private, public = sf().generate_vapid_keys()
    result, proc = run_module("mastodon_secrets", k8s_args(namespace, "vault", values={"VAPID_PRIVATE_KEY": private}),
                              env=ENV, verbosity=3)
    assert result["stored"] == ["VAPID_PRIVATE_KEY"]
    values = read(core, namespace, "vault")[0]
    assert values["VAPID_PRIVATE_KEY"] == private and values["VAPID_PUBLIC_KEY"] == public
    assert private not in proc.stdout and private not in proc.stderr
    differs, proc = run_module("mastodon_secrets", k8s_args(namespace, "vault", values={"SECRET_KEY_BASE": "ab" * 64}),
                               env=ENV)
    assert differs["failed"] is True and "list SECRET_KEY_BASE in rotate" in differs["msg"]


@needs_lab
def test_two_concurrent_runs_end_with_one_consistent_secret(core, namespace):
    results = [None, None]

    def worker(index):
        results[index] = run_module("mastodon_secrets", k8s_args(namespace, "race"), env=ENV)[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        assert result.get("failed") is not True, result.get("msg")
        assert sorted(result["generated"] + result["kept"]) == sorted(REQUIRED)
    # no key was generated by both runs: neither overwrote the other's values
    assert not set(results[0]["generated"]) & set(results[1]["generated"])
    values, obj = read(core, namespace, "race")
    assert_valid_set(values)
    again, proc = run_module("mastodon_secrets", k8s_args(namespace, "race"), env=ENV)
    assert again["changed"] is False and again["resource_version"] == obj.metadata.resource_version


@needs_lab
def test_kubernetes_mode_prints_no_value_with_the_default_callback_at_vvvv(core, namespace):
    private, dummy = sf().generate_vapid_keys()
    plays = [{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "keep secrets (no no_log on purpose)", "fediverse.mastodon.mastodon_secrets": k8s_args(
            namespace, "loud", values={"VAPID_PRIVATE_KEY": private}, legacy_otp_secret=True)}],
    }]
    proc = run_playbook(plays, ["-vvvv", "--diff"], env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    values = read(core, namespace, "loud")[0]
    assert sorted(values) == sorted(REQUIRED + ["OTP_SECRET"])
    assert values["VAPID_PRIVATE_KEY"] == private
    for value in values.values():
        assert value not in proc.stdout and value not in proc.stderr
    assert "VAPID_PRIVATE_KEY" in proc.stdout  # names are shown, values are not
