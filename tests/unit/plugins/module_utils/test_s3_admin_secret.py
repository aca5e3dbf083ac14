# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""admin_secret of the S3 modules: option rules, namespace and cluster defaults, error hints.

Reading the Secret itself is tested against the lab's kube-apiserver in
tests/integration/test_minio_bucket.py and test_minio_user.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.fediverse.mastodon.plugins.module_utils import s3 as s3u


def validate(params, **module_kwargs):
    kwargs = s3u.s3_module_kwargs(**module_kwargs)
    validator = ArgumentSpecValidator(
        s3u.s3_argument_spec(name=dict(type="str", required=True)),
        mutually_exclusive=kwargs["mutually_exclusive"], required_one_of=kwargs["required_one_of"],
        required_together=kwargs["required_together"], required_by=kwargs.get("required_by"))
    result = validator.validate(dict(params, name="b"))
    return result, " ".join(str(e) for e in result.errors)


REF = dict(namespace="social", name="s3-admin", access_key="root-user", secret_key="root-password")


@pytest.mark.parametrize("params, fragment", [
    (dict(endpoint="http://s3", access_key="a", secret_key="s"), None),
    (dict(endpoint="http://s3", admin_secret=REF), None),
    (dict(endpoint="http://s3", admin_secret=dict(name="n", access_key="a", secret_key="s")), None),
    (dict(endpoint="http://s3"), "one of the following is required: access_key, admin_secret"),
    (dict(endpoint="http://s3", access_key="a", secret_key="s", admin_secret=REF), "mutually exclusive: access_key|admin_secret"),
    (dict(endpoint="http://s3", secret_key="s", admin_secret=REF), "mutually exclusive: secret_key|admin_secret"),
    (dict(endpoint="http://s3", access_key="a"), "required together: access_key, secret_key"),
    (dict(endpoint="http://s3", admin_secret=dict(name="n", access_key="a")), "secret_key"),
])
def test_option_rules(params, fragment):
    result, errors = validate(params)
    if fragment is None:
        assert not result.errors.errors, errors
    else:
        assert fragment in errors, errors


def test_admin_secret_keys_are_no_log_false_names_and_secret_key_no_log():
    spec = s3u.s3_argument_spec()
    assert spec["secret_key"]["no_log"] is True
    opts = spec["admin_secret"]["options"]
    assert opts["access_key"]["no_log"] is False and opts["secret_key"]["no_log"] is False
    assert opts["kubeconfig"]["no_log"] is True and opts["api_key"]["no_log"] is True
    assert set(["kubeconfig", "context", "host", "api_key", "validate_certs", "ca_cert"]) <= set(opts)


def test_module_kwargs_are_merged_not_replaced():
    kwargs = s3u.s3_module_kwargs(mutually_exclusive=[("anonymous_read", "policy")])
    assert ("anonymous_read", "policy") in kwargs["mutually_exclusive"]
    assert ("access_key", "admin_secret") in kwargs["mutually_exclusive"]
    assert ("access_key", "admin_secret") in s3u.S3_MODULE_KWARGS["mutually_exclusive"]
    assert ("anonymous_read", "policy") not in s3u.S3_MODULE_KWARGS["mutually_exclusive"]


@pytest.mark.parametrize("params, expected", [
    (dict(admin_secret=dict(namespace="own"), via_kubernetes=dict(namespace="via"), store_in=dict(namespace="st")), "own"),
    (dict(admin_secret=dict(namespace=None), via_kubernetes=dict(namespace="via"), store_in=dict(namespace="st")), "via"),
    (dict(admin_secret=dict(namespace=None), via_kubernetes=None, store_in=dict(namespace="st")), "st"),
    (dict(admin_secret=dict(namespace=None), via_kubernetes=None), None),
])
def test_namespace_defaults(params, expected):
    assert s3u.admin_secret_namespace(params) == expected


def _auth(**kw):
    out = dict((k, None) for k in ("kubeconfig", "context", "host", "api_key", "validate_certs", "ca_cert",
                                   "client_cert", "client_key"))
    out.update(kw)
    return out


def test_cluster_options_come_from_admin_secret_when_it_names_a_cluster():
    params = dict(admin_secret=dict(REF, **_auth(context="prod")), via_kubernetes=dict(namespace="x", **_auth(context="other")))
    assert s3u.admin_secret_auth(params)["context"] == "prod"


def test_cluster_options_come_from_via_kubernetes_then_store_in():
    params = dict(admin_secret=dict(REF, **_auth()), via_kubernetes=dict(namespace="x", **_auth(kubeconfig="/k/via")),
                  store_in=dict(namespace="y", **_auth(kubeconfig="/k/store")))
    assert s3u.admin_secret_auth(params)["kubeconfig"] == "/k/via"
    params["via_kubernetes"] = None
    assert s3u.admin_secret_auth(params)["kubeconfig"] == "/k/store"
    params["store_in"] = None
    assert s3u.admin_secret_auth(params) == _auth()


class _Error(Exception):
    code = "InvalidAccessKeyId"


def test_rejected_keys_hint_names_the_secret_not_access_key():
    conn = s3u.S3Connection("http://127.0.0.1:1", "ak", "sk-very-secret", "us-east-1", True,
                            credentials_option="admin_secret",
                            credentials_hint="the keys root-user and root-password of Secret social/s3-admin (admin_secret)")
    msg = s3u.describe_error(_Error("denied"), conn, "check bucket b")
    assert "Secret social/s3-admin (admin_secret)" in msg and "sk-very-secret" not in msg, msg
    plain = s3u.S3Connection("http://127.0.0.1:1", "ak", "sk-very-secret", "us-east-1", True)
    assert "Check access_key and secret_key" in s3u.describe_error(_Error("denied"), plain, "check bucket b")
