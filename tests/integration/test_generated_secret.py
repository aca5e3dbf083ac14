# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fediverse.mastodon.generated_secret (and module_utils.k8s_secret) against the lab apiserver.

Needs KUBECONFIG from `make -s lab-env`. Each run uses its own namespace and deletes it at the
end. The module runs through the real ansible-playbook; the Secret is read back with the
kubernetes client.
"""

import base64
import os
import re
import sys
import threading
import uuid

import pytest

from ansible_run import run_module

NAMESPACE_PREFIX = "it-gensecret"

ENV = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}
pytestmark = pytest.mark.skipif(not os.environ.get("KUBECONFIG"),
                                reason="lab Kubernetes not configured: run `eval $(make -s lab-env)` (KUBECONFIG)")
KEYS = {
    "postgres-password": {"format": "alphanumeric", "length": 32},
    "replication-password": {"format": "hex", "length": 64},
    "token": {"format": "urlsafe", "length": 40},
}
PATTERNS = {"postgres-password": r"^[A-Za-z0-9]{32}$", "replication-password": r"^[0-9a-f]{64}$",
            "token": r"^[A-Za-z0-9_-]{40}$"}


def read(core, namespace, name):
    obj = core.read_namespaced_secret(name, namespace)
    return dict((k, base64.b64decode(v).decode()) for k, v in (obj.data or {}).items()), obj


def args(namespace, name, **extra):
    result = {"namespace": namespace, "name": name, "keys": KEYS}
    result.update(extra)
    return result


def test_lifecycle(core, namespace):
    labels = {"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/managed-by": "fediverse.mastodon"}
    check, proc = run_module("generated_secret", args(namespace, "pg", labels=labels), check=True, env=ENV)
    assert check.get("failed") is not True, check.get("msg") or proc.stderr
    assert check["changed"] is True and check["generated"] == sorted(KEYS) and check["resource_version"] is None
    assert core.list_namespaced_secret(namespace, field_selector="metadata.name=pg").items == []

    first, proc = run_module("generated_secret", args(namespace, "pg", labels=labels), env=ENV, verbosity=3, diff=True)
    assert first["changed"] is True and first["generated"] == sorted(KEYS) and first["kept"] == []
    assert first["diff"] == {"before": {}, "after": dict((k, "(generated)") for k in KEYS)}
    values, obj = read(core, namespace, "pg")
    for key, pattern in PATTERNS.items():
        assert re.match(pattern, values[key]), key
    assert obj.metadata.labels == labels
    assert first["resource_version"] == obj.metadata.resource_version
    for value in values.values():
        assert value not in proc.stdout and value not in proc.stderr

    second, proc = run_module("generated_secret", args(namespace, "pg", labels=labels), env=ENV, verbosity=4)
    assert second["changed"] is False and second["kept"] == sorted(KEYS)
    assert second["resource_version"] == obj.metadata.resource_version
    assert read(core, namespace, "pg")[1].metadata.resource_version == obj.metadata.resource_version
    for value in values.values():
        assert value not in proc.stdout and value not in proc.stderr

    # a key deleted by hand is regenerated alone; a foreign key is left alone
    core.patch_namespaced_secret("pg", namespace, [{"op": "remove", "path": "/data/token"},
                                                   {"op": "add", "path": "/data/foreign", "value": "Zm9yZWlnbg=="}])
    third, proc = run_module("generated_secret", args(namespace, "pg"), env=ENV)
    assert third["changed"] is True and third["generated"] == ["token"]
    values3 = read(core, namespace, "pg")[0]
    assert values3["postgres-password"] == values["postgres-password"]
    assert values3["replication-password"] == values["replication-password"]
    assert values3["token"] != values["token"] and re.match(PATTERNS["token"], values3["token"])
    assert values3["foreign"] == "foreign"

    # rotate only what is named
    fourth, proc = run_module("generated_secret", args(namespace, "pg", rotate=["postgres-password"]), env=ENV)
    assert fourth["rotated"] == ["postgres-password"]
    values4 = read(core, namespace, "pg")[0]
    assert values4["postgres-password"] != values3["postgres-password"]
    assert dict((k, v) for k, v in values4.items() if k != "postgres-password") == \
        dict((k, v) for k, v in values3.items() if k != "postgres-password")


def test_missing_namespace_fails_clearly():
    result, proc = run_module("generated_secret", args("it-no-such-ns-%s" % uuid.uuid4().hex[:6], "x"), env=ENV)
    assert result["failed"] is True
    assert "HTTP 404" in result["msg"] and "Create the namespace first" in result["msg"]


def test_two_concurrent_module_runs_end_with_one_consistent_secret(core, namespace):
    results = [None, None]

    def worker(index):
        results[index] = run_module("generated_secret", args(namespace, "race"), env=ENV)[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        assert result.get("failed") is not True, result.get("msg")
        assert sorted(result["generated"] + result["kept"]) == sorted(KEYS)
    assert not set(results[0]["generated"]) & set(results[1]["generated"])
    values, obj = read(core, namespace, "race")
    assert sorted(values) == sorted(KEYS)
    again, proc = run_module("generated_secret", args(namespace, "race"), env=ENV)
    assert again["changed"] is False and again["resource_version"] == obj.metadata.resource_version


def test_many_simultaneous_writers_never_overwrite_each_other(kubernetes, core, namespace):
    """Eight threads hit the real apiserver at the same instant, each wanting the same keys plus
    one of its own. Every key must be generated exactly once, and every writer must see the same
    final values for the shared keys (the winner's)."""
    from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_secret

    writers = 8
    barrier = threading.Barrier(writers)
    results, errors = [None] * writers, []

    def worker(index):
        try:
            api = kubernetes.client.ApiClient(kubernetes.client.Configuration.get_default_copy())
            wanted = {"shared-a": lambda: "a-from-%d" % index, "shared-b": lambda: "b-from-%d" % index,
                      "own-%d" % index: lambda: "own-%d" % index}
            barrier.wait()
            results[index] = k8s_secret.ensure_secret_keys(api, namespace, "stampede", wanted, labels={"t": "x"})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = read(core, namespace, "stampede")[0]
    assert sorted(final) == sorted(["shared-a", "shared-b"] + ["own-%d" % i for i in range(writers)])
    generated = [key for result in results for key in result["generated"]]
    assert sorted(generated) == sorted(final), "a key was generated twice: %s" % generated
    for result in results:
        assert result["values"]["shared-a"] == final["shared-a"]
        assert result["values"]["shared-b"] == final["shared-b"]
    # the races really happened: some writers needed more than one attempt
    assert max(result["attempts"] for result in results) > 1
