# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/k8s_job.py: a Job's state and the explanation of its failure, without a cluster."""

from __future__ import annotations

import pytest

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_job


def job(*conditions):
    return {"kind": "Job", "metadata": {"name": "j"},
            "status": {"conditions": [dict(type=t, status=s, reason=t + "Reason", message="why " + t) for t, s in conditions]}}


@pytest.mark.parametrize("obj,state", [
    (None, "Absent"),
    (job(), "Running"),
    (job(("Complete", "True")), "Complete"),
    (job(("SuccessCriteriaMet", "True")), "Complete"),
    (job(("Failed", "True")), "Failed"),
    (job(("Failed", "False")), "Running"),
])
def test_job_state(obj, state):
    assert k8s_job.job_state(obj) == state


def test_the_explanation_has_every_part_in_order():
    pods = [{"metadata": {"name": "j-old", "creationTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Failed"}},
            {"metadata": {"name": "j-new", "creationTimestamp": "2026-01-02T00:00:00Z"},
             "status": {"phase": "Failed", "reason": "Evicted", "containerStatuses": [
                 {"state": {"terminated": {"exitCode": 2, "reason": "Error", "message": "boom"}}}]}}]
    msg = k8s_job.explain("j", "db-migrate-pre", "failed", job(("Failed", "True")), pods, ["Created pod", "Job failed"],
                          "line 1\nline 2\n", "Nothing else was touched.", "retry_jobs", "social")
    assert msg.split("\n") == [
        "Job j (db-migrate-pre) failed.",
        "Reason: FailedReason: why Failed",
        "Pod j-old: Failed",
        "Pod j-new: Failed Evicted",
        "Container exit: code 2 Error boom",
        "Events: Created pod | Job failed",
        "Log tail:",
        "line 1",
        "line 2",
        "Nothing else was touched.",
        "Fix the cause, then rerun with retry_jobs=true (or delete the Job: kubectl -n social delete job j).",
    ]
    assert k8s_job.newest(pods)["metadata"]["name"] == "j-new" and k8s_job.newest([]) is None


def test_an_explanation_without_pods_events_or_log():
    msg = k8s_job.explain("j", None, "did not finish within 5s", job(), [], [], "", None, None, "ns")
    assert msg.split("\n") == ["Job j did not finish within 5s.", "Events: none",
                               "Fix the cause, then rerun with retry_failed=true (or delete the Job: kubectl -n ns delete job j)."]


def test_wait_gone_polls_until_the_object_is_gone_or_the_time_is_up():
    now = [0.0]
    reads = iter([{"x": 1}, {"x": 1}, None])
    assert k8s_job.wait_gone(lambda: next(reads), 10, clock=lambda: now[0], pause=lambda s: now.__setitem__(0, now[0] + s))
    assert now[0] == 2.0
    now[0] = 0.0
    assert not k8s_job.wait_gone(lambda: {"x": 1}, 3, clock=lambda: now[0], pause=lambda s: now.__setitem__(0, now[0] + s))
