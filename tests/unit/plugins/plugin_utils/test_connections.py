# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection facts of the backing services (plugin_utils/connections.py)."""

import pytest

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import connections as c

PG = dict(postgresql_mode="incluster", postgresql_pgbouncer=False, postgresql_pgbouncer_port=6432, postgresql_namespace="ns",
          postgresql__host="i-postgresql.ns.svc", postgresql__pgbouncer_host="i-pgbouncer.ns.svc", postgresql__port=5432,
          postgresql__name="i-postgresql", postgresql__secret_name="i-postgresql", postgresql__secret_key="postgres-password",
          postgresql_external_host=None, postgresql_external_port=5432, postgresql_external_direct_host=None,
          postgresql_external_direct_port=None, postgresql_external_pooled=False, postgresql_external_sslmode="require",
          postgresql_external_admin_user="postgres", postgresql_external_admin_secret={"name": "pg-ext", "key": "pw"})


def test_postgresql_in_cluster_goes_through_pgbouncer_when_it_runs_and_migrates_direct():
    direct, problem = c.postgresql(PG)
    assert problem is None and (direct["host"], direct["port"], direct["pooled"]) == ("i-postgresql.ns.svc", 5432, False)
    pooled = c.postgresql(dict(PG, postgresql_pgbouncer=True))[0]
    assert (pooled["host"], pooled["port"], pooled["direct_host"], pooled["direct_port"]) == ("i-pgbouncer.ns.svc", 6432, "i-postgresql.ns.svc", 5432)
    assert pooled["port_forward"] == dict(namespace="ns", service="i-postgresql", port=5432)
    assert pooled["admin_secret"] == dict(name="i-postgresql", key="postgres-password")


def test_postgresql_external_pooled_needs_the_direct_host():
    ext = dict(PG, postgresql_mode="external", postgresql_external_host="pool.example.org", postgresql_external_port="6432",
               postgresql_external_pooled=True)
    connection, problem = c.postgresql(ext)
    assert connection is None and "postgresql_external_direct_host" in problem
    connection, problem = c.postgresql(dict(ext, postgresql_external_direct_host="db.example.org"))
    assert problem is None
    assert (connection["host"], connection["port"], connection["direct_host"], connection["direct_port"]) == (
        "pool.example.org", 6432, "db.example.org", 6432)
    assert connection["admin_secret"] == {"name": "pg-ext", "key": "pw"} and connection["port_forward"] is None
    assert "postgresql_external_host" in c.postgresql(dict(PG, postgresql_mode="external"))[1]


def test_redis_cache_instance_only_when_enabled():
    v = dict(redis_mode="incluster", redis_cache=False, redis__host="i-redis.ns.svc", redis__cache_host="i-redis-cache.ns.svc",
             redis__secret_name="i-redis", redis__secret_key="redis-password", redis__cache_secret_key="cache-password")
    assert c.redis(v)[0]["cache"] is None
    cache = c.redis(dict(v, redis_cache=True))[0]["cache"]
    assert cache == dict(host="i-redis-cache.ns.svc", port=6379, tls=False, password_secret=dict(name="i-redis", key="cache-password"))
    assert "redis_external_host" in c.redis(dict(v, redis_mode="external", redis_external_host=""))[1]


def test_search_disabled_has_no_address():
    v = dict(elasticsearch_enabled=False, elasticsearch_mode="incluster", elasticsearch_flavor="opensearch")
    assert c.elasticsearch(v)[0] == dict(enabled=False, mode="incluster", flavor="opensearch", scheme=None, host=None, port=None,
                                         user=None, password_secret=None, ca_secret=None)


def test_the_in_cluster_opensearch_is_https_with_its_own_ca():
    v = dict(elasticsearch_enabled=True, elasticsearch_mode="incluster", elasticsearch_flavor="opensearch",
             elasticsearch__host="i-elasticsearch.ns.svc", elasticsearch_mastodon_user="mastodon",
             elasticsearch__secret_name="i-elasticsearch", elasticsearch__mastodon_key="mastodon-password",
             elasticsearch__tls_secret_name="i-elasticsearch-tls")
    fact = c.elasticsearch(v)[0]
    assert fact["scheme"] == "https" and fact["ca_secret"] == dict(name="i-elasticsearch-tls", key="ca.crt")
    es = c.elasticsearch(dict(v, elasticsearch_flavor="elasticsearch"))[0]
    assert es["scheme"] == "http" and es["ca_secret"] is None


