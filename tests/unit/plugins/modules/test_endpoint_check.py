# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the pure logic behind fediverse.mastodon.endpoint_check.

The real logins are tested against real servers in tests/integration/test_endpoint_check.py.
Here: the RESP codec, version comparison, message scrubbing, the classification of server
error texts into problems that name the right variable, and the orchestration (all sections
run, problems in order, the bucket created only when nothing else failed) with fake runners.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.fediverse.mastodon.plugins.module_utils import endpoint_checks as ec
from ansible_collections.fediverse.mastodon.plugins.modules import endpoint_check

NAMES = dict(host="pg_host", port="pg_port", user="pg_user", password="pg_password", database="pg_db", sslmode="pg_sslmode")
PG = dict(host="db.example.org", port=5432, user="mastodon", database="mastodon_production", sslmode="prefer", timeout=10,
          variables=NAMES)


# ---- versions, names, scrubbing -----------------------------------------------------------------

@pytest.mark.parametrize("have, minimum, below", [
    ("15.18 (Debian 15.18-0+deb12u1)", "13", False),
    ("12.9", "13", True),
    ("6.0.16", "6.2", True),
    ("6.2", "6.2.0", False),
    ("7.0.15", "6.2", False),
    ("unknown", "6.2", False),
])
def test_version_below(have, minimum, below):
    assert ec.version_below(have, minimum) is below


def test_variable_names_fall_back_to_the_option_path():
    name = ec.variable_names("smtp", dict(variables=dict(password="mastodon_smtp_password")))
    assert name("password") == "mastodon_smtp_password"
    assert name("port") == "checks.smtp.port"


def test_scrub_removes_every_secret():
    assert ec.scrub("user bob pass s3cr3t and s3cr3t", ["s3cr3t", None, ""]) == "user bob pass ******** and ********"


# ---- classification of real server messages ------------------------------------------------------

@pytest.mark.parametrize("text, starts", [
    ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "mastodon"',
     "pg_password: PostgreSQL at db.example.org:5432 refused the password of user mastodon"),
    ('connection to server at "127.0.0.1", port 5432 failed: fe_sendauth: no password supplied', "pg_password:"),
    ('FATAL:  database "mastodon_production" does not exist', "pg_db: PostgreSQL at db.example.org:5432 has no database"),
    ('FATAL:  no pg_hba.conf entry for host "10.1.2.3", user "mastodon", database "x", no encryption', "pg_sslmode:"),
    ('connection to server at "127.0.0.1", port 1 failed: Connection refused\n\tIs the server running on that host',
     "pg_host, pg_port: PostgreSQL at db.example.org:5432 refused the connection"),
    ('could not translate host name "db.example.org" to address: Name or service not known', "pg_host: the host name"),
    ("connection to server at \"10.0.0.1\", port 5432 failed: timeout expired", "pg_host, pg_port: no answer"),
    ("server does not support SSL, but SSL was required", "pg_sslmode: the TLS setup"),
    ("something nobody expected", "pg_host, pg_port: cannot log in"),
])
def test_postgresql_messages_name_the_variable(text, starts):
    assert ec.postgresql_error_problem(text, PG, ec.variable_names("postgresql", PG)).startswith(starts)


@pytest.mark.parametrize("code, status, option", [
    ("InvalidAccessKeyId", 403, "s3_access"),
    ("SignatureDoesNotMatch", 403, "s3_secret"),
    ("AccessDenied", 403, "s3_access"),
    (None, 403, "s3_access"),
    ("AuthorizationHeaderMalformed", 400, "s3_region"),
    ("InvalidBucketName", 400, "s3_bucket"),
    ("InternalError", 500, "s3_endpoint"),
])
def test_s3_messages_name_the_variable(code, status, option):
    params = dict(endpoint="https://s3.example.org", bucket="media", region="eu-west-1",
                  variables=dict(access_key="s3_access", secret_key="s3_secret", region="s3_region", bucket="s3_bucket",
                                 endpoint="s3_endpoint"))
    text = ec.s3_error_problem(code, status, "", params, ec.variable_names("s3", params), "list")
    assert text.startswith(option + ":"), text


