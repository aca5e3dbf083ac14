# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups through the playbooks users run, against the lab (issue 15): site.yml with the lab
inventory's backup settings sets up the target and the schedule; playbooks/backup.yml makes a
set (from the controller: the lab cannot run the Job's pods) and reports it; the default
runner's Job is accepted by the API server.

The instance `molsite-bkp` uses the site scenario's inventory with inventories/local's
group_vars, like tests/integration/test_site_interrupt.py. Needs the lab.
"""

import base64
import json
import os
import random
import re
import subprocess
import tempfile
import uuid

import pytest

from audit import AuditWindow
from s3_checks import denied
from test_backup_script import fingerprint
from test_site_interrupt import RUN_TIMEOUT, adopt, ansible_playbook, forget, leaks, run_env, site_snapshot, write_inventory

boto3 = pytest.importorskip("boto3")
psycopg2 = pytest.importorskip("psycopg2")
requests = pytest.importorskip("requests")
from botocore.config import Config  # noqa: E402
from kubernetes import client as k8s  # noqa: E402

pytestmark = [pytest.mark.lab, pytest.mark.skipif(
    not (os.environ.get("KUBECONFIG") and os.environ.get("LAB_PG_PASSWORD") and os.environ.get("LAB_BACKUP_RECIPIENT")),
    reason="needs the lab: eval \"$(make -s lab-env)\"")]

INSTANCE = "molsite-bkp"
DATABASE = INSTANCE.replace("-", "_") + "_production"
ROLE = INSTANCE.replace("-", "_") + "_mastodon"
BUCKET = INSTANCE + "-backups"
SITE_OUTPUT = []
TEXTS = ["Grüße aus Köln", "東京で会いましょう", "Привет, мир", "🐘 toot", "quote ' \" \\"]


def s3(access_key=None, secret_key=None):
    return boto3.client("s3", endpoint_url=os.environ["LAB_S3_ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id=access_key or os.environ["LAB_S3_ACCESS_KEY"],
                        aws_secret_access_key=secret_key or os.environ["LAB_S3_SECRET_KEY"],
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def media_s3():
    """The media bucket's server: the lab's SeaweedFS, which the in-cluster S3 Service reaches."""
    return boto3.client("s3", endpoint_url=os.environ["LAB_SEAWEEDFS_URL"], region_name="us-east-1",
                        aws_access_key_id=os.environ["LAB_SEAWEEDFS_ACCESS_KEY"],
                        aws_secret_access_key=os.environ["LAB_SEAWEEDFS_SECRET_KEY"],
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def pg(database):
    conn = psycopg2.connect(host=os.environ["LAB_PG_HOST"], port=os.environ["LAB_PG_PORT"], user=os.environ["LAB_PG_USER"],
                            password=os.environ["LAB_PG_PASSWORD"], dbname=database)
    conn.autocommit = True
    return conn


def flat(text):
    """The output with every run of white space made one space (the YAML callback folds lines)."""
    return " ".join(text.split())


def run(inventory, playbook, *args):
    proc = subprocess.run(ansible_playbook(inventory, playbook, *args), env=run_env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def deployed(kubernetes):
    """The instance, deployed by site.yml with the lab's backup settings, and rows of random
    content (non-ASCII text, a large object) in tables owned by Mastodon's role."""
    with tempfile.TemporaryDirectory(prefix="backup-") as directory:
        write_inventory(directory, [INSTANCE])
        forget(directory, [INSTANCE])
        adopt(INSTANCE)
        rc, out = run(directory, "site.yml")
        assert rc == 0, out[-6000:]
        SITE_OUTPUT.append(out)
        rng = random.Random(7)
        conn = pg(DATABASE)
        cur = conn.cursor()
        cur.execute('SET ROLE "%s"' % ROLE)
        cur.execute("CREATE TABLE statuses (id bigserial PRIMARY KEY, text text)")
        for dummy in range(500):
            cur.execute("INSERT INTO statuses (text) VALUES (%s)", (rng.choice(TEXTS) + str(rng.random()),))
        cur.execute("SELECT lo_from_bytea(0, %s)", (psycopg2.Binary(os.urandom(100 * 1024)),))
        conn.close()
        yield directory
        forget(directory, [INSTANCE])


def test_site_sets_up_the_schedule_the_api_server_accepts(deployed):
    batch, core = k8s.BatchV1Api(), k8s.CoreV1Api()
    cronjob = batch.read_namespaced_cron_job(INSTANCE + "-backup", INSTANCE)
    assert cronjob.spec.schedule == "15 3 * * *" and cronjob.spec.concurrency_policy == "Forbid"
    pod = cronjob.spec.job_template.spec.template.spec
    assert [c.name for c in pod.containers] == ["backup", "dump"]
    assert pod.automount_service_account_token is False
    env = dict((e.name, e) for e in pod.containers[0].env)
    assert env["BACKUP_RECIPIENTS"].value == os.environ["LAB_BACKUP_RECIPIENT"]
    assert env["AWS_SECRET_ACCESS_KEY"].value_from.secret_key_ref.name == INSTANCE + "-backup-writer"
    assert env["PGPASSWORD"].value_from.secret_key_ref.name == INSTANCE + "-postgresql"
    assert "AGE-SECRET-KEY" not in json.dumps(k8s.ApiClient().sanitize_for_serialization(cronjob))
    scripts = core.read_namespaced_config_map(INSTANCE + "-backup", INSTANCE).data
    here = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "backup", "files")
    for name in ("mastodon_backup.py", "dump.sh"):
        with open(os.path.join(here, name)) as handle:
            assert scripts[name].rstrip("\n") == handle.read().rstrip("\n")