@pytest.mark.parametrize("endpoint,ok", [("https://s3.example.org", True), ("http://127.0.0.1:9000/x", True),
                                         ("s3.example.org", False), ("ftp://s3.example.org", False), (None, False)])
def test_minio_external_endpoint_must_be_an_http_url(endpoint, ok):
    v = dict(minio_mode="external", minio_external_endpoint=endpoint, minio_region="eu", minio_external_alias_host=None,
             minio_external_admin_secret={"name": "s3", "access_key": "a", "secret_key": "s"}, minio_external_api="auto")
    connection, problem = c.minio(v)
    assert (problem is None) is ok
    if ok:
        assert connection["admin_secret"] == {"name": "s3", "access_key": "a", "secret_key": "s"} and connection["api"] == "auto"


def test_settings_problems_name_each_variable():
    good = dict(postgresql_instance="social", postgresql_namespace="social", postgresql_wait_timeout=600)
    assert c.settings_problems("postgresql", good) == []
    bad = c.settings_problems("postgresql", dict(postgresql_instance="Social_1", postgresql_namespace="x" * 64,
                                                 postgresql_wait_timeout=0))
    assert [p.split(":")[0] for p in bad] == ["postgresql_instance", "postgresql_namespace", "postgresql_wait_timeout"]
    es = dict(elasticsearch_instance="s", elasticsearch_namespace="s", elasticsearch_wait_timeout=1, elasticsearch_heap_percent=95)
    assert [p.split(":")[0] for p in c.settings_problems("elasticsearch", es)] == ["elasticsearch_heap_percent"]
    s3 = dict(minio_instance="s", minio_namespace="s", minio_wait_timeout=1, minio_ingress_enabled=True, minio_ingress_host="S3.Example")
    assert [p.split(":")[0] for p in c.settings_problems("minio", s3)] == ["minio_ingress_host"]
    assert c.settings_problems("minio", dict(s3, minio_ingress_host="s3.example.org")) == []


def test_the_in_cluster_minio_is_warned_about_on_every_run():
    assert c.warnings("minio", dict(minio_mode="incluster", minio_s3_server="minio")) == [c.MINIO_ARCHIVED]
    assert c.warnings("minio", dict(minio_mode="incluster", minio_s3_server="seaweedfs")) == []
    assert "no more security fixes" in c.MINIO_ARCHIVED and "minio_mode: external" in c.MINIO_ARCHIVED
    assert c.warnings("minio", dict(minio_mode="external")) == []
    assert c.warnings("postgresql", dict(postgresql_mode="incluster")) == []


def test_search_generates_tls_only_for_opensearch_without_the_operators_secret():
    pw, tls = {"name": "pw"}, {"name": "tls"}
    assert c.search_generated_secrets(pw, tls, "opensearch", None) == [pw, tls]
    assert c.search_generated_secrets(pw, tls, "opensearch", "mine") == [pw]
    assert c.search_generated_secrets(pw, tls, "elasticsearch", None) == [pw]
    assert (c.s3_port("seaweedfs"), c.s3_port("minio")) == (8333, 9000)


def test_the_in_cluster_s3_server_decides_the_user_api_and_the_port():
    base = dict(minio_mode="incluster", minio_region="us-east-1", minio__secret_name="s-seaweedfs", minio__user_key="root-user",
                minio__password_key="root-password", minio_namespace="s", minio__name="s-seaweedfs",
                minio__endpoint="http://s-seaweedfs.s.svc:8333", minio__port="8333", minio_s3_server="seaweedfs")
    conn, problem = c.minio(base)
    assert problem is None and conn["api"] == "seaweedfs", conn
    assert conn["port_forward"] == dict(namespace="s", service="s-seaweedfs", port=8333)
    conn, dummy = c.minio(dict(base, minio_s3_server="minio", minio__name="s-minio", minio__port="9000"))
    assert conn["api"] == "minio" and conn["port_forward"]["port"] == 9000
