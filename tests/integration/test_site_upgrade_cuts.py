# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An UPGRADE killed at its dangerous moments, and upgrades that fail, against the lab
(issue 13, point 10).

Three instances (molsite-up1..3, the site scenario's inventory with inventories/local's
group_vars) are converged at v4.6.3 by one site.yml run. Then `playbooks/upgrade.yml -e
mastodon_version=v4.6.4` runs on each, the three at the same time (each in its own
ansible-playbook process, so their waits overlap), each through its own sequence:

  molsite-up1  killed (SIGKILL to the process group) as soon as the pre-deploy migration Job
               <instance>-db-migrate-pre-v4-6-4 is Complete in the API, before the run sees it
               and before the Deployments are applied. The rerun then meets a failing
               post-deploy Job (the lab fails pods labelled lab.fediverse/fail; the pre-deploy
               Job is done, so only the post-deploy one is created with the label): it fails
               naming the Job and leaves the pre-deploy Job alone. A retry with
               mastodon_retry_failed_jobs=true converges; one more run is a no-op.
  molsite-up2  killed in the middle of the rollout: once the pre-deploy Job is Complete, the test
               puts a ResourceQuota `pods: 0` in the namespace (the lab's pods are ready at once,
               so without it a rollout takes a fraction of a second), so the new pods cannot be
               created; the run is killed while it polls in the rollout's apply-and-wait step,
               the quota is then removed. A plain rerun is refused first: the killed run's lock is live.
               The rerun with mastodon_lock_break converges; one more run is a no-op.
  molsite-up3  a rollout that cannot finish: mastodon_rollout_timeout=2 and a web nodeSelector no
               node of the lab satisfies (the new web pod stays Pending); the run fails, saying so,
               without running the post-deploy Job. The next run, without those settings, removes
               the nodeSelector again and is killed as soon as the post-deploy migration Job
               exists in the API. The rerun converges; one more run is a no-op.

After a kill the rerun takes the dead run's lock over with -e mastodon_lock_break=true (what
docs/safety.md tells an operator who knows the holder is dead: the lock lives 900 s).

Judged by the API server and its audit log: where each cut landed (Jobs, Deployment images and
rollout status, the instance record); after the reruns, the Deployments and their pods run
v4.6.4, every Secret is byte-identical to before the upgrade, each migration Job was created
exactly once over the cut run and the reruns (twice for the failed and retried post-deploy
Job), and one more run is a no-op: changed=0 and not one mutating request in the namespace. No
output of any run contains a secret value.

Needs the lab (`eval "$(bash tests/lab/lab.sh env)"`); skips without it (a failure under CI=true).
Set SITE_TEST_OUTPUT_DIR to keep every run's output.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import pytest

from ansible_run import REPO
from audit import MUTATING, AuditWindow, is_control_plane

SCENARIO = os.path.join(REPO, "extensions", "molecule", "site")
sys.path.insert(0, SCENARIO)

import audit_window  # noqa: E402  pylint: disable=wrong-import-position
import site_snapshot  # noqa: E402  pylint: disable=wrong-import-position
from kubernetes import client  # noqa: E402  pylint: disable=wrong-import-position
from kubernetes.client.rest import ApiException  # noqa: E402  pylint: disable=wrong-import-position
from test_site_interrupt import (  # noqa: E402  pylint: disable=wrong-import-position
    RUN_TIMEOUT, adopt, ansible_playbook, forget, keep, kill_run, leaks, run_env, run_to_end, write_inventory)

pytestmark = [pytest.mark.lab, pytest.mark.skipif(
    not (os.environ.get("KUBECONFIG") and os.environ.get("LAB_PG_PASSWORD") and os.environ.get("LAB_S3_ACCESS_KEY")
         and os.environ.get("LAB_AUDIT_LOG")),
    reason="needs the lab: eval \"$(bash tests/lab/lab.sh env)\"")]