def test_redis_auth_messages():
    params = dict(host="r", port=6379, username=None, variables=dict(password="rp", username="ru"))
    name = ec.variable_names("redis", params)
    text = ec.redis_auth_problem("WRONGPASS invalid username-password pair or user is disabled.", params, name)
    assert text.startswith("rp: Redis at r:6379 refused AUTH for user default (WRONGPASS")
    text = ec.redis_auth_problem("ERR AUTH <password> called without any password configured for the default user.",
                                 params, name)
    assert text.startswith("rp: Redis at r:6379 has no password but one was given")


# ---- orchestration (fake runners) -----------------------------------------------------------------

def fake_runners(calls, failing=()):
    def runner(section):
        def run(params):
            calls.append(section)
            if section in failing:
                return dict(ok=False), ["%s: broken" % section]
            if section == "s3":
                return dict(ok=True, create_deferred=True), []
            return dict(ok=True), []
        return run
    out = dict((s, runner(s)) for s in ec.SECTIONS)
    out["s3_create"] = lambda params: (calls.append("s3_create") or (dict(ok=True, created=True), []))
    return out


def test_fake_run_checks_reports_every_problem_in_section_order():
    calls = []
    checks = dict(postgresql={}, redis={}, smtp={}, s3={})
    checks = dict((k, {"x": 1}) for k in checks)
    results, problems = endpoint_check.run_checks(checks, runners=fake_runners(calls, failing=("smtp", "postgresql", "redis")))
    assert problems == ["postgresql: broken", "redis: broken", "smtp: broken"]
    assert "s3_create" not in calls, "the bucket must not be created while other problems exist"
    assert results["s3"]["create_deferred"]


def test_fake_run_checks_creates_the_bucket_when_all_else_passed():
    calls = []
    checks = dict(redis={"x": 1}, s3={"x": 1}, postgresql=None)
    results, problems = endpoint_check.run_checks(checks, runners=fake_runners(calls))
    assert problems == [] and results["s3"]["created"]
    assert sorted(calls) == ["redis", "s3", "s3_create"]
    assert "postgresql" not in results


def test_fake_run_checks_turns_a_crash_into_a_problem():
    def boom(params):
        raise ValueError("kaputt")
    results, problems = endpoint_check.run_checks(dict(smtp={"variables": {"host": "mastodon_smtp_server"}}),
                                                  runners=dict(smtp=boom))
    assert problems == ["mastodon_smtp_server: the smtp check failed unexpectedly (ValueError: kaputt)"]


def test_module_without_sections_checks_nothing(capsys):
    with patch_module_args(dict(checks=dict())):
        with pytest.raises(SystemExit):
            endpoint_check.main()
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] is False and out["problems"] == [] and "Nothing to check" in out["msg"]


def test_module_rejects_a_section_without_its_required_options(capsys):
    with patch_module_args(dict(checks=dict(smtp=dict(port=25)))):
        with pytest.raises(SystemExit):
            endpoint_check.main()
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] and "host" in out["msg"]


def test_fake_run_checks_creates_nothing_when_changes_are_not_allowed():
    calls = []
    results, problems = endpoint_check.run_checks(dict(s3={"x": 1}), runners=fake_runners(calls), allow_changes=False)
    assert problems == [] and calls == ["s3"] and results["s3"]["create_deferred"]


# ---- SMTP: no clear-text AUTH --------------------------------------------------------------------

def test_smtp_cleartext_message_names_the_variables_and_the_opt_in():
    params = dict(host="smtp.example.org", port=25, variables=dict(
        security="mastodon_smtp_enable_starttls", user="mastodon_smtp_login", password="mastodon_smtp_password",
        port="mastodon_smtp_port"))
    text = ec.smtp_cleartext_auth_problem(params, ec.variable_names("smtp", params))
    assert text == ("mastodon_smtp_enable_starttls: the SMTP server smtp.example.org:25 does not offer STARTTLS, so AUTH "
                    "would send mastodon_smtp_login and mastodon_smtp_password in clear text; nothing was sent; use a server "
                    "or port that offers STARTTLS or implicit TLS (check mastodon_smtp_port), or set "
                    "mastodon_smtp_enable_starttls: never to accept clear-text AUTH explicitly")


