# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What preflight asks of the cluster and of the external services (plugin_utils/preflight_plan.py)."""

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import preflight_plan as pp

OPTS = dict(preflight_instance="social", preflight_namespace="social-ns", preflight_endpoint_timeout=7,
            preflight_postgresql_admin_password=None, preflight_redis_password=None, preflight_redis_username=None,
            preflight_s3_access_key=None, preflight_s3_secret_key=None, preflight_s3_bucket="social-media",
            preflight_s3_create_bucket=True, preflight_smtp_ca_cert=None)


def test_storage_classes_groups_the_variables_by_class_and_skips_what_is_not_in_the_cluster():
    v = dict(postgresql_mode="incluster", postgresql_storage_class="fast", redis_mode="incluster", redis_storage_class=None,
             elasticsearch_enabled=False, minio_mode="external", mastodon_s3_enabled=True)
    assert pp.storage_classes(v) == [dict(name="fast", variables=["postgresql_storage_class"]),
                                     dict(name=None, variables=["redis_storage_class"])]
    v.update(mastodon_s3_enabled=False, mastodon_system_pvc_create=True, mastodon_system_pvc_storage_class="fast")
    assert pp.storage_classes(v)[0] == dict(name="fast", variables=["postgresql_storage_class", "mastodon_system_pvc_storage_class"])


def test_running_version_prefers_the_annotation_then_the_image_tag():
    assert pp.running_version(dict(annotations={"mastodon.fediverse/version": "v4.5.1"}, images={"web": "x:v4.4.0"})) == "v4.5.1"
    assert pp.running_version(dict(images={"web": "registry:5000/mastodon:v4.4.0"})) == "v4.4.0"
    assert pp.running_version(dict(images={"web": "registry:5000/mastodon"})) == ""
    assert pp.running_version(None) == ""


def test_version_problems_refuse_a_skipped_minor_series_and_a_downgrade():
    v = dict(mastodon_instance="social", mastodon_version="v4.6.3")
    assert "skips a minor series" in pp.version_problems(v, "v4.4.2")[0]
    assert "a downgrade" in pp.version_problems(dict(v, mastodon_version="v4.3.9"), "v4.4.2")[0]
    assert pp.version_problems(dict(v, mastodon_version="v4.3.9", mastodon_allow_downgrade=True), "v4.4.2") == []
    assert pp.version_problems(v, "") == []


def test_endpoint_checks_only_for_external_services():
    checks = pp.endpoint_checks(dict(postgresql_mode="incluster", redis_mode="incluster", minio_mode="incluster"), OPTS, ("14", "7.0"))
    assert checks == dict(postgresql=None, redis=None, s3=None, smtp=None, search=None)


def test_endpoint_checks_log_in_to_an_external_search_server_by_reference():
    v = dict(elasticsearch_mode="external", elasticsearch_external_host="search.example.org", elasticsearch_external_port=443,
             elasticsearch_external_scheme="https", elasticsearch_external_user="mastodon",
             elasticsearch_external_password_secret=dict(name="es", key="password"))
    search = pp.endpoint_checks(v, dict(OPTS, preflight_search_ca_cert="/ca.pem"), ("14", "7.0"))["search"]
    assert (search["host"], search["port"], search["scheme"], search["user"], search["ca_cert"]) == (
        "search.example.org", 443, "https", "mastodon", "/ca.pem")
    assert search["password_secret"] == dict(name="es", key="password") and "password" not in search
    assert search["variables"]["password"] == "elasticsearch_external_password_secret (Secret social-ns/es, key password)"
    assert pp.endpoint_checks(dict(v, elasticsearch_enabled=False), OPTS, ("14", "7.0"))["search"] is None


def test_endpoint_checks_pass_secrets_by_reference_unless_vaulted():
    v = dict(postgresql_mode="external", postgresql_external_host="db.example.org", postgresql_external_port=6432,
             postgresql_external_direct_host="db-direct.example.org", postgresql_external_direct_port=None,
             redis_mode="external", redis_external_host="redis.example.org", redis_external_password_secret=None,
             minio_mode="external", minio_external_endpoint="https://s3.example.org", mastodon_s3_enabled=True)
    checks = pp.endpoint_checks(v, OPTS, ("14", "7.0"))
    pg = checks["postgresql"]
    assert (pg["host"], pg["port"], pg["user"], pg["min_version"], pg["timeout"]) == ("db-direct.example.org", 6432, "postgres", "14", 7)
    assert pg["password_secret"] == dict(name="social-postgresql-external", key="postgres-password") and "password" not in pg
    assert pg["variables"]["password"] == "postgresql_external_admin_secret (Secret social-ns/social-postgresql-external, key postgres-password)"
    assert pg["variables"]["host"] == "postgresql_external_direct_host"
    assert "password" not in checks["redis"] and "password_secret" not in checks["redis"]
    s3 = checks["s3"]
    assert s3["access_key_secret"] == dict(name="social-s3-external", key="access-key")
    assert s3["secret_key_secret"] == dict(name="social-s3-external", key="secret-key")
    vaulted = pp.endpoint_checks(v, dict(OPTS, preflight_postgresql_admin_password="pw", preflight_s3_secret_key="sk"), ("14", "7.0"))
    assert vaulted["postgresql"]["password"] == "pw" and "password_secret" not in vaulted["postgresql"]
    assert vaulted["postgresql"]["variables"]["password"] == "preflight_postgresql_admin_password"
    assert vaulted["s3"]["secret_key"] == "sk" and "secret_key_secret" not in vaulted["s3"]


def test_smtp_check_follows_the_mastodon_settings():
    v = dict(mastodon_smtp_server="mail.example.org", mastodon_smtp_port=465, mastodon_smtp_tls=True, mastodon_smtp_login="me",
             mastodon_secret_refs={"SMTP_PASSWORD": {"name": "mail", "key": "password"}}, mastodon_smtp_auth_method="login")
    smtp = pp.endpoint_checks(v, OPTS, ("14", "7.0"))["smtp"]
    assert (smtp["security"], smtp["port"], smtp["auth_method"], smtp["user"]) == ("tls", 465, "login", "me")
    assert smtp["password_secret"] == {"name": "mail", "key": "password"}
    assert smtp["variables"]["password"] == "mastodon_secret_refs.SMTP_PASSWORD"
    no_auth = pp.endpoint_checks(dict(v, mastodon_smtp_auth_method="none", mastodon_smtp_tls=False,
                                      mastodon_smtp_enable_starttls="never"), OPTS, ("14", "7.0"))["smtp"]
    assert no_auth["security"] == "none" and "user" not in no_auth and "password_secret" not in no_auth
    assert pp.endpoint_checks(dict(v, mastodon_smtp_delivery_method="sendmail"), OPTS, ("14", "7.0"))["smtp"] is None


def test_failure_message_lists_every_problem():
    assert pp.failure_message(["a: x", "b: y"]) == (
        "Preflight found 2 problem(s); nothing was changed. Fix these variables:\n- a: x\n- b: y")