CUT_PRE, CUT_ROLLOUT, CUT_POST = INSTANCES = ["molsite-up%d" % i for i in range(1, 4)]
OLD, NEW = "v4.6.3", "v4.6.4"
SLUG = NEW.replace(".", "-")
SITE = os.path.join(REPO, "site.yml")
UPGRADE = os.path.join(REPO, "playbooks", "upgrade.yml")
POLL = 0.2  # seconds between two looks at the API while waiting for a cut point
FAIL_LABEL = {"lab.fediverse/fail": "true"}
NO_NODE = {"lab.fediverse/no-such-node": "true"}  # no node of the lab has this label
WAIT_DEPLOYMENTS = "TASK [fediverse.mastodon.mastodon : Apply the Deployments and their configuration, and wait for the rollout]"
LOCK_BREAK = ("-e", "mastodon_lock_break=true")


def pre_job(ns):
    return "%s-db-migrate-pre-%s" % (ns, SLUG)


def post_job(ns):
    return "%s-db-migrate-post-%s" % (ns, SLUG)


# ----------------------------------------------------------------------------- the API server

class Cluster(object):
    """Reads (and the test's own ResourceQuota) with the site scenario's API client."""

    def __init__(self):
        self.api = site_snapshot.api_client()
        self.core, self.apps, self.batch = client.CoreV1Api(self.api), client.AppsV1Api(self.api), client.BatchV1Api(self.api)

    def job_state(self, ns, name):
        """Absent, Running, Complete or Failed."""
        try:
            job = self.batch.read_namespaced_job(name, ns)
        except ApiException as exc:
            if exc.status == 404:
                return "Absent"
            raise
        types = [c.type for c in (job.status.conditions or []) if c.status == "True"]
        return "Complete" if "Complete" in types else ("Failed" if "Failed" in types else "Running")

    def deployments(self, ns):
        """{name: {images: [tags], rolled_out: bool, node_selector}} of the instance's Deployments."""
        out = {}
        for d in self.apps.list_namespaced_deployment(ns, label_selector="app.kubernetes.io/instance=" + ns).items:
            st, want = d.status, d.spec.replicas
            rolled_out = ((st.observed_generation or 0) == d.metadata.generation and (st.updated_replicas or 0) == want
                          and (st.available_replicas or 0) == want and (st.replicas or 0) == want and not st.unavailable_replicas)
            out[d.metadata.name] = {"images": [c.image.rsplit(":", 1)[-1] for c in d.spec.template.spec.containers],
                                    "rolled_out": rolled_out, "node_selector": d.spec.template.spec.node_selector}
        return out

    def deployment_pods(self, ns):
        """{pod: (phase, [image tags])} of the live pods of the instance's Deployments (owned by a ReplicaSet)."""
        out = {}
        for pod in self.core.list_namespaced_pod(ns).items:
            owners = pod.metadata.owner_references or []
            if pod.metadata.deletion_timestamp or not any(o.kind == "ReplicaSet" for o in owners):
                continue
            out[pod.metadata.name] = (pod.status.phase, [c.image.rsplit(":", 1)[-1] for c in pod.spec.containers])
        return out

    def record(self, ns):
        try:
            return self.core.read_namespaced_config_map(ns + "-record", ns).data or {}
        except ApiException as exc:
            if exc.status == 404:
                return {}
            raise

    def lock_holder(self, ns):
        """The run id of the run lock's holder (None when nobody holds it)."""
        try:
            lease = client.CoordinationV1Api(self.api).read_namespaced_lease(ns + "-run-lock", ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return (lease.spec.holder_identity or "").split("@")[0] or None

    def state(self, ns):
        """What a cut left: the two migration Jobs, the Deployments and the instance record."""
        return {"pre": self.job_state(ns, pre_job(ns)), "post": self.job_state(ns, post_job(ns)),
                "deployments": self.deployments(ns), "record": self.record(ns)}

    def block_pods(self, ns):
        self.core.create_namespaced_resource_quota(ns, {
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "upgrade-cut-test-no-pods"},
            "spec": {"hard": {"pods": "0"}}})

    def unblock_pods(self, ns):
        try:
            self.core.delete_namespaced_resource_quota("upgrade-cut-test-no-pods", ns)
        except ApiException as exc:
            if exc.status != 404:
                raise


