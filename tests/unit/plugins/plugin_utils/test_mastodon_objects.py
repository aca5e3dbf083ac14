# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugin_utils/mastodon_objects.py: the container and pod parts every Mastodon pod shares."""

from __future__ import annotations

import copy

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import mastodon_objects as mo

SETTINGS = dict(
    env={"refs": [{"name": "DB_PASS", "secret": "db", "key": "password"}], "computed": {"DATABASE_URL": "postgres://$(DB_PASS)@db"}},
    image_pull_policy="IfNotPresent", image_pull_secrets=[], extra_env_from=[], container_security_context={"runAsNonRoot": True},
    pod_security_context={"runAsUser": 991}, service_account_name="social-mastodon", extra_volumes=[], extra_volume_mounts=[],
    host_aliases=[], s3_enabled=True, system_pvc_name="social-system", elasticsearch_connection={"enabled": False},
    elasticsearch_ca_secret=None,
)
SPEC = dict(name="web", image="mastodon:v4.6.3", command=["puma"], env_name="social-env", env={"PORT": 3000, "FLAG": True, "GONE": None},
            resources={"requests": {"cpu": "250m"}}, with_volumes=True)


def settings(**change):
    s = copy.deepcopy(SETTINGS)
    s.update(change)
    return s


def test_a_container_with_s3_has_no_volume_and_its_env_in_order():
    c = mo.container(SPEC, settings())
    assert c["env"] == [{"name": "DB_PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                        {"name": "DATABASE_URL", "value": "postgres://$(DB_PASS)@db"},
                        {"name": "PORT", "value": "3000"}, {"name": "FLAG", "value": "true"}]
    assert c["envFrom"] == [{"configMapRef": {"name": "social-env"}}, {"secretRef": {"name": "social-env"}}]
    assert "volumeMounts" not in c and "ports" not in c and c["resources"] == {"requests": {"cpu": "250m"}}


def test_volumes_follow_s3_and_the_search_ca_only_where_asked():
    s = settings(s3_enabled="false", elasticsearch_connection={"enabled": True}, elasticsearch_ca_secret={"name": "ca", "key": "c"},
                 extra_volumes=[{"name": "x", "emptyDir": {}}], extra_volume_mounts=[{"name": "x", "mountPath": "/x"}])
    c = mo.container(SPEC, s)
    assert [m["name"] for m in c["volumeMounts"]] == ["system", "es-ca", "x"]
    pod = mo.pod_spec({"containers": [c], "with_volumes": True}, s)
    assert pod["volumes"][0] == {"name": "system", "persistentVolumeClaim": {"claimName": "social-system"}}
    assert pod["volumes"][1]["secret"] == {"secretName": "ca", "defaultMode": 420, "items": [{"key": "c", "path": "ca.crt"}]}
    # streaming mounts neither the media volume nor the CA, but the operator's extra ones
    bare = mo.container(dict(SPEC, with_volumes=False), s)
    assert [m["name"] for m in bare["volumeMounts"]] == ["x"]
    assert [v["name"] for v in mo.pod_spec({"containers": [bare]}, s)["volumes"]] == ["x"]


def test_es_ca_file_is_set_exactly_when_the_ca_is_mounted():
    for change in ({}, dict(elasticsearch_connection={"enabled": True}),
                   dict(elasticsearch_ca_secret={"name": "ca", "key": "c"}),
                   dict(elasticsearch_connection={"enabled": True}, elasticsearch_ca_secret={"name": "ca", "key": "c"}),
                   dict(elasticsearch_connection={"enabled": True, "ca_secret": {"name": "os-tls", "key": "ca.crt"}})):
        s = settings(**change)
        mounted = [m["mountPath"] for m in mo.container(SPEC, s).get("volumeMounts", []) if m["name"] == "es-ca"]
        assert mo.es_ca_file(s) == (mounted[0] + "/ca.crt" if mounted else None), change
    assert mo.es_ca_file(settings(elasticsearch_connection={"enabled": "true", "ca_secret": {"name": "t", "key": "ca.crt"}})) \
        == "/opt/mastodon/es-ca/ca.crt"


def test_the_pod_spec_sets_only_the_fields_that_have_a_value():
    pod = mo.pod_spec({"containers": ["c"], "node_selector": {}, "tolerations": [], "affinity": {}, "spread": []}, settings())
    assert pod == {"serviceAccountName": "social-mastodon", "automountServiceAccountToken": False, "enableServiceLinks": False,
                   "securityContext": {"runAsUser": 991}, "containers": ["c"]}
    full = mo.pod_spec({"containers": ["c"], "node_selector": {"pool": "a"}, "spread": [{"maxSkew": 1}], "extra": {"restartPolicy": "Never"}},
                       settings(image_pull_secrets=["reg"], host_aliases=[{"ip": "127.0.0.1"}]))
    assert full["nodeSelector"] == {"pool": "a"} and full["topologySpreadConstraints"] == [{"maxSkew": 1}]
    assert full["restartPolicy"] == "Never" and full["imagePullSecrets"] == [{"name": "reg"}]
    assert full["hostAliases"] == [{"ip": "127.0.0.1"}]


def test_env_sections_are_all_present_and_extra_wins_over_config():
    got = mo.env_sections({"config": {"A": "1", "B": "2"}, "extra": {"B": "3"}, "secret": None, "refs": None})
    assert got == {"config": {"A": "1", "B": "3"}, "secret": {}, "refs": [], "computed": {}, "urls": []}
    assert mo.env_sections(None) == {"config": {}, "secret": {}, "refs": [], "computed": {}, "urls": []}


def test_endpoint_egress_follows_the_endpoints_each_component_uses():
    s = dict(db_connection={"mode": "external", "host": "10.1.2.3", "port": 5432, "direct_host": "10.1.2.3", "direct_port": 5432},
             redis_connection={"mode": "external", "host": "redis.data.svc.cluster.local", "port": 6379, "cache": None},
             s3_enabled=True, s3_connection={"mode": "external", "endpoint": "https://s3.eu-central-1.amazonaws.com"},
             elasticsearch_connection={"enabled": True, "mode": "external", "host": "search.example.org", "port": 9200},
             smtp_server="smtp.example.org", smtp_port=587)
    anywhere = [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]
    db = {"to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}], "ports": [{"protocol": "TCP", "port": 5432}]}
    redis = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "data"}}}],
             "ports": [{"protocol": "TCP", "port": 6379}]}
    s3 = {"to": anywhere, "ports": [{"protocol": "TCP", "port": 443}]}
    search = {"to": anywhere, "ports": [{"protocol": "TCP", "port": 9200}]}
    smtp = {"to": anywhere, "ports": [{"protocol": "TCP", "port": 587}]}
    assert mo.endpoint_egress(s, "jobs") == [db, redis, s3, search]
    assert mo.endpoint_egress(s, "streaming") == [db, redis]
    assert mo.endpoint_egress(s, "sidekiq") == [db, redis, s3, search, smtp]
    # the instance's own in-cluster services are reached through the backing-components rule
    inside = dict(s, db_connection={"mode": "incluster", "host": "social-postgresql.social.svc", "port": 5432},
                  redis_connection={"mode": "incluster", "host": "social-redis.social.svc", "port": 6379},
                  s3_connection={"mode": "incluster", "endpoint": "http://social-seaweedfs.social.svc:8333"},
                  elasticsearch_connection={"enabled": False}, smtp_server=None)
    assert mo.endpoint_egress(inside, "jobs") == []
    ipv6 = dict(inside, s3_connection={"mode": "external", "endpoint": "http://[fd00::5]:9000"})
    assert mo.endpoint_egress(ipv6, "jobs") == [{"to": [{"ipBlock": {"cidr": "fd00::5/128"}}], "ports": [{"protocol": "TCP", "port": 9000}]}]


