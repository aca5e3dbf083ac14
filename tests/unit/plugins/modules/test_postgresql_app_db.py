# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the postgresql_app_db module: argument handling and the pure planning helpers.

Everything that talks to a server is in tests/integration/test_postgresql_app_db.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.fediverse.mastodon.plugins.modules import postgresql_app_db as mod


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            mod.main()
    return json.loads(capsys.readouterr().out)


def _args(**extra):
    # a closed port: if the module tried to connect, the message would be a connection error
    base = dict(login_host="127.0.0.1", login_port=_free_port(), login_password="admin-secret",
                database="app", role="app", password="app-secret", connect_timeout=2)
    base.update(extra)
    return base


def test_hostile_names_are_refused_before_any_connection(capsys):
    result = _run(capsys, _args(database='x"; DROP DATABASE postgres; --', role="bad role"))
    assert result["failed"] is True
    assert result["queries"] == []
    assert result["msg"].startswith("database ") and "role 'bad role' is refused" in result["msg"]
    assert "could not connect" not in result["msg"]


def test_pg_prefixed_role_and_bad_list_items_refused(capsys):
    result = _run(capsys, _args(role="pg_app", extensions=["ok", "no;pe"], readonly_roles=["a" * 70]))
    assert "reserves" in result["msg"] and "extensions item" in result["msg"] and "readonly_roles item" in result["msg"]


def test_password_required_when_present(capsys):
    args = _args()
    del args["password"]
    result = _run(capsys, args)
    assert result["failed"] is True and "password" in result["msg"]


def test_via_kubernetes_excludes_login_host(capsys):
    result = _run(capsys, _args(via_kubernetes=dict(namespace="m", service="pg")))
    assert result["failed"] is True and "mutually exclusive" in result["msg"]
    assert "via_kubernetes" in result["msg"] and "login_host" in result["msg"]


def test_conn_limit_below_minus_one_refused(capsys):
    result = _run(capsys, _args(conn_limit=-5))
    assert "conn_limit" in result["msg"]


def test_unreachable_server_message_names_options(capsys):
    result = _run(capsys, _args())
    assert result["failed"] is True
    assert "could not connect to PostgreSQL at 127.0.0.1:" in result["msg"] and "login_host/login_port" in result["msg"]
    assert "admin-secret" not in json.dumps(result) and "app-secret" not in json.dumps(result)


def test_secret_options_are_no_log():
    spec = mod.argument_spec()
    assert spec["password"]["no_log"] is True
    assert spec["login_password"]["no_log"] is True
    assert spec["via_kubernetes"]["options"]["api_key"]["no_log"] is True
    assert spec["update_password"]["no_log"] is False


# ---- pure helpers --------------------------------------------------------------------------

def test_role_state_shows_attributes_and_hides_password():
    role = dict(rolcanlogin=True, rolsuper=True, rolcreatedb=False, rolcreaterole=False, rolreplication=False,
                rolbypassrls=False, conn_limit=-1, verifier="SCRAM-SHA-256$4096:x$y:z")
    state = mod.role_state(role, "app")
    assert state["superuser"] is True and state["password"] == "********"
    assert "SCRAM" not in json.dumps(state)
    assert mod.role_state(None, "app") == dict(name="app", exists=False)


def test_grants_state_and_expected_grants_drop_public():
    db = dict(acl={"CONNECT": {"PUBLIC", "app", "backup"}, "TEMPORARY": {"PUBLIC", "app"}, "CREATE": {"app"}})
    inside = dict(public_create_public=True, role_create=True,
                  readonly={"backup": dict(usage=True, tables=False, sequences=True, default_tables=False,
                                           default_sequences=False)})
    before = mod.grants_state(db, inside, "app", ["backup"])
    assert before["connect"] == ["PUBLIC", "app", "backup"]
    assert before["public_schema_create"] == ["PUBLIC", "app"]
    assert before["readonly_roles"]["backup"]["connect"] is True and before["readonly_roles"]["backup"]["tables"] is False
    after = mod.expected_grants(before, "app", ["backup"])
    assert after["connect"] == ["app", "backup"] and after["temporary"] == ["app"]
    assert after["public_schema_create"] == ["app"]
    assert all(after["readonly_roles"]["backup"].values())