# ----------------------------------------------------------------------------- runs

def upgrade_cmd(directory, ns, *extra):
    return ansible_playbook(directory, UPGRADE, "--limit", ns, "-e", "mastodon_version=" + NEW, *extra)


def run_and_cut_when(cmd, cut_point):
    """Start cmd in its own process group; SIGKILL it, its workers and their module processes
    (kill_run) as soon as cut_point(lines) returns something true (it is asked after every POLL
    seconds, with the output so far, and may read the API); wait until every one is gone. A run still going after
    RUN_TIMEOUT seconds is killed as well (its return code is then None).
    Returns (output, what cut_point returned, or None when the run ended first, return code)."""
    proc = subprocess.Popen(cmd, env=run_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, start_new_session=True)
    lines, ended = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    cut, deadline = None, time.time() + RUN_TIMEOUT
    try:
        while not ended.is_set() and time.time() < deadline:
            cut = cut_point(list(lines))
            if cut:
                kill_run(proc)
                break
            ended.wait(POLL)
    finally:
        if proc.poll() is None and not cut:
            kill_run(proc)
            lines.append("\n[test] killed after %ds: RUN_TIMEOUT\n" % RUN_TIMEOUT)
        rc = proc.wait()
        reader.join(60)
    return "".join(lines), cut, (None if rc < 0 and not cut else rc)


def recap(out, host):
    match = re.search(r"^%s\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)" % re.escape(host), out, re.M)
    return {"changed": int(match.group(1)), "unreachable": int(match.group(2)), "failed": int(match.group(3))} if match else None


def converged(rc, out, host):
    summary = recap(out, host)
    return rc == 0 and summary is not None and summary["failed"] == 0 and summary["unreachable"] == 0


def job_writes(start, end, ns, name):
    """Every mutating request to the Job `name` in `ns` (its status subresource and the control
    plane left out) in the audit log's byte window, as (verb, response code). A create without a
    name in the log cannot be told apart: it is listed as ("create?", code) for every Job."""
    out = []
    for event in audit_window.read_window(os.environ["LAB_AUDIT_LOG"], start, end):
        ref = event.get("objectRef") or {}
        if (event.get("stage") != "ResponseComplete" or ref.get("resource") != "jobs" or ref.get("namespace") != ns
                or ref.get("subresource") or event.get("verb") not in MUTATING or is_control_plane(event)):
            continue
        if ref.get("name") == name:
            verb = event["verb"]
        elif not ref.get("name") and event["verb"] == "create":
            verb = "create?"
        else:
            continue
        if "dryRun=" in (event.get("requestURI") or ""):
            verb += " (dry run)"
        out.append((verb, (event.get("responseStatus") or {}).get("code")))
    return out


def creates(writes):
    """The writes that created the object: a server-side apply (PATCH) or a POST answered 201."""
    return [w for w in writes if w[1] == 201]


def audit_offset():
    return os.path.getsize(os.environ["LAB_AUDIT_LOG"])