def test_smtp_cleartext_message_without_variables_names_the_module_option():
    params = dict(host="h", port=25)
    text = ec.smtp_cleartext_auth_problem(params, ec.variable_names("smtp", params))
    assert text.startswith("checks.smtp.security: the SMTP server h:25 does not offer STARTTLS")
    assert "or set checks.smtp.security: none to accept clear-text AUTH explicitly" in text


# ---- Secret references (a fake reader; the real apiserver is in the integration tests) -------------

class SecretStoreErrorFake(Exception):
    """Stands for k8s_secret.SecretStoreError: a message that already starts with the option."""


def reader_fake(store, calls=None):
    """read_value over a dict {(namespace, name): {key: value}}, raising like read_secret_value."""
    def read(namespace, ref, option):
        ns = ref.get("namespace") or namespace
        if calls is not None:
            calls.append((ns, ref["name"], ref["key"], option))
        data = store.get((ns, ref["name"]))
        if data is None:
            raise SecretStoreErrorFake("%s: Secret %s/%s does not exist" % (option, ns, ref["name"]))
        if ref["key"] not in data:
            raise SecretStoreErrorFake("%s: Secret %s/%s has no key %s" % (option, ns, ref["name"], ref["key"]))
        return data[ref["key"]]
    return read


STORE = {("social", "creds"): {"pg": "pg-s3cr3t", "ak": "AKIDEXAMPLE", "sk": "sk-s3cr3t", "login": "bob@example.org",
                               "smtp": "smtp-s3cr3t"},
         ("mail", "smtp"): {"password": "other-s3cr3t"}}


def test_resolve_secret_refs_fills_the_plain_options_fake():
    calls = []
    checks = dict(
        postgresql=dict(host="db", user="postgres", password=None, password_secret=dict(name="creds", key="pg")),
        s3=dict(endpoint="http://s3", access_key_secret=dict(name="creds", key="ak"), secret_key_secret=dict(name="creds", key="sk")),
        smtp=dict(host="mx", login_secret=dict(name="creds", key="login"),
                  password_secret=dict(name="smtp", key="password", namespace="mail")),
        redis=None)
    resolved, skipped, values = ec.resolve_secret_refs(checks, "social", reader_fake(STORE, calls))
    assert skipped == {}
    assert resolved["postgresql"]["password"] == "pg-s3cr3t"
    assert resolved["s3"]["access_key"] == "AKIDEXAMPLE" and resolved["s3"]["secret_key"] == "sk-s3cr3t"
    assert resolved["smtp"]["user"] == "bob@example.org" and resolved["smtp"]["password"] == "other-s3cr3t"
    assert resolved["smtp"]["_user_label"] == "(the login in Secret social/creds, key login)"
    assert sorted(resolved["smtp"]["_secrets"]) == ["bob@example.org", "other-s3cr3t"]
    assert resolved["redis"] is None
    assert sorted(values) == sorted(["pg-s3cr3t", "AKIDEXAMPLE", "sk-s3cr3t", "bob@example.org", "other-s3cr3t"])
    assert ("mail", "smtp", "password", "checks.smtp.password_secret") in calls
    assert "password" not in checks["smtp"], "the caller's checks must stay as they were"


def test_resolve_secret_refs_missing_key_skips_only_that_section_fake():
    checks = dict(
        postgresql=dict(host="db", password_secret=dict(name="creds", key="nope"),
                        variables=dict(password="postgresql_external_admin_secret")),
        redis=dict(host="r", password_secret=dict(name="absent", key="x")),
        s3=dict(endpoint="http://s3", access_key_secret=dict(name="creds", key="ak"), secret_key_secret=dict(name="creds", key="sk"),
                variables=dict(secret_key="preflight_s3_secret_key")))
    resolved, skipped, values = ec.resolve_secret_refs(checks, "social", reader_fake(STORE),
                                                       readable_errors=(SecretStoreErrorFake,))
    assert skipped == {
        "postgresql": ["postgresql_external_admin_secret: Secret social/creds has no key nope; the postgresql check was skipped"],
        "redis": ["checks.redis.password_secret: Secret social/absent does not exist; the redis check was skipped"],
    }
    assert "s3" not in skipped and resolved["s3"]["secret_key"] == "sk-s3cr3t"


