"""The lookups k8s_read and secret_fingerprint against the lab's real kube-apiserver, through
ansible-playbook -vvv: what they return, what they refuse, and that no Secret value is printed."""

import base64
import json

import pytest

from ansible_run import run_playbook

pytestmark = pytest.mark.lab

NAMESPACE_PREFIX = "it-lookups"
VALUE = "lookup-secret-value-7f3a"


@pytest.fixture(scope="module")
def objects(core, namespace):
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "one", "labels": {"app": "x"}}, "data": {"k": "v"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "two", "labels": {"app": "y"}}, "data": {"k": "w"}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"}, "stringData": {"password": VALUE}})
    return namespace


def play(tasks):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]


def debug_json(proc):
    """The msg of every debug task, from the json callback."""
    out = json.loads(proc.stdout)
    return [h["localhost"].get("msg") for p in out["plays"] for t in p["tasks"] for h in [t["hosts"]]
            if "msg" in h["localhost"]]


def test_k8s_read_reads_by_name_and_by_selector(objects):
    tasks = [
        {"ansible.builtin.debug": {"msg": "{{ query('fediverse.mastodon.k8s_read', api_version='v1', kind='ConfigMap', "
                                          "namespace='%s', label_selector='app=x') | map(attribute='metadata.name') }}" % objects}},
        {"ansible.builtin.debug": {"msg": "{{ query('fediverse.mastodon.k8s_read', api_version='v1', kind='ConfigMap', "
                                          "namespace='%s', name='two') | map(attribute='data.k') }}" % objects}},
        {"ansible.builtin.debug": {"msg": "{{ query('fediverse.mastodon.k8s_read', api_version='v1', kind='ConfigMap', "
                                          "namespace='%s', name='absent') }}" % objects}},
    ]
    proc = run_playbook(play(tasks), callback="json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert debug_json(proc) == [["one"], ["w"], []]


def test_k8s_read_refuses_secrets(objects):
    tasks = [{"ansible.builtin.debug": {"msg": "{{ query('fediverse.mastodon.k8s_read', api_version='v1', kind='Secret', "
                                               "namespace='%s', name='creds') }}" % objects}}]
    proc = run_playbook(play(tasks), args=["-vvv"])
    assert proc.returncode != 0
    assert "k8s_read: refuses Secrets" in proc.stdout + proc.stderr
    assert VALUE not in proc.stdout + proc.stderr
    assert base64.b64encode(VALUE.encode()).decode() not in proc.stdout + proc.stderr


def test_secret_fingerprint_names_what_is_missing_and_never_prints_a_value(objects):
    refs = [{"secret": "creds", "key": "password", "name": "PASS"}, {"secret": "creds", "key": "nope", "name": "NOPE"},
            {"secret": "nothere", "key": "k", "name": "K"}]
    tasks = [
        {"name": "fingerprint", "no_log": True, "ansible.builtin.set_fact": {
            "fp": "{{ lookup('fediverse.mastodon.secret_fingerprint', namespace='%s', refs=%s) }}" % (objects, json.dumps(refs))}},
        {"ansible.builtin.debug": {"msg": "{{ fp.missing }}"}},
        {"ansible.builtin.debug": {"msg": "{{ fp.checksum | length }}"}},
    ]
    proc = run_playbook(play(tasks), callback="json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert debug_json(proc) == [["creds/nope (NOPE)", "nothere/k (K)"], 64]
    verbose = run_playbook(play(tasks), args=["-vvv"])
    assert verbose.returncode == 0 and "creds/nope (NOPE)" in verbose.stdout, verbose.stdout[-3000:]
    for text in (VALUE, base64.b64encode(VALUE.encode()).decode()):
        for out in (proc, verbose):
            assert text not in out.stdout + out.stderr
