# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup role's logic, without a cluster: the settings' problems and warnings (preflight),
the Job that backup.yml makes from the CronJob, and the report of a set.

``v`` is the merged input of the roles (``role_inputs.RoleInputs``), as in preflight_plan.
"""

from __future__ import annotations

import copy
import re
from urllib.parse import urlsplit

from ansible_collections.fediverse.mastodon.plugins.module_utils.instance_record import compare_versions, parse_version
from ansible_collections.fediverse.mastodon.plugins.plugin_utils import inputs

# age's X25519 recipient: "age1" and 58 characters of lowercase bech32
RECIPIENT_RE = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
SET_ID_RE = re.compile(r"^\d{8}T\d{6}Z$")


SUMMARY_DEFAULTS = dict(backup_schedule="15 3 * * *", backup_time_zone="Etc/UTC")
"""The backup role's defaults the summary play needs (it runs without the role);
tests/unit/plugins/plugin_utils/test_backup_plan.py checks them against roles/backup/defaults/main.yml."""


def summary_line(v, instance):
    """The run summary's backup line, from the instance's variables (``v``: the play's vars, where the
    backup role's defaults are absent)."""
    if not _on(v.get("backup_enabled", False)):
        return "Backups: OFF. No backup of this instance is made; see docs/backups.md"
    value = dict(SUMMARY_DEFAULTS, backup_s3_bucket=instance + "-backups", backup_s3_prefix=instance)
    value.update((k, v.get(k)) for k in value if v.get(k) is not None)
    return "Backups: %s (%s) to s3://%s/%s; run one now with playbooks/backup.yml" % (
        value["backup_schedule"], value["backup_time_zone"], value["backup_s3_bucket"], value["backup_s3_prefix"])


def _on(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def problems(v):
    """One line per problem of the backup settings (empty when backups are off)."""
    if not _on(v.get("backup_enabled", False)):
        return []
    found = []
    recipients = v.get("backup_recipients") or []
    if not recipients:
        found.append("backup_recipients: backups are on but no recipient is set; give at least one age public key "
                     "(age1..., made with age-keygen), whose private key you keep outside the cluster")
    for value in recipients:
        if not RECIPIENT_RE.match(str(value)):
            found.append("backup_recipients: %r is not an age X25519 public key (age1 and 58 more characters); "
                         "give the public key that age-keygen prints, never the private AGE-SECRET-KEY-1..." % (str(value)[:16] + "...",))
    endpoint = v.get("backup_s3_endpoint")
    parts = urlsplit(str(endpoint or ""))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        found.append("backup_s3_endpoint: %r is not an http:// or https:// URL; give the backup target's S3 endpoint"
                     % (endpoint,))
    if v.get("backup_runner", "cluster") == "cluster" and not v.get("backup_image"):
        found.append("backup_image: the backup Job needs an image with Python 3, boto3, psycopg2 and pyrage, such as "
                     "your build of the collection's execution environment; set backup_image (or run backup.yml with "
                     "-e backup_runner=controller)")
    if v.get("backup_s3_api", "ceph") != "none":
        vaulted = v.get("backup_s3_admin_access_key") and v.get("backup_s3_admin_secret_key")
        if not vaulted and not v.get("backup_s3_admin_secret"):
            found.append("backup_s3_admin_access_key: the backup target's admin keys are needed to set it up (or set "
                         "backup_s3_api: none and create the bucket and the writer yourself); put them in the vault as "
                         "backup_s3_admin_access_key and backup_s3_admin_secret_key")
    days = v.get("backup_retention_days")
    if days is not None and (not str(days).lstrip("-").isdigit() or int(days) < 0):
        found.append("backup_retention_days: %r is not a number of days (0 keeps every set)" % (days,))
    return found


def _server(url):
    parts = urlsplit(str(url or ""))
    if not parts.hostname:
        return None
    return parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80)


def warnings(v):
    """What the operator should know about the backup settings (not errors)."""
    if not _on(v.get("backup_enabled", False)):
        return []
    found = []
    target = str(v.get("backup_s3_endpoint") or "")
    if v.get("minio_mode", "incluster") == "incluster":
        # the in-cluster S3 server is reached by its Service name, inside the cluster
        host = target.rsplit("//", maxsplit=1)[-1].split(".")[0].split(":")[0]
        same = ".svc" in target or host in ("%s-%s" % (v.get("minio_instance"), server) for server in ("seaweedfs", "minio"))
    else:
        same = _server(v.get("minio_external_endpoint")) == _server(target)
    if same:
        found.append("backup_s3_endpoint: the backups go to the same S3 server as the media; losing that server loses "
                     "both. Use a server (or an account) of their own (docs/backups.md)")
    if v.get("backup_s3_admin_secret") and not (v.get("backup_s3_admin_access_key") and v.get("backup_s3_admin_secret_key")):
        found.append("backup_s3_admin_secret: the backup target's admin keys are kept in the cluster, so a compromised "
                     "cluster can delete its own backups; keep them in the vault instead (backup_s3_admin_access_key)")
    return found


def job_from_cronjob(documents, name, set_id):
    """The Job that backup.yml runs now: the CronJob's job template (the CronJob is one of the
    rendered ``documents``), named ``name``, whose backup container makes the set ``set_id``."""
    if not SET_ID_RE.match(set_id or ""):
        raise ValueError("the set id %r is not like 20261202T031500Z" % (set_id,))
    cronjobs = [d for d in documents if isinstance(d, dict) and d.get("kind") == "CronJob"]
    if len(cronjobs) != 1:
        raise ValueError("expected one CronJob among the rendered objects, found %d" % len(cronjobs))
    cronjob = cronjobs[0]
    template = copy.deepcopy(cronjob["spec"]["jobTemplate"])
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    job = dict(apiVersion="batch/v1", kind="Job", metadata=dict(
        name=name, namespace=cronjob["metadata"].get("namespace"), labels=labels,
        annotations={"cronjob.kubernetes.io/instantiate": "manual", "backup.fediverse.mastodon/set": set_id}),
        spec=template["spec"])
    # no retry: a second attempt would write the same set's objects again, and the restore then
    # refuses the set as written over
    job["spec"]["backoffLimit"] = 0
    for container in job["spec"]["template"]["spec"]["containers"]:
        if container["name"] == "backup":
            container["env"] = list(container.get("env") or []) + [dict(name="BACKUP_SET_ID", value=set_id)]
    return job


def report(manifest, drill=None, media=None, replication=None):
    """The lines backup.yml prints about a set: its id, Mastodon's version, size and checksums,
    and the drill's result when it ran."""
    parts = manifest.get("parts") or {}
    total = sum(p.get("size", 0) for p in parts.values())
    lines = ["Backup set %s of %s (Mastodon %s, schema %s), %s to %s"
             % (manifest.get("id"), manifest.get("local_domain"), manifest.get("mastodon_version"),
                manifest.get("schema_version"), manifest.get("started"), manifest.get("finished")),
             "Size: %d bytes encrypted; %d tables, %d rows" % (total, len(manifest.get("tables") or {}),
                                                               sum((manifest.get("tables") or {}).values()))]
    for name in sorted(parts):
        lines.append("%s: %d bytes, sha256 %s" % (name, parts[name].get("size", 0), parts[name].get("sha256")))
    if media:
        lines.append("Media: %d objects in %s, %d copied now (%d bytes) into %s, %d unchanged"
                     % (media.get("objects", 0), media.get("source"), media.get("copied", 0), media.get("copied_bytes", 0),
                        media.get("target"), media.get("unchanged", 0)))
    if replication:
        lines.append("Media: the S3 server replicates %s (%s)" % (replication.get("bucket"), ", ".join(
            "rule %s to %s" % (r.get("id"), r.get("destination")) for r in replication.get("rules") or [])))
    if drill:
        lines.append("Drill: restored into a scratch database; the row counts of all %d tables match the manifest"
                     % drill.get("tables", 0) if drill.get("ok") else
                     "Drill: FAILED, the row counts differ: %s" % ", ".join(
                         "%s (expected %s, restored %s)" % (t, d.get("expected"), d.get("restored"))
                         for t, d in sorted((drill.get("differences") or {}).items())))
    return lines


DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def restore_names(db_name, set_id, stamp):
    """(the new database a set is restored into, the name the old database is kept under). The
    second carries the run's time (``stamp``, like 20261202112233), so a second restore never
    meets the first one's copy."""
    new_suffix, keep_suffix = "_restore_" + set_id.lower(), "_before_" + stamp
    return db_name[:63 - len(new_suffix)] + new_suffix, db_name[:63 - len(keep_suffix)] + keep_suffix


def restore_problems(manifest, deployed_version, local_domain, instance, database, confirm=None, allow_domain=None):
    """Why the restore of ``manifest`` must not go ahead, one line each (empty: it may).

    ``database`` is the db-state of the instance's database (exists, tables). Refused: a set made
    by a newer Mastodon than the one deployed; a set of another LOCAL_DOMAIN, unless
    ``allow_domain`` names that domain; replacing a database that holds tables, unless
    ``confirm`` names the instance."""
    found = []
    made_by = manifest.get("mastodon_version")
    if parse_version(made_by) is None:
        found.append("restore_backup: set %s does not say which Mastodon made it (mastodon_version %r); it cannot be "
                     "checked against the deployed %s" % (manifest.get("id"), made_by, deployed_version))
    elif parse_version(deployed_version) is not None and compare_versions(made_by, deployed_version) > 0:
        found.append("restore_backup: set %s was made by Mastodon %s, newer than the deployed %s; deploy %s or newer "
                     "first (upgrade.yml), then restore" % (manifest.get("id"), made_by, deployed_version, made_by))
    domain = manifest.get("local_domain")
    if domain != local_domain and allow_domain != domain:
        found.append("restore_backup: set %s belongs to LOCAL_DOMAIN %s, this instance is %s; a Mastodon instance "
                     "cannot change its domain. To restore it here all the same, give -e restore_allow_domain=%s"
                     % (manifest.get("id"), domain, local_domain, domain))
    if database.get("exists") and database.get("tables") and confirm != instance:
        found.append("restore_confirm: the database %s of instance %s holds %d tables, which the restore replaces (the "
                     "old database is kept under another name); to go ahead give -e restore_confirm=%s"
                     % (database.get("database"), instance, database["tables"], instance))
    return found


def needs_migration(manifest, deployed_version):
    """True when the set was made by an older Mastodon than the one deployed."""
    return compare_versions(manifest["mastodon_version"], deployed_version) < 0


def restore_plan(manifest, deployed_version, local_domain, instance, db_name, database, confirm=None, allow_domain=None,
                 stamp="00000000000000"):
    """Everything restore.yml decides before it changes anything: ``problems`` (stop when any),
    ``new_database`` and ``keep_as`` (see restore_names), ``migrate`` (the set is older than the
    deployed version, so the migrations run after the restore)."""
    problems = restore_problems(manifest, deployed_version, local_domain, instance, database, confirm, allow_domain)
    new_database, keep_as = restore_names(db_name, manifest.get("id") or "", stamp)
    if not DB_NAME_RE.match(db_name or ""):
        problems.append("backup_db_name: %r cannot be restored by name swap (use lowercase letters, digits and '_')" % (db_name,))
    if new_database in (database.get("others") or []):
        problems.append("restore: the database %s is left from an unfinished restore of this set; drop it (DROP DATABASE "
                        "%s), then run restore.yml again" % (new_database, new_database))
    migrate = not problems and needs_migration(manifest, deployed_version)
    # the mastodon role counts a version as migrated while these Jobs are there and complete
    slug = inputs.version_slug(deployed_version)
    jobs = [dict(apiVersion="batch/v1", kind="Job", metadata=dict(name="%s-%s-%s" % (instance, kind, slug)))
            for kind in ("db-prepare", "db-migrate-pre", "db-migrate-post")] if migrate else []
    return dict(problems=problems, new_database=new_database, keep_as=keep_as, migrate=migrate, migration_jobs=jobs,
                replaces=bool(database.get("exists")))