def test_resolve_secret_refs_wraps_other_errors_and_scrubs_values_read_fake():
    good = reader_fake(STORE)

    def flaky(namespace, ref, option):
        if ref["key"] == "smtp":
            raise RuntimeError("connection reset after bob@example.org")
        return good(namespace, ref, option)
    checks = dict(smtp=dict(host="mx", password_secret=dict(name="creds", key="smtp"),
                            login_secret=dict(name="creds", key="login"), variables=dict(password="mastodon_smtp_password")))
    resolved, skipped, values = ec.resolve_secret_refs(checks, "social", flaky)
    assert values == ["bob@example.org"]
    assert skipped["smtp"] == [
        "mastodon_smtp_password: cannot read Secret social/creds, key smtp from the Kubernetes API (RuntimeError: connection "
        "reset after ********); check kubeconfig, context, host and the K8S_AUTH_* variables; the smtp check was skipped"]


def test_secret_ref_label_prefers_the_ref_variable():
    params = dict(variables=dict(password="vault_pw", password_secret="pg_secret"))
    assert ec.secret_ref_label("postgresql", params, "password_secret", "password") == "pg_secret"
    assert ec.secret_ref_label("postgresql", dict(variables=dict(password="vault_pw")), "password_secret", "password") == "vault_pw"
    assert ec.secret_ref_label("postgresql", {}, "password_secret", "password") == "checks.postgresql.password_secret"


def test_refs_without_namespace():
    checks = dict(redis=dict(password_secret=dict(name="a", key="b")),
                  smtp=dict(password_secret=dict(name="a", key="b", namespace="mail")))
    assert ec.refs_without_namespace(checks, None) == ["checks.redis.password_secret"]
    assert ec.refs_without_namespace(checks, "social") == []


def test_section_secrets_adds_the_resolved_values():
    assert ec.section_secrets(dict(password="p", _secrets=["bob"]), "password") == ["p", "bob"]


def test_fake_run_checks_does_not_run_a_skipped_section():
    calls = []
    results, problems = endpoint_check.run_checks(
        dict(postgresql={"x": 1}, redis={"x": 1}, s3={"x": 1}), runners=fake_runners(calls),
        skipped={"postgresql": ["pg_secret: Secret social/creds has no key nope; the postgresql check was skipped"]})
    assert sorted(calls) == ["redis", "s3"], "a skipped section must not run, and the bucket waits"
    assert results["postgresql"] == {"ok": False, "skipped": True}
    assert problems == ["pg_secret: Secret social/creds has no key nope; the postgresql check was skipped"]


def run_main(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            endpoint_check.main()
    return json.loads(capsys.readouterr().out)


def test_module_ref_without_any_namespace_fails_naming_the_option(capsys):
    out = run_main(dict(checks=dict(redis=dict(host="127.0.0.1", password_secret=dict(name="r", key="password")))), capsys)
    assert out["failed"]
    assert out["msg"] == ("checks.redis.password_secret: no namespace for the Secret; set the module option namespace, or "
                          "namespace in checks.redis.password_secret")


@pytest.mark.parametrize("section, extra, message", [
    ("redis", dict(host="r", password="x", password_secret=dict(name="r", key="p")), "password|password_secret"),
    ("smtp", dict(host="m", user="u", login_secret=dict(name="r", key="l")), "user|login_secret"),
    ("s3", dict(endpoint="http://s3", bucket="b", secret_key="x"), "access_key, access_key_secret"),
])
def test_module_rejects_conflicting_or_missing_credentials(capsys, section, extra, message):
    out = run_main(dict(checks={section: extra}), capsys)
    assert out["failed"] and message in out["msg"], out["msg"]
