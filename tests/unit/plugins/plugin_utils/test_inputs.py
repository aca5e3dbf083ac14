# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugin_utils.inputs: the semantic checks preflight runs on the merged input.

The merge itself (role defaults + inventory, templated) is exercised end to end by
tests/integration/test_bad_inputs.py, which runs the real site.yml against the lab."""

import pytest

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import inputs

GOOD = dict(
    mastodon_local_domain="social.example.org", mastodon_instance="social", mastodon_namespace="social",
    mastodon_version="v4.6.3", mastodon_version_guard=True, postgresql_mode="incluster", redis_mode="incluster",
    elasticsearch_mode="incluster", minio_mode="incluster", elasticsearch_enabled=True, mastodon_s3_enabled=True,
    postgresql_image="postgres:17.7-alpine", redis_image="redis:7.4.10-alpine",
    mastodon_sidekiq_workers=[{"name": "default", "queues": ["default", "scheduler"], "replicas": 1}],
)


def problems(**changes):
    v = dict(GOOD)
    v.update(changes)
    return inputs.semantic_problems(v)


def test_good_input_has_no_problem():
    assert problems() == []


CASES = [
    (dict(mastodon_local_domain=None), "mastodon_local_domain"),
    (dict(mastodon_local_domain="Social.Example.org"), "mastodon_local_domain"),
    (dict(mastodon_local_domain="localhost"), "mastodon_local_domain"),
    (dict(mastodon_web_domain="www_example.org"), "mastodon_web_domain"),
    (dict(mastodon_alternate_domains=["ok.example.org", "bad domain"]), "mastodon_alternate_domains"),
    (dict(mastodon_instance="Social"), "mastodon_instance"),
    (dict(mastodon_instance="a" * 41), "mastodon_instance"),
    (dict(mastodon_namespace="my_ns"), "mastodon_namespace"),
    (dict(mastodon_version=None), "mastodon_version"),
    (dict(mastodon_version="4.6.3"), "mastodon_version"),
    (dict(mastodon_version="v4.6.3+build.5"), "mastodon_version"),
    (dict(mastodon_version="latest"), "mastodon_version"),
    (dict(mastodon_version="bad tag!", mastodon_version_guard=False), "mastodon_version"),
    (dict(mastodon_instance="a" * 38 + "zz", mastodon_version="v4.6.3-rc.1"), "mastodon_instance"),
    (dict(postgresql_mode="managed"), "postgresql_mode"),
    (dict(postgresql_mode="external"), "postgresql_external_host"),
    (dict(redis_mode="external"), "redis_external_host"),
    (dict(elasticsearch_mode="external"), "elasticsearch_external_host"),
    (dict(elasticsearch_enabled=False, mastodon_search_reindex=True), "mastodon_search_reindex"),
    (dict(minio_mode="external"), "minio_external_endpoint"),
    (dict(minio_mode="external", minio_external_endpoint="https://s3.example.org/media"), "minio_external_endpoint"),
    (dict(minio_mode="external", minio_external_endpoint="s3.example.org"), "minio_external_endpoint"),
    (dict(minio_mode="external", minio_external_endpoint="https://k:s@s3.example.org"), "minio_external_endpoint"),
    (dict(minio_mode="external", minio_external_endpoint="https://s3.example.org:99999"), "minio_external_endpoint"),
    (dict(postgresql_image="postgres:13.20"), "postgresql_image"),
    (dict(redis_image="redis:6.2.14-alpine"), "redis_image"),
    (dict(preflight_postgresql_min_version="12"), "preflight_postgresql_min_version"),
    (dict(mastodon_sidekiq_workers=[{"name": "a", "queues": ["default"]}]), "mastodon_sidekiq_workers"),
    (dict(mastodon_sidekiq_workers=[{"name": "a", "queues": ["scheduler"], "replicas": 2}]), "mastodon_sidekiq_workers"),
    (dict(mastodon_sidekiq_workers=[{"name": "a", "queues": ["scheduler"], "hpa": {"enabled": True}}]),
     "mastodon_sidekiq_workers"),
    (dict(mastodon_sidekiq_workers=[{"name": "a", "queues": ["scheduler"]}, {"name": "a", "queues": ["x"]}]),
     "mastodon_sidekiq_workers"),
    (dict(mastodon_smtp_server="smtp.example.org", mastodon_smtp_login="me"), "mastodon_smtp_password"),
    (dict(mastodon_k8s_kubeconfig={"apiVersion": "v1", "clusters": []}), "mastodon_k8s_kubeconfig"),
]


@pytest.mark.parametrize("changes,variable", CASES, ids=[c[1] + "-" + str(i) for i, c in enumerate(CASES)])
def test_each_bad_input_is_one_line_naming_the_variable(changes, variable):
    found = problems(**changes)
    assert found, "no problem reported for %r" % changes
    assert any(p.startswith(variable + ":") for p in found), found
    assert all("\n" not in p for p in found)


def test_old_mastodon_keeps_the_old_floors():
    assert problems(mastodon_version="v4.4.8", postgresql_image="postgres:13.20", redis_image="redis:6.2.14") == []
    assert inputs.min_server_versions("v4.4.8") == ("13", "6.2")
    assert inputs.min_server_versions("v4.5.0") == ("14", "7.0")
    assert inputs.min_server_versions("custom-tag") == ("14", "7.0")


def test_secret_values_never_reach_a_problem_line():
    line = inputs.spec_error_line("value of mastodon_smtp_password must be one of: a, b, got: hunter2",
                                  ["mastodon_smtp_password"], {"mastodon_smtp_password": {"type": "str"}},
                                  {"mastodon_smtp_password": "mastodon"})
    assert "hunter2" not in line and line.startswith("mastodon_smtp_password:")
    line = inputs.spec_error_line("argument 'redis_password' is of type str and we were unable to convert to int: 'hunter2'",
                                  ["redis_password"], {"redis_password": {"type": "int", "no_log": True}}, {})
    assert "hunter2" not in line


def test_spec_error_is_readable():
    specs = {"provision_s3_api": {"type": "str", "choices": ["auto", "minio", "ceph"]}}
    line = inputs.spec_error_line("value of provision_s3_api must be one of: auto, minio, ceph, got: foo",
                                  ["provision_s3_api", "provision_s3"], specs, {"provision_s3_api": "provision"})
    assert line == ("provision_s3_api: is 'foo', not one of auto, minio, ceph (provision role); "
                    "set it to one of auto, minio, ceph, or remove it to use the default")


def test_shared_database_role_is_refused():
    me = dict(instance="a", mode="external", host="db.example.org", port=5432, db_user="mastodon", db_name="a")
    other = dict(instance="b", mode="external", host="DB.example.org", port="5432", db_user="mastodon", db_name="b")
    found = inputs.check_shared_database(me, [other])
    assert len(found) == 1 and found[0].startswith("mastodon_db_user:") and "instance b" in found[0]
    assert inputs.check_shared_database(me, [dict(other, port=5433)]) == []
    assert inputs.check_shared_database(dict(me, mode="incluster"), [other]) == []


def test_routing_requirements():
    assert inputs.check_routing(dict(mastodon_routing="httproute"))[0]["kind"] == "HTTPRoute"
    req = inputs.check_routing(dict(mastodon_routing="ingress", mastodon_ingress_class_name="nginx",
                                    mastodon_ingress_cluster_issuer="le"))
    assert [(r["kind"], r["name"]) for r in req] == [("IngressClass", "nginx"), ("ClusterIssuer", "le")]
    assert inputs.check_routing(dict(mastodon_routing="none")) == []


def test_quantities_of_the_in_cluster_services_are_checked_before_anything_changes():
    problems = inputs.check_quantities({"redis_cpu_request": "fast", "postgresql_storage_size": "10G",
                                        "postgresql_pgbouncer_default_pool_size": 20, "minio_memory_limit": "2 gigs"})
    assert problems == ["minio_memory_limit must be a size such as 512M, 1G or 1536M (binary units), not '2 gigs'",
                        "redis_cpu_request must be a CPU quantity such as 250m, 0.5 or 2, not 'fast'"]
    assert inputs.check_quantities in inputs.CHECKS


def test_the_optional_mastodon_settings_are_checked():
    from ansible_collections.fediverse.mastodon.plugins.plugin_utils import inputs as i
    assert i.check_features({}) == []
    problems = i.check_features(dict(
        mastodon_redis_sentinel_master="m", mastodon_redis_sentinels=[],
        mastodon_redis_cache_sentinel_master="c", mastodon_redis_cache_sentinels=["bad host!"],
        mastodon_cdn_host="assets.example.org", mastodon_libre_translate_endpoint="https://t.example",
        mastodon_experimental_features=["fasp", "Bad-Name"],
        mastodon_sidekiq_workers=[{"name": "w", "queues": ["default", "scheduler"]}]))
    assert [p.split(":")[0] for p in problems] == [
        "mastodon_redis_sentinel_master", "mastodon_redis_cache_sentinels", "mastodon_cdn_host",
        "mastodon_experimental_features", "mastodon_experimental_features"]
    assert "fasp needs a sidekiq worker on the fasp queue" in problems[-1]
    tls = i.check_features(dict(redis_mode="external", redis_external_tls=True, mastodon_redis_sentinel_master="m",
                                mastodon_redis_sentinels=["s:26379"]))
    assert len(tls) == 1 and "ignores Sentinel" in tls[0]
    assert i.check_features(dict(mastodon_experimental_features=["fasp"],
                                 mastodon_sidekiq_workers=[{"name": "w", "queues": ["fasp,2", "scheduler"]}])) == []


def test_component_overrides_are_checked():
    from ansible_collections.fediverse.mastodon.plugins.plugin_utils import inputs as i
    assert i.check_overrides({"mastodon_web_overrides": {"image": "ghcr.io/x/mastodon:v4.6.3", "extra_env": {"A": "1"}}}) == []
    problems = i.check_overrides({
        "mastodon_web_overrides": {"imgae": "x"},
        "mastodon_jobs_overrides": {"image": "no tag here", "extra_env": ["A=1"]},
        "mastodon_sidekiq_workers": [{"name": "w", "queues": ["scheduler"], "overrides": {"pod_labels": {"app.kubernetes.io/name": "x"}}}]})
    assert problems == [
        "mastodon_web_overrides: unknown key imgae; the keys are " + ", ".join(i.OVERRIDE_KEYS),
        "mastodon_jobs_overrides: extra_env must be a dict",
        "mastodon_jobs_overrides: image 'no tag here' must be repository:tag or repository@sha256:digest",
        "mastodon_sidekiq_workers[w].overrides: pod_labels may not set app.kubernetes.io/name (the role's selectors use them)"]
