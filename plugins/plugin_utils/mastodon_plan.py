# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the mastodon role decides before it writes anything, as plain functions.

- ``settings(v)``: names derived from the settings, sidekiq sizing, the set of optional objects
  the instance owns, and every problem of the settings (the checks of preflight for the same
  variables, from plugin_utils/inputs.py, plus the role's own);
- ``cluster_state(live, v)``: what runs now (first install, running version, Job states, the
  replicas an HPA takes over, the optional objects of the last run) and the version guard.

``v`` is a dict of the role's variables (the role passes the ones it needs). The filter plugin
plugins/filter/mastodon.py exposes both to the role; pytest checks them without Ansible.
"""

from __future__ import annotations

import re

from ansible_collections.fediverse.mastodon.plugins.module_utils.instance_record import compare_versions, parse_version, skips_minor
from ansible_collections.fediverse.mastodon.plugins.plugin_utils import inputs

FIELD_MANAGER = "fediverse-mastodon"
OWNER_RE = re.compile(r"^[A-Za-z0-9_]{1,30}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
MANAGED_ANNOTATION = "mastodon.fediverse/managed-objects"
VERSION_ANNOTATION = "mastodon.fediverse/version"
# apiVersion of each kind in managed_set, for deleting what an instance no longer uses
MANAGED_API_VERSIONS = {
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "CronJob": "batch/v1",
    "Ingress": "networking.k8s.io/v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "ConfigMap": "v1",
    "Middleware": "traefik.io/v1alpha1",
    "PodMonitor": "monitoring.coreos.com/v1",
}


def _bool(value):
    return inputs.as_bool(value)


# The maintenance CronJobs: (name, variable prefix, tootctl arguments, takes --days). Each is on with
# <prefix>_enabled and runs at <prefix>_schedule; the names are <instance>-<name>.
MAINTENANCE = (
    ("media-remove", "mastodon_media_remove", ["media", "remove"], True),
    ("media-prune-profiles", "mastodon_media_prune_profiles", ["media", "remove", "--prune-profiles"], True),
    ("preview-cards-remove", "mastodon_preview_cards_remove", ["preview_cards", "remove"], True),
    ("media-remove-orphans", "mastodon_media_remove_orphans", ["media", "remove-orphans"], False),
    ("statuses-remove", "mastodon_statuses_remove", ["statuses", "remove"], True),
    ("accounts-prune", "mastodon_accounts_prune", ["accounts", "prune"], False),
)


def maintenance_jobs(v):
    """The enabled maintenance CronJobs: dict(name, schedule, command), in MAINTENANCE's order."""
    out = []
    for name, prefix, args, days in MAINTENANCE:
        if not _bool(v.get(prefix + "_enabled")):
            continue
        command = ["bin/tootctl"] + list(args)
        if days:
            command += ["--days", str(int(v.get(prefix + "_days")))]
        if name == "media-remove" and _bool(v.get("mastodon_media_remove_keep_interacted")):
            command.append("--keep-interacted")
        out.append(dict(name=name, schedule=str(v.get(prefix + "_schedule")), command=command))
    return out


def _pods(enabled, maximum, replicas):
    return int(maximum if _bool(enabled) else replicas)


def sizing(v):
    """Pods and database connections at full scale (replicas, or the HPA maximum)."""
    workers = v.get("mastodon_sidekiq_workers") or []
    count, detail = inputs.scheduler_count(workers)
    out = dict(scheduler_count=count, scheduler_detail=detail,
               sidekiq_connections=sum(inputs.worker_pods(w) * int(w.get("concurrency") or 25) for w in workers))
    web = _pods(v.get("mastodon_web_hpa_enabled"), v.get("mastodon_web_hpa_max_replicas"), v.get("mastodon_web_replicas"))
    streaming = _pods(v.get("mastodon_streaming_hpa_enabled"), v.get("mastodon_streaming_hpa_max_replicas"),
                      v.get("mastodon_streaming_replicas"))
    out.update(web_pods=web, streaming_pods=streaming,
               worst=(web * int(v.get("mastodon_web_concurrency")) * int(v.get("mastodon_web_max_threads"))
                      + streaming * int(v.get("mastodon_streaming_db_pool")) + out["sidekiq_connections"] + 5))
    return out


def hpa_targets(v):
    """Names of the Deployments an HPA scales."""
    instance = v["mastodon_instance"]
    out = [instance + "-" + c for c in ("web", "streaming") if _bool(v.get("mastodon_%s_hpa_enabled" % c))]
    out += ["%s-sidekiq-%s" % (instance, w.get("name")) for w in v.get("mastodon_sidekiq_workers") or []
            if _bool((w.get("hpa") or {}).get("enabled"))]
    return out


def managed_set(v):
    """``Kind/name`` of the objects that exist only under some settings, sorted. The web
    Deployment keeps this list in an annotation, so a later run deletes what is no longer wanted."""
    instance = v["mastodon_instance"]
    out = []
    for worker in v.get("mastodon_sidekiq_workers") or []:
        out.append("Deployment/%s-sidekiq-%s" % (instance, worker.get("name")))
    out += ["HorizontalPodAutoscaler/" + name for name in hpa_targets(v)]
    for component in ("web", "streaming"):
        if _bool(v.get("mastodon_%s_pdb_enabled" % component)):
            out.append("PodDisruptionBudget/%s-%s" % (instance, component))
    out += ["CronJob/%s-%s" % (instance, job["name"]) for job in maintenance_jobs(v)]
    if _bool(v.get("mastodon_asset_upload_enabled")):
        out.append("ConfigMap/%s-mastodon-asset-upload" % instance)
    if _bool(v.get("mastodon_prometheus_podmonitor_enabled")):
        out.append("PodMonitor/%s-mastodon" % instance)
    if _bool(v.get("mastodon_networkpolicy_enabled")):
        out += ["NetworkPolicy/%s-%s" % (instance, c) for c in ("web", "streaming", "sidekiq", "jobs")]
    routing = v.get("mastodon_routing")
    if routing == "ingress":
        out.append("Ingress/%s-mastodon" % instance)
        if v.get("mastodon_ingress_preset") == "traefik":
            out.append("Middleware/%s-mastodon-compress" % instance)
    elif routing == "httproute":
        out.append("HTTPRoute/%s-mastodon" % instance)
        if v.get("mastodon_streaming_host"):
            out.append("HTTPRoute/%s-mastodon-streaming" % instance)
    return sorted(out)


def role_problems(v, size):
    """The checks that only the role can make (connection facts come from earlier phases)."""
    p = []
    db, redis, s3 = v.get("mastodon_db_connection"), v.get("mastodon_redis_connection"), v.get("mastodon_s3_connection")
    complete = (isinstance(db, dict) and "host" in db and "port" in db
                and isinstance(redis, dict) and "host" in redis and "port" in redis
                and (not _bool(v.get("mastodon_s3_enabled")) or (isinstance(s3, dict) and "endpoint" in s3)))
    if not complete:
        p.append("mastodon_db_connection, mastodon_redis_connection, mastodon_s3_connection: the connection facts are "
                 "missing or incomplete. Run the postgresql, redis and minio roles first (they set postgresql_connection, "
                 "redis_connection and minio_connection), or set them in the shape of docs/conventions.md")
    limit = v.get("mastodon_db_max_connections")
    if limit is not None and not _bool((db or {}).get("pooled")) and size["worst"] >= int(limit):
        p.append("mastodon_db_max_connections: at full scale Mastodon would open %d database connections (web %d pods x "
                 "%s workers x %s threads, streaming %d x %s, sidekiq %d, Jobs 5) but max_connections is %s. Lower the "
                 "replicas, threads or concurrency, raise max_connections, or put PgBouncer in front"
                 % (size["worst"], size["web_pods"], v.get("mastodon_web_concurrency"), v.get("mastodon_web_max_threads"),
                    size["streaming_pods"], v.get("mastodon_streaming_db_pool"), size["sidekiq_connections"], limit))
    if _bool(v.get("mastodon_owner_enabled")):
        if not OWNER_RE.match(str(v.get("mastodon_owner_username") or "")):
            p.append("mastodon_owner_username: mastodon_owner_enabled needs a user name of letters, digits and '_' "
                     "(at most 30)")
        if not EMAIL_RE.match(str(v.get("mastodon_owner_email") or "")):
            p.append("mastodon_owner_email: mastodon_owner_enabled needs an e-mail address")
    if v.get("mastodon_routing") == "httproute" and not v.get("mastodon_httproute_parent_refs"):
        p.append("mastodon_httproute_parent_refs: mastodon_routing 'httproute' needs the Gateway, for example "
                 "[{name: public, namespace: gateway, sectionName: https}]")
    if _bool(v.get("mastodon_media_remove_enabled")) and _bool(v.get("mastodon_media_remove_keep_interacted")):
        have = parse_version(str(v.get("mastodon_version") or ""))
        if have is not None and have[:2] < (4, 6):
            p.append("mastodon_media_remove_keep_interacted: tootctl media remove --keep-interacted came with Mastodon 4.6; "
                     "mastodon_version is %s. Turn it off, or upgrade first" % v.get("mastodon_version"))
    if not v.get("mastodon_routing_hosts"):
        p.append("mastodon_routing_hosts: may not be empty")
    if _bool(v.get("mastodon_prometheus_podmonitor_enabled")) and not _bool(v.get("mastodon_prometheus_enabled")):
        p.append("mastodon_prometheus_podmonitor_enabled: the PodMonitor scrapes the metrics that mastodon_prometheus_enabled "
                 "turns on, and it is false. Turn both on, or the PodMonitor off")
    if _bool(v.get("mastodon_asset_upload_enabled")):
        if not _bool(v.get("mastodon_s3_enabled")):
            p.append("mastodon_asset_upload_enabled: the assets go to the media S3 endpoint, but mastodon_s3_enabled is false. "
                     "Turn S3 media on, or the asset upload off")
        creds = v.get("mastodon_asset_upload_credentials_secret")
        if creds not in (None, "", {}) and not (isinstance(creds, dict) and all(creds.get(k) for k in ("name", "access_key", "secret_key"))):
            p.append("mastodon_asset_upload_credentials_secret: give the Secret as {name, access_key, secret_key} "
                     "(the keys of its two entries), or null for the media keys")
    return p


def settings(v):
    """Everything the role derives from its settings before it reads the cluster."""
    size = sizing(v)
    instance = v["mastodon_instance"]
    owner = re.sub(r"^-|-$", "", re.sub(r"[^a-z0-9]+", "-", str(v.get("mastodon_owner_username") or "").lower()))
    problems = []
    for check in (inputs.check_identity, inputs.check_version, inputs.check_sidekiq, inputs.check_features, inputs.check_overrides):
        problems.extend(check(v))
    problems.extend(role_problems(v, size))
    slug = inputs.version_slug(v["mastodon_version"])
    return dict(version_slug=slug, owner_job_name="%s-owner-%s" % (instance, owner),
                asset_upload_job_name="%s-asset-upload-%s" % (instance, slug),
                sizing=size, managed_set=",".join(managed_set(v)), maintenance_jobs=maintenance_jobs(v), problems=problems)


def _owned_replicas(deployment):
    for entry in (deployment.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply":
            if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
                return True
    return False


def job_state(job):
    conditions = [c.get("type") for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
    return "Complete" if "Complete" in conditions else ("Failed" if "Failed" in conditions else "Running")


def version_change(running, wanted, v):
    """(problem or None, otp_auto) for going from ``running`` to ``wanted``."""
    have, want = parse_version(running or ""), parse_version(wanted or "")
    instance = v["mastodon_instance"]
    # from before 4.3 to anything else: OTP_SECRET goes to the pods for the two-factor migration
    otp_auto = have is not None and have[:3] < (4, 3, 0) and (want is None or want[:3] != have[:3])
    if have is None or want is None or not _bool(v.get("mastodon_version_guard", True)):
        return None, otp_auto
    if compare_versions(want, have) < 0 and not _bool(v.get("mastodon_allow_downgrade")):
        return ("mastodon_version: %s runs Mastodon %s and mastodon_version asks for %s: that is a downgrade. Migrations are "
                "not reverted, so the old code may not run on the newer schema. Restore a backup, or set "
                "mastodon_allow_downgrade=true if you know the schema is compatible" % (instance, running, wanted)), otp_auto
    if skips_minor(have, want):
        return ("mastodon_version: %s runs Mastodon %s; going straight to %s skips a minor series. Deploy the latest "
                "release of %d.%d.x first (every minor series must run its migrations), then this version. "
                "mastodon_version_guard=false disables this check" % (instance, running, wanted, have[0], have[1] + 1)), otp_auto
    return None, otp_auto


def cluster_state(live, v):
    """What runs now, from ``live`` = dict(deployments, record, jobs) as the API server returned them."""
    instance = v["mastodon_instance"]
    deployments = live.get("deployments") or []
    record = live.get("record") or {}
    jobs = live.get("jobs") or []
    web = next((d for d in deployments if (d.get("metadata") or {}).get("name") == instance + "-web"), None)
    annotations = ((web or {}).get("metadata") or {}).get("annotations") or {}
    image = next((c.get("image") for c in (((web or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers", [])
                  if c.get("name") == "web"), "") or ""
    running = annotations.get(VERSION_ANNOTATION) or (image.split(":")[-1] if ":" in image else "") or record.get("deployed_version") or ""
    targets = hpa_targets(v)
    problem, otp_auto = version_change(running, v.get("mastodon_version"), v)
    first_install = web is None and not record.get("deployed_version")
    handover = [dict(name=d["metadata"]["name"], replicas=(d.get("spec") or {}).get("replicas"))
                for d in deployments if d["metadata"]["name"] in targets and _owned_replicas(d)]
    previous = [x for x in (annotations.get(MANAGED_ANNOTATION) or "").split(",") if x]
    wanted = set(managed_set(v))
    job_states = dict((j["metadata"]["name"], job_state(j)) for j in jobs)
    slug = inputs.version_slug(v["mastodon_version"])
    # a version counts as migrated when its db:prepare or its post-deploy migration Job completed
    migrated = any(job_states.get("%s-%s-%s" % (instance, kind, slug)) == "Complete" for kind in ("db-prepare", "db-migrate-post"))
    return dict(
        first_install=first_install,
        running_version=running,
        replicas_handover=handover,
        # the Deployments whose replicas an HPA takes over, as objects for the handover field manager
        handover_objects=[dict(apiVersion="apps/v1", kind="Deployment", metadata=dict(name=h["name"]),
                               spec=dict(replicas=h["replicas"])) for h in handover],
        managed_previous=previous,
        # the optional objects of the last run that these settings no longer want
        stale_objects=[dict(apiVersion=MANAGED_API_VERSIONS[ref.split("/")[0]], kind=ref.split("/")[0],
                            metadata=dict(name=ref.split("/")[-1]))
                       for ref in previous if ref not in wanted and ref.split("/")[0] in MANAGED_API_VERSIONS],
        migrate=not first_install and not migrated,
        jobs=job_states,
        search_deploy_ever=any(j["metadata"]["name"].startswith(instance + "-search-deploy-") for j in jobs),
        version_problem=problem,
        otp_auto=otp_auto,
    )
