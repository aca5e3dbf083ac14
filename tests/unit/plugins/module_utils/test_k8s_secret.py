# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k8s_secret's optimistic-concurrency loop against a fake CoreV1Api that can lose races on cue.

A real apiserver cannot be made to interleave a write at an exact point, so these tests use a
fake; the same behaviour is checked end to end against the lab apiserver in
tests/integration/test_generated_secret.py and test_mastodon_secrets.py (concurrent runs).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import json

import pytest

pytest.importorskip("kubernetes")

from kubernetes.client.rest import ApiException  # noqa: E402

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_secret  # noqa: E402


def enc(value):
    return base64.b64encode(value.encode()).decode()


class _Response(object):
    def __init__(self, obj):
        self.data = json.dumps(obj).encode()


class FakeCoreV1Api(object):
    """Keeps Secrets in a dict with resourceVersion semantics of the real apiserver."""

    store = {}
    rv = [100]
    before_write = []  # callables run (once each) just before our next create/replace
    calls = []

    def __init__(self, api_client=None):
        pass

    @classmethod
    def reset(cls):
        cls.store, cls.rv, cls.before_write, cls.calls = {}, [100], [], []

    @classmethod
    def put_direct(cls, namespace, name, data, labels=None):
        cls.rv[0] += 1
        obj = cls.store.get((namespace, name)) or {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                                   "metadata": {"name": name, "namespace": namespace}}
        obj = copy.deepcopy(obj)
        obj.setdefault("data", {}).update(dict((k, enc(v)) for k, v in data.items()))
        obj["metadata"]["resourceVersion"] = str(cls.rv[0])
        if labels:
            obj["metadata"]["labels"] = labels
        cls.store[(namespace, name)] = obj

    def _hook(self):
        if self.before_write:
            self.before_write.pop(0)()

    def read_namespaced_secret(self, name, namespace, _preload_content=True):
        self.calls.append("read")
        obj = self.store.get((namespace, name))
        if obj is None:
            raise ApiException(status=404, reason="Not Found")
        return _Response(obj)

    def create_namespaced_secret(self, namespace, body, _preload_content=True):
        self.calls.append("create")
        self._hook()
        name = body["metadata"]["name"]
        if (namespace, name) in self.store:
            raise ApiException(status=409, reason="AlreadyExists")
        self.rv[0] += 1
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(self.rv[0])
        self.store[(namespace, name)] = obj
        return _Response(obj)

    def replace_namespaced_secret(self, name, namespace, body, _preload_content=True):
        self.calls.append("replace")
        self._hook()
        live = self.store[(namespace, name)]
        if body["metadata"]["resourceVersion"] != live["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.rv[0] += 1
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(self.rv[0])
        self.store[(namespace, name)] = obj
        return _Response(obj)


@pytest.fixture(autouse=True)
def fake_api(monkeypatch):
    FakeCoreV1Api.reset()
    monkeypatch.setattr(k8s_secret, "CoreV1Api", FakeCoreV1Api)
    monkeypatch.setattr(k8s_secret, "_pause", lambda attempt: None)
    return FakeCoreV1Api


def counter(prefix):
    state = {"n": 0}

    def gen():
        state["n"] += 1
        return "%s-%d" % (prefix, state["n"])
    return gen


def test_fake_create_then_noop_rerun_sends_no_write():
    wanted = {"a": counter("ours-a"), "b": counter("ours-b")}
    first = k8s_secret.ensure_secret_keys(None, "ns", "s", wanted, labels={"x": "y"})
    assert first["created"] and first["changed"] and first["generated"] == ["a", "b"]
    FakeCoreV1Api.calls[:] = []
    second = k8s_secret.ensure_secret_keys(None, "ns", "s", wanted, labels={"x": "y"})
    assert not second["changed"] and second["kept"] == ["a", "b"]
    assert second["resource_version"] == first["resource_version"]
    assert FakeCoreV1Api.calls == ["read"]
    assert k8s_secret.read_secret(None, "ns", "s") == ({"a": "ours-a-1", "b": "ours-b-1"}, first["resource_version"])


def test_fake_lost_create_race_keeps_the_winners_values():
    FakeCoreV1Api.before_write.append(lambda: FakeCoreV1Api.put_direct("ns", "s", {"a": "theirs"}))
    result = k8s_secret.ensure_secret_keys(None, "ns", "s", {"a": counter("ours-a"), "b": counter("ours-b")})
    assert FakeCoreV1Api.calls == ["read", "create", "read", "replace"]
    values = k8s_secret.read_secret(None, "ns", "s")[0]
    assert values["a"] == "theirs"
    assert values["b"].startswith("ours-b")
    assert result["kept"] == ["a"] and result["generated"] == ["b"] and not result["created"]
    assert result["values"] == values


def test_fake_update_conflict_replans_against_the_other_writers_values():
    FakeCoreV1Api.put_direct("ns", "s", {"keep": "old"})
    FakeCoreV1Api.before_write.append(lambda: FakeCoreV1Api.put_direct("ns", "s", {"a": "theirs", "other": "z"}))
    result = k8s_secret.ensure_secret_keys(None, "ns", "s", {"a": counter("ours-a"), "b": counter("ours-b")})
    values = k8s_secret.read_secret(None, "ns", "s")[0]
    assert values == {"keep": "old", "a": "theirs", "other": "z", "b": "ours-b-2"}
    assert result["generated"] == ["b"] and result["kept"] == ["a"] and result["attempts"] == 2


def test_fake_check_mode_writes_nothing():
    result = k8s_secret.ensure_secret_keys(None, "ns", "s", {"a": counter("a")}, check_mode=True)
    assert result["changed"] and result["resource_version"] is None and FakeCoreV1Api.store == {}
    FakeCoreV1Api.put_direct("ns", "s", {"a": "x"})
    result = k8s_secret.ensure_secret_keys(None, "ns", "s", {"a": counter("a"), "b": counter("b")}, check_mode=True)
    assert result["changed"] and result["generated"] == ["b"]
    assert k8s_secret.read_secret(None, "ns", "s")[0] == {"a": "x"}


def test_fake_rotate_and_labels():
    FakeCoreV1Api.put_direct("ns", "s", {"a": "x", "b": "y"}, labels={"keep": "me"})
    result = k8s_secret.ensure_secret_keys(None, "ns", "s", {"a": counter("a"), "b": counter("b")},
                                           labels={"new": "label"}, rotate=["b"])
    assert result["rotated"] == ["b"] and result["kept"] == ["a"] and result["labels_changed"]
    obj = FakeCoreV1Api.store[("ns", "s")]
    assert obj["metadata"]["labels"] == {"keep": "me", "new": "label"}
    assert k8s_secret.read_secret(None, "ns", "s")[0] == {"a": "x", "b": "b-1"}


def test_fake_endless_conflicts_give_up_with_a_clear_error():
    FakeCoreV1Api.put_direct("ns", "s", {})
    FakeCoreV1Api.before_write.extend([lambda: FakeCoreV1Api.put_direct("ns", "s", {})] * 20)
    with pytest.raises(k8s_secret.SecretStoreError, match="kept changing under us: gave up after 3 attempts"):
        k8s_secret.ensure_secret_keys(None, "ns", "s", {"a": counter("a")}, max_attempts=3)


def test_fake_missing_namespace_and_forbidden_are_explained(monkeypatch):
    def create(self, namespace, body, _preload_content=True):
        raise ApiException(status=404, reason="Not Found")
    monkeypatch.setattr(FakeCoreV1Api, "create_namespaced_secret", create)
    with pytest.raises(k8s_secret.SecretStoreError, match="Cannot create Secret ns/s: HTTP 404.*Create the namespace first"):
        k8s_secret.ensure_secret_keys(None, "ns", "s", {"a": counter("a")})

    def read(self, name, namespace, _preload_content=True):
        raise ApiException(status=403, reason="Forbidden")
    monkeypatch.setattr(FakeCoreV1Api, "read_namespaced_secret", read)
    with pytest.raises(k8s_secret.SecretStoreError, match="Cannot read Secret ns/s: HTTP 403 Forbidden.*RBAC"):
        k8s_secret.read_secret(None, "ns", "s")


def test_fake_invalid_key_names_and_unknown_rotate_are_refused():
    with pytest.raises(k8s_secret.SecretStoreError, match="key name 'a/b' is invalid"):
        k8s_secret.ensure_secret_keys(None, "ns", "s", {"a/b": counter("a")})
    with pytest.raises(k8s_secret.SecretStoreError, match="rotate names keys that are not managed here: c"):
        k8s_secret.ensure_secret_keys(None, "ns", "s", {"a": counter("a")}, rotate=["c"])


def test_names_diff_lists_names_only():
    diff = k8s_secret.names_diff(["a", "b"], {"generated": ["c"], "rotated": ["b"]})
    assert diff == {"before": {"a": "(stored)", "b": "(stored)"},
                    "after": {"a": "(stored)", "b": "(rotated)", "c": "(generated)"}}