def test_the_run_summary_names_the_schedule_and_the_target(deployed):
    assert ("Backups: 15 3 * * * (Etc/UTC) to s3://%s/%s; run one now with playbooks/backup.yml" % (BUCKET, INSTANCE)
            in flat(SITE_OUTPUT[0])), SITE_OUTPUT[0][-3000:]


def test_the_target_is_versioned_kept_30_days_and_its_writer_may_only_add(deployed):
    admin = s3()
    assert admin.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    rules = admin.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert [(r["ID"], r["Expiration"]["Days"], r["NoncurrentVersionExpiration"]["NoncurrentDays"]) for r in rules] == [
        ("fediverse-mastodon-retention-" + INSTANCE, 30, 30)]
    assert rules[0]["Filter"]["Prefix"] == INSTANCE + "/", "the rule must expire only this instance's sets"
    secret = k8s.CoreV1Api().read_namespaced_secret(INSTANCE + "-backup-writer", INSTANCE).data
    writer = s3(base64.b64decode(secret["AWS_ACCESS_KEY_ID"]).decode(), base64.b64decode(secret["AWS_SECRET_ACCESS_KEY"]).decode())
    key = "%s/probe-%s" % (INSTANCE, uuid.uuid4().hex[:6])
    writer.put_object(Bucket=BUCKET, Key=key, Body=b"first", ACL="bucket-owner-full-control")
    assert denied(lambda: writer.get_object(Bucket=BUCKET, Key=key))
    assert denied(lambda: writer.delete_object(Bucket=BUCKET, Key=key))
    assert denied(lambda: writer.put_object(Bucket=BUCKET, Key="elsewhere/probe", Body=b"x"))
    assert denied(lambda: writer.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": []}))
    writer.put_object(Bucket=BUCKET, Key=key, Body=b"second", ACL="bucket-owner-full-control")
    versions = admin.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]
    assert len(versions) == 2, "an overwrite must keep the first version"
    for item in versions:
        admin.delete_object(Bucket=BUCKET, Key=key, VersionId=item["VersionId"])
    # the media bucket (on the in-cluster server) is readable anonymously; the backup bucket is not
    media_key = "probe-%s" % uuid.uuid4().hex[:6]
    media_s3().put_object(Bucket=INSTANCE + "-media", Key=media_key, Body=b"public")
    media_endpoint = os.environ["LAB_SEAWEEDFS_URL"].rstrip("/")
    assert requests.get("%s/%s-media/%s" % (media_endpoint, INSTANCE, media_key), timeout=10).status_code == 200
    endpoint = os.environ["LAB_S3_ENDPOINT"].rstrip("/")
    admin.put_object(Bucket=BUCKET, Key=INSTANCE + "/" + media_key, Body=b"private")
    assert requests.get("%s/%s/%s/%s" % (endpoint, BUCKET, INSTANCE, media_key), timeout=10).status_code == 403
    assert requests.get("%s/%s" % (endpoint, BUCKET), timeout=10).status_code == 403


