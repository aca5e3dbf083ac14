"""k8s_job against the lab's real kube-apiserver (kwok runs the Jobs' pods: they complete, or fail
when labelled lab.fediverse/fail); the audit log counts the writes."""

import os

import pytest

from ansible_run import run_module
from test_k8s_objects import AUDIT_LOG, MUTATING, audit_offset, our_requests

pytestmark = pytest.mark.lab

NAMESPACE_PREFIX = "it-k8sjob"


@pytest.fixture(scope="module", autouse=True)
def needs_audit_log(kubernetes):
    if not AUDIT_LOG or not os.path.exists(AUDIT_LOG):
        pytest.skip("needs the lab's audit log: eval \"$(make -s lab-env)\"")


def job(name, fail=False):
    labels = {"lab.fediverse/fail": "true"} if fail else {}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 60,
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "busybox:1.36"}]}}}}


def run_job(namespace, definition, check=False, **options):
    args = dict(definition=definition, namespace=namespace, poll_interval=1, wait_timeout=60)
    args.update(options)
    result, dummy = run_module("fediverse.mastodon.k8s_job", args, check=check)
    return result


def writes(since, namespace, name):
    """The writes that stored something (a server-side dry run stores nothing)."""
    return [(e["verb"], (e.get("objectRef") or {}).get("name")) for e in our_requests(since, namespace)
            if e["verb"] in MUTATING and (e.get("objectRef") or {}).get("name") == name
            and "dryRun=" not in e.get("requestURI", "")]


def test_a_job_runs_once_then_costs_one_read(namespace):
    start = audit_offset()
    first = run_job(namespace, job("once"))
    assert not first.get("failed") and first["changed"] and first["state"] == "Complete", first
    assert first["actions"] == ["created", "waited"], first
    again_at = audit_offset()
    second = run_job(namespace, job("once"))
    assert not second.get("failed") and not second["changed"] and second["state"] == "Complete", second
    assert second["api_requests"] == {"GET": 2}, second  # the discovery of batch/v1, then the Job
    assert writes(again_at, namespace, "once") == []
    assert [w[0] for w in writes(start, namespace, "once")] == ["patch"]


def test_check_mode_creates_nothing(namespace):
    start = audit_offset()
    result = run_job(namespace, job("dry"), check=True)
    assert not result.get("failed") and result["changed"] and result["state"] == "Created", result
    assert writes(start, namespace, "dry") == []
    dry = [e for e in our_requests(start, namespace) if e["verb"] == "patch"]
    assert len(dry) == 1 and "dryRun=All" in dry[0]["requestURI"], dry  # the server checked the Job


def test_a_failed_job_explains_itself_then_runs_again_only_when_asked(namespace):
    start = audit_offset()
    failed = run_job(namespace, job("fails", fail=True), purpose="db-migrate-pre", retry_failed_variable="retry_jobs",
                     failure_hint="The Deployments were not touched.")
    assert failed.get("failed"), failed
    msg = failed["msg"]
    assert msg.startswith("Job fails (db-migrate-pre) failed.\n"), msg
    assert "Reason: BackoffLimitExceeded" in msg and "Pod fails-" in msg, msg
    assert "The Deployments were not touched." in msg and "rerun with retry_jobs=true" in msg, msg
    assert "kubectl -n %s delete job fails" % namespace in msg, msg

    # without retry_failed a failed Job stays as it is: the task fails again, writing nothing
    kept_at = audit_offset()
    again = run_job(namespace, job("fails", fail=True))
    assert again.get("failed") and again["msg"].startswith("Job fails failed."), again
    assert writes(kept_at, namespace, "fails") == []

    # with retry_failed it is deleted, with its pods, and created again (here from a definition that passes)
    retried = run_job(namespace, job("fails"), retry_failed=True)
    assert not retried.get("failed") and retried["state"] == "Complete", retried
    assert retried["actions"] == ["deleted", "created", "waited"], retried
    assert [w[0] for w in writes(start, namespace, "fails")] == ["patch", "delete", "patch"]


def test_a_job_that_does_not_finish_names_the_timeout_variable(namespace):
    unschedulable = job("stuck")
    unschedulable["spec"]["template"]["spec"]["nodeSelector"] = {"lab.fediverse/no-such-node": "true"}
    result = run_job(namespace, unschedulable, wait_timeout=1, poll_interval=1, wait_timeout_variable="job_timeout")
    assert result.get("failed"), result
    assert result["msg"].startswith("Job stuck did not finish within 1s (job_timeout).\n"), result["msg"]
    assert "Pod stuck-" in result["msg"] and "Pending" in result["msg"], result["msg"]


def test_not_a_job_is_refused_before_any_request(namespace):
    start = audit_offset()
    result = run_job(namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert result.get("failed") and "definition must be a Job" in result["msg"], result
    assert our_requests(start, namespace) == []
