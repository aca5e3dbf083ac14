# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fediverse.mastodon.instance_record (and module_utils.instance_record) against the lab apiserver.

Needs KUBECONFIG and LAB_AUDIT_LOG from `make -s lab-env`. The tests use one namespace of their
own, deleted at the end, and one instance name per test. The module runs through the real
ansible-playbook; the ConfigMap is read back with the kubernetes client, and the audit log is
the judge of which requests reached the API server.
"""

import json
import os
import re
import sys
import threading
import uuid

import pytest

from ansible_run import run_module

pytestmark = pytest.mark.lab
NAMESPACE_PREFIX = "it-record"

ENV = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}
AUDIT_LOG = os.environ.get("LAB_AUDIT_LOG")
MUTATING = {"create", "update", "patch", "delete", "deletecollection"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
IDENTITY = {"local_domain": "social.example", "db_host": "127.0.0.1", "db_name": "mastodon_social",
            "db_user": "mastodon_social", "s3_bucket": "social-media", "s3_endpoint": "http://127.0.0.1:17480"}
VARIABLES = {"version": "mastodon_version", "local_domain": "mastodon_local_domain",
             "s3_bucket": "mastodon_s3_bucket", "s3_endpoint": "minio_external_endpoint",
             "db_name": "postgresql_database", "db_user": "postgresql_username"}
TEARDOWN_SELECTOR = "app.kubernetes.io/instance=%s,app.kubernetes.io/managed-by=fediverse.mastodon"


@pytest.fixture(scope="module")
def ir():
    from ansible_collections.fediverse.mastodon.plugins.module_utils import instance_record
    return instance_record


def api_client(kubernetes):
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration.get_default_copy())
    client.user_agent = "fediverse.mastodon/test"
    return client


def configmap(core, namespace, instance):
    """The record ConfigMap as the API server has it, or None."""
    found = core.list_namespaced_config_map(namespace, field_selector="metadata.name=%s-record" % instance).items
    return found[0] if found else None


def audit_offset():
    return os.path.getsize(AUDIT_LOG)


def requests_to_records(since, namespace):
    """(verb, name) of every request of this collection on ConfigMaps of ``namespace`` since ``since``."""
    seen = []
    with open(AUDIT_LOG) as fh:
        fh.seek(since)
        for line in fh:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            ref = event.get("objectRef") or {}
            if event.get("stage") == "ResponseComplete" and event.get("userAgent", "").startswith("fediverse.mastodon") \
                    and ref.get("namespace") == namespace and ref.get("resource") == "configmaps":
                seen.append((event["verb"], ref.get("name")))
    return seen


def update(namespace, instance, **fields):
    args = {"namespace": namespace, "instance": instance, "state": "update"}
    args.update(fields)
    return args


def check(namespace, instance, **extra):
    args = {"namespace": namespace, "instance": instance, "state": "check", "variables": VARIABLES}
    args.update(extra)
    return args


def run(args, **kw):
    result, proc = run_module("instance_record", args, env=ENV, **kw)
    return result, proc


def seed(kubernetes, ir, namespace, instance, **fields):
    """Create a record directly (faster than a playbook run) and return its ConfigMap data."""
    values = dict(IDENTITY)
    values.update(fields)
    result = ir.update_record(api_client(kubernetes), namespace, instance, values, event="seed")
    assert result["writes"] == 1
    return result["after"]


def test_check_mode_update_creates_nothing(core, namespace):
    since = audit_offset()
    result, proc = run(update(namespace, "dry", deployed_version="v4.5.2", event="install", **IDENTITY),
                       check=True, diff=True)
    assert result.get("failed") is not True, result.get("msg") or proc.stderr
    assert result["changed"] is True
    assert result["diff"]["before"] == {} and result["diff"]["after"]["deployed_version"] == "v4.5.2"
    assert configmap(core, namespace, "dry") is None
    seen = requests_to_records(since, namespace)
    assert ("get", "dry-record") in seen
    assert [s for s in seen if s[0] in MUTATING] == []


def test_update_creates_the_record_with_the_expected_keys_and_labels(core, namespace):
    result, proc = run(update(namespace, "social", deployed_version="v4.5.2", migrated_version="v4.5.2",
                              event="install", labels={"team": "ops", "app.kubernetes.io/part-of": "mastodon"},
                              **IDENTITY))
    assert result.get("failed") is not True, result.get("msg") or proc.stderr
    assert result["changed"] is True
    obj = configmap(core, namespace, "social")
    assert obj is not None
    data = obj.data
    assert sorted(data) == sorted(["deployed_version", "migrated_version", "local_domain", "db_host", "db_name",
                                   "db_user", "s3_bucket", "s3_endpoint", "created", "updated", "history"])
    assert data["deployed_version"] == data["migrated_version"] == "v4.5.2"
    for key, value in IDENTITY.items():
        assert data[key] == value
    assert ISO.match(data["created"]) and data["created"] == data["updated"]
    history = json.loads(data["history"])
    assert history == [{"time": data["created"], "version": "v4.5.2", "event": "install"}]
    assert obj.metadata.labels == {"app.kubernetes.io/instance": "social", "app.kubernetes.io/part-of": "mastodon",
                                   "mastodon.fediverse/record": "true", "team": "ops"}

    read, proc = run({"namespace": namespace, "instance": "social"})
    assert read["changed"] is False and read["exists"] is True
    assert read["record"]["history"] == history and read["record"]["deployed_version"] == "v4.5.2"
    assert read["resource_version"] == obj.metadata.resource_version


def test_teardown_selector_does_not_reach_the_record(core, kubernetes, ir, namespace):
    seed(kubernetes, ir, namespace, "td", deployed_version="v4.5.2")
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "td-env", "labels": {
        "app.kubernetes.io/instance": "td", "app.kubernetes.io/managed-by": "fediverse.mastodon"}}})
    selected = core.list_namespaced_config_map(namespace, label_selector=TEARDOWN_SELECTOR % "td").items
    assert [o.metadata.name for o in selected] == ["td-env"]
    core.delete_collection_namespaced_config_map(namespace, label_selector=TEARDOWN_SELECTOR % "td")
    assert configmap(core, namespace, "td") is not None
    by_label = core.list_namespaced_config_map(namespace, label_selector="mastodon.fediverse/record=true").items
    assert "td-record" in [o.metadata.name for o in by_label]


def test_identical_update_sends_zero_writes(core, namespace):
    args = update(namespace, "idem", deployed_version="v4.5.2", migrated_version="v4.5.2", event="install",
                  labels={"team": "ops"}, **IDENTITY)
    first, proc = run(args)
    assert first["changed"] is True, first.get("msg") or proc.stderr
    before = configmap(core, namespace, "idem")
    since = audit_offset()
    result, proc = run(args, diff=True)
    assert result.get("failed") is not True, result.get("msg") or proc.stderr
    assert result["changed"] is False and result["changed_fields"] == []
    seen = requests_to_records(since, namespace)
    assert ("get", "idem-record") in seen, "the audit log saw none of the run's reads"
    assert [s for s in seen if s[0] in MUTATING] == []
    after = configmap(core, namespace, "idem")
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.data == before.data


def test_a_change_writes_once_and_keeps_the_rest(core, kubernetes, ir, namespace):
    seed(kubernetes, ir, namespace, "chg", deployed_version="v4.5.2", migrated_version="v4.5.2")
    before = configmap(core, namespace, "chg")
    since = audit_offset()
    result, proc = run(update(namespace, "chg", deployed_version="v4.6.0", event="upgrade", **IDENTITY), diff=True)
    assert result["changed"] is True and result["changed_fields"] == ["deployed_version"]
    assert result["diff"]["before"]["deployed_version"] == "v4.5.2"
    assert result["diff"]["after"]["deployed_version"] == "v4.6.0"
    writes = [s for s in requests_to_records(since, namespace) if s[0] in MUTATING]
    assert writes == [("update", "chg-record")]
    data = configmap(core, namespace, "chg").data
    assert data["deployed_version"] == "v4.6.0" and data["migrated_version"] == "v4.5.2"
    assert data["created"] == before.data["created"] and data["updated"] >= before.data["updated"]
    assert [(e["version"], e["event"]) for e in json.loads(data["history"])] == [("v4.5.2", "seed"),
                                                                                 ("v4.6.0", "upgrade")]


def test_check_refuses_a_changed_local_domain(core, kubernetes, ir, namespace):
    seed(kubernetes, ir, namespace, "dom", deployed_version="v4.6.0", migrated_version="v4.5.2")
    since = audit_offset()
    desired = dict(IDENTITY, version="v4.6.0", local_domain="other.example")
    result, proc = run(check(namespace, "dom", desired=desired))
    assert result["failed"] is True
    assert result["msg"].startswith("mastodon_local_domain: ") and "LOCAL_DOMAIN can never change" in result["msg"]
    assert "local_domain to mastodon_record_override" in result["msg"]
    soft, proc = run(check(namespace, "dom", desired=desired, fail_on_problem=False))
    assert soft.get("failed") is not True and soft["changed"] is False
    assert len(soft["problems"]) == 1 and soft["problems"][0].startswith("mastodon_local_domain: ")
    assert [s for s in requests_to_records(since, namespace) if s[0] in MUTATING] == []
    assert configmap(core, namespace, "dom").data["local_domain"] == "social.example"


def test_check_refuses_another_bucket_unless_overridden(kubernetes, ir, namespace):
    seed(kubernetes, ir, namespace, "bkt", deployed_version="v4.6.0", migrated_version="v4.6.0")
    desired = dict(IDENTITY, version="v4.6.0", s3_bucket="other-media")
    refused, proc = run(check(namespace, "bkt", desired=desired, fail_on_problem=False))
    assert len(refused["problems"]) == 1 and refused["problems"][0].startswith("mastodon_s3_bucket: ")
    allowed, proc = run(check(namespace, "bkt", desired=desired, overrides=["s3_bucket"]))
    assert allowed.get("failed") is not True, allowed.get("msg")
    assert allowed["problems"] == []


def test_check_refuses_a_downgrade(kubernetes, ir, namespace):
    seed(kubernetes, ir, namespace, "down", deployed_version="v4.6.1", migrated_version="v4.6.1")
    refused, proc = run(check(namespace, "down", desired=dict(IDENTITY, version="v4.6.0")))
    assert refused["failed"] is True
    assert "downgrade" in refused["msg"] and "mastodon_allow_downgrade=true" in refused["msg"]
    allowed, proc = run(check(namespace, "down", desired=dict(IDENTITY, version="v4.6.0"), allow_downgrade=True))
    assert allowed.get("failed") is not True and allowed["problems"] == []


def test_check_refuses_a_downgrade_after_the_workloads_are_gone(core, kubernetes, ir, namespace):
    """The point of the record: teardown deleted the Deployment, the record still knows the version."""
    seed(kubernetes, ir, namespace, "gone", deployed_version="v4.6.1", migrated_version="v4.6.1")
    core.delete_collection_namespaced_config_map(namespace, label_selector=TEARDOWN_SELECTOR % "gone")
    refused, proc = run(check(namespace, "gone", desired=dict(IDENTITY, version="v4.5.2"), fail_on_problem=False))
    assert len(refused["problems"]) == 1 and "downgrade" in refused["problems"][0]


def test_check_refuses_skipping_a_minor_series(kubernetes, ir, namespace):
    seed(kubernetes, ir, namespace, "skip", deployed_version="v4.4.3", migrated_version="v4.4.3")
    refused, proc = run(check(namespace, "skip", desired=dict(IDENTITY, version="v4.6.0")))
    assert refused["failed"] is True
    assert "skips a minor series" in refused["msg"] and "latest 4.5.x first" in refused["msg"]
    next_minor, proc = run(check(namespace, "skip", desired=dict(IDENTITY, version="v4.5.7")))
    assert next_minor.get("failed") is not True and next_minor["problems"] == []
    unguarded, proc = run(check(namespace, "skip", desired=dict(IDENTITY, version="v4.6.0"), version_guard=False))
    assert unguarded.get("failed") is not True and unguarded["problems"] == []


def test_next_major_zero_series_is_allowed(kubernetes, ir, namespace):
    seed(kubernetes, ir, namespace, "major", deployed_version="v3.5.19", migrated_version="v3.5.19")
    ok, proc = run(check(namespace, "major", desired=dict(IDENTITY, version="v4.0.2")))
    assert ok.get("failed") is not True and ok["problems"] == []
    refused, proc = run(check(namespace, "major", desired=dict(IDENTITY, version="v4.1.0"), fail_on_problem=False))
    assert len(refused["problems"]) == 1 and "skips a minor series" in refused["problems"][0]


def test_rc_tags_are_accepted(core, kubernetes, ir, namespace):
    seed(kubernetes, ir, namespace, "rc", deployed_version="v4.6.2", migrated_version="v4.6.2")
    ok, proc = run(check(namespace, "rc", desired=dict(IDENTITY, version="v4.7.0-rc.1")))
    assert ok.get("failed") is not True and ok["problems"] == []
    stored, proc = run(update(namespace, "rc", deployed_version="v4.7.0-rc.1", event="upgrade"))
    assert stored.get("failed") is not True, stored.get("msg")
    assert configmap(core, namespace, "rc").data["deployed_version"] == "v4.7.0-rc.1"
    final, proc = run(check(namespace, "rc", desired=dict(IDENTITY, version="v4.7.0")))
    assert final.get("failed") is not True and final["problems"] == []
    back, proc = run(check(namespace, "rc", desired=dict(IDENTITY, version="v4.7.0-beta.3"), fail_on_problem=False))
    assert len(back["problems"]) == 1 and "downgrade" in back["problems"][0]


def test_build_metadata_is_refused(core, kubernetes, ir, namespace):
    seed(kubernetes, ir, namespace, "meta", deployed_version="v4.6.2", migrated_version="v4.6.2")
    before = configmap(core, namespace, "meta")
    for guard in (True, False):
        refused, proc = run(check(namespace, "meta", desired=dict(IDENTITY, version="v4.6.3+build"),
                                  version_guard=guard))
        assert refused["failed"] is True
        assert refused["msg"].startswith("mastodon_version: ") and "build metadata" in refused["msg"]
    stored, proc = run(update(namespace, "meta", deployed_version="v4.6.3+build"))
    assert stored["failed"] is True and "build metadata" in stored["msg"]
    assert configmap(core, namespace, "meta").metadata.resource_version == before.metadata.resource_version


def test_custom_tag_only_with_the_guard_off(kubernetes, ir, namespace):
    seed(kubernetes, ir, namespace, "custom", deployed_version="v4.6.2", migrated_version="v4.6.2")
    refused, proc = run(check(namespace, "custom", desired=dict(IDENTITY, version="edge")))
    assert refused["failed"] is True and "mastodon_version_guard=false" in refused["msg"]
    ok, proc = run(check(namespace, "custom", desired=dict(IDENTITY, version="edge"), version_guard=False))
    assert ok.get("failed") is not True and ok["problems"] == []


def test_read_of_an_absent_record_is_null_and_writes_nothing(core, namespace):
    since = audit_offset()
    result, proc = run({"namespace": namespace, "instance": "absent", "state": "read"})
    assert result.get("failed") is not True, result.get("msg")
    assert result["record"] is None and result["exists"] is False and result["resource_version"] is None
    first, proc = run(check(namespace, "absent", desired=dict(IDENTITY, version="v4.6.3")))
    assert first.get("failed") is not True and first["problems"] == []
    seen = requests_to_records(since, namespace)
    assert ("get", "absent-record") in seen and [s for s in seen if s[0] in MUTATING] == []
    assert configmap(core, namespace, "absent") is None


def test_credentials_are_refused_and_never_echoed(core, namespace):
    result, proc = run(update(namespace, "creds", s3_endpoint="https://AKIAEXAMPLE:pw-hunter2@s3.example"))
    assert result["failed"] is True and "s3_endpoint carries credentials" in result["msg"]
    assert "pw-hunter2" not in result["msg"]
    assert configmap(core, namespace, "creds") is None


def test_managed_by_label_is_refused(core, namespace):
    result, proc = run(update(namespace, "lbl", deployed_version="v4.6.2",
                              labels={"app.kubernetes.io/managed-by": "fediverse.mastodon"}))
    assert result["failed"] is True and result["msg"].startswith("labels: ")
    assert configmap(core, namespace, "lbl") is None


def test_missing_namespace_fails_clearly():
    ns = "it-no-such-ns-%s" % uuid.uuid4().hex[:6]
    result, proc = run(update(ns, "social", deployed_version="v4.6.2"))
    assert result["failed"] is True
    assert "HTTP 404" in result["msg"] and "Create the namespace first" in result["msg"]


def test_concurrent_updates_lose_no_history(core, kubernetes, ir, namespace):
    """Six writers hit the real apiserver at once; every one's history entry must survive."""
    writers = 6
    barrier = threading.Barrier(writers)
    results, errors = [None] * writers, []

    def worker(index):
        try:
            client = api_client(kubernetes)
            barrier.wait()
            results[index] = ir.update_record(client, namespace, "race", {"deployed_version": "v4.6.%d" % index},
                                              event="writer-%d" % index)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(r["writes"] == 1 for r in results)
    assert sum(1 for r in results if r["created"]) == 1  # the others lost the create race and updated
    history = json.loads(configmap(core, namespace, "race").data["history"])
    assert sorted(e["event"] for e in history) == sorted("writer-%d" % i for i in range(writers))


