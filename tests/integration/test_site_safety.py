# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Day-2 safety of the real playbooks against the lab (issue 13): the run lock, the durable
instance record, the refused wipe of an external database's keys, and no secret in any output.

One instance (molsite-safe, the site scenario's inventory with the lab's group_vars) is
converged once; every test then runs site.yml, upgrade.yml or teardown.yml against it and judges
by the API server (objects, the audit log) and by what the playbooks printed. The tests run in
file order and build on each other; the last one wipes the instance.

Every output (at -vvv, and with the JSON stdout callback) is kept and searched, at the end, for
every value of the instance's Secrets (and their base64 forms).
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_run import REPO
from audit import AuditWindow

SCENARIO = os.path.join(REPO, "extensions", "molecule", "site")
sys.path.insert(0, SCENARIO)

import site_snapshot  # noqa: E402  pylint: disable=wrong-import-position
from test_site_interrupt import (  # noqa: E402  pylint: disable=wrong-import-position
    IDENTIFIER_KEYS, MIN_SECRET_LEN, adopt, ansible_playbook, forget, leaks, run_env, secret_values, write_inventory)

pytestmark = [pytest.mark.lab, pytest.mark.skipif(
    not (os.environ.get("KUBECONFIG") and os.environ.get("LAB_PG_PASSWORD") and os.environ.get("LAB_AUDIT_LOG")),
    reason="needs the lab: eval \"$(make -s lab-env)\"")]

INSTANCE = "molsite-safe"
SITE = os.path.join(REPO, "site.yml")
UPGRADE = os.path.join(REPO, "playbooks", "upgrade.yml")
TEARDOWN = os.path.join(REPO, "playbooks", "teardown.yml")
LEASE = INSTANCE + "-run-lock"
RECORD = INSTANCE + "-record"
OUTPUTS = []  # (label, text) of every run, searched for secret values at the end


def kubectl(*args, check=True, stdin=None):
    cmd = [os.environ.get("LAB_KUBECTL") or "kubectl"] + list(args)
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, "%s: %s" % (" ".join(cmd), proc.stderr)
    return proc


def get(kind, name):
    proc = kubectl("-n", INSTANCE, "get", kind, name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def run(playbook, *args, label, callback=None):
    env = run_env()
    if callback:
        env["ANSIBLE_STDOUT_CALLBACK"] = callback
    t0 = time.time()
    proc = subprocess.run(ansible_playbook(STATE["inventory"], playbook, "--limit", INSTANCE, *args), env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900, check=False)
    out = proc.stdout + proc.stderr
    OUTPUTS.append((label, out))
    return proc.returncode, out, time.time() - t0


def foreign_lease(seconds_ago=0, duration=600, user="alice", host="laptop-7"):
    """A Lease held by another run (as instance_lock writes it), renewed `seconds_ago`."""
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease = {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": LEASE, "namespace": INSTANCE, "annotations": {
            "mastodon.fediverse/holder-run-id": "otherrun0000001", "mastodon.fediverse/holder-host": host,
            "mastodon.fediverse/holder-user": user, "mastodon.fediverse/holder-started": stamp[:19] + "Z",
            "mastodon.fediverse/holder-awx-job-id": "4242"}},
        "spec": {"holderIdentity": "otherrun0000001@" + host, "leaseDurationSeconds": duration,
                 "acquireTime": stamp, "renewTime": stamp},
    }
    kubectl("delete", "lease", "-n", INSTANCE, LEASE, "--ignore-not-found")
    kubectl("apply", "-f", "-", stdin=json.dumps(lease))


STATE = {}


@pytest.fixture(scope="module", autouse=True)
def instance():
    with tempfile.TemporaryDirectory(prefix="site-safe-") as directory:
        write_inventory(directory, [INSTANCE])
        STATE["inventory"] = directory
        forget(directory, [INSTANCE])
        adopt(INSTANCE)
        rc, out, dummy = run(SITE, "-vvv", label="first converge -vvv")
        assert rc == 0, out[-5000:]
        STATE["secrets"] = site_snapshot.snapshot(INSTANCE)
        yield
        forget(directory, [INSTANCE])