def test_feature_env_sets_only_what_is_configured():
    assert mo.feature_env({}) == {}
    s = dict(cdn_host="https://assets.example.org", extra_media_hosts=["https://a.example", " ", "https://b.example"],
             experimental_features=["fasp", "outgoing_quotes"], libre_translate_endpoint="https://translate.example.org",
             db_replica={"host": "replica"}, db_replica_prepared_statements=False, db_replica_db_tasks=False,
             query_log_tags_enabled=True,
             redis_connection={"host": "r", "user": "mastodon"}, redis_cache_connection={"host": "c", "user": "cache"},
             redis_sidekiq_sentinel_master="mymaster", redis_sidekiq_sentinels=["s1:26379", "s2"])
    assert mo.feature_env(s) == {
        "CDN_HOST": "https://assets.example.org", "EXTRA_MEDIA_HOSTS": "https://a.example,https://b.example",
        "EXPERIMENTAL_FEATURES": "fasp,outgoing_quotes", "LIBRE_TRANSLATE_ENDPOINT": "https://translate.example.org",
        "REPLICA_PREPARED_STATEMENTS": "false", "REPLICA_DB_TASKS": "false", "QUERY_LOG_TAGS_ENABLED": "true",
        "REDIS_USER": "mastodon", "CACHE_REDIS_USER": "cache",
        "SIDEKIQ_REDIS_SENTINEL_MASTER": "mymaster", "SIDEKIQ_REDIS_SENTINELS": "s1:26379,s2"}
    # without a replica there is no REPLICA_* at all; a master without sentinels sets nothing
    assert mo.feature_env(dict(db_replica=None, db_replica_db_tasks=True, redis_sentinel_master="m")) == {}


def test_overrides_replace_image_security_and_add_env_a_workers_winning():
    ov = mo.overrides({"image": "registry.example.org/fork:v4.6.3-1", "extra_env": {"A": "1", "B": "2"},
                       "pod_labels": {"team": "ops"}, "otel_service_name_prefix": "social"},
                      {"extra_env": {"B": "3"}, "container_security_context": {"runAsNonRoot": True, "readOnlyRootFilesystem": True}})
    assert ov["image"] == "registry.example.org/fork:v4.6.3-1" and ov["pod_labels"] == {"team": "ops"}
    assert ov["extra_env"] == {"A": "1", "B": "3"} and ov["deployment_annotations"] == {}
    c = mo.container(dict(SPEC, overrides=ov), settings())
    assert c["image"] == "registry.example.org/fork:v4.6.3-1"
    assert c["securityContext"] == {"runAsNonRoot": True, "readOnlyRootFilesystem": True}
    env = dict((e["name"], e.get("value")) for e in c["env"])
    assert (env["A"], env["B"], env["OTEL_SERVICE_NAME_PREFIX"], env["PORT"]) == ("1", "3", "social", "3000")
    pod = mo.pod_spec({"containers": [c], "overrides": {"pod_security_context": {"runAsUser": 1000}}}, settings())
    assert pod["securityContext"] == {"runAsUser": 1000}
    plain = mo.container(SPEC, settings())
    assert plain["image"] == "mastodon:v4.6.3" and plain["securityContext"] == {"runAsNonRoot": True}