class Pipeline(object):
    """One scenario's runs, observations and outputs (the test asserts on them)."""

    def __init__(self, directory, ns, before):
        self.directory, self.ns, self.before = directory, ns, before
        self.cluster = Cluster()
        self.outputs, self.times = [], []
        self.facts = {}

    def run(self, label, *extra):
        t0 = time.time()
        out, _cut, rc = run_and_cut_when(upgrade_cmd(self.directory, self.ns, *extra), lambda lines: False)
        self.done(label, out, t0)
        return (-1 if rc is None else rc), out

    def cut(self, label, cut_point, *extra):
        t0 = time.time()
        out, cut, _rc = run_and_cut_when(upgrade_cmd(self.directory, self.ns, *extra), cut_point)
        self.done(label, out, t0)
        assert cut, "%s: the upgrade ended before the cut point (%s):\n%s" % (self.ns, label, out[-4000:])
        # read once every process of the run is gone: what the run did, nothing it did later
        tasks = [line.strip().rstrip("*").strip() for line in out.splitlines() if line.startswith("TASK [")]
        at_cut = dict(self.cluster.state(self.ns), last_task=tasks[-1] if tasks else None)
        self.facts["at_cut"] = at_cut
        return out, at_cut

    def done(self, label, out, t0):
        self.outputs.append((label, out))
        self.times.append("%s %.0fs" % (label, time.time() - t0))
        keep("%s-%s.out" % (self.ns, label.replace(" ", "-")), out)

    def noop(self):
        """One more run: changed=0 and no mutating request in the namespace."""
        with AuditWindow() as window:
            rc, out = self.run("no-op rerun")
        assert converged(rc, out, self.ns), "%s: the no-op rerun failed (rc %d):\n%s" % (self.ns, rc, out[-6000:])
        assert recap(out, self.ns)["changed"] == 0, "%s: the rerun after convergence changed something:\n%s" % (
            self.ns, "\n".join(line for line in out.splitlines() if line.startswith("changed:"))[-4000:])
        writes = window.writes([self.ns])
        assert writes == [], "%s: the no-op rerun sent mutating requests: %s" % (self.ns, writes)

    def upgraded(self):
        """The end state of a finished upgrade."""
        deployments = self.cluster.deployments(self.ns)
        names = sorted(deployments)
        assert self.ns + "-web" in names and self.ns + "-streaming" in names, names
        assert [n for n in names if n.startswith(self.ns + "-sidekiq-")], "no sidekiq Deployment: %s" % names
        for name, d in deployments.items():
            assert d["images"] and set(d["images"]) == {NEW}, "%s runs %s, not %s" % (name, d["images"], NEW)
            assert d["rolled_out"], "%s is not rolled out" % name
        pods = self.cluster.deployment_pods(self.ns)
        assert len(pods) >= len(deployments), pods
        stale = {name: p for name, p in pods.items() if p[0] != "Running" or set(p[1]) != {NEW}}
        assert not stale, "%s: pods not running %s: %s" % (self.ns, NEW, stale)
        for job in (pre_job(self.ns), post_job(self.ns)):
            assert self.cluster.job_state(self.ns, job) == "Complete", "%s is %s" % (job, self.cluster.job_state(self.ns, job))
        record = self.cluster.record(self.ns)
        assert (record.get("deployed_version"), record.get("migrated_version")) == (NEW, NEW), record
        after = site_snapshot.snapshot(self.ns)
        changed = sorted(set(self.before["secrets"]) ^ set(after["secrets"])) + sorted(
            name for name in self.before["secrets"] if name in after["secrets"] and after["secrets"][name] != self.before["secrets"][name])
        assert not changed, "%s: Secrets added, removed or changed by the upgrade: %s" % (self.ns, changed)
        return after

    def no_leaks(self, after):
        for label, text in self.outputs:
            found = leaks(text, after)
            assert not found, "%s: %s printed the values of %s" % (self.ns, label, found)


# ----------------------------------------------------------------------------- scenarios

def when_pre_job_complete(p):
    def cut_point(_lines):
        return p.cluster.job_state(p.ns, pre_job(p.ns)) == "Complete"
    return cut_point


