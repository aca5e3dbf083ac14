# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of plugins/module_utils/postgres.py: SCRAM verifiers, names, diff, redaction."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import hmac

import pytest

from ansible_collections.fediverse.mastodon.plugins.module_utils import postgres as pg


# ---- SCRAM-SHA-256 -------------------------------------------------------------------------

def test_scram_rfc7677_vector():
    """RFC 7677 section 3: user 'user', password 'pencil'. The server side of that exchange,
    computed from our verifier, must accept the RFC's client proof and produce its signature."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    stored_key, server_key = pg.scram_keys("pencil", salt, 4096)
    auth_message = (b"n=user,r=rOprNGfwEbeRWgbNEkqO,"
                    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
                    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64encode(server_signature) == b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature))
    assert hashlib.sha256(client_key).digest() == stored_key


# Produced by PostgreSQL 15.18 itself (CREATE ROLE ... PASSWORD '...', then pg_authid.rolpassword).
PG15_VERIFIERS = [
    ("pencil", "SCRAM-SHA-256$4096:lbnrMR6aJmpBcnenptp6fw==$Dv3xjmV7mGzZ7bOoYESQ/4bHpbnC+SWFfFnYV7hU7og="
               ":8XJVDuweiFtcULPwV+GVb1BcZpaCAfo6c/j2595uQ6Y="),
    # non-ASCII, with a ligature that SASLprep's NFKC step turns into "fi"
    (u"P\u00e4ssw\u00f6rd \ufb01", "SCRAM-SHA-256$4096:6aqTkgPhUPcfronSM04ASg==$QOVRkroAgQJm732WDExJEny36wzb+hAxg2NqJ6RTGeA="
                                   ":FttsRRvNe7RqlYuUrV885J32+lnx3J9g0ifIOQnkecc="),
]


@pytest.mark.parametrize("password,verifier", PG15_VERIFIERS)
def test_scram_matches_server_made_verifier(password, verifier):
    iterations, salt, stored_key, server_key = pg.parse_scram_verifier(verifier)
    assert pg.scram_keys(password, salt, iterations) == (stored_key, server_key)
    assert pg.scram_password_matches(verifier, password)
    assert not pg.scram_password_matches(verifier, password + "x")


@pytest.mark.parametrize("stored", [None, "", "md5" + "0" * 32, "SCRAM-SHA-256$x:y$z", "plaintext"])
def test_scram_other_formats_never_match(stored):
    assert pg.scram_password_matches(stored, "plaintext") is False


def test_saslprep():
    assert pg.saslprep("plain ASCII ~") == "plain ASCII ~"
    assert pg.saslprep(u"I\u00adX") == "IX"            # soft hyphen mapped to nothing
    assert pg.saslprep(u"a\u00a0b") == "a b"           # non-ASCII space mapped to space
    assert pg.saslprep(u"\u2168") == "IX"              # NFKC
    assert pg.saslprep(u"a\x07b") is None              # prohibited: control character -> raw bytes
    assert pg.saslprep(b"\xff\xfe") is None            # not UTF-8 -> raw bytes


# ---- identifiers ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mastodon", "mastodon_production", "Mixed_Case", "app-db.v2$", "_x", "a" * 63])
def test_valid_names(name):
    assert pg.validate_identifier(name, "database") is None


@pytest.mark.parametrize("name,fragment", [
    ("", "must not be empty"),
    (None, "must not be empty"),
    ("a\x00b", "NUL"),
    ("a" * 64, "at most 63 bytes"),
    (u"\u00e9" * 32, "64 bytes long"),
    ('x"; DROP DATABASE postgres; --', "'\"', ';'"),
    ("with space", "' '"),
    ("1abc", "first character"),
    ("-abc", "first character"),
])
def test_invalid_names_are_refused_with_the_fix(name, fragment):
    msg = pg.validate_identifier(name, "role")
    assert msg is not None and fragment in msg
    assert msg.startswith("role")


def test_pg_prefix_reserved_for_roles():
    assert "reserves" in pg.validate_identifier("pg_app", "role", allow_pg_prefix=False)
    assert pg.validate_identifier("pg_app", "database") is None


# ---- diff and redaction -------------------------------------------------------------------

def test_changed_keys_nested():
    before = {"role": {"superuser": True, "login": True}, "database": {"exists": False}}
    after = {"role": {"superuser": False, "login": True}, "database": {"exists": True, "owner": "app"}}
    assert pg.changed_keys(before, after) == ["database.exists", "database.owner", "role.superuser"]
    assert pg.changed_keys(after, after) == []


def test_build_diff_shape():
    diff = pg.build_diff({"a": 1}, {"a": 2}, header="role app / database app")
    assert diff["before"] == {"a": 1} and diff["after"] == {"a": 2}
    assert diff["before_header"] == "role app / database app"


class _Cursor(object):
    """Only what QueryLog.render needs from a cursor when the query is plain text (fake)."""

    def mogrify(self, query, params):
        return (query % tuple("'%s'" % p for p in params)).encode()


def test_query_log_fake_cursor_redacts_secret_params_and_keeps_others():
    log = pg.QueryLog(check_mode=True)
    verifier = PG15_VERIFIERS[0][1]
    log.run(_Cursor(), "ALTER ROLE app PASSWORD %s", [verifier], secret=True)
    log.run(_Cursor(), "ALTER ROLE app CONNECTION LIMIT %s", [5])
    assert log.queries == ["ALTER ROLE app PASSWORD '********'", "ALTER ROLE app CONNECTION LIMIT '5'"]
    assert verifier not in repr(log.queries)


def test_connection_error_hints_name_options():
    assert "login_password" in pg.connection_error_hint('FATAL:  password authentication failed for user "x"')
    assert "login_port" in pg.connection_error_hint("connection to server at \"127.0.0.1\", port 1 failed: Connection refused")


def test_argument_spec_marks_secrets_no_log():
    spec = pg.postgres_argument_spec()
    assert spec["login_password"]["no_log"] is True
    assert spec["via_kubernetes"]["options"]["api_key"]["no_log"] is True


def test_secret_ref_problems_name_the_option_and_fall_back_to_namespaces():
    ref = dict(name="pg-admin", key="password", namespace=None)
    assert pg.secret_ref_problems(dict(login_password_secret=ref, namespace="m"), ["login_password_secret"]) == []
    via = dict(namespace="from-via", service="pg")
    assert pg.secret_ref_problems(dict(login_password_secret=ref, via_kubernetes=via), ["login_password_secret"]) == []
    assert pg.secret_ref_location(dict(login_password_secret=ref, via_kubernetes=via), "login_password_secret") == \
        "from-via/pg-admin"
    assert pg.secret_ref_location(dict(login_password_secret=dict(ref, namespace="own"), namespace="m"),
                                  "login_password_secret") == "own/pg-admin"
    problems = pg.secret_ref_problems(dict(password_secret=ref), ["password_secret"])
    assert problems == ["password_secret has no namespace: set password_secret.namespace, or the module's namespace "
                        "option (via_kubernetes.namespace is the default when via_kubernetes is used)"]
    bad = dict(name="UPPER", key="a/b", namespace="bad_ns")
    problems = pg.secret_ref_problems(dict(password_secret=bad), ["password_secret"])
    assert [p.split(" ")[0] for p in problems] == ["password_secret.name", "password_secret.key", "password_secret:"]


def test_argument_spec_secret_references():
    spec = pg.postgres_argument_spec()
    assert spec["login_password_secret"]["type"] == "dict" and spec["login_password_secret"]["no_log"] is False
    assert spec["k8s_auth"]["options"]["api_key"]["no_log"] is True
    assert ("login_password", "login_password_secret") in pg.POSTGRES_MUTUALLY_EXCLUSIVE
    spec["k8s_auth"]["options"]["context"]["x"] = 1
    assert "x" not in pg.postgres_argument_spec()["k8s_auth"]["options"]["context"], "a fresh copy every time"