def test_history_keeps_the_last_twenty(core, kubernetes, ir, namespace):
    client = api_client(kubernetes)
    for i in range(25):
        ir.update_record(client, namespace, "long", {"deployed_version": "v4.6.%d" % i}, event="e%d" % i)
    history = json.loads(configmap(core, namespace, "long").data["history"])
    assert [e["event"] for e in history] == ["e%d" % i for i in range(5, 25)]


def test_a_managed_by_label_added_by_hand_is_removed_without_a_history_entry(core, kubernetes, ir, namespace):
    seed(kubernetes, ir, namespace, "drift", deployed_version="v4.6.2")
    core.patch_namespaced_config_map("drift-record", namespace, {"metadata": {"labels": {
        "app.kubernetes.io/managed-by": "fediverse.mastodon"}}})
    before = configmap(core, namespace, "drift")
    result, proc = run(update(namespace, "drift", deployed_version="v4.6.2"))
    assert result["changed"] is True and result["changed_fields"] == []
    after = configmap(core, namespace, "drift")
    assert "app.kubernetes.io/managed-by" not in after.metadata.labels
    assert after.data == before.data


def lock(namespace, who):
    return {"namespace": namespace, "name": "locked-run-lock",
            "holder": {"run_id": "run-" + who, "host": "ctl-" + who, "user": who, "started": "2025-05-01T09:58:00Z",
                       "awx_job_id": ""}}