def scenario_cut_pre_then_failed_post(p):
    """Cut after the pre-deploy Job; the rerun meets a failing post-deploy Job; the retry converges."""
    start = audit_offset()
    _out, at_cut = p.cut("cut after the pre-deploy Job", when_pre_job_complete(p))
    # the cut landed between the two: pre-deploy Job done, nothing rolled out, no post-deploy Job
    assert at_cut["pre"] == "Complete" and at_cut["post"] == "Absent", at_cut
    assert all(d["images"] == [OLD] for d in at_cut["deployments"].values()), at_cut["deployments"]
    assert at_cut["record"].get("deployed_version") == OLD, at_cut["record"]

    t_failed = audit_offset()
    rc, out = p.run("rerun with a failing post-deploy Job", "-e", json.dumps({"mastodon_job_pod_labels": FAIL_LABEL}),
                    *LOCK_BREAK)
    p.facts["failed_run"] = recap(out, p.ns)
    assert rc != 0 and recap(out, p.ns)["failed"] == 1, "%s: the run with a failing post-deploy Job did not fail (rc %d):\n%s" % (
        p.ns, rc, out[-6000:])
    message = "Job %s (db-migrate-post) failed." % post_job(p.ns)
    assert message in out and "mastodon_retry_failed_jobs=true" in out, "the failure does not name the Job:\n" + out[-6000:]
    assert p.cluster.job_state(p.ns, post_job(p.ns)) == "Failed"
    state = p.cluster.state(p.ns)
    assert all(d["images"] == [NEW] and d["rolled_out"] for d in state["deployments"].values()), state["deployments"]
    assert state["record"].get("migrated_version") == OLD, state["record"]
    assert p.cluster.lock_holder(p.ns) is None, "the failed run did not release its lock"
    assert [w[0] for w in job_writes(t_failed, audit_offset(), p.ns, pre_job(p.ns))] == [], "the pre-deploy Job was touched again"

    rc, out = p.run("retry", "-e", "mastodon_retry_failed_jobs=true")
    assert converged(rc, out, p.ns), "%s: the retry did not converge (rc %d):\n%s" % (p.ns, rc, out[-6000:])
    p.noop()
    after = p.upgraded()
    end = audit_offset()
    pre, post = job_writes(start, end, p.ns, pre_job(p.ns)), job_writes(start, end, p.ns, post_job(p.ns))
    p.facts.update(pre=pre, post=post)
    assert [w[0] for w in pre] == ["patch"] and len(creates(pre)) == 1, pre
    assert [w[0] for w in post] == ["patch", "delete", "patch"] and len(creates(post)) == 2, (
        "the failed post-deploy Job was not deleted and created again exactly once: %s" % post)
    p.no_leaks(after)


def scenario_cut_rollout(p):
    start = audit_offset()
    seen = {}

    def cut_point(lines):
        if "blocked" not in seen and p.cluster.job_state(p.ns, pre_job(p.ns)) == "Complete":
            p.cluster.block_pods(p.ns)  # before the run applies the Deployments (it has not seen the Job done yet)
            seen["blocked"] = p.cluster.state(p.ns)
        if "blocked" in seen and any(line.startswith(WAIT_DEPLOYMENTS) for line in lines):
            # in the wait: every Deployment applied with the new image (a cut in the middle of the
            # apply request itself would test something else), then a poll or two
            if "applied" not in seen and all(set(d["images"]) == {NEW} for d in p.cluster.deployments(p.ns).values()):
                seen["applied"] = time.time()
            return "applied" in seen and time.time() - seen["applied"] >= 2.5
        return False

    try:
        _out, at_cut = p.cut("cut during the rollout", cut_point)
    finally:
        p.cluster.unblock_pods(p.ns)
    assert seen["blocked"]["deployments"][p.ns + "-web"]["images"] == [OLD], "the quota came after the rollout started"
    assert at_cut["last_task"] == WAIT_DEPLOYMENTS, at_cut["last_task"]
    assert at_cut["pre"] == "Complete" and at_cut["post"] == "Absent", at_cut
    web = at_cut["deployments"][p.ns + "-web"]
    assert web["images"] == [NEW] and not web["rolled_out"], "not in the middle of the rollout: %s" % at_cut["deployments"]
    assert at_cut["record"].get("deployed_version") == OLD, at_cut["record"]

    # the killed run's lock is live: a plain rerun is refused before it writes anything
    holder = p.cluster.lock_holder(p.ns)
    assert holder, "the killed run left no lock"
    with AuditWindow() as window:
        rc, out = p.run("refused rerun")
    assert rc != 0 and "is locked by" in out and "run %s" % holder in out, (
        "%s: a rerun while the killed run's lock is live was not refused naming it (rc %d):\n%s" % (p.ns, rc, out[-4000:]))
    assert window.writes([p.ns]) == [], window.writes([p.ns])

    rc, out = p.run("rerun", *LOCK_BREAK)
    assert converged(rc, out, p.ns), "%s: the rerun after the cut did not converge (rc %d):\n%s" % (p.ns, rc, out[-6000:])
    assert "run %s" % holder in out, "the take-over of the dead run's lock was not reported"
    p.noop()
    after = p.upgraded()
    migration_jobs_created_once(p, start)
    p.no_leaks(after)