def test_first_converge_left_no_lock_and_a_record():
    assert get("lease", LEASE) is None, "the run did not release its lock"
    record = get("configmap", RECORD)
    assert record, "no instance record"
    data = record["data"]
    assert data["deployed_version"] == "v4.6.3" and data["migrated_version"] == "v4.6.3"
    assert data["local_domain"] == "mastodon.lab.test"
    assert data["db_name"] == "molsite_safe_production" and data["db_user"] == "molsite_safe_mastodon"
    assert data["s3_bucket"] == INSTANCE + "-media"
    assert data["s3_endpoint"] == "incluster:seaweedfs", data
    assert "app.kubernetes.io/managed-by" not in (record["metadata"].get("labels") or {})
    assert not any(k in json.dumps(data).lower() for k in ("password", "secret_key"))


def test_noop_rerun_json_sends_no_write_and_takes_no_lock():
    with AuditWindow() as window:
        rc, out, dummy = run(SITE, label="no-op rerun (json)", callback="json")
    assert rc == 0, out[-3000:]
    stats = json.loads(out[out.find("{"):out.rfind("}") + 1])["stats"][INSTANCE]
    assert stats["changed"] == 0 and stats["failures"] == 0, stats
    assert window.writes(namespaces={INSTANCE}) == [], window.writes(namespaces={INSTANCE})


def test_second_run_is_refused_in_preflight_naming_the_holder():
    # --tags mastodon: the README's one-phase run; preflight still runs first
    foreign_lease()
    with AuditWindow() as window:
        rc, out, seconds = run(SITE, "--tags", "mastodon", "-e", "mastodon_web_replicas=2", label="run against a live lock")
    assert rc != 0
    assert "is locked by alice@laptop-7" in out and "AWX job 4242" in out, out[-3000:]
    assert "mastodon_lock_break=true" in out
    assert "TASK [fediverse.mastodon.preflight : Stop with every problem found]" in out
    assert "TASK [fediverse.mastodon.mastodon :" not in out and "TASK [fediverse.mastodon.postgresql :" not in out, out[-3000:]
    assert window.writes(namespaces={INSTANCE}) == [], window.writes(namespaces={INSTANCE})
    assert seconds < 60, "refused after %.0f s" % seconds
    assert get("lease", LEASE)["spec"]["holderIdentity"] == "otherrun0000001@laptop-7"


def test_skipping_preflight_is_explicit_and_warned():
    rc, out, dummy = run(SITE, "--skip-tags", "preflight", "--check", label="--skip-tags preflight --check")
    assert "WARNING: --skip-tags preflight" in out, out[-3000:]
    assert "TASK [fediverse.mastodon.preflight :" not in out
    rc, out, dummy = run(SITE, "--tags", "provision", "--check", label="--tags provision --check")
    assert "WARNING: --skip-tags preflight" not in out
    assert "TASK [fediverse.mastodon.preflight : Find every problem before any change]" in out, out[-3000:]


def test_break_lock_takes_a_live_lock_and_releases_it():
    foreign_lease()
    rc, out, dummy = run(SITE, "-e", "mastodon_lock_break=true", "-e", "mastodon_web_replicas=2", label="break the lock")
    assert rc == 0, out[-4000:]
    assert "will break the LIVE lock" in out, out[-3000:]
    assert get("lease", LEASE) is None
    assert get("deployment", INSTANCE + "-web")["spec"]["replicas"] == 2


def test_lapsed_lock_is_taken_over_with_a_warning():
    foreign_lease(seconds_ago=3600, duration=60)
    with AuditWindow() as window:
        rc, out, dummy = run(SITE, "-e", "mastodon_web_replicas=1", label="take over a lapsed lock")
    assert rc == 0, out[-4000:]
    assert "will take over the lapsed lock" in out and "alice@laptop-7" in out, out[-3000:]
    leases = [w for w in window.writes(namespaces={INSTANCE}) if "/leases" in w]
    assert any(w.startswith("update ") for w in leases), leases  # taken over (PUT), not created anew
    assert any(w.startswith("delete ") for w in leases), leases  # released at the end
    assert get("lease", LEASE) is None
    assert get("deployment", INSTANCE + "-web")["spec"]["replicas"] == 1


def test_the_lock_is_released_when_a_phase_fails():
    # A Job that fails (the lab fails pods labelled lab.fediverse/fail): phase 4 fails after writing.
    rc, out, dummy = run(SITE, "-e", "mastodon_version=v4.6.4", "-e", '{"mastodon_job_pod_labels": {"lab.fediverse/fail": "true"}}',
                         label="failing upgrade")
    assert rc != 0
    assert "TASK [Release the run lock after the failure]" in out, out[-4000:]
    assert get("lease", LEASE) is None


