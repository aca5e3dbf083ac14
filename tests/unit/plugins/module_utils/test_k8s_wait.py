# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one readiness test of the collection (module_utils/k8s_wait.py), on API-shaped objects."""

from __future__ import annotations

import pytest

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_wait


def deployment(status, wanted=2, generation=3):
    return {"kind": "Deployment", "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": wanted, "selector": {"matchLabels": {"app": "web"}}}, "status": status}


READY = dict(observedGeneration=3, replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2)


def test_a_deployment_is_ready_when_every_replica_is_updated_and_available():
    assert k8s_wait.readiness(deployment(READY)) == (True, "ready")


@pytest.mark.parametrize("change,why", [
    (dict(observedGeneration=2), "the controller has not seen the latest spec yet"),
    (dict(updatedReplicas=1), "updatedReplicas 1 of 2"),
    (dict(availableReplicas=1), "availableReplicas 1 of 2"),
    (dict(replicas=3), "replicas 3 of 2"),  # an old pod still terminating
    (dict(unavailableReplicas=1), "1 replicas unavailable"),
])
def test_a_deployment_is_not_ready_and_says_why(change, why):
    status = dict(READY)
    status.update(change)
    assert k8s_wait.readiness(deployment(status)) == (False, why)


def test_a_statefulset_waits_for_its_pods_to_run_the_new_revision():
    sts = {"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 1},
           "status": dict(observedGeneration=1, updatedReplicas=1, readyReplicas=1, availableReplicas=1,
                          currentRevision="a", updateRevision="b")}
    assert k8s_wait.readiness(sts) == (False, "pods still run revision a, not b")
    sts["status"]["currentRevision"] = "b"
    assert k8s_wait.readiness(sts) == (True, "ready")
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    sts["status"]["currentRevision"] = "a"
    assert k8s_wait.readiness(sts)[0] is True


def test_jobs_complete_fail_or_run():
    job = {"kind": "Job", "metadata": {}, "spec": {}, "status": {"active": 1}}
    assert k8s_wait.readiness(job)[0] is False
    job["status"]["conditions"] = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
    assert k8s_wait.readiness(job) == (None, "failed: BackoffLimitExceeded")
    job["status"]["conditions"] = [{"type": "Complete", "status": "True"}]
    assert k8s_wait.readiness(job) == (True, "complete")


def test_a_missing_object_is_not_ready():
    assert k8s_wait.readiness(None) == (False, "does not exist")


def test_wait_polls_until_ready_and_renews_on_each_poll():
    answers = iter([deployment(dict(READY, availableReplicas=1)), deployment(READY)])
    ticks, now = [], [0.0]
    k8s_wait.wait_until_ready(lambda t: next(answers), [{"label": "Deployment ns/web"}], 60, lambda s: [],
                              tick=lambda: ticks.append(1), clock=lambda: now[0], pause=lambda s: now.__setitem__(0, now[0] + s))
    assert ticks == [1]


def test_wait_times_out_with_the_reason_and_the_explanation():
    now = [0.0]
    with pytest.raises(k8s_wait.WaitTimeout) as info:
        k8s_wait.wait_until_ready(lambda t: deployment(dict(READY, availableReplicas=0)), [{"label": "Deployment ns/web"}],
                                  5, lambda s: ["- pod web-1: phase=Pending"], clock=lambda: now[0],
                                  pause=lambda s: now.__setitem__(0, now[0] + s))
    assert str(info.value).splitlines() == ["not ready within 5s: Deployment ns/web (availableReplicas 0 of 2)",
                                            "- pod web-1: phase=Pending"]


def test_describe_pods_names_conditions_and_containers():
    pod = {"metadata": {"name": "web-1"}, "status": {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}],
        "containerStatuses": [{"name": "web", "ready": False, "restartCount": 3,
                               "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert k8s_wait.describe_pods([pod]) == [
        "- pod web-1: phase=Pending; PodScheduled=False (Unschedulable: 0/1 nodes); "
        "container web not ready (CrashLoopBackOff), 3 restarts"]
    assert k8s_wait.describe_pods([]) == ["- (no pods)"]
