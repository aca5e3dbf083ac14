# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fediverse.mastodon.instance_lock (and module_utils.lease) against the lab apiserver.

Needs KUBECONFIG from `make -s lab-env`. The module runs through the real ansible-playbook; the
Lease is read back with the kubernetes client. "No write" is checked on the Lease's
resourceVersion and, when LAB_AUDIT_LOG is set, in the apiserver's audit log. All objects live in
a namespace of this module, deleted at the end. Races are real: where a test needs another run
to write at an exact point, it performs that real write from inside our client call, just before
our request goes out.
"""

import calendar
import json
import os
import sys
import threading
import time
import uuid

import pytest

from ansible_run import run_module

ENV = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}
AUDIT_LOG = os.environ.get("LAB_AUDIT_LOG")
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(not os.environ.get("KUBECONFIG"),
                                 reason="lab Kubernetes not configured: run `eval $(make -s lab-env)` (KUBECONFIG)")]

ALICE = {"host": "ctl-a", "user": "alice", "started": "2025-05-01T09:58:00Z", "awx_job_id": 42}
BOB = {"host": "ctl-b", "user": "bob", "started": "2025-05-01T10:05:00Z"}
CAROL = {"host": "ctl-c", "user": "carol", "started": "2025-05-01T10:06:00Z"}


@pytest.fixture(scope="module")
def kubernetes():
    return pytest.importorskip("kubernetes")


@pytest.fixture(scope="module")
def clients(kubernetes):
    kubernetes.config.load_kube_config()
    return kubernetes.client.CoreV1Api(), kubernetes.client.CoordinationV1Api()


@pytest.fixture(scope="module")
def core(clients):
    return clients[0]


@pytest.fixture(scope="module")
def coord(clients):
    return clients[1]


@pytest.fixture(scope="module")
def namespace(core):
    name = "it-lock-%s" % uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture()
def lease_name():
    return "lock-%s" % uuid.uuid4().hex[:8]


@pytest.fixture()
def lease_mod():
    from ansible_collections.fediverse.mastodon.plugins.module_utils import lease
    return lease


def new_api_client(kubernetes):
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration.get_default_copy())
    client.user_agent = "fediverse.mastodon"
    return client


def holder(who, run_id):
    result = dict(who)
    result["run_id"] = run_id
    return result


def args(namespace, name, who, run_id, state="acquired", **extra):
    result = {"namespace": namespace, "name": name, "state": state, "holder": holder(who, run_id)}
    result.update(extra)
    return result


def lock(namespace, name, who, run_id, state="acquired", check=False, diff=False, **extra):
    result, proc = run_module("instance_lock", args(namespace, name, who, run_id, state, **extra), check=check,
                              diff=diff, env=ENV)
    assert "msg" not in result or "Traceback" not in result["msg"], result["msg"]
    return result


def ok(result):
    assert result.get("failed") is not True, result.get("msg")
    return result


def read(coord, namespace, name):
    leases = coord.list_namespaced_lease(namespace, field_selector="metadata.name=%s" % name).items
    return leases[0] if leases else None


def audit_offset():
    return os.path.getsize(AUDIT_LOG) if AUDIT_LOG else None


def lease_requests(core, namespace, since):
    """Verbs of the requests on Leases of ``namespace`` logged after byte ``since``.

    A sentinel ConfigMap is created first and the log is read until its line shows up, so every
    request made before it is in the log."""
    sentinel = "sentinel-%s" % uuid.uuid4().hex[:8]
    core.create_namespaced_config_map(namespace, {"metadata": {"name": sentinel}})
    deadline = time.time() + 15
    while True:
        verbs, seen = [], False
        with open(AUDIT_LOG) as fh:
            fh.seek(since)
            for line in fh:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                ref = event.get("objectRef") or {}
                if event.get("stage") != "ResponseComplete" or ref.get("namespace") != namespace:
                    continue
                if ref.get("resource") == "configmaps" and ref.get("name") == sentinel:
                    seen = True
                elif ref.get("resource") == "leases":
                    verbs.append(event["verb"])
        if seen:
            return verbs
        assert time.time() < deadline, "the sentinel request never reached the audit log"
        time.sleep(0.2)


def test_acquire_creates_the_lease_with_the_holder_in_annotations(coord, namespace, lease_name):
    labels = {"app.kubernetes.io/instance": "social", "app.kubernetes.io/managed-by": "fediverse.mastodon"}
    result = ok(lock(namespace, lease_name, ALICE, "run-a", labels=labels, diff=True))
    obj = read(coord, namespace, lease_name)
    assert obj is not None
    assert obj.spec.holder_identity == "run-a@ctl-a"
    assert obj.spec.lease_duration_seconds == 900
    assert obj.spec.lease_transitions == 0
    assert obj.spec.acquire_time == obj.spec.renew_time
    assert obj.metadata.labels == labels
    assert obj.metadata.annotations == {
        "mastodon.fediverse/holder-run-id": "run-a",
        "mastodon.fediverse/holder-host": "ctl-a",
        "mastodon.fediverse/holder-user": "alice",
        "mastodon.fediverse/holder-started": "2025-05-01T09:58:00Z",
        "mastodon.fediverse/holder-awx-job-id": "42",
    }
    assert result["changed"] is True and result["operation"] == "create" and result["taken_over"] is False
    assert result["resource_version"] == obj.metadata.resource_version
    assert result["holder"]["run_id"] == "run-a" and result["holder"]["awx_job_id"] == "42"
    assert result["diff"]["before"] == {"holder": None, "expires": None}
    assert result["diff"]["after"]["holder"] == "run-a@ctl-a"
    # the expiry is the API server's renewTime + 900 s
    renew = obj.spec.renew_time.timestamp()
    expires = calendar.timegm(time.strptime(result["expires"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(expires - (renew + 900)) <= 1


def test_holder_defaults_are_filled_from_the_controller(coord, namespace, lease_name):
    ok(lock(namespace, lease_name, {}, "run-d"))
    annotations = read(coord, namespace, lease_name).metadata.annotations
    assert annotations["mastodon.fediverse/holder-host"] and annotations["mastodon.fediverse/holder-user"]
    assert annotations["mastodon.fediverse/holder-started"].endswith("Z")
    assert "mastodon.fediverse/holder-awx-job-id" not in annotations


def test_second_acquire_fails_fast_naming_the_holder_and_writes_nothing(
        kubernetes, core, coord, namespace, lease_name, lease_mod):
    ok(lock(namespace, lease_name, ALICE, "run-a"))
    before = read(coord, namespace, lease_name).metadata.resource_version
    offset = audit_offset()
    started = time.monotonic()
    result = lock(namespace, lease_name, BOB, "run-b")
    # the whole ansible-playbook run (slow on a loaded 2-core machine): nothing like waiting out the 900 s lock
    assert time.monotonic() - started < 90
    assert result["failed"] is True
    # the decision itself is one GET: no polling, no retry
    started = time.monotonic()
    with pytest.raises(lease_mod.LockHeld):
        lease_mod.lock(new_api_client(kubernetes), namespace, lease_name, "acquired", holder(BOB, "run-b"))
    assert time.monotonic() - started < 5
    msg = result["msg"]
    prefix = ("mastodon_lock: instance %s/%s is locked by alice@ctl-a since 2025-05-01T09:58:00Z (AWX job 42), renewed "
              % (namespace, lease_name))
    assert msg.startswith(prefix), msg
    assert "s ago, expires in " in msg
    assert msg.endswith("s; wait for that run, or pass -e mastodon_lock_break=true if it is dead")
    assert "\n" not in msg
    assert result["holder"]["run_id"] == "run-a"
    # a read-only check by the other run fails the same way
    checked = lock(namespace, lease_name, BOB, "run-b", state="checked")
    assert checked["failed"] is True and checked["msg"].startswith(prefix)
    # and in check mode too
    dry = lock(namespace, lease_name, BOB, "run-b", check=True)
    assert dry["failed"] is True and dry["msg"].startswith(prefix)
    assert read(coord, namespace, lease_name).metadata.resource_version == before
    if AUDIT_LOG:
        verbs = lease_requests(core, namespace, offset)
        assert "get" in verbs and not WRITES & set(verbs), verbs


def test_checked_by_the_holder_is_ok_and_reads_only(core, coord, namespace, lease_name):
    ok(lock(namespace, lease_name, ALICE, "run-a"))
    before = read(coord, namespace, lease_name).metadata.resource_version
    offset = audit_offset()
    result = ok(lock(namespace, lease_name, ALICE, "run-a", state="checked"))
    assert result["changed"] is False and result["holder"]["user"] == "alice" and result["expires_in"] > 800
    absent = ok(lock(namespace, "no-such-lock", ALICE, "run-a", state="checked"))
    assert absent["changed"] is False and absent["holder"] is None
    assert read(coord, namespace, lease_name).metadata.resource_version == before
    assert read(coord, namespace, "no-such-lock") is None
    if AUDIT_LOG:
        verbs = lease_requests(core, namespace, offset)
        assert verbs and not WRITES & set(verbs), verbs


def test_renew_moves_renew_time_only_for_the_holder(coord, namespace, lease_name):
    ok(lock(namespace, lease_name, ALICE, "run-a", duration=60))
    first = read(coord, namespace, lease_name)
    time.sleep(1.2)
    result = ok(lock(namespace, lease_name, {}, "run-a", state="renewed", duration=120))
    second = read(coord, namespace, lease_name)
    assert result["changed"] is True and result["operation"] == "renew"
    assert second.spec.renew_time > first.spec.renew_time
    assert (second.spec.renew_time - first.spec.renew_time).total_seconds() >= 1
    assert second.spec.acquire_time == first.spec.acquire_time
    assert second.spec.holder_identity == "run-a@ctl-a" and second.spec.lease_duration_seconds == 120
    assert second.metadata.annotations == first.metadata.annotations  # the holder fields stay
    assert result["resource_version"] == second.metadata.resource_version

    stolen = lock(namespace, lease_name, BOB, "run-b", state="renewed")
    assert stolen["failed"] is True
    assert stolen["msg"].startswith("mastodon_lock: the lock on instance %s/%s was taken by alice@ctl-a since "
                                    % (namespace, lease_name)), stolen["msg"]
    assert "; stop" in stolen["msg"]
    assert read(coord, namespace, lease_name).metadata.resource_version == second.metadata.resource_version

    coord.delete_namespaced_lease(lease_name, namespace)
    gone = lock(namespace, lease_name, ALICE, "run-a", state="renewed")
    assert gone["failed"] is True and "is gone" in gone["msg"] and "; stop" in gone["msg"]
    assert read(coord, namespace, lease_name) is None  # renewing never re-creates a lost lock


def test_lapsed_lease_is_taken_over_with_a_warning(coord, namespace, lease_name):
    ok(lock(namespace, lease_name, ALICE, "run-a", duration=2))
    time.sleep(3)
    checked = ok(lock(namespace, lease_name, BOB, "run-b", state="checked"))
    assert checked["changed"] is False
    assert any("will take over the lapsed lock" in w and "alice@ctl-a" in w for w in checked.get("warnings", [])), checked
    assert read(coord, namespace, lease_name).spec.holder_identity == "run-a@ctl-a"

    result = ok(lock(namespace, lease_name, BOB, "run-b"))
    assert result["changed"] is True and result["taken_over"] is True and result["operation"] == "take_over"
    assert result["previous_holder"]["run_id"] == "run-a" and result["previous_holder"]["user"] == "alice"
    warnings = result.get("warnings", [])
    assert any(w.startswith("mastodon_lock: took over the lapsed lock on instance %s/%s from alice@ctl-a since "
                            "2025-05-01T09:58:00Z (AWX job 42)" % (namespace, lease_name)) for w in warnings), warnings
    obj = read(coord, namespace, lease_name)
    assert obj.spec.holder_identity == "run-b@ctl-b" and obj.spec.lease_transitions == 1
    assert obj.spec.lease_duration_seconds == 900
    annotations = obj.metadata.annotations
    assert annotations["mastodon.fediverse/holder-user"] == "bob"
    assert "mastodon.fediverse/holder-awx-job-id" not in annotations  # alice's job id is not left behind
    assert "alice@ctl-a" in annotations["mastodon.fediverse/previous-holder"]

    # the run that lost its lock is told to stop
    late = lock(namespace, lease_name, ALICE, "run-a", state="renewed")
    assert late["failed"] is True and "was taken by bob@ctl-b" in late["msg"]


def test_break_lock_takes_a_live_lease(coord, namespace, lease_name):
    ok(lock(namespace, lease_name, ALICE, "run-a"))
    result = ok(lock(namespace, lease_name, BOB, "run-b", break_lock=True))
    assert result["changed"] is True and result["taken_over"] is True
    assert result["previous_holder"]["run_id"] == "run-a"
    assert any("broke the LIVE lock" in w and "alice@ctl-a" in w for w in result.get("warnings", [])), result
    obj = read(coord, namespace, lease_name)
    assert obj.spec.holder_identity == "run-b@ctl-b" and obj.spec.lease_transitions == 1


def test_release_deletes_only_the_holders_lease(core, coord, namespace, lease_name):
    ok(lock(namespace, lease_name, ALICE, "run-a"))
    before = read(coord, namespace, lease_name).metadata.resource_version
    offset = audit_offset()
    other = ok(lock(namespace, lease_name, BOB, "run-b", state="released"))
    assert other["changed"] is False and other["holder"]["run_id"] == "run-a"
    assert any("left the lock" in w and "alice@ctl-a" in w for w in other.get("warnings", [])), other
    assert read(coord, namespace, lease_name).metadata.resource_version == before
    if AUDIT_LOG:
        verbs = lease_requests(core, namespace, offset)
        assert not WRITES & set(verbs), verbs

    mine = ok(lock(namespace, lease_name, {}, "run-a", state="released"))
    assert mine["changed"] is True and mine["operation"] == "delete" and mine["holder"] is None
    assert read(coord, namespace, lease_name) is None
    again = ok(lock(namespace, lease_name, {}, "run-a", state="released"))
    assert again["changed"] is False


def test_check_mode_writes_nothing(core, coord, namespace, lease_name):
    offset = audit_offset()
    result = ok(lock(namespace, lease_name, ALICE, "run-a", check=True, diff=True))
    assert result["changed"] is True and result["operation"] == "create"
    assert result["diff"]["after"]["holder"] == "run-a@ctl-a"
    assert read(coord, namespace, lease_name) is None
    if AUDIT_LOG:
        verbs = lease_requests(core, namespace, offset)
        assert not WRITES & set(verbs), verbs

    ok(lock(namespace, lease_name, ALICE, "run-a"))
    before = read(coord, namespace, lease_name).metadata.resource_version
    broken = ok(lock(namespace, lease_name, BOB, "run-b", check=True, break_lock=True))
    assert broken["changed"] is True and broken["taken_over"] is True
    assert any("will break the LIVE lock" in w for w in broken.get("warnings", [])), broken
    renew = ok(lock(namespace, lease_name, {}, "run-a", state="renewed", check=True))
    release = ok(lock(namespace, lease_name, {}, "run-a", state="released", check=True))
    assert renew["changed"] is True and release["changed"] is True and release["operation"] == "delete"
    obj = read(coord, namespace, lease_name)
    assert obj is not None and obj.metadata.resource_version == before and obj.spec.holder_identity == "run-a@ctl-a"


def test_two_concurrent_playbook_runs_exactly_one_wins(coord, namespace, lease_name):
    people = [(ALICE, "run-a"), (BOB, "run-b")]
    results = [None, None]
    barrier = threading.Barrier(2)

    def worker(index):
        barrier.wait()
        results[index] = run_module("instance_lock", args(namespace, lease_name, *people[index]), env=ENV)[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, result in enumerate(results) if not result.get("failed")]
    assert len(winners) == 1, results
    winner, loser = winners[0], 1 - winners[0]
    assert results[winner]["changed"] is True
    who = people[winner][0]
    assert "is locked by %s@%s" % (who["user"], who["host"]) in results[loser]["msg"]
    assert read(coord, namespace, lease_name).spec.holder_identity == "%s@%s" % (people[winner][1], who["host"])


def test_many_simultaneous_acquirers_exactly_one_wins(kubernetes, coord, namespace, lease_name, lease_mod):
    count = 8
    barrier = threading.Barrier(count)
    outcomes = [None] * count

    def worker(index):
        api = new_api_client(kubernetes)
        barrier.wait()
        try:
            outcomes[index] = lease_mod.lock(api, namespace, lease_name, "acquired",
                                             holder({"host": "h%d" % index}, "run-%d" % index))
        except lease_mod.LockHeld as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, dict)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, lease_mod.LockHeld) for i, o in enumerate(outcomes) if i != winners[0]), outcomes
    obj = read(coord, namespace, lease_name)
    assert obj.spec.holder_identity == "run-%d@h%d" % (winners[0], winners[0])
    assert obj.spec.lease_transitions == 0


def test_a_take_over_that_loses_the_race_rereads_and_yields(kubernetes, monkeypatch, coord, namespace, lease_name,
                                                            lease_mod):
    """Bob takes over Alice's lapsed lock; between his read and his PUT, Carol takes it (a real
    write). His PUT carries the old resourceVersion, so the apiserver refuses it (409); he reads
    again and now meets Carol's live lock."""
    ok(lock(namespace, lease_name, ALICE, "run-a", duration=1))
    time.sleep(2)
    original = kubernetes.client.CoordinationV1Api.replace_namespaced_lease
    carol_client, raced = new_api_client(kubernetes), []

    def replace_after_carol(self, *a, **kw):
        if not raced:  # Bob's first PUT; Carol's own PUT goes straight through
            raced.append("carol")
            raced.append(lease_mod.lock(carol_client, namespace, lease_name, "acquired", holder(CAROL, "run-c")))
        return original(self, *a, **kw)

    monkeypatch.setattr(kubernetes.client.CoordinationV1Api, "replace_namespaced_lease", replace_after_carol)
    with pytest.raises(lease_mod.LockHeld) as info:
        lease_mod.lock(new_api_client(kubernetes), namespace, lease_name, "acquired", holder(BOB, "run-b"))
    assert "is locked by carol@ctl-c" in str(info.value)
    assert len(raced) == 2 and raced[1]["taken_over"] is True
    obj = read(coord, namespace, lease_name)
    assert obj.spec.holder_identity == "run-c@ctl-c" and obj.spec.lease_transitions == 1


