# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mastodon role's decisions (plugin_utils/mastodon_plan.py): sizing, the managed-object set,
the settings problems, the cluster state and the version guard."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import mastodon_plan as plan

BASE = dict(
    mastodon_instance="social", mastodon_namespace="social", mastodon_version="v4.6.3", mastodon_version_guard=True,
    mastodon_allow_downgrade=False, mastodon_local_domain="social.example.org", mastodon_web_domain=None,
    mastodon_alternate_domains=[], mastodon_sidekiq_workers=[{"name": "all-queues", "queues": ["default", "scheduler"]}],
    mastodon_web_replicas=2, mastodon_web_concurrency=2, mastodon_web_max_threads=5, mastodon_web_hpa_enabled=False,
    mastodon_web_hpa_max_replicas=6, mastodon_web_pdb_enabled=True, mastodon_streaming_replicas=1,
    mastodon_streaming_db_pool=10, mastodon_streaming_hpa_enabled=False, mastodon_streaming_hpa_max_replicas=4,
    mastodon_streaming_pdb_enabled=False, mastodon_streaming_host=None, mastodon_media_remove_enabled=False,
    mastodon_networkpolicy_enabled=False, mastodon_routing="ingress", mastodon_routing_hosts=["social.example.org"],
    mastodon_httproute_parent_refs=[], mastodon_owner_enabled=False, mastodon_owner_username=None,
    mastodon_owner_email=None, mastodon_db_max_connections=None, mastodon_db_connection={"host": "db", "port": 5432},
    mastodon_redis_connection={"host": "redis", "port": 6379}, mastodon_s3_enabled=True,
    mastodon_s3_connection={"endpoint": "http://s3"},
    mastodon_media_remove_schedule="0 3 * * 0", mastodon_media_remove_days=7, mastodon_media_remove_keep_interacted=False,
    mastodon_media_prune_profiles_enabled=False, mastodon_media_prune_profiles_schedule="30 3 * * 0", mastodon_media_prune_profiles_days=30,
    mastodon_preview_cards_remove_enabled=False, mastodon_preview_cards_remove_schedule="0 4 * * 0", mastodon_preview_cards_remove_days=30,
    mastodon_media_remove_orphans_enabled=False, mastodon_media_remove_orphans_schedule="30 4 1 * *",
    mastodon_statuses_remove_enabled=False, mastodon_statuses_remove_schedule="0 5 * * 0", mastodon_statuses_remove_days=90,
    mastodon_accounts_prune_enabled=False, mastodon_accounts_prune_schedule="30 5 * * 0",
)


def settings(**change):
    v = copy.deepcopy(BASE)
    v.update(change)
    return v


def test_good_settings_have_no_problem_and_derive_the_names():
    out = plan.settings(settings(mastodon_owner_username="Big_Boss"))
    assert out["problems"] == []
    assert out["version_slug"] == "v4-6-3" and out["owner_job_name"] == "social-owner-big-boss"
    assert out["managed_set"] == "Deployment/social-sidekiq-all-queues,Ingress/social-mastodon,PodDisruptionBudget/social-web"


def test_sizing_counts_hpa_maxima_and_the_scheduler():
    workers = [{"name": "a", "queues": ["scheduler"], "concurrency": 5},
               {"name": "b", "queues": ["push,2"], "hpa": {"enabled": True, "max_replicas": 3}}]
    size = plan.sizing(settings(mastodon_sidekiq_workers=workers, mastodon_web_hpa_enabled=True))
    assert size["scheduler_count"] == 1 and size["sidekiq_connections"] == 5 + 3 * 25
    assert size["web_pods"] == 6 and size["worst"] == 6 * 2 * 5 + 1 * 10 + 80 + 5


def test_managed_set_follows_hpa_pdb_cronjob_networkpolicy_and_routes():
    v = settings(mastodon_streaming_hpa_enabled=True, mastodon_media_remove_enabled=True, mastodon_networkpolicy_enabled=True,
                 mastodon_routing="httproute", mastodon_streaming_host="streaming.example.org",
                 mastodon_httproute_parent_refs=[{"name": "gw"}])
    assert plan.managed_set(v) == sorted([
        "Deployment/social-sidekiq-all-queues", "HorizontalPodAutoscaler/social-streaming", "PodDisruptionBudget/social-web",
        "CronJob/social-media-remove", "NetworkPolicy/social-web", "NetworkPolicy/social-streaming",
        "NetworkPolicy/social-sidekiq", "NetworkPolicy/social-jobs", "HTTPRoute/social-mastodon",
        "HTTPRoute/social-mastodon-streaming"])


