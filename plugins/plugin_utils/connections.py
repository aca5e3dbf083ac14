# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection facts of the backing services (docs/conventions.md), from their settings.

Pure functions over plain data: ``v`` holds the variables of one backing role, templated as the
role sees them (defaults, then the inventory, then the role's derived names in ``vars/main.yml``).
Each function returns ``(connection, problem)``; ``problem`` is one readable line naming the
variable to fix, or None. The action plugin ``service_connections`` sets the facts.

A connection fact names where a service is and which Secret holds its credential, never a
credential itself.
"""

from __future__ import annotations

import re

from ansible_collections.fediverse.mastodon.plugins.plugin_utils.inputs import as_bool

URL_RE = re.compile(r"^https?://[^/\s]+(/.*)?$")
INSTANCE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
HOST_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# the settings every backing role checks before it does anything (argument specs cannot say these)
COMMON = ("%s_instance", "%s_namespace", "%s_wait_timeout")

# the variables each function reads (the action templates only these), besides COMMON
NAMES = dict(
    postgresql=("postgresql_mode", "postgresql_pgbouncer", "postgresql_pgbouncer_port", "postgresql_namespace",
                "postgresql__host", "postgresql__pgbouncer_host", "postgresql__port", "postgresql__name",
                "postgresql__secret_name", "postgresql__secret_key", "postgresql_external_host", "postgresql_external_port",
                "postgresql_external_direct_host", "postgresql_external_direct_port", "postgresql_external_pooled",
                "postgresql_external_sslmode", "postgresql_external_admin_user", "postgresql_external_admin_secret"),
    redis=("redis_mode", "redis_cache", "redis__host", "redis__cache_host", "redis__secret_name", "redis__secret_key",
           "redis__cache_secret_key", "redis_external_host", "redis_external_port", "redis_external_tls",
           "redis_external_password_secret", "redis_external_user", "redis_external_cache"),
    elasticsearch=("elasticsearch_enabled", "elasticsearch_mode", "elasticsearch_flavor", "elasticsearch__host",
                   "elasticsearch_mastodon_user", "elasticsearch__secret_name", "elasticsearch__mastodon_key",
                   "elasticsearch_external_scheme", "elasticsearch_external_host", "elasticsearch_external_port",
                   "elasticsearch_external_user", "elasticsearch_external_password_secret", "elasticsearch_heap_percent",
                   "elasticsearch__tls_secret_name"),
    minio=("minio_mode", "minio_s3_server", "minio__port", "minio__endpoint", "minio_region", "minio_ingress_enabled", "minio_ingress_host",
           "minio_ingress_bucket", "minio__secret_name", "minio__user_key", "minio__password_key", "minio_namespace",
           "minio__name", "minio_external_endpoint", "minio_external_alias_host", "minio_external_admin_secret",
           "minio_external_api"),
)


def settings_problems(service, v):
    """One line per setting of a backing role that its argument spec cannot check."""
    problems = []
    instance, namespace, timeout = (v.get(name % service) for name in COMMON)
    if not isinstance(instance, str) or not INSTANCE_RE.match(instance):
        problems.append("%s_instance: %r must be a DNS label of at most 40 characters (lowercase letters, digits, '-')"
                        % (service, instance))
    if not isinstance(namespace, str) or not LABEL_RE.match(namespace):
        problems.append("%s_namespace: %r must be a DNS label (lowercase letters, digits, '-', at most 63 characters)"
                        % (service, namespace))
    if _int(timeout) <= 0:
        problems.append("%s_wait_timeout: %r must be a positive number of seconds" % (service, timeout))
    if service == "elasticsearch" and not 10 <= _int(v.get("elasticsearch_heap_percent")) <= 90:
        problems.append("elasticsearch_heap_percent: %r must be between 10 and 90" % (v.get("elasticsearch_heap_percent"),))
    if service == "minio" and as_bool(v.get("minio_ingress_enabled")):
        host = v.get("minio_ingress_host")
        if not isinstance(host, str) or not HOST_RE.match(host):
            problems.append("minio_ingress_host: %r must be a lowercase host name when minio_ingress_enabled is true" % (host,))
    return problems


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _text(value):
    return isinstance(value, str) and len(value) > 0


def postgresql(v):
    if v["postgresql_mode"] == "incluster":
        pooled = as_bool(v["postgresql_pgbouncer"])
        port = _int(v["postgresql__port"])
        return dict(
            mode="incluster",
            host=v["postgresql__pgbouncer_host"] if pooled else v["postgresql__host"],
            port=_int(v["postgresql_pgbouncer_port"]) if pooled else port,
            direct_host=v["postgresql__host"], direct_port=port, pooled=pooled, sslmode="prefer", admin_user="postgres",
            admin_secret=dict(name=v["postgresql__secret_name"], key=v["postgresql__secret_key"]),
            service=v["postgresql__name"],
            port_forward=dict(namespace=v["postgresql_namespace"], service=v["postgresql__name"], port=port)), None
    pooled = as_bool(v.get("postgresql_external_pooled"))
    if not _text(v.get("postgresql_external_host")) or (pooled and not v.get("postgresql_external_direct_host")):
        return None, ("postgresql_mode=external needs postgresql_external_host (the server, or the pooler in front of it); "
                      "with postgresql_external_pooled=true also postgresql_external_direct_host (the server itself, "
                      "for migrations, which must bypass a transaction pooler).")
    secret = v.get("postgresql_external_admin_secret") or {}
    return dict(
        mode="external", host=v["postgresql_external_host"], port=_int(v.get("postgresql_external_port")),
        direct_host=v.get("postgresql_external_direct_host") or v["postgresql_external_host"],
        direct_port=_int(v.get("postgresql_external_direct_port")) or _int(v.get("postgresql_external_port")),
        pooled=pooled, sslmode=v.get("postgresql_external_sslmode"), admin_user=v.get("postgresql_external_admin_user"),
        admin_secret=dict(name=secret.get("name"), key=secret.get("key")), service=None, port_forward=None), None


def redis(v):
    if v["redis_mode"] == "incluster":
        cache = None
        if as_bool(v["redis_cache"]):
            cache = dict(host=v["redis__cache_host"], port=6379, tls=False,
                         password_secret=dict(name=v["redis__secret_name"], key=v["redis__cache_secret_key"]))
        return dict(mode="incluster", host=v["redis__host"], port=6379, tls=False,
                    password_secret=dict(name=v["redis__secret_name"], key=v["redis__secret_key"]), cache=cache), None
    if not _text(v.get("redis_external_host")):
        return None, ("redis_mode=external needs redis_external_host (and redis_external_password_secret when the server "
                      "has a password).")
    return dict(mode="external", host=v["redis_external_host"], port=_int(v.get("redis_external_port")),
                tls=as_bool(v.get("redis_external_tls")), password_secret=v.get("redis_external_password_secret"),
                user=v.get("redis_external_user") or None, cache=v.get("redis_external_cache")), None


def elasticsearch(v):
    mode, flavor = v["elasticsearch_mode"], v["elasticsearch_flavor"]
    if not as_bool(v["elasticsearch_enabled"]):
        return dict(enabled=False, mode=mode, flavor=flavor, scheme=None, host=None, port=None, user=None,
                    password_secret=None, ca_secret=None), None
    if mode == "incluster":
        # The in-cluster OpenSearch serves HTTPS with the instance's own CA (files/opensearch.yml);
        # ca_secret is where Mastodon finds that CA (ES_CA_FILE).
        opensearch = flavor == "opensearch"
        return dict(enabled=True, mode="incluster", flavor=flavor, scheme="https" if opensearch else "http",
                    host=v["elasticsearch__host"], port=9200, user=v["elasticsearch_mastodon_user"],
                    password_secret=dict(name=v["elasticsearch__secret_name"], key=v["elasticsearch__mastodon_key"]),
                    ca_secret=dict(name=v["elasticsearch__tls_secret_name"], key="ca.crt") if opensearch else None), None
    if not _text(v.get("elasticsearch_external_host")):
        return None, ("elasticsearch_mode=external needs elasticsearch_external_host (and "
                      "elasticsearch_external_password_secret when it needs a password).")
    return dict(enabled=True, mode="external", flavor=flavor, scheme=v.get("elasticsearch_external_scheme"),
                host=v["elasticsearch_external_host"], port=_int(v.get("elasticsearch_external_port")),
                user=v.get("elasticsearch_external_user"), password_secret=v.get("elasticsearch_external_password_secret"),
                ca_secret=None), None


S3_PORTS = dict(seaweedfs=8333, minio=9000)
"""The S3 port of each in-cluster server (its usual one)."""


def s3_port(server):
    return S3_PORTS[server]


def search_generated_secrets(password_secret, tls_generated, flavor, tls_secret):
    """What the elasticsearch role generates once in the cluster: the passwords always, and the
    TLS bundle only for OpenSearch when the operator names no Secret of their own."""
    return [password_secret] + ([tls_generated] if flavor == "opensearch" and not tls_secret else [])


def incluster_s3_api(v):
    """How the provisioning phase manages users on the in-cluster S3 server."""
    return "minio" if v.get("minio_s3_server") == "minio" else "seaweedfs"


def minio(v):
    if v["minio_mode"] == "incluster":
        alias = None
        if as_bool(v.get("minio_ingress_enabled")):
            alias = "%s/%s" % (v.get("minio_ingress_host"), v.get("minio_ingress_bucket"))
        return dict(mode="incluster", endpoint=v["minio__endpoint"], region=v.get("minio_region"), alias_host=alias,
                    admin_secret=dict(name=v["minio__secret_name"], access_key=v["minio__user_key"],
                                      secret_key=v["minio__password_key"]),
                    port_forward=dict(namespace=v["minio_namespace"], service=v["minio__name"], port=_int(v.get("minio__port"))),
                    api=incluster_s3_api(v)), None
    endpoint = v.get("minio_external_endpoint")
    if not _text(endpoint) or not URL_RE.match(endpoint):
        return None, ("minio_mode=external needs minio_external_endpoint, an http:// or https:// URL "
                      "(e.g. https://s3.eu-central-1.amazonaws.com).")
    secret = v.get("minio_external_admin_secret") or {}
    return dict(mode="external", endpoint=endpoint, region=v.get("minio_region"), alias_host=v.get("minio_external_alias_host"),
                admin_secret=dict(name=secret.get("name"), access_key=secret.get("access_key"), secret_key=secret.get("secret_key")),
                port_forward=None, api=v.get("minio_external_api")), None


SERVICES = dict(postgresql=postgresql, redis=redis, elasticsearch=elasticsearch, minio=minio)

MINIO_ARCHIVED = ("minio_s3_server: minio runs MinIO's community image, which gets no more security fixes (MinIO "
                  "archived its community edition in 2025); for production prefer the default in-cluster server "
                  "(minio_s3_server: seaweedfs, for a new instance) or an external S3 service (minio_mode: external). "
                  "See roles/minio/README.md.")


def warnings(service, v):
    """What an operator must be told about a backing service's settings, on every run."""
    if service == "minio" and v.get("minio_mode") == "incluster" and v.get("minio_s3_server") == "minio":
        return [MINIO_ARCHIVED]
    return []