def test_the_record_keeps_the_history_across_a_teardown():
    rc, out, dummy = run(TEARDOWN, "-vvv", label="default teardown -vvv")
    assert rc == 0, out[-4000:]
    assert get("deployment", INSTANCE + "-web") is None
    record = get("configmap", RECORD)
    assert record and record["data"]["deployed_version"] == "v4.6.3", record
    with AuditWindow() as window:
        rc, out, dummy = run(SITE, "-e", "mastodon_version=v4.5.9", label="downgrade after teardown")
    assert rc != 0
    assert "mastodon_version:" in out and "v4.5.9" in out
    assert "TASK [fediverse.mastodon.preflight : Stop with every problem found]" in out, out[-3000:]
    assert window.writes(namespaces={INSTANCE}) == [], window.writes(namespaces={INSTANCE})


@pytest.mark.parametrize("override,variable", [
    ({"mastodon_local_domain": "other.lab.test"}, "mastodon_local_domain"),
    ({"mastodon_s3_bucket": "molsite-safe-elsewhere"}, "mastodon_s3_bucket"),
    ({"mastodon_db_name": "molsite_safe_other"}, "mastodon_db_name"),
    # another in-cluster S3 server holds none of the media: an instance keeps its server
    ({"minio_s3_server": "minio"}, "minio_s3_server"),
])
def test_changing_where_the_instance_lives_is_refused(override, variable):
    with AuditWindow() as window:
        rc, out, dummy = run(SITE, "-e", json.dumps(override), label="identity change " + variable)
    assert rc != 0
    assert "- %s:" % variable in out, out[-3000:]
    assert window.writes(namespaces={INSTANCE}) == [], window.writes(namespaces={INSTANCE})


def test_a_named_override_lets_the_change_through_preflight():
    override = {"mastodon_s3_bucket": "molsite-safe-elsewhere", "mastodon_record_override": ["s3_bucket"]}
    rc, out, dummy = run(SITE, "--tags", "preflight", "-e", json.dumps(override), label="override")
    assert rc == 0, out[-3000:]


def test_the_rerun_converges_again_and_upgrades():
    rc, out, dummy = run(SITE, "-vvv", "-e", "mastodon_retry_failed_jobs=true", label="reconverge -vvv")
    assert rc == 0, out[-4000:]
    rc, out, dummy = run(UPGRADE, "-e", "mastodon_version=v4.6.4", "-e", "mastodon_retry_failed_jobs=true", label="upgrade (json)",
                         callback="json")
    assert rc == 0, out[-4000:]
    data = get("configmap", RECORD)["data"]
    assert data["deployed_version"] == "v4.6.4" and data["migrated_version"] == "v4.6.4"


def test_a_wipe_that_would_orphan_an_external_database_is_refused():
    before = site_snapshot.snapshot(INSTANCE)
    with AuditWindow() as window:
        rc, out, dummy = run(TEARDOWN, "-e", "teardown_delete_data=true", "-e", "teardown_confirm=" + INSTANCE,
                             "-e", "postgresql_mode=external", "-e", "postgresql_external_host=127.0.0.1", label="refused wipe")
    assert rc != 0
    assert "Active Record encryption keys" in out and "teardown_external_database_dropped" in out, out[-3000:]
    assert window.writes(namespaces={INSTANCE}) == [], window.writes(namespaces={INSTANCE})
    assert site_snapshot.snapshot(INSTANCE)["secrets"] == before["secrets"]


def test_the_confirmed_wipe_deletes_the_data_and_the_record():
    STATE["final"] = site_snapshot.snapshot(INSTANCE)
    rc, out, dummy = run(TEARDOWN, "-vvv", "-e", "teardown_delete_data=true", "-e", "teardown_confirm=" + INSTANCE,
                         label="wipe -vvv")
    assert rc == 0, out[-4000:]
    assert get("configmap", RECORD) is None
    assert get("secret", INSTANCE + "-mastodon-secrets") is None


def test_no_output_holds_a_secret_value():
    snapshots = [STATE["secrets"], STATE.get("final") or STATE["secrets"]]
    looked_for = set()
    for snap in snapshots:
        looked_for.update(k for k, v in secret_values(snap).items() if len(v) >= MIN_SECRET_LEN and k[1] not in IDENTIFIER_KEYS)
        for label, text in OUTPUTS:
            found = leaks(text, snap)
            assert not found, "%s printed %s" % (label, found)
    assert len(looked_for) >= 5, looked_for
    labels = [label for label, dummy in OUTPUTS]
    assert any("-vvv" in label for label in labels) and any("json" in label for label in labels)
    assert {"first converge -vvv", "default teardown -vvv", "wipe -vvv", "upgrade (json)"} <= set(labels)