@pytest.mark.parametrize("change,expected", [
    (dict(mastodon_local_domain="not a domain!"), "mastodon_local_domain: 'not a domain!' is not a domain name"),
    (dict(mastodon_version="4.6.3"), "mastodon_version: '4.6.3' has no leading 'v'"),
    (dict(mastodon_sidekiq_workers=[{"name": "x", "queues": ["default"]}]), "found 0: none"),
    (dict(mastodon_redis_connection=None), "the connection facts are missing or incomplete"),
    (dict(mastodon_db_max_connections=30), "mastodon_db_max_connections: at full scale Mastodon would open 60"),
    (dict(mastodon_owner_enabled=True, mastodon_owner_username="a b", mastodon_owner_email="x"), "mastodon_owner_username:"),
    (dict(mastodon_routing="httproute"), "mastodon_httproute_parent_refs:"),
    (dict(mastodon_routing_hosts=[]), "mastodon_routing_hosts: may not be empty"),
])
def test_each_problem_names_its_variable(change, expected):
    problems = plan.settings(settings(**change))["problems"]
    assert any(expected in p for p in problems), problems


def test_a_custom_tag_passes_with_the_guard_off():
    assert plan.settings(settings(mastodon_version="main-nightly", mastodon_version_guard=False))["problems"] == []


@pytest.mark.parametrize("running,wanted,extra,problem,otp", [
    ("v4.5.0", "v4.6.3", {}, None, False),
    ("v4.5.0", "v4.7.0", {}, "skips a minor series. Deploy the latest release of 4.6.x first", False),
    ("v4.5.0", "v4.4.5", {}, "that is a downgrade", False),
    ("v4.5.0", "v4.4.5", {"mastodon_allow_downgrade": True}, None, False),
    ("v4.5.0", "v4.9.0", {"mastodon_version_guard": False}, None, False),
    ("v4.2.9", "v4.3.0", {}, None, True),
    ("v4.2.9", "v4.2.9", {}, None, False),
    ("", "v4.6.3", {}, None, False),
])
def test_version_change(running, wanted, extra, problem, otp):
    got_problem, got_otp = plan.version_change(running, wanted, settings(**extra))
    assert got_otp is otp
    assert (got_problem is None) if problem is None else (problem in got_problem)


