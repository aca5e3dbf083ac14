# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugin_utils/backup_plan.py: the backup settings' problems and warnings, the Job made from
the CronJob, the report of a set."""

import pytest

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import backup_plan

RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
GOOD = dict(backup_enabled=True, backup_recipients=[RECIPIENT], backup_s3_endpoint="https://s3.backups.example.org",
            backup_runner="cluster", backup_image="registry.example.org/mastodon-ee:1.0.0", backup_s3_api="ceph",
            backup_s3_admin_access_key="AK", backup_s3_admin_secret_key="SK", backup_retention_days=30,
            minio_mode="incluster", minio_instance="social")


def test_good_settings_and_backups_off_have_no_problem():
    assert backup_plan.problems(GOOD) == [] and backup_plan.warnings(GOOD) == []
    assert backup_plan.problems(dict(backup_enabled=False, backup_recipients=["nonsense"])) == []


@pytest.mark.parametrize("change, variable", [
    (dict(backup_recipients=[]), "backup_recipients"),
    (dict(backup_recipients=["AGE-SECRET-KEY-1QQQQ"]), "backup_recipients"),
    (dict(backup_recipients=[RECIPIENT[:-1] + "b"]), "backup_recipients"),
    (dict(backup_s3_endpoint=None), "backup_s3_endpoint"),
    (dict(backup_s3_endpoint="s3.example.org"), "backup_s3_endpoint"),
    (dict(backup_image=None), "backup_image"),
    (dict(backup_s3_admin_access_key=None), "backup_s3_admin_access_key"),
    (dict(backup_retention_days=-1), "backup_retention_days"),
])
def test_each_problem_names_its_variable(change, variable):
    found = backup_plan.problems(dict(GOOD, **change))
    assert len(found) == 1 and found[0].startswith(variable + ":"), found


def test_a_private_key_given_as_recipient_is_not_echoed():
    found = backup_plan.problems(dict(GOOD, backup_recipients=["AGE-SECRET-KEY-1" + "Q" * 58]))
    assert "Q" * 10 not in found[0]


def test_the_controller_runner_needs_no_image_and_api_none_no_admin_keys():
    assert backup_plan.problems(dict(GOOD, backup_runner="controller", backup_image=None)) == []
    assert backup_plan.problems(dict(GOOD, backup_s3_api="none", backup_s3_admin_access_key=None)) == []


@pytest.mark.parametrize("change, warned", [
    (dict(backup_s3_endpoint="http://social-minio.social.svc:9000"), True),
    (dict(backup_s3_endpoint="http://social-minio:9000"), True),
    (dict(minio_mode="external", minio_external_endpoint="https://s3.backups.example.org/"), True),
    (dict(minio_mode="external", minio_external_endpoint="https://s3.media.example.org"), False),
])
def test_backups_on_the_media_server_are_warned_about(change, warned):
    found = backup_plan.warnings(dict(GOOD, **change))
    assert bool(found) is warned and all(w.startswith("backup_s3_endpoint:") for w in found)


def test_admin_keys_kept_in_the_cluster_are_warned_about():
    found = backup_plan.warnings(dict(GOOD, backup_s3_admin_access_key=None, backup_s3_admin_secret=dict(name="x")))
    assert len(found) == 1 and found[0].startswith("backup_s3_admin_secret:")


CRONJOB = dict(apiVersion="batch/v1", kind="CronJob", metadata=dict(name="social-backup", namespace="social"),
               spec=dict(schedule="15 3 * * *", jobTemplate=dict(metadata=dict(labels={"app.kubernetes.io/name": "backup"}), spec=dict(
                   backoffLimit=1, template=dict(spec=dict(containers=[
                       dict(name="dump", env=[dict(name="A", value="1")]),
                       dict(name="backup", env=[dict(name="B", value="2")])]))))))


def test_the_job_is_the_cronjobs_template_making_the_named_set():
    job = backup_plan.job_from_cronjob([dict(kind="ConfigMap"), CRONJOB], "social-backup-now", "20261202T031500Z")
    assert job["kind"] == "Job" and job["metadata"]["name"] == "social-backup-now"
    assert job["metadata"]["namespace"] == "social" and job["metadata"]["labels"] == {"app.kubernetes.io/name": "backup"}
    assert job["spec"]["backoffLimit"] == 0, "a retry would write the same set twice"
    dump, backup = job["spec"]["template"]["spec"]["containers"]
    assert dump["env"] == [dict(name="A", value="1")]
    assert backup["env"] == [dict(name="B", value="2"), dict(name="BACKUP_SET_ID", value="20261202T031500Z")]
    # the CronJob itself is left as it was
    assert CRONJOB["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][1]["env"] == [dict(name="B", value="2")]


def test_the_job_refuses_a_bad_set_id_or_no_cronjob():
    with pytest.raises(ValueError):
        backup_plan.job_from_cronjob([CRONJOB], "x", "latest")
    with pytest.raises(ValueError):
        backup_plan.job_from_cronjob([], "x", "20261202T031500Z")


def test_the_report_gives_id_size_and_checksums():
    lines = backup_plan.report(dict(id="20261202T031500Z", local_domain="social.example.org", mastodon_version="v4.6.3",
                                    schema_version="2026", started="a", finished="b", tables={"t": 3, "u": 4},
                                    parts={"db.dump.age": dict(size=100, sha256="ab"), "keys.json.age": dict(size=20, sha256="cd")}))
    assert lines[0].startswith("Backup set 20261202T031500Z of social.example.org")
    assert lines[1] == "Size: 120 bytes encrypted; 2 tables, 7 rows"
    assert lines[2:] == ["db.dump.age: 100 bytes, sha256 ab", "keys.json.age: 20 bytes, sha256 cd"]


MANIFEST = dict(id="20261202T031500Z", mastodon_version="v4.6.3", local_domain="social.example.org")
EMPTY = dict(database="social_production", exists=True, tables=0)
FULL = dict(database="social_production", exists=True, tables=120)


def plan(manifest=None, deployed="v4.6.3", database=None, db_name="social_production", **kwargs):
    return backup_plan.restore_plan(dict(MANIFEST, **(manifest or {})), deployed, "social.example.org", "social",
                                    db_name, database or EMPTY, stamp="20261202112233", **kwargs)


def test_a_restore_into_an_empty_database_of_the_same_version_may_go_ahead():
    result = plan()
    assert result["problems"] == [] and result["migrate"] is False and result["migration_jobs"] == []
    assert result["new_database"] == "social_production_restore_20261202t031500z"
    assert result["keep_as"] == "social_production_before_20261202112233"


def test_an_older_set_is_migrated_by_forgetting_the_deployed_versions_jobs():
    result = plan(deployed="v4.7.0")
    assert result["problems"] == [] and result["migrate"] is True
    assert [j["metadata"]["name"] for j in result["migration_jobs"]] == [
        "social-db-prepare-v4-7-0", "social-db-migrate-pre-v4-7-0", "social-db-migrate-post-v4-7-0"]


@pytest.mark.parametrize("kwargs, variable, fix", [
    (dict(manifest=dict(mastodon_version="v4.7.0")), "restore_backup", "deploy v4.7.0 or newer first"),
    (dict(manifest=dict(mastodon_version=None)), "restore_backup", "does not say which Mastodon"),
    (dict(manifest=dict(local_domain="other.example.org")), "restore_backup", "-e restore_allow_domain=other.example.org"),
    (dict(database=FULL), "restore_confirm", "-e restore_confirm=social"),
    (dict(database=FULL, confirm="other"), "restore_confirm", "-e restore_confirm=social"),
])
def test_each_refusal_names_its_variable_and_the_fix(kwargs, variable, fix):
    result = plan(**kwargs)
    assert len(result["problems"]) == 1 and result["problems"][0].startswith(variable + ":") and fix in result["problems"][0]
    assert result["migrate"] is False


def test_the_refusals_give_way_only_to_the_right_names():
    assert plan(database=FULL, confirm="social")["problems"] == []
    assert plan(manifest=dict(local_domain="other.example.org"), allow_domain="other.example.org")["problems"] == []
    assert plan(manifest=dict(local_domain="other.example.org"), allow_domain="social.example.org")["problems"]


def test_the_report_gives_the_drills_result():
    manifest = dict(id="x", parts={}, tables={"t": 1})
    assert backup_plan.report(manifest, dict(ok=True, tables=1, differences={}))[-1] == (
        "Drill: restored into a scratch database; the row counts of all 1 tables match the manifest")
    assert backup_plan.report(manifest, dict(ok=False, tables=1, differences={"t": dict(expected=1, restored=0)}))[-1] == (
        "Drill: FAILED, the row counts differ: t (expected 1, restored 0)")
    assert len(backup_plan.report(manifest)) == 2


def test_a_leftover_restore_or_an_unswappable_name_stops_before_any_change():
    leftover = dict(EMPTY, others=["social_production_restore_20261202t031500z"])
    found = plan(database=leftover)["problems"]
    assert len(found) == 1 and "DROP DATABASE social_production_restore_20261202t031500z" in found[0]
    assert plan(db_name="Social-DB")["problems"][0].startswith("backup_db_name:")


def test_long_database_names_are_cut_to_postgresqls_63_characters():
    result = plan(db_name="d" * 60)
    assert len(result["new_database"]) == 63 and result["new_database"].endswith("_restore_20261202t031500z")
    assert len(result["keep_as"]) == 63 and result["keep_as"].endswith("_before_20261202112233")


def test_the_summary_line_uses_the_backup_roles_defaults():
    import yaml
    with open("roles/backup/defaults/main.yml") as f:
        defaults = yaml.safe_load(f)
    assert all(defaults[k] == v for k, v in backup_plan.SUMMARY_DEFAULTS.items())
    assert backup_plan.summary_line({}, "social").startswith("Backups: OFF.")
    assert backup_plan.summary_line({"backup_enabled": "true"}, "social") == (
        "Backups: 15 3 * * * (Etc/UTC) to s3://social-backups/social; run one now with playbooks/backup.yml")
    custom = {"backup_enabled": True, "backup_schedule": "0 1 * * *", "backup_s3_bucket": "b", "backup_s3_prefix": ""}
    assert backup_plan.summary_line(custom, "s") == "Backups: 0 1 * * * (Etc/UTC) to s3://b/; run one now with playbooks/backup.yml"
