# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The elasticsearch role's OpenSearch files against the lab's real OpenSearch 2.19 with its
security plugin.

The lab started that server the way the in-cluster pod starts: the role's opensearch.yml, its init
script (files/opensearch-security.sh) and a certificate bundle from the role's generator, with
DISABLE_INSTALL_DEMO_CONFIG's effect (no demo installer). Here the setup Job's own script
(files/search-setup.sh) runs on the host with the Job's environment, and the user it makes is
tried for what it may and may not do.
"""

import json
import os
import secrets
import socket
import ssl
import subprocess
import uuid

import pytest
import requests

ROLE_FILES = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "elasticsearch", "files")
ENV = ("LAB_OPENSEARCH_URL", "LAB_OPENSEARCH_ADMIN_SECRET", "LAB_OPENSEARCH_PASSWORD", "LAB_OPENSEARCH_CA")


@pytest.fixture(scope="module")
def search():
    missing = [n for n in ENV if not os.environ.get(n)]
    if missing:
        pytest.skip("no OpenSearch: %s not set (make lab-up; eval \"$(make -s lab-env)\")" % ", ".join(missing))
    return dict(url=os.environ["LAB_OPENSEARCH_URL"], admin=("admin", os.environ["LAB_OPENSEARCH_PASSWORD"]),
                admin_secret=os.environ["LAB_OPENSEARCH_ADMIN_SECRET"], ca=os.environ["LAB_OPENSEARCH_CA"])


def call(search, method, path, auth, body=None):
    # HTTPS, verified against the instance's CA (files/opensearch.yml serves HTTP over TLS)
    return requests.request(method, search["url"] + path, auth=auth, timeout=30, verify=search["ca"],
                            data=None if body is None else json.dumps(body),
                            headers={"Content-Type": "application/json"})


def run_setup(search, user, password, patterns):
    env = dict(os.environ, SEARCH_URL=search["url"], SEARCH_CA_FILE=search["ca"], SEARCH_FLAVOR="opensearch", ADMIN_USER="admin",
               ADMIN_PASSWORD=search["admin_secret"], ADMIN_PASSWORD_PREFIX="Os1-", MASTODON_USER=user,
               MASTODON_PASSWORD=password, INDEX_PATTERNS=json.dumps(patterns), WAIT_SECONDS="60")
    return subprocess.run(["bash", os.path.join(ROLE_FILES, "search-setup.sh")], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def mastodon_user(search):
    """A user made by the setup script, limited to the indexes <prefix>_*."""
    suffix = uuid.uuid4().hex[:8]
    user, prefix, password = "mastodon%s" % suffix, "it%s" % suffix, secrets.token_hex(16)
    result = run_setup(search, user, password, [prefix + "_*"])
    assert result.returncode == 0, result.stdout + result.stderr
    yield dict(user=user, prefix=prefix, password=password, auth=(user, password), output=result.stdout + result.stderr)
    for path in ("/_plugins/_security/api/internalusers/" + user, "/_plugins/_security/api/rolesmapping/%s_full_access" % user,
                 "/_plugins/_security/api/roles/%s_full_access" % user, "/%s_*" % prefix):
        call(search, "DELETE", path, search["admin"])


def test_the_demo_users_and_default_passwords_are_refused(search):
    for auth in (("admin", "admin"), ("kibanaserver", "kibanaserver"), ("kibanaro", "kibanaro"),
                 ("logstash", "logstash"), ("readall", "readall"), ("snapshotrestore", "snapshotrestore"), None):
        assert call(search, "GET", "/", auth).status_code == 401, auth
    me = call(search, "GET", "/_plugins/_security/authinfo", search["admin"])
    assert me.status_code == 200 and me.json()["roles"] == ["all_access"]
    users = call(search, "GET", "/_plugins/_security/api/internalusers", search["admin"]).json()
    assert "kibanaserver" not in users and "admin" in users
    # Only the administrator is mapped to all_access; the demo's own_index mapping is gone.
    mapping = call(search, "GET", "/_plugins/_security/api/rolesmapping", search["admin"]).json()
    assert "own_index" not in mapping and mapping["all_access"]["backend_roles"] == ["admin"]


def test_transport_runs_on_the_generated_certificates(search):
    """A TLS handshake with the transport port, as another node would make it: the server shows the
    certificate the role's generator made, signed by its CA, and accepts that bundle as a client."""
    tls = os.environ.get("LAB_OPENSEARCH_TLS_DIR")
    port = int(search["url"].rsplit(":", 1)[1]) + 100
    context = ssl.create_default_context(cafile=os.path.join(tls, "ca.crt"))
    context.check_hostname = False
    context.load_cert_chain(os.path.join(tls, "tls.crt"), os.path.join(tls, "tls.key"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # the transport port
        with context.wrap_socket(raw) as conn:
            der = conn.getpeercert(binary_form=True)
            subject = dict(item[0] for item in conn.getpeercert()["subject"])
    with open(os.path.join(tls, "tls.crt")) as f:
        assert der == ssl.PEM_cert_to_DER_cert(f.read())
    assert subject == {"commonName": "opensearch-node", "organizationName": "fediverse.mastodon"}
    # The role's opensearch.yml names exactly this subject as the cluster's nodes.
    with open(os.path.join(ROLE_FILES, "opensearch.yml")) as f:
        assert '"CN=opensearch-node,O=fediverse.mastodon"' in f.read()


def test_setup_script_makes_a_user_that_logs_in_and_hides_its_password(search, mastodon_user):
    assert "can log in" in mastodon_user["output"]
    for secret in (mastodon_user["password"], search["admin_secret"]):
        assert secret not in mastodon_user["output"]
    assert call(search, "GET", "/_cluster/health", mastodon_user["auth"]).status_code == 200


def test_setup_script_is_idempotent(search, mastodon_user):
    result = run_setup(search, mastodon_user["user"], mastodon_user["password"], [mastodon_user["prefix"] + "_*"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert call(search, "GET", "/_cluster/health", mastodon_user["auth"]).status_code == 200


def test_the_user_may_create_and_write_indexes_under_its_prefix(search, mastodon_user):
    auth, index = mastodon_user["auth"], mastodon_user["prefix"] + "_accounts"
    mapping = {"mappings": {"properties": {"text": {"type": "text"}}}}
    assert call(search, "PUT", "/" + index, auth, mapping).status_code == 200
    assert call(search, "PUT", "/%s/_doc/1?refresh=true" % index, auth, {"text": "héllo wörld"}).status_code == 201
    found = call(search, "POST", "/%s/_search" % index, auth, {"query": {"match": {"text": "héllo"}}})
    assert found.status_code == 200 and found.json()["hits"]["total"]["value"] == 1
    assert call(search, "POST", "/_aliases", auth, {"actions": [{"add": {"index": index, "alias": mastodon_user["prefix"] + "_a"}}]}).status_code == 200
    assert call(search, "DELETE", "/" + index, auth).status_code == 200


def test_the_user_may_do_nothing_else(search, mastodon_user):
    auth = mastodon_user["auth"]
    other = "other%s_accounts" % uuid.uuid4().hex[:6]
    assert call(search, "PUT", "/" + other, search["admin"]).status_code == 200
    try:
        assert call(search, "PUT", "/notmine%s" % uuid.uuid4().hex[:6], auth).status_code == 403
        assert call(search, "PUT", "/%s/_doc/1" % other, auth, {"text": "x"}).status_code == 403
        assert call(search, "GET", "/%s/_search" % other, auth).status_code == 403
        assert call(search, "DELETE", "/" + other, auth).status_code == 403
        assert call(search, "GET", "/.opendistro_security/_search", auth).status_code in (403, 404)
        assert call(search, "GET", "/_plugins/_security/api/internalusers", auth).status_code == 403
        assert call(search, "PUT", "/_plugins/_security/api/internalusers/evil", auth, {"password": "x" * 20}).status_code == 403
        assert call(search, "PUT", "/_cluster/settings", auth, {"persistent": {"cluster.routing.allocation.enable": "none"}}).status_code == 403
    finally:
        call(search, "DELETE", "/" + other, search["admin"])


def test_a_wrong_admin_password_fails_the_setup_without_showing_it(search):
    bad = dict(search, admin_secret="wrong" + secrets.token_hex(8))
    password = secrets.token_hex(16)
    env_user = "nobody%s" % uuid.uuid4().hex[:6]
    result = subprocess.run(
        ["bash", os.path.join(ROLE_FILES, "search-setup.sh")], capture_output=True, text=True, timeout=60, check=False,
        env=dict(os.environ, SEARCH_URL=search["url"], SEARCH_CA_FILE=search["ca"], ADMIN_PASSWORD=bad["admin_secret"],
                 ADMIN_PASSWORD_PREFIX="Os1-",
                 MASTODON_USER=env_user, MASTODON_PASSWORD=password, WAIT_SECONDS="1"))
    assert result.returncode != 0
    assert "did not answer as admin in time" in result.stdout
    assert bad["admin_secret"] not in result.stdout + result.stderr and password not in result.stdout + result.stderr
    assert call(search, "GET", "/_plugins/_security/api/internalusers/" + env_user, search["admin"]).status_code == 404


# ---- preflight's login to an external search server (endpoint_check, section search) ----------

VARIABLES = dict(host="elasticsearch_external_host", port="elasticsearch_external_port", scheme="elasticsearch_external_scheme",
                 user="elasticsearch_external_user", password="elasticsearch_external_password_secret",
                 ca_cert="preflight_search_ca_cert", validate_certs="preflight_search_ca_cert")


def search_params(search, **extra):
    host, port = search["url"].split("//")[1].split(":")
    out = dict(host=host, port=int(port), scheme="https", ca_cert=search["ca"], user="admin", password=search["admin"][1],
               timeout=10, variables=VARIABLES)
    out.update(extra)
    return out


def test_search_login_passes_and_reads_the_version(search):
    from ansible_collections.fediverse.mastodon.plugins.module_utils import endpoint_checks as ec
    result, problems = ec.check_search(search_params(search))
    assert problems == [] and result["ok"], problems
    assert result["distribution"] == "opensearch" and result["server_version"].startswith("2.19.")


def test_search_wrong_password_anonymous_and_closed_port_name_the_variable(search):
    from ansible_collections.fediverse.mastodon.plugins.module_utils import endpoint_checks as ec
    wrong = "wrong" + secrets.token_hex(6)
    result, problems = ec.check_search(search_params(search, password=wrong))
    assert not result["ok"] and len(problems) == 1
    assert problems[0].startswith("elasticsearch_external_password_secret: %s refused the login of user admin (HTTP 401)" % search["url"])
    assert wrong not in problems[0]
    dummy, problems = ec.check_search(search_params(search, user=None, password=None))
    assert problems[0].startswith("elasticsearch_external_user: %s asks for a login" % search["url"]), problems
    dummy, problems = ec.check_search(search_params(search, port=1))
    assert problems[0].startswith("elasticsearch_external_host, elasticsearch_external_port: the search server 127.0.0.1:1 refused"), problems
    dummy, problems = ec.check_search(search_params(search, scheme="http"))
    assert problems[0].startswith("elasticsearch_external_scheme: http://%s closed the connection on a plain HTTP request"
                                  % search["url"].split("//")[1]), problems
    dummy, problems = ec.check_search(search_params(search, ca_cert=None))
    assert problems[0].startswith("preflight_search_ca_cert: the TLS certificate of the search server"), problems


def test_preflight_logs_in_to_an_external_search_server_with_the_password_from_its_secret(search, core, namespace):
    """The preflight action's plan for elasticsearch_mode=external, run by the endpoint_check module:
    the password is read from the Secret by the module, and the real server accepts it (or not)."""
    from ansible_run import run_module
    from ansible_collections.fediverse.mastodon.plugins.plugin_utils import preflight_plan
    core.create_namespaced_secret(namespace, {"metadata": {"name": "search-auth"},
                                              "stringData": {"good": search["admin"][1], "bad": "nope" + secrets.token_hex(4)}})
    host, port = search["url"].split("//")[1].split(":")
    v = dict(elasticsearch_mode="external", elasticsearch_external_host=host, elasticsearch_external_port=int(port),
             elasticsearch_external_scheme="https", elasticsearch_external_user="admin",
             elasticsearch_external_password_secret={"name": "search-auth", "key": "good"},
             postgresql_mode="incluster", redis_mode="incluster", minio_mode="incluster", mastodon_s3_enabled=False)
    opts = dict(preflight_namespace=namespace, preflight_instance="x", preflight_endpoint_timeout=10,
                preflight_search_ca_cert=search["ca"])
    checks = preflight_plan.endpoint_checks(v, opts, ("13", "6.2"))
    assert [k for k, c in checks.items() if c] == ["search"]
    result, proc = run_module("endpoint_check", dict(namespace=namespace, checks=checks), verbosity=3)
    assert not result.get("failed"), result
    assert result["services"]["search"]["ok"] and result["services"]["search"]["distribution"] == "opensearch"
    assert search["admin"][1] not in proc.stdout + proc.stderr
    v["elasticsearch_external_password_secret"] = {"name": "search-auth", "key": "bad"}
    result, proc = run_module("endpoint_check", dict(namespace=namespace, checks=preflight_plan.endpoint_checks(v, opts, ("13", "6.2"))))
    assert result.get("failed") and result["problems"][0].startswith(
        "elasticsearch_external_password_secret (Secret %s/search-auth, key bad): %s refused the login of user admin" % (namespace, search["url"])), result


def test_the_servers_readiness_probe_passes_with_the_admin_password_only(search):
    """The StatefulSet's readiness probe, run against the real server (only its port changes)."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "unit", "roles"))
    from role_render import by_kind, render_role
    container = by_kind(render_role("elasticsearch", {}), "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]
    port = search["url"].rsplit(":", 1)[1]
    # pod -> host: the port, and where the init script put the CA (the config directory)
    cmd = [part.replace("localhost:9200", "localhost:" + port).replace("/usr/share/opensearch/config/tls/ca.crt", search["ca"])
           for part in container["readinessProbe"]["exec"]["command"]]
    assert "https://localhost:" + port in cmd[2] and "--cacert " + search["ca"] in cmd[2]
    ok = subprocess.run(cmd, env=dict(os.environ, ADMIN_PASSWORD=search["admin_secret"]), capture_output=True, timeout=30, check=False)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(cmd, env=dict(os.environ, ADMIN_PASSWORD="wrong"), capture_output=True, timeout=30, check=False)
    assert bad.returncode != 0
