# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes API access shared by every module of the collection.

The option names and their environment fallbacks match kubernetes.core, so an AWX
credential (or a plain KUBECONFIG) that works for kubernetes.core.k8s works here unchanged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

try:
    from kubernetes import client as k8s_client_lib
    from kubernetes import config as k8s_config
    from kubernetes.client import rest as k8s_rest
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported through missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc

USER_AGENT = "fediverse.mastodon"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

K8S_AUTH_ARG_SPEC = dict(
    # raw (kubernetes.core's type), but build_api_client refuses anything but a path
    kubeconfig=dict(type="raw", no_log=True, fallback=(lambda: os.environ.get("K8S_AUTH_KUBECONFIG"),)),
    context=dict(type="str", fallback=(lambda: os.environ.get("K8S_AUTH_CONTEXT"),)),
    host=dict(type="str", fallback=(lambda: os.environ.get("K8S_AUTH_HOST"),)),
    api_key=dict(type="str", no_log=True, fallback=(lambda: os.environ.get("K8S_AUTH_API_KEY"),)),
    validate_certs=dict(type="bool", aliases=["verify_ssl"]),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"],
                 fallback=(lambda: os.environ.get("K8S_AUTH_SSL_CA_CERT"),)),
    client_cert=dict(type="path", aliases=["cert_file"],
                     fallback=(lambda: os.environ.get("K8S_AUTH_CERT_FILE"),)),
    client_key=dict(type="path", aliases=["key_file"], no_log=False,
                    fallback=(lambda: os.environ.get("K8S_AUTH_KEY_FILE"),)),
)
"""Options every Kubernetes-facing module accepts (documented by the k8s_auth doc fragment)."""

RUN_LOCK_ARG_SPEC = dict(
    run_lock=dict(type="dict", options=dict(
        namespace=dict(type="str", required=True),
        name=dict(type="str", required=True),
        holder=dict(type="dict", required=True),
        duration=dict(type="int", default=900),
        renew_every=dict(type="int", default=300),
        break_lock=dict(type="bool", default=False),
    )),
)
"""The run lock option of every module that writes to the cluster (doc fragment run_lock)."""


def _env_bool(name):
    value = os.environ.get(name)
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def running_in_cluster(environ=None, sa_dir=SERVICE_ACCOUNT_DIR):
    """True when this process runs in a pod with a mounted service account token (AWX EE)."""
    environ = os.environ if environ is None else environ
    return bool(environ.get("KUBERNETES_SERVICE_HOST")) and os.path.isfile(os.path.join(sa_dir, "token"))


def _uses_explicit_config(params):
    return any(params.get(k) for k in ("kubeconfig", "context", "host", "api_key"))


def build_api_client(params):
    """Return a kubernetes.client.ApiClient built from the module's auth options.

    Order: explicit options (or their K8S_AUTH_* fallbacks), then the in-cluster service account,
    then the default kubeconfig ($KUBECONFIG or ~/.kube/config).
    """
    configuration = k8s_client_lib.Configuration()
    kubeconfig = params.get("kubeconfig")
    if params.get("host") and not kubeconfig and not params.get("context"):
        configuration.host = params["host"]
    elif not _uses_explicit_config(params) and running_in_cluster():
        k8s_config.load_incluster_config(client_configuration=configuration)
    elif isinstance(kubeconfig, dict):
        raise ValueError("kubeconfig must be the path of a kubeconfig file, not an inline kubeconfig")
    else:
        path = os.path.expanduser(kubeconfig) if kubeconfig else None
        k8s_config.load_kube_config(config_file=path, context=params.get("context"),
                                    client_configuration=configuration)
    if params.get("host"):
        configuration.host = params["host"]
    if params.get("api_key"):
        configuration.api_key = {"authorization": "Bearer " + params["api_key"]}
    validate = params.get("validate_certs")
    if validate is None:
        validate = _env_bool("K8S_AUTH_VERIFY_SSL")
    if validate is not None:
        configuration.verify_ssl = validate
    if params.get("ca_cert"):
        configuration.ssl_ca_cert = params["ca_cert"]
    if params.get("client_cert"):
        configuration.cert_file = params["client_cert"]
    if params.get("client_key"):
        configuration.key_file = params["client_key"]
    api_client = k8s_client_lib.ApiClient(configuration)
    # Lets the API server's audit log attribute every request to this collection.
    api_client.user_agent = USER_AGENT
    if params.get("run_lock"):
        guard_writes(api_client, params["run_lock"])
    return api_client


MUTATING_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# Requests that store nothing, or that the lock itself sends.
_NOT_GUARDED = re.compile(r"/apis/(authorization\.k8s\.io|authentication\.k8s\.io)/|/apis/coordination\.k8s\.io/v1/namespaces/[^/]+/leases(/|$)")


def _is_dry_run(url, query_params):
    pairs = list(query_params or [])
    if any(k == "dryRun" for k, _v in pairs):
        return True
    return "dryRun=" in (url or "")


def guard_writes(api_client, run_lock):
    """Make ``api_client`` take the instance's run lock before its first real write.

    The lock (a coordination.k8s.io Lease, see module_utils/lease.py and docs/safety.md) is taken
    lazily: a run that writes nothing (a no-op rerun, check mode, which sends dry runs only)
    sends no request for it but a read, and so stays at zero writes. The first POST, PUT, PATCH or
    DELETE that would store something first acquires the lock, or renews it when this run
    already holds it; another run's live lock fails the request with a message naming that run.
    """
    from ansible_collections.fediverse.mastodon.plugins.module_utils import run_lock as run_lock_utils

    original = api_client.request
    state = {"held": False, "busy": False}

    def request(method, url, query_params=None, headers=None, post_params=None, body=None,
                _preload_content=True, _request_timeout=None):
        if (method in MUTATING_METHODS and not state["held"] and not state["busy"]
                and not _NOT_GUARDED.search(url or "") and not _is_dry_run(url, query_params)):
            state["busy"] = True
            try:
                run_lock_utils.hold(api_client, run_lock)
                state["held"] = True
            except run_lock_utils.lease.LeaseError as exc:
                # 423 Locked, as an API error: every module already reports those in one line
                error = k8s_rest.ApiException(status=423, reason=str(exc))
                error.body = json.dumps({"kind": "Status", "code": 423, "message": str(exc)}).encode("utf-8")
                raise error
            finally:
                state["busy"] = False
        return original(method, url, query_params=query_params, headers=headers, post_params=post_params, body=body,
                        _preload_content=_preload_content, _request_timeout=_request_timeout)

    api_client.request = request
    return api_client


def api_error_detail(exc):
    """(HTTP status, the API server's own message) of a kubernetes ApiException, for one-line errors."""
    status = getattr(exc, "status", None)
    detail = getattr(exc, "reason", None) or ""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
            if message:
                detail = message
        except (ValueError, AttributeError, TypeError):
            pass
    return status, detail


def auth_params(params):
    """The subset of a module's params that are Kubernetes auth options."""
    return dict((k, params.get(k)) for k in K8S_AUTH_ARG_SPEC)
