# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What preflight asks of the cluster and of the external services, worked out from the input.

Pure functions over plain data, so pytest covers them without Ansible or a cluster. The action
plugin ``preflight_check`` calls them with:

- ``v``: the merged input of every role (``role_inputs.RoleInputs``: role defaults, then the
  inventory, extra vars and facts), variable name -> value;
- ``opts``: the preflight role's own settings (``preflight_*``), templated.

Secrets: a credential the operator vaulted (``preflight_*_password``, ``preflight_s3_*_key``,
``mastodon_smtp_password``) goes into the endpoint checks as a value, because that is where it
is used; every other credential goes as a reference to its Secret, which ``endpoint_check``
reads itself. Problem lines and the report never hold a value.
"""

from __future__ import annotations

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import inputs
from ansible_collections.fediverse.mastodon.plugins.plugin_utils import mastodon_plan

VERSION_ANNOTATION = "mastodon.fediverse/version"


def _mode(v, service):
    return v.get(service + "_mode") or "incluster"


def storage_classes(v):
    """The StorageClasses the in-cluster services need, for cluster_check: one entry per class
    name (None = the default class), with the variables that ask for it, in a stable order."""
    s3 = inputs.as_bool(v.get("mastodon_s3_enabled", True))
    wanted = [
        ("postgresql_storage_class", _mode(v, "postgresql") == "incluster"),
        ("redis_storage_class", _mode(v, "redis") == "incluster"),
        ("elasticsearch_storage_class", inputs.as_bool(v.get("elasticsearch_enabled", True)) and _mode(v, "elasticsearch") == "incluster"),
        ("minio_storage_class", s3 and _mode(v, "minio") == "incluster"),
        ("mastodon_system_pvc_storage_class", not s3 and inputs.as_bool(v.get("mastodon_system_pvc_create", True))),
    ]
    by_name = {}
    for variable, needed in wanted:
        if needed:
            by_name.setdefault(v.get(variable) or None, []).append(variable)
    return [dict(name=name, variables=variables) for name, variables in by_name.items()]


def running_version(deployment):
    """The Mastodon version a web Deployment (cluster_check's ``deployments`` entry) runs: its
    version annotation, else the tag of its web image; '' when there is none."""
    deployment = deployment or {}
    annotated = (deployment.get("annotations") or {}).get(VERSION_ANNOTATION)
    if annotated:
        return annotated
    image = (deployment.get("images") or {}).get("web") or ""
    return image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""


def version_problems(v, running):
    """The version guard against the running web Deployment: the same rule (and the same parser)
    the mastodon role applies when it weighs the version change."""
    if not running:
        return []
    problem = mastodon_plan.version_change(running, v.get("mastodon_version"), v)[0]
    return [problem] if problem else []


def services_to_check(v):
    """service -> True when it is external (or SMTP) and set, so preflight logs in to it."""
    return dict(
        postgresql=_mode(v, "postgresql") == "external" and bool(v.get("postgresql_external_host")),
        redis=_mode(v, "redis") == "external" and bool(v.get("redis_external_host")),
        s3=(inputs.as_bool(v.get("mastodon_s3_enabled", True)) and _mode(v, "minio") == "external"
            and bool(v.get("minio_external_endpoint"))),
        smtp=bool(v.get("mastodon_smtp_server")) and (v.get("mastodon_smtp_delivery_method") or "smtp") == "smtp",
        search=(inputs.as_bool(v.get("elasticsearch_enabled", True)) and _mode(v, "elasticsearch") == "external"
                and bool(v.get("elasticsearch_external_host"))),
    )


def _in_secret(variable, namespace, name, key):
    return "%s (Secret %s/%s, key %s)" % (variable, namespace, name, key)


def _int(value, default):
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _postgresql(v, opts, namespace, instance, min_version, timeout):
    secret = v.get("postgresql_external_admin_secret") or dict(name=instance + "-postgresql-external", key="postgres-password")
    vaulted = opts.get("preflight_postgresql_admin_password")
    if vaulted is not None:
        cred, password_variable = dict(password=vaulted), "preflight_postgresql_admin_password"
    else:
        cred = dict(password_secret=dict(secret))
        password_variable = _in_secret("postgresql_external_admin_secret", namespace, secret.get("name"), secret.get("key"))
    direct = bool(v.get("postgresql_external_direct_host"))
    check = dict(
        host=v.get("postgresql_external_direct_host") or v.get("postgresql_external_host"),
        port=_int(v.get("postgresql_external_direct_port"), 0) or _int(v.get("postgresql_external_port"), 5432),
        user=v.get("postgresql_external_admin_user") or "postgres",
        sslmode=v.get("postgresql_external_sslmode") or "prefer",
        min_version=min_version, timeout=timeout,
        variables=dict(
            host="postgresql_external_direct_host" if direct else "postgresql_external_host",
            port="postgresql_external_direct_port" if v.get("postgresql_external_direct_port") else "postgresql_external_port",
            user="postgresql_external_admin_user", password=password_variable, sslmode="postgresql_external_sslmode",
            database="postgresql_external_admin_user (its database postgres)", min_version="preflight_postgresql_min_version"))
    check.update(cred)
    return check


def _redis(v, opts, namespace, min_version, timeout):
    secret = v.get("redis_external_password_secret") or None
    vaulted = opts.get("preflight_redis_password")
    if vaulted is not None:
        cred, password_variable = dict(password=vaulted), "preflight_redis_password"
    elif secret:
        cred = dict(password_secret=dict(secret))
        password_variable = _in_secret("redis_external_password_secret", namespace, secret.get("name"), secret.get("key"))
    else:
        cred, password_variable = {}, "preflight_redis_password"
    check = dict(
        host=v.get("redis_external_host"), port=_int(v.get("redis_external_port"), 6379),
        username=opts.get("preflight_redis_username") or v.get("redis_external_user"),
        tls=inputs.as_bool(v.get("redis_external_tls")), min_version=min_version, timeout=timeout,
        variables=dict(host="redis_external_host", port="redis_external_port", tls="redis_external_tls",
                       username="preflight_redis_username" if opts.get("preflight_redis_username") else "redis_external_user",
                       password=password_variable))
    check.update(cred)
    return check


def _s3(v, opts, namespace, instance, timeout):
    secret = v.get("minio_external_admin_secret") or dict(name=instance + "-s3-external", access_key="access-key", secret_key="secret-key")
    check = dict(
        endpoint=v.get("minio_external_endpoint"), region=v.get("minio_region") or "us-east-1",
        bucket=opts.get("preflight_s3_bucket"), create_bucket=inputs.as_bool(opts.get("preflight_s3_create_bucket", True)),
        timeout=timeout,
        variables=dict(endpoint="minio_external_endpoint", region="minio_region",
                       bucket="mastodon_s3_bucket (preflight_s3_bucket)", create_bucket="preflight_s3_create_bucket"))
    for part in ("access_key", "secret_key"):
        vaulted = opts.get("preflight_s3_" + part)
        if vaulted is not None:
            check[part] = vaulted
            check["variables"][part] = "preflight_s3_" + part
        else:
            check[part + "_secret"] = dict(name=secret.get("name"), key=secret.get(part))
            check["variables"][part] = _in_secret("minio_external_admin_secret", namespace, secret.get("name"), secret.get(part))
    return check


def _smtp(v, opts, timeout):
    refs = v.get("mastodon_secret_refs") or {}
    tls = inputs.as_bool(v.get("mastodon_smtp_tls")) or inputs.as_bool(v.get("mastodon_smtp_ssl"))
    security = "tls" if tls else {"always": "starttls", "never": "none"}.get(v.get("mastodon_smtp_enable_starttls") or "auto", "auto")
    cred = {}
    if refs.get("SMTP_LOGIN"):
        cred["login_secret"] = refs["SMTP_LOGIN"]
    elif v.get("mastodon_smtp_login"):
        cred["user"] = v["mastodon_smtp_login"]
    if refs.get("SMTP_PASSWORD"):
        cred["password_secret"] = refs["SMTP_PASSWORD"]
    elif v.get("mastodon_smtp_password"):
        cred["password"] = v["mastodon_smtp_password"]
    auth_method = v.get("mastodon_smtp_auth_method") or "plain"
    check = dict(
        host=v.get("mastodon_smtp_server"), port=_int(v.get("mastodon_smtp_port"), 587), security=security,
        auth_method={"login": "login", "cram_md5": "cram_md5"}.get(auth_method, "plain"),
        helo_name=v.get("mastodon_smtp_domain") or None,
        validate_certs=(v.get("mastodon_smtp_openssl_verify_mode") or "peer") != "none",
        ca_cert=opts.get("preflight_smtp_ca_cert"), timeout=timeout,
        variables=dict(host="mastodon_smtp_server", port="mastodon_smtp_port",
                       security="mastodon_smtp_tls" if tls else "mastodon_smtp_enable_starttls",
                       user="mastodon_secret_refs.SMTP_LOGIN" if "SMTP_LOGIN" in refs else "mastodon_smtp_login",
                       password="mastodon_secret_refs.SMTP_PASSWORD" if "SMTP_PASSWORD" in refs else "mastodon_smtp_password",
                       auth_method="mastodon_smtp_auth_method", ca_cert="preflight_smtp_ca_cert",
                       validate_certs="mastodon_smtp_openssl_verify_mode"))
    if auth_method != "none" and ("user" in cred or "login_secret" in cred):
        check.update(cred)
    return check


def _search(v, opts, namespace, timeout):
    check = dict(
        host=v.get("elasticsearch_external_host"), port=_int(v.get("elasticsearch_external_port"), 9200),
        scheme=v.get("elasticsearch_external_scheme") or "https", ca_cert=opts.get("preflight_search_ca_cert"), timeout=timeout,
        variables=dict(host="elasticsearch_external_host", port="elasticsearch_external_port", scheme="elasticsearch_external_scheme",
                       user="elasticsearch_external_user", password="elasticsearch_external_password_secret",
                       ca_cert="preflight_search_ca_cert", validate_certs="preflight_search_ca_cert"))
    secret = v.get("elasticsearch_external_password_secret") or None
    if v.get("elasticsearch_external_user"):
        check["user"] = v["elasticsearch_external_user"]
    if secret:
        check["password_secret"] = dict(name=secret.get("name"), key=secret.get("key"))
        check["variables"]["password"] = _in_secret("elasticsearch_external_password_secret", namespace,
                                                    secret.get("name"), secret.get("key"))
    return check


def endpoint_checks(v, opts, min_versions):
    """The ``checks`` option of endpoint_check: one section per external service (None when the
    service is in-cluster or not set). ``min_versions`` = (PostgreSQL, Redis) minimums."""
    services = services_to_check(v)
    namespace, instance = opts["preflight_namespace"], opts["preflight_instance"]
    timeout = _int(opts.get("preflight_endpoint_timeout"), 10)
    return dict(
        postgresql=_postgresql(v, opts, namespace, instance, min_versions[0], timeout) if services["postgresql"] else None,
        redis=_redis(v, opts, namespace, min_versions[1], timeout) if services["redis"] else None,
        s3=_s3(v, opts, namespace, instance, timeout) if services["s3"] else None,
        smtp=_smtp(v, opts, timeout) if services["smtp"] else None,
        search=_search(v, opts, namespace, timeout) if services["search"] else None,
    )


def failure_message(problems):
    """The one message preflight stops with: every problem, each naming the variable to fix."""
    return ("Preflight found %d problem(s); nothing was changed. Fix these variables:\n" % len(problems)
            + "\n".join("- " + p for p in problems))