def test_run_lock_is_taken_only_by_a_real_write_and_another_runs_lock_refuses_it(core, kubernetes, namespace):
    coord = kubernetes.client.CoordinationV1Api()

    def lease_holder():
        found = coord.list_namespaced_lease(namespace, field_selector="metadata.name=locked-run-lock").items
        return found[0].spec.holder_identity if found else None

    args = update(namespace, "locked", deployed_version="v4.6.2", event="install", run_lock=lock(namespace, "a"))
    dry, proc = run(args, check=True)
    assert dry["changed"] is True and lease_holder() is None and configmap(core, namespace, "locked") is None
    first, proc = run(args)
    assert first["changed"] is True, first.get("msg") or proc.stderr
    assert lease_holder() is not None and "run-a" in lease_holder()
    before = configmap(core, namespace, "locked")

    noop, proc = run(dict(args, run_lock=lock(namespace, "b")))
    assert noop.get("failed") is not True and noop["changed"] is False  # reads only: the lock is not needed

    refused, proc = run(update(namespace, "locked", deployed_version="v4.6.3", run_lock=lock(namespace, "b")))
    assert refused["failed"] is True and "HTTP 423" in refused["msg"]
    after = configmap(core, namespace, "locked")
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.data["deployed_version"] == "v4.6.2"
