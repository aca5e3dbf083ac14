# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fediverse.mastodon.url_secret against the lab: a password full of URL-reserved characters, kept
in a Secret, becomes a URL that really authenticates to the lab's Redis; the rerun writes nothing
and no output holds the password."""

import base64
import os
import uuid

import pytest
import redis

from ansible_run import run_module
from audit import AuditWindow

pytestmark = pytest.mark.lab
HOSTILE = "p@ss:w/rd?#%&+ " + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def lab():
    if not os.environ.get("KUBECONFIG") or not os.environ.get("LAB_REDIS_URL"):
        pytest.skip("needs the lab: eval \"$(make -s lab-env)\"")
    kubernetes = pytest.importorskip("kubernetes")
    kubernetes.config.load_kube_config()
    core = kubernetes.client.CoreV1Api()
    namespace = "it-urlsecret-" + uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "redis-auth"},
                                              "stringData": {"password": HOSTILE}})
    admin = redis.Redis.from_url(os.environ["LAB_REDIS_URL"])
    user = "urlsecret-" + uuid.uuid4().hex[:6]
    admin.acl_setuser(user, enabled=True, passwords=["+" + HOSTILE], commands=["+ping"])
    yield core, namespace, user
    admin.acl_deluser(user)
    core.delete_namespace(namespace)


def urls(user):
    return [{"key": "REDIS_URL", "scheme": "redis", "host": "127.0.0.1", "port": 16379, "path": "0",
             "username": user, "password_secret": {"name": "redis-auth", "key": "password"}}]


def test_the_url_authenticates_with_a_hostile_password(lab):
    core, namespace, user = lab
    args = {"namespace": namespace, "name": "redis-urls", "urls": urls(user)}
    result, proc = run_module("url_secret", args, verbosity=3, diff=True)
    assert result["changed"] is True and result["updated"] == ["REDIS_URL"], result
    assert HOSTILE not in proc.stdout + proc.stderr
    secret = core.read_namespaced_secret("redis-urls", namespace)
    url = base64.b64decode(secret.data["REDIS_URL"]).decode()
    assert HOSTILE not in url, "the password went into the URL unencoded"
    assert redis.Redis.from_url(url).ping() is True

    with AuditWindow() as window:
        result, proc = run_module("url_secret", args)
    assert result["changed"] is False and result["kept"] == ["REDIS_URL"], result
    assert any(e["verb"] == "get" and (e.get("objectRef") or {}).get("namespace") == namespace for e in window.events())
    assert window.writes(namespaces=[namespace]) == []


def test_a_missing_password_secret_is_named(lab):
    core, namespace, user = lab
    bad = urls(user)
    bad[0]["password_secret"] = {"name": "nope", "key": "password"}
    result, proc = run_module("url_secret", {"namespace": namespace, "name": "redis-urls-2", "urls": bad})
    assert result.get("failed") and "urls[0].password_secret" in result["msg"] and "nope" in result["msg"], result