def test_a_release_that_loses_the_race_deletes_nothing(kubernetes, monkeypatch, coord, namespace, lease_name, lease_mod):
    """Alice releases; between her read and her DELETE, Bob breaks her lock (a real write). The
    DELETE's preconditions no longer match (409), and on the second look the Lease is Bob's."""
    ok(lock(namespace, lease_name, ALICE, "run-a"))
    original = kubernetes.client.CoordinationV1Api.delete_namespaced_lease
    bob_client, raced = new_api_client(kubernetes), []

    def delete_after_bob(self, *a, **kw):
        if not raced:
            raced.append("bob")
            raced.append(lease_mod.lock(bob_client, namespace, lease_name, "acquired", holder(BOB, "run-b"),
                                        break_lock=True))
        return original(self, *a, **kw)

    monkeypatch.setattr(kubernetes.client.CoordinationV1Api, "delete_namespaced_lease", delete_after_bob)
    result = lease_mod.lock(new_api_client(kubernetes), namespace, lease_name, "released", holder({}, "run-a"))
    assert len(raced) == 2 and result["changed"] is False and result["attempts"] == 2
    assert any("held by bob@ctl-b" in w for w in result["warnings"]), result
    obj = read(coord, namespace, lease_name)
    assert obj is not None and obj.spec.holder_identity == "run-b@ctl-b"