def test_cluster_state_of_a_running_instance():
    annotations = {plan.VERSION_ANNOTATION: "v4.6.3", plan.MANAGED_ANNOTATION: "Ingress/social-mastodon,CronJob/x"}
    owned = [{"manager": plan.FIELD_MANAGER, "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    web = {"metadata": {"name": "social-web", "annotations": annotations, "managedFields": owned},
           "spec": {"replicas": 3}}
    jobs = [{"metadata": {"name": "social-db-migrate-post-v4-6-3"}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}},
            {"metadata": {"name": "social-search-deploy-v4-6-3"}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}},
            {"metadata": {"name": "social-owner-admin"}, "status": {}}]
    state = plan.cluster_state(dict(deployments=[web], record={}, jobs=jobs), settings(mastodon_web_hpa_enabled=True))
    assert state["first_install"] is False and state["running_version"] == "v4.6.3"
    assert state["replicas_handover"] == [{"name": "social-web", "replicas": 3}]
    assert state["managed_previous"] == ["Ingress/social-mastodon", "CronJob/x"]
    assert state["jobs"] == {"social-db-migrate-post-v4-6-3": "Complete", "social-search-deploy-v4-6-3": "Failed",
                             "social-owner-admin": "Running"}
    assert state["search_deploy_ever"] is True and state["version_problem"] is None
    assert state["handover_objects"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "social-web"},
                                          "spec": {"replicas": 3}}]
    # the Ingress is still wanted (mastodon_routing=ingress), the CronJob is not
    assert state["stale_objects"] == [{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x"}}]
    # v4.6.3's post-deploy migration completed: nothing to migrate
    assert state["migrate"] is False


@pytest.mark.parametrize("jobs,first,migrate", [
    ([], False, True),                                              # an upgrade: nothing migrated this version yet
    ([("social-db-migrate-pre-v4-6-3", "Complete")], False, True),  # pre done, post not yet
    ([("social-db-prepare-v4-6-3", "Complete")], False, False),     # first install of this version prepared it
    ([("social-db-migrate-post-v4-6-3", "Failed")], False, True),
    ([("social-db-migrate-post-v4-6-2", "Complete")], False, True),  # another version's Job
    ([], True, False),                                              # a first install runs db:prepare instead
])
def test_cluster_state_decides_whether_this_version_still_migrates(jobs, first, migrate):
    live = [{"metadata": {"name": name}, "status": {"conditions": [{"type": cond, "status": "True"}]}} for name, cond in jobs]
    record = {} if first else {"deployed_version": "v4.6.2"}
    state = plan.cluster_state(dict(deployments=[], record=record, jobs=live), settings())
    assert (state["first_install"], state["migrate"]) == (first, migrate)


def test_cluster_state_of_a_torn_down_instance_keeps_its_version_from_the_record():
    state = plan.cluster_state(dict(deployments=[], record={"deployed_version": "v4.5.2"}, jobs=[]),
                               settings(mastodon_version="v4.7.0"))
    assert state["first_install"] is False and state["running_version"] == "v4.5.2"
    assert "skips a minor series" in state["version_problem"]
    fresh = plan.cluster_state(dict(deployments=[], record={}, jobs=[]), settings())
    assert fresh["first_install"] is True and fresh["running_version"] == ""


def test_maintenance_jobs_follow_their_switches_days_and_schedules():
    every = dict((prefix + "_enabled", True) for dummy, prefix, dummy2, dummy3 in plan.MAINTENANCE)
    jobs = plan.maintenance_jobs(settings(mastodon_media_remove_keep_interacted=True, mastodon_statuses_remove_days="120", **every))
    assert [(j["name"], j["schedule"], " ".join(j["command"])) for j in jobs] == [
        ("media-remove", "0 3 * * 0", "bin/tootctl media remove --days 7 --keep-interacted"),
        ("media-prune-profiles", "30 3 * * 0", "bin/tootctl media remove --prune-profiles --days 30"),
        ("preview-cards-remove", "0 4 * * 0", "bin/tootctl preview_cards remove --days 30"),
        ("media-remove-orphans", "30 4 1 * *", "bin/tootctl media remove-orphans"),
        ("statuses-remove", "0 5 * * 0", "bin/tootctl statuses remove --days 120"),
        ("accounts-prune", "30 5 * * 0", "bin/tootctl accounts prune")]
    assert [r for r in plan.managed_set(settings(**every)) if r.startswith("CronJob/")] == sorted(
        "CronJob/social-" + j["name"] for j in jobs)
    assert plan.maintenance_jobs(settings()) == []
    problems = plan.settings(settings(mastodon_version="v4.5.2", mastodon_media_remove_enabled=True,
                                      mastodon_media_remove_keep_interacted=True))["problems"]
    assert [p.split(":")[0] for p in problems] == ["mastodon_media_remove_keep_interacted"]


def test_the_asset_upload_is_managed_and_its_credentials_checked():
    on = settings(mastodon_asset_upload_enabled=True)
    assert "ConfigMap/social-mastodon-asset-upload" in plan.managed_set(on)
    assert "ConfigMap/social-mastodon-asset-upload" not in plan.managed_set(settings())
    assert plan.settings(on)["asset_upload_job_name"] == "social-asset-upload-v4-6-3"
    bad = plan.settings(settings(mastodon_asset_upload_enabled=True, mastodon_asset_upload_credentials_secret={"name": "keys"}))
    assert any(p.startswith("mastodon_asset_upload_credentials_secret: ") for p in bad["problems"])
    good = plan.settings(settings(mastodon_asset_upload_enabled=True, mastodon_asset_upload_credentials_secret={
        "name": "keys", "access_key": "id", "secret_key": "secret"}))
    assert not any("asset_upload" in p for p in good["problems"])
    # turned off after a run with it on: the ConfigMap of the last run is deleted
    state = plan.cluster_state(dict(deployments=[dict(metadata=dict(name="social-web", annotations={
        plan.MANAGED_ANNOTATION: "ConfigMap/social-mastodon-asset-upload"}))]), settings())
    assert state["stale_objects"] == [dict(apiVersion="v1", kind="ConfigMap", metadata=dict(name="social-mastodon-asset-upload"))]