def test_grants_state_for_missing_database():
    assert mod.grants_state(None, None, "app", []) == dict(connect=[], temporary=[], public_schema_create=[], readonly_roles={})


@pytest.mark.parametrize("a,b", [("UTF8", "utf-8"), ("UTF8", "Utf_8"), ("LATIN1", "latin1")])
def test_encoding_names_compare_loosely(a, b):
    assert mod._norm_encoding(a) == mod._norm_encoding(b)


# ---- Secret references: argument handling (the reading itself is tested against the lab) -------

REF = dict(name="mastodon-db", key="password")


def test_password_secret_satisfies_state_present(capsys):
    args = _args(password_secret=REF, namespace="m", k8s_auth=dict(host="https://127.0.0.1:%d" % _free_port()))
    del args["password"]
    result = _run(capsys, args)
    # past argument validation: the module tried to read the Secret (nothing listens there)
    assert result["failed"] is True and result["msg"].startswith("password_secret: cannot read Secret m/mastodon-db"), result
    assert "k8s_auth" in result["msg"] and "could not connect" not in result["msg"]


@pytest.mark.parametrize("plain,ref", [("password", "password_secret"), ("login_password", "login_password_secret")])
def test_plain_and_secret_reference_are_mutually_exclusive(capsys, plain, ref):
    result = _run(capsys, _args(**{ref: REF, "namespace": "m"}))
    assert result["failed"] is True and "mutually exclusive" in result["msg"], result
    assert plain in result["msg"] and ref in result["msg"]


def test_k8s_auth_refused_with_via_kubernetes(capsys):
    args = _args(via_kubernetes=dict(namespace="m", service="pg"), k8s_auth=dict(context="x"), password_secret=REF)
    del args["login_host"], args["password"]
    result = _run(capsys, args)
    assert result["failed"] is True and "mutually exclusive" in result["msg"]
    assert "via_kubernetes" in result["msg"] and "k8s_auth" in result["msg"]


def test_reference_without_namespace_names_the_option_before_any_connection(capsys):
    args = _args(login_password_secret=REF)
    del args["login_password"]
    result = _run(capsys, args)
    assert result["failed"] is True and result["msg"].startswith("login_password_secret has no namespace"), result
    assert "login_password_secret.namespace" in result["msg"] and "could not connect" not in result["msg"]
    assert result["queries"] == []


def test_malformed_reference_is_refused_naming_the_suboption(capsys):
    args = _args(password_secret=dict(name="Bad_Name", key="no/slash", namespace="m"))
    del args["password"]
    result = _run(capsys, args)
    assert "password_secret.name 'Bad_Name'" in result["msg"] and "password_secret.key 'no/slash'" in result["msg"], result


def test_password_secret_is_not_read_with_state_absent(capsys):
    # an unreachable API server would fail the read; absent does not need the role's password
    args = _args(state="absent", password_secret=REF, namespace="m", k8s_auth=dict(host="https://127.0.0.1:%d" % _free_port()))
    del args["password"]
    result = _run(capsys, args)
    assert result["failed"] is True and "could not connect to PostgreSQL" in result["msg"], result
    assert "password_secret" not in result["msg"]


def test_reference_options_are_not_no_log_and_auth_is_grouped():
    spec = mod.argument_spec()
    for option in ("password_secret", "login_password_secret"):
        assert spec[option]["no_log"] is False and spec[option]["options"]["key"]["no_log"] is False
        assert sorted(spec[option]["options"]) == ["key", "name", "namespace"]
    assert spec["k8s_auth"]["options"]["api_key"]["no_log"] is True
    assert spec["k8s_auth"]["options"]["kubeconfig"]["no_log"] is True
    assert spec["k8s_auth"]["apply_defaults"] is True
    # top-level host and ca_cert stay PostgreSQL's
    assert "host" in spec["login_host"]["aliases"] and spec["ca_cert"]["aliases"] == ["ssl_rootcert"]