@pytest.fixture(scope="module")
def backed_up(deployed):
    """One set made by backup.yml from the controller, at -vvv: (set id, output, fingerprint of
    the database when it was made)."""
    before = fingerprint(DATABASE)
    rc, out = run(deployed, "playbooks/backup.yml", "-e", "backup_runner=controller", "-vvv")
    assert rc == 0, out[-6000:]
    found = re.findall(r"Backup set (\d{8}T\d{6}Z) of mastodon\.lab\.test \(Mastodon v[0-9.]+, schema [^)]+\)", out)
    assert found, out[-4000:]
    return found[0], out, before


def test_backup_yml_makes_and_reports_a_set_without_leaking_a_secret(backed_up):
    set_id, out, dummy = backed_up
    admin = s3()
    stored = dict((item["Key"].rsplit("/", 1)[-1], admin.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
                  for item in admin.list_objects_v2(Bucket=BUCKET, Prefix="%s/%s/" % (INSTANCE, set_id))["Contents"])
    assert sorted(stored) == ["db.dump.age", "keys.json.age", "manifest.json"]
    manifest = json.loads(stored["manifest.json"])
    assert manifest["tables"]["public.statuses"] == 500 and manifest["local_domain"] == "mastodon.lab.test"
    for name, line in (("db.dump.age", "db.dump.age: %d bytes, sha256 %s"), ("keys.json.age", "keys.json.age: %d bytes, sha256 %s")):
        assert line % (manifest["parts"][name]["size"], manifest["parts"][name]["sha256"]) in flat(out)
    snapshot = site_snapshot.snapshot(INSTANCE)
    for name in ("db.dump.age", "keys.json.age"):
        assert b"PGDMP" not in stored[name]
        for data in snapshot["secrets"].values():
            for encoded in data.values():
                value = base64.b64decode(encoded)
                assert len(value) < 8 or value not in stored[name], "a key value is readable in %s" % name
    assert leaks(out, snapshot) == []


def test_the_default_runner_runs_the_cronjobs_job(deployed):
    """The lab cannot run the Job's pods (kwok completes it without running anything), so no set
    appears: backup.yml must say so rather than report one. The Job itself is the CronJob's."""
    rc, out = run(deployed, "playbooks/backup.yml")
    assert rc != 0 and "no complete set" in flat(out), out[-4000:]
    jobs = [j for j in k8s.BatchV1Api().list_namespaced_job(INSTANCE).items
            if (j.metadata.annotations or {}).get("backup.fediverse.mastodon/set")]
    assert len(jobs) == 1
    job = jobs[0]
    set_id = job.metadata.annotations["backup.fediverse.mastodon/set"]
    backup = job.spec.template.spec.containers[0]
    assert dict((e.name, e.value) for e in backup.env)["BACKUP_SET_ID"] == set_id
    assert job.spec.backoff_limit == 0
    assert "restore_backup: no complete set %s" % set_id in flat(out)


KEY_SECRETS = (INSTANCE + "-mastodon-secrets", INSTANCE + "-mastodon-s3")
RESTORE = ("playbooks/restore.yml", "-e", "restore_identity_file=" + os.environ.get("LAB_BACKUP_IDENTITY_FILE", ""))


def key_secrets():
    core = k8s.CoreV1Api()
    return dict((name, core.read_namespaced_secret(name, INSTANCE).data) for name in KEY_SECRETS)


def replicas():
    """Each Deployment's replicas and each CronJob's suspend, and which objects carry a restore
    annotation (none must, outside a restore)."""
    apps, batch = k8s.AppsV1Api(), k8s.BatchV1Api()
    state = dict((d.metadata.name, d.spec.replicas) for d in apps.list_namespaced_deployment(INSTANCE).items)
    state.update((c.metadata.name, c.spec.suspend) for c in batch.list_namespaced_cron_job(INSTANCE).items)
    state["annotated"] = sorted(o.metadata.name for o in apps.list_namespaced_deployment(INSTANCE).items
                                + batch.list_namespaced_cron_job(INSTANCE).items
                                if any(k.startswith("restore.fediverse.mastodon/") for k in (o.metadata.annotations or {})))
    return state


def sql(statement, params=None):
    conn = pg("postgres")
    try:
        cur = conn.cursor()
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def databases():
    return [row[0] for row in sql("SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", (DATABASE + "%",))]


def test_restore_onto_existing_data_without_confirmation_changes_nothing(backed_up, deployed):
    set_id = backed_up[0]
    before = (fingerprint(DATABASE), key_secrets(), replicas(), databases())
    with AuditWindow() as window:
        rc, out = run(deployed, *(RESTORE + ("-e", "restore_backup=" + set_id)))
    assert rc != 0, out[-4000:]
    assert window.writes([INSTANCE]) == []
    assert "restore_confirm: the database %s of instance %s holds" % (DATABASE, INSTANCE) in flat(out), out[-4000:]
    assert "-e restore_confirm=%s" % INSTANCE in flat(out)
    assert (fingerprint(DATABASE), key_secrets(), replicas(), databases()) == before


def test_check_mode_backs_up_and_restores_nothing(backed_up, deployed):
    set_id = backed_up[0]
    before = (fingerprint(DATABASE), key_secrets(), replicas(), databases())
    sets = len(s3().list_objects_v2(Bucket=BUCKET, Prefix=INSTANCE + "/").get("Contents", []))
    rc, out = run(deployed, "playbooks/backup.yml", "-e", "backup_runner=controller", "--check")
    assert rc == 0, out[-4000:]
    rc, out = run(deployed, *(RESTORE + ("-e", "restore_backup=" + set_id, "-e", "restore_confirm=" + INSTANCE, "--check")))
    assert rc == 0, out[-6000:]
    assert (fingerprint(DATABASE), key_secrets(), replicas(), databases()) == before
    assert len(s3().list_objects_v2(Bucket=BUCKET, Prefix=INSTANCE + "/").get("Contents", [])) == sets


def test_restore_brings_back_the_data_and_the_keys_identically(backed_up, deployed):
    set_id, dummy, made_from = backed_up
    keys, running = key_secrets(), replicas()
    assert running[INSTANCE + "-web"] >= 1 and any(n.startswith(INSTANCE + "-sidekiq-") for n in running), running
    # destroy the database and the keys
    sql('DROP DATABASE "%s" WITH (FORCE)' % DATABASE)
    k8s.CoreV1Api().delete_namespaced_secret(INSTANCE + "-mastodon-secrets", INSTANCE)
    with AuditWindow() as window:
        rc, out = run(deployed, *(RESTORE + ("-e", "restore_backup=latest", "-vvv")))
    assert rc == 0, out[-8000:]
    # every Deployment (each sidekiq worker too) and CronJob of the instance was stopped, then started
    paused = [w for w in window.writes([INSTANCE]) if w.startswith("patch ") and "fieldManager=fediverse-mastodon-restore" in w]
    for name in (n for n in running if n != "annotated"):
        assert len([w for w in paused if "/%s?" % name in w]) == 2, (name, paused)
    assert "Restored set %s" % set_id in flat(out) and "There was no database before the restore" in flat(out)
    assert fingerprint(DATABASE) == made_from
    assert key_secrets() == keys
    assert replicas() == running
    assert databases() == [DATABASE]
    assert leaks(out, site_snapshot.snapshot(INSTANCE)) == []


def test_restore_refuses_a_corrupted_set_before_any_change(backed_up, deployed):
    set_id = backed_up[0]
    admin = s3()
    key = "%s/%s/db.dump.age" % (INSTANCE, set_id)
    data = bytearray(admin.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    original = admin.head_object(Bucket=BUCKET, Key=key)["VersionId"]
    data[len(data) // 2] ^= 0xFF
    admin.put_object(Bucket=BUCKET, Key=key, Body=bytes(data))
    admin.delete_object(Bucket=BUCKET, Key=key, VersionId=original)
    before = (fingerprint(DATABASE), key_secrets(), replicas(), databases())
    with AuditWindow() as window:
        rc, out = run(deployed, *(RESTORE + ("-e", "restore_backup=" + set_id, "-e", "restore_confirm=" + INSTANCE)))
    assert rc != 0 and "db.dump.age of set %s is corrupt" % set_id in flat(out), out[-4000:]
    assert window.writes([INSTANCE]) == []
    assert (fingerprint(DATABASE), key_secrets(), replicas(), databases()) == before


def test_the_media_mirror_copies_everything_once_then_only_what_changed(deployed):
    """backup_media=mirror: site.yml creates the copy's bucket; backup.yml copies the media bucket
    (reached through the port-forward to the in-cluster S3 Service, with the media user's keys)."""
    admin, source, media, copy = s3(), media_s3(), INSTANCE + "-media", INSTANCE + "-media-backup"
    bodies = dict(("media_attachments/files/%d/original/%s.png" % (i, uuid.uuid4().hex), os.urandom(500 + i)) for i in range(3))
    for key, body in bodies.items():
        source.put_object(Bucket=media, Key=key, Body=body)
    rc, out = run(deployed, "site.yml", "--tags", "backup", "-e", "backup_media=mirror")
    assert rc == 0, out[-4000:]
    assert admin.get_bucket_versioning(Bucket=copy)["Status"] == "Enabled"
    args = ("playbooks/backup.yml", "-e", "backup_runner=controller", "-e", "backup_media=mirror")
    rc, out = run(deployed, *args)
    assert rc == 0, out[-4000:]
    total = len(source.list_objects_v2(Bucket=media).get("Contents", []))
    assert "Media: %d objects in %s, %d copied now" % (total, media, total) in flat(out), out[-3000:]
    for key, body in bodies.items():
        assert admin.get_object(Bucket=copy, Key=key)["Body"].read() == body
    changed = sorted(bodies)[0]
    source.put_object(Bucket=media, Key=changed, Body=b"changed")
    rc, out = run(deployed, *args)
    assert rc == 0 and "Media: %d objects in %s, 1 copied now" % (total, media) in flat(out), out[-3000:]
    assert "%d unchanged" % (total - 1) in flat(out)
    assert admin.get_object(Bucket=copy, Key=changed)["Body"].read() == b"changed"


def test_media_replication_is_checked_not_assumed(deployed):
    """backup_media=replication: the media bucket on the in-cluster server (the lab's SeaweedFS) has
    no replication rule, so backup.yml must fail saying so, rather than report the media as safe."""
    rc, out = run(deployed, "playbooks/backup.yml", "-e", "backup_runner=controller", "-e", "backup_media=replication")
    assert rc != 0 and "backup_media: replication, but the media bucket %s-media has no enabled replication rule" % INSTANCE in flat(out), \
        out[-3000:]


def test_an_older_set_is_migrated_through_the_normal_jobs(deployed):
    """Last: it leaves the instance at v4.6.4. A set made by v4.6.3 (and drilled: backup_verify restores it into a scratch database and
    compares the row counts), restored after an upgrade to v4.6.4: the restore forgets the v4.6.4
    migration Jobs, so the deploy phases run them again, on the restored database, before the
    Deployments come back."""
    admin = s3()
    old = "%s/20200101T000000Z/" % INSTANCE  # a set from long ago, for backup_prune to delete
    for name in ("db.dump.age", "keys.json.age", "manifest.json"):
        admin.put_object(Bucket=BUCKET, Key=old + name, Body=b"{}")
    rc, out = run(deployed, "playbooks/backup.yml", "-e", "backup_runner=controller", "-e", "backup_verify=true",
                  "-e", "restore_identity_file=" + os.environ["LAB_BACKUP_IDENTITY_FILE"], "-e", "backup_prune=true", "-e", "backup_prune_keep=1")
    assert rc == 0, out[-4000:]
    assert "Versions" not in admin.list_object_versions(Bucket=BUCKET, Prefix=old), "backup_prune left the old set"
    set_id = re.findall(r"Backup set (\d{8}T\d{6}Z) ", out)[0]
    assert "Drill: restored into a scratch database; the row counts of all 1 tables match the manifest" in flat(out), out[-3000:]
    assert databases() == [DATABASE], "the drill's scratch database must be dropped"
    made_from = fingerprint(DATABASE)
    rc, out = run(deployed, "playbooks/upgrade.yml", "-e", "mastodon_version=v4.6.4")
    assert rc == 0, out[-4000:]
    batch = k8s.BatchV1Api()
    names = ["%s-db-migrate-%s-v4-6-4" % (INSTANCE, kind) for kind in ("pre", "post")]
    before = dict((n, batch.read_namespaced_job(n, INSTANCE).metadata.uid) for n in names)
    rc, out = run(deployed, *(RESTORE + ("-e", "restore_backup=" + set_id, "-e", "restore_confirm=" + INSTANCE,
                                         "-e", "mastodon_version=v4.6.4")))
    assert rc == 0, out[-6000:]
    after = dict((n, batch.read_namespaced_job(n, INSTANCE)) for n in names)
    assert all(after[n].metadata.uid != before[n] and after[n].status.succeeded for n in names), "the migrations did not run again"
    assert fingerprint(DATABASE) == made_from
    kept = [d for d in databases() if d.startswith(DATABASE + "_before_")]
    assert databases() == [DATABASE] + kept and len(kept) == 1, "the database before the restore must be kept"
    kept = kept[0]
    assert "kept as %s" % kept in flat(out)
    sql('DROP DATABASE "%s"' % kept)