def scenario_rollout_timeout_then_cut_post(p):
    """A rollout that times out; the next run is cut during the post-deploy Job; the rerun converges."""
    start = audit_offset()
    stuck = {"mastodon_rollout_timeout": 2, "mastodon_web_node_selector": NO_NODE}
    rc, out = p.run("rollout that times out", "-e", json.dumps(stuck))
    p.facts["failed_run"] = recap(out, p.ns)
    assert rc != 0 and recap(out, p.ns)["failed"] == 1, "%s: the run with a stuck rollout did not fail (rc %d):\n%s" % (
        p.ns, rc, out[-6000:])
    assert re.search(r"not ready within 2s: [^\n]*Deployment %s/%s-web \([^\n]*\(mastodon_rollout_timeout\)" % (p.ns, p.ns), out), (
        "the failure does not name the web Deployment and mastodon_rollout_timeout:\n" + out[-6000:])
    assert re.search(r"- pod %s-web-\S+: phase=Pending; PodScheduled=False \(Unschedulable" % re.escape(p.ns), out), (
        "the failure does not show the unschedulable web pod:\n" + out[-6000:])
    state = p.cluster.state(p.ns)
    p.facts["after_failure"] = state
    assert state["pre"] == "Complete" and state["post"] == "Absent", state
    web = state["deployments"][p.ns + "-web"]
    assert web["images"] == [NEW] and web["node_selector"] == NO_NODE and not web["rolled_out"], web
    assert state["record"].get("deployed_version") == OLD, state["record"]
    assert job_writes(start, audit_offset(), p.ns, post_job(p.ns)) == [], "the post-deploy Job was created"
    assert p.cluster.lock_holder(p.ns) is None, "the failed run did not release its lock"

    # The next run leaves both settings out and is cut once the post-deploy Job exists. Its
    # rollout timeout is bounded (in the lab a rollout takes about a second) only so that a
    # regression fails in minutes, not after the default 600 s.
    def cut_point(_lines):
        return p.cluster.job_state(p.ns, post_job(p.ns)) != "Absent"

    _out, at_cut = p.cut("cut during the post-deploy Job", cut_point, "-e", "mastodon_rollout_timeout=120")
    web = at_cut["deployments"][p.ns + "-web"]
    assert web["node_selector"] is None, (
        "%s: the run without mastodon_web_node_selector left the failed run's nodeSelector %s on the web Deployment: "
        "a field dropped from the configuration is not removed from the object" % (p.ns, web["node_selector"]))
    assert at_cut["pre"] == "Complete" and at_cut["post"] in ("Running", "Complete"), at_cut
    assert all(d["images"] == [NEW] for d in at_cut["deployments"].values()), at_cut["deployments"]
    assert (at_cut["record"].get("deployed_version"), at_cut["record"].get("migrated_version")) == (NEW, OLD), at_cut["record"]
    rc, out = p.run("rerun", *LOCK_BREAK)
    assert converged(rc, out, p.ns), "%s: the rerun after the cut did not converge (rc %d):\n%s" % (p.ns, rc, out[-6000:])
    p.noop()
    after = p.upgraded()
    migration_jobs_created_once(p, start)
    p.no_leaks(after)