def test_renew_if_due_is_cheap_and_detects_a_lost_lock(kubernetes, core, coord, namespace, lease_name, lease_mod):
    ok(lock(namespace, lease_name, ALICE, "run-a", duration=60))
    api = new_api_client(kubernetes)
    lease_mod._LAST_RENEW.clear()  # a fresh module process
    first = read(coord, namespace, lease_name)
    # first call of the process: the Lease was renewed less than 30 s ago, so it only reads
    assert lease_mod.renew_if_due(api, namespace, lease_name, "run-a", 30) is False
    assert read(coord, namespace, lease_name).metadata.resource_version == first.metadata.resource_version
    time.sleep(1.2)
    assert lease_mod.renew_if_due(api, namespace, lease_name, "run-a", 1) is True
    second = read(coord, namespace, lease_name)
    assert second.spec.renew_time > first.spec.renew_time
    assert second.spec.lease_duration_seconds == 60  # the duration is kept

    offset = audit_offset()
    for _attempt in range(20):
        assert lease_mod.renew_if_due(api, namespace, lease_name, "run-a", 30) is False
    assert lease_mod.renew_if_due(api, namespace, lease_name, None, 1) is False
    assert read(coord, namespace, lease_name).metadata.resource_version == second.metadata.resource_version
    if AUDIT_LOG:
        # not due: not a single request, not even a read (the "list" is this test's own read above)
        assert [verb for verb in lease_requests(core, namespace, offset) if verb != "list"] == []

    ok(lock(namespace, lease_name, BOB, "run-b", break_lock=True))
    time.sleep(1.1)
    with pytest.raises(lease_mod.LockLost) as info:
        lease_mod.renew_if_due(api, namespace, lease_name, "run-a", 1)
    assert "was taken by bob@ctl-b" in str(info.value) and "; stop" in str(info.value)
    assert read(coord, namespace, lease_name).spec.holder_identity == "run-b@ctl-b"


def test_acquire_again_by_the_holder_renews(coord, namespace, lease_name):
    ok(lock(namespace, lease_name, ALICE, "run-a"))
    first = read(coord, namespace, lease_name)
    time.sleep(1.1)
    result = ok(lock(namespace, lease_name, ALICE, "run-a"))
    second = read(coord, namespace, lease_name)
    assert result["operation"] == "renew" and result["taken_over"] is False
    assert second.spec.renew_time > first.spec.renew_time and second.spec.lease_transitions == 0


def test_bad_input_and_missing_namespace_fail_clearly(coord, namespace):
    bad = lock(namespace, "x", ALICE, "run@a")
    assert bad["failed"] is True and bad["msg"].startswith("holder.run_id: ")
    short = lock(namespace, "x", ALICE, "run-a", duration=0)
    assert short["failed"] is True and short["msg"].startswith("duration: ")
    missing = lock("it-no-such-ns-%s" % uuid.uuid4().hex[:6], "x", ALICE, "run-a")
    assert missing["failed"] is True
    assert "HTTP 404" in missing["msg"] and "Create the namespace first" in missing["msg"]
    assert read(coord, namespace, "x") is None