def migration_jobs_created_once(p, start):
    end = audit_offset()
    for job in (pre_job(p.ns), post_job(p.ns)):
        writes = job_writes(start, end, p.ns, job)
        p.facts[job] = writes
        assert [w[0] for w in writes] == ["patch"] and len(creates(writes)) == 1, (
            "%s: the writes to Job %s over the cut run and the reruns were %s, not one create" % (p.ns, job, writes))


SCENARIOS = {CUT_PRE: scenario_cut_pre_then_failed_post, CUT_ROLLOUT: scenario_cut_rollout,
             CUT_POST: scenario_rollout_timeout_then_cut_post}


@pytest.fixture(scope="module")
def upgrades():
    """Converge the three instances at v4.6.3, then run the three scenarios at the same time.
    Returns {instance: (Pipeline, the exception that stopped its scenario or None)}."""
    with tempfile.TemporaryDirectory(prefix="site-upgrade-cut-") as directory:
        write_inventory(directory, INSTANCES)
        forget(directory, INSTANCES)  # leftovers of an earlier, aborted run
        try:
            for ns in INSTANCES:
                adopt(ns)
            t0 = time.time()
            rc, out = run_to_end(ansible_playbook(directory, SITE, "--limit", ",".join(INSTANCES)))
            keep("upgrade-cuts-converge.out", out)
            assert all(converged(rc, out, ns) for ns in INSTANCES), "the converge at %s failed (rc %d):\n%s" % (OLD, rc, out[-6000:])
            print("converged %d instances at %s in %.0fs" % (len(INSTANCES), OLD, time.time() - t0))
            results = {}

            def run(ns):
                pipeline = None
                try:
                    pipeline = Pipeline(directory, ns, site_snapshot.snapshot(ns))
                    assert pipeline.cluster.deployments(ns)[ns + "-web"]["images"] == [OLD]
                    SCENARIOS[ns](pipeline)
                    results[ns] = (pipeline, None)
                except BaseException as exc:  # handed to the scenario's test
                    exc.traceback_text = traceback.format_exc()
                    results[ns] = (pipeline, exc)

            t0 = time.time()
            threads = [threading.Thread(target=run, args=(ns,)) for ns in INSTANCES]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            print("the three scenarios took %.0fs together" % (time.time() - t0))
            yield results
        finally:
            forget(directory, INSTANCES)


def outcome(upgrades, ns):
    pipeline, exc = upgrades[ns]
    facts = pipeline.facts if pipeline else {}
    print("%s: %s; %s" % (ns, ", ".join(pipeline.times if pipeline else []), {k: v for k, v in facts.items() if k != "at_cut"}))
    if "at_cut" in facts:
        at_cut = facts["at_cut"]
        print("  at the cut: %s; pre %s, post %s, record %s/%s, deployments %s" % (
            at_cut["last_task"], at_cut["pre"], at_cut["post"], at_cut["record"].get("deployed_version"),
            at_cut["record"].get("migrated_version"),
            {name: (d["images"], "rolled out" if d["rolled_out"] else "rolling") for name, d in at_cut["deployments"].items()}))
    if exc is not None:
        print(getattr(exc, "traceback_text", ""))
        raise exc


def test_cut_after_the_pre_deploy_migration_then_a_failed_post_deploy_job_and_its_retry(upgrades):
    outcome(upgrades, CUT_PRE)


def test_cut_in_the_middle_of_the_rollout(upgrades):
    outcome(upgrades, CUT_ROLLOUT)


def test_rollout_timeout_then_a_cut_during_the_post_deploy_migration(upgrades):
    outcome(upgrades, CUT_POST)
