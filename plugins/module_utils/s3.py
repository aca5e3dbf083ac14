# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 connections for minio_bucket and minio_user: options, boto3 clients, clear errors.

Usage in a module::

    argument_spec = s3_argument_spec(name=dict(...), ...)
    module = AnsibleModule(argument_spec, **S3_MODULE_KWARGS)
    with s3_connection(module) as conn:       # opens the via_kubernetes port-forward if asked
        client = conn.client("s3")
        try:
            client.head_bucket(Bucket=name)
        except Exception as exc:
            module.fail_json(msg=describe_error(exc, conn, "read bucket %s" % name))

The admin credentials come from ``access_key``/``secret_key`` or, by reference, from a
Kubernetes Secret named by ``admin_secret`` that the module reads itself (so the keys never pass
through an Ansible variable). Error messages name the option to fix (endpoint,
access_key/secret_key, admin_secret, region, ca_cert, via_kubernetes) and never contain a key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re
from contextlib import contextmanager

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.six.moves.urllib.parse import urlsplit, urlunsplit

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_secret
from ansible_collections.fediverse.mastodon.plugins.module_utils.portforward import (
    explicit_cluster_options,
    port_forward,
    via_kubernetes_spec,
)

try:
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        ConnectTimeoutError,
        ReadTimeoutError,
        SSLError,
    )
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported through missing_required_lib
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc
    boto3 = BotoConfig = None

    class BotoCoreError(Exception):  # pylint: disable=missing-class-docstring
        pass

    class ClientError(Exception):  # pylint: disable=missing-class-docstring
        pass

    EndpointConnectionError = ConnectTimeoutError = ReadTimeoutError = SSLError = BotoCoreError

DEFAULT_PORT = 9000
"""MinIO's S3 port: the via_kubernetes default when no port is given."""

DEFAULT_REGION = "us-east-1"

S3_CONNECTION_SPEC = dict(
    endpoint=dict(type="str", aliases=["endpoint_url", "s3_url"]),
    access_key=dict(type="str", no_log=False, aliases=["aws_access_key"]),
    secret_key=dict(type="str", no_log=True, aliases=["aws_secret_key"]),
    region=dict(type="str", default=DEFAULT_REGION),
    validate_certs=dict(type="bool", default=True),
    ca_cert=dict(type="path", aliases=["ca_bundle"]),
    connect_timeout=dict(type="int", default=10),
)
"""Connection options shared by the S3 modules (documented by the fediverse.mastodon.s3 fragment)."""

ADMIN_SECRET_OPTIONS = dict(
    namespace=dict(type="str"),
    name=dict(type="str", required=True),
    access_key=dict(type="str", required=True, no_log=False),
    secret_key=dict(type="str", required=True, no_log=False),
)
"""Suboptions of ``admin_secret``: where the admin keys are (names of the Secret and of its data
keys, never a value), plus the Kubernetes auth options of K8S_AUTH_ARG_SPEC."""
ADMIN_SECRET_OPTIONS.update(copy.deepcopy(k8s_client.K8S_AUTH_ARG_SPEC))
# A kubeconfig given inline as a dictionary carries tokens and keys: keep it out of every log.
ADMIN_SECRET_OPTIONS["kubeconfig"]["no_log"] = True

S3_MODULE_KWARGS = dict(
    required_one_of=[("endpoint", "via_kubernetes"), ("access_key", "admin_secret")],
    mutually_exclusive=[("access_key", "admin_secret"), ("secret_key", "admin_secret")],
    required_together=[("access_key", "secret_key")],
    supports_check_mode=True,
)
"""AnsibleModule keyword arguments of the S3 modules; use s3_module_kwargs() to add a module's own."""


def s3_module_kwargs(**extra):
    """S3_MODULE_KWARGS with a module's own ``mutually_exclusive``, ``required_by``... added."""
    kwargs = copy.deepcopy(S3_MODULE_KWARGS)
    for key, value in extra.items():
        if isinstance(value, list) and isinstance(kwargs.get(key), list):
            kwargs[key] = kwargs[key] + list(value)
        else:
            kwargs[key] = value
    return kwargs


# Operations (S3 and IAM) that only read; every other one changes something.
READ_OPERATIONS = ("Get", "List", "Head", "Describe", "Select")

INVALID_CREDENTIAL_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                            "AuthorizationHeaderMalformed", "InvalidClientTokenId")

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def s3_argument_spec(**extra):
    """The connection options plus via_kubernetes plus ``extra`` (the module's own options)."""
    spec = dict((k, dict(v)) for k, v in S3_CONNECTION_SPEC.items())
    spec["via_kubernetes"] = via_kubernetes_spec()
    spec["admin_secret"] = dict(type="dict", no_log=False, options=copy.deepcopy(ADMIN_SECRET_OPTIONS))
    spec.update(copy.deepcopy(k8s_client.RUN_LOCK_ARG_SPEC))
    spec.update(extra)
    return spec


def run_lock_hook(module):
    """The write hook of the module's connections: take the instance's run lock (option run_lock)
    through the Kubernetes API the module already uses, or fail naming the run that holds it."""
    lock = module.params.get("run_lock")
    if not lock:
        return None

    def hold():
        from ansible_collections.fediverse.mastodon.plugins.module_utils import run_lock as run_lock_utils
        try:
            api = k8s_client.build_api_client(admin_secret_auth(module.params))
            for warning in run_lock_utils.hold(api, lock):
                module.warn(warning)
        except run_lock_utils.lease.LeaseError as exc:
            module.fail_json(msg="run_lock: %s; nothing was changed on the S3 server" % to_native(exc), changed=False)
    return hold


def bucket_name_problem(name):
    """Why ``name`` breaks the S3 bucket naming rules, or None when it is fine."""
    if not name:
        return "it is empty"
    if len(name) < 3 or len(name) > 63:
        return "it must be 3 to 63 characters long (it has %d)" % len(name)
    if name != name.lower():
        return "it must be lower case"
    if not _BUCKET_RE.match(name):
        return "use only lower-case letters, digits, dots and hyphens, and begin and end with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "it must not contain two adjacent dots, or a dot next to a hyphen"
    if _IPV4_RE.match(name):
        return "it must not look like an IP address"
    if name.startswith("xn--") or name.startswith("sthree-"):
        return "it must not begin with xn-- or sthree-"
    if name.endswith("-s3alias") or name.endswith("--ol-s3"):
        return "it must not end with -s3alias or --ol-s3"
    return None


def warm_up(services=("s3",)):
    """Load boto3's default session and the services' models once, without any request.

    The in-process action plugins call it when Ansible loads them, in the controller's main
    process, before it forks the task workers: every task then inherits the loaded models, and
    making its client costs milliseconds instead of about 0.4 s of reading botocore's JSON.
    """
    if not HAS_BOTO3:
        return
    for service in services:
        boto3.client(service, region_name="us-east-1", aws_access_key_id="warm-up", aws_secret_access_key="warm-up")


class S3Connection(object):
    """Where to reach the server (after any port-forward) and how to sign for it."""

    def __init__(self, endpoint, access_key, secret_key, region, verify, connect_timeout=10, description=None,
                 credentials_option="access_key", credentials_hint=None):
        self.endpoint = endpoint
        # Which option the admin keys came from, and what to check when the server rejects them.
        self.credentials_option = credentials_option
        self.credentials_hint = credentials_hint or "access_key and secret_key"
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region or DEFAULT_REGION
        self.verify = verify
        self.connect_timeout = connect_timeout
        self.description = description or endpoint
        # called once, right before the first request that changes something (the run lock);
        # shared with the connections for_user() derives
        self.write_hook = {"hook": None}

    def about_to_write(self):
        """Run the write hook (take the run lock) once, before the first request that changes something."""
        hook, self.write_hook["hook"] = self.write_hook["hook"], None
        if hook is not None:
            hook()

    def _before_call(self, model=None, **kwargs):
        if model is not None and not model.name.startswith(READ_OPERATIONS):
            self.about_to_write()

    def client(self, service="s3", access_key=None, secret_key=None):
        """A boto3 client for this endpoint: path-style addressing, SigV4, few retries."""
        config = BotoConfig(
            signature_version="s3v4" if service == "s3" else "v4",
            s3={"addressing_style": "path"},
            connect_timeout=self.connect_timeout,
            read_timeout=60,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        client = boto3.client(
            service,
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region,
            verify=self.verify,
            config=config,
        )
        client.meta.events.register("before-call", self._before_call)
        return client

    def for_user(self, access_key, secret_key):
        """The same endpoint with other credentials (to check a user's keys)."""
        other = S3Connection(self.endpoint, access_key, secret_key, self.region, self.verify,
                             self.connect_timeout, self.description, credentials_option="user keys",
                             credentials_hint="the user's access key and secret key")
        other.write_hook = self.write_hook
        return other


def _verify_option(params):
    if params.get("ca_cert"):
        return params["ca_cert"]
    return bool(params.get("validate_certs", True))


def _endpoint_through(endpoint, host, port):
    """``endpoint`` with its host and port replaced (scheme and path kept); http when absent."""
    if not endpoint:
        return "http://%s:%s" % (host, port)
    parts = urlsplit(endpoint)
    return urlunsplit((parts.scheme or "http", "%s:%s" % (host, port), parts.path, "", ""))


def check_endpoint(module, endpoint):
    parts = urlsplit(endpoint or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        module.fail_json(msg="endpoint must be a URL such as https://s3.example.org or http://minio.social.svc:9000, "
                             "not %r" % endpoint)


def admin_secret_auth(params):
    """The Kubernetes auth options used to read ``admin_secret``.

    Its own when it names a cluster (kubeconfig, context, host or api_key); otherwise those of
    ``via_kubernetes``, then of ``store_in`` (minio_user), so one set of cluster options serves
    the whole task; otherwise its own (the K8S_AUTH_* variables, the pod's service account, or
    the default kubeconfig).
    """
    ref = params.get("admin_secret") or {}
    if explicit_cluster_options(ref):
        return k8s_client.auth_params(ref)
    for other in ("via_kubernetes", "store_in"):
        if params.get(other):
            return k8s_client.auth_params(params[other])
    return k8s_client.auth_params(ref)


def admin_secret_namespace(params):
    """admin_secret.namespace, else the namespace of via_kubernetes, else that of store_in, else None."""
    ref = params.get("admin_secret") or {}
    for candidate in (ref, params.get("via_kubernetes"), params.get("store_in")):
        if candidate and candidate.get("namespace"):
            return candidate["namespace"]
    return None


def read_admin_secret(module, api_client=None):
    """``(access_key, secret_key, namespace)`` read from the Secret named by ``admin_secret``.

    Fails the module with a message that names ``admin_secret``, the Secret and the missing
    key, never a value. The secret key is registered as a no_log value, so Ansible masks it
    should it ever appear in output.
    """
    ref = module.params["admin_secret"]
    if not k8s_client.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes") + " (needed by admin_secret)",
                         exception=to_native(k8s_client.KUBERNETES_IMPORT_ERROR))
    namespace = admin_secret_namespace(module.params)
    if not namespace:
        module.fail_json(msg="admin_secret: no namespace for Secret %s. Set admin_secret.namespace (it defaults to the "
                             "namespace of via_kubernetes or store_in, and neither is set)." % ref["name"])
    where = "%s/%s" % (namespace, ref["name"])
    try:
        api = api_client or k8s_client.build_api_client(admin_secret_auth(module.params))
        found = k8s_secret.read_secret(api, namespace, ref["name"])
    except k8s_secret.SecretStoreError as exc:
        module.fail_json(msg="admin_secret: %s" % exc)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="admin_secret: cannot read Secret %s from the Kubernetes API (%s: %s). Check "
                             "admin_secret.kubeconfig/context/host (or those of via_kubernetes) and the K8S_AUTH_* "
                             "variables." % (where, type(exc).__name__, _short(exc)))
    if found is None:
        module.fail_json(msg="admin_secret: Secret %s does not exist. Create it with the S3 admin keys, or fix "
                             "admin_secret.name and admin_secret.namespace." % where)
    values = found[0]
    for option in ("access_key", "secret_key"):
        key = ref[option]
        if key not in values:
            module.fail_json(msg="admin_secret: Secret %s has no key %s (named by admin_secret.%s); it has: %s. Fix "
                                 "admin_secret.%s or add the key to the Secret."
                             % (where, key, option, ", ".join(sorted(values)) or "no keys", option))
        if not values[key]:
            module.fail_json(msg="admin_secret: key %s of Secret %s (named by admin_secret.%s) is empty."
                             % (key, where, option))
    secret_key = values[ref["secret_key"]]
    module.no_log_values.add(secret_key)
    return values[ref["access_key"]], secret_key, namespace


def admin_credentials(module):
    """``(access_key, secret_key, option, hint)``: the admin keys, from the options or from admin_secret."""
    params = module.params
    if not params.get("admin_secret"):
        return params["access_key"], params["secret_key"], "access_key", None
    access_key, secret_key, namespace = read_admin_secret(module)
    ref = params["admin_secret"]
    hint = ("the keys %s and %s of Secret %s/%s (admin_secret)"
            % (ref["access_key"], ref["secret_key"], namespace, ref["name"]))
    return access_key, secret_key, "admin_secret", hint


@contextmanager
def s3_connection(module):
    """Yield an S3Connection built from the module's options.

    The admin keys are ``access_key``/``secret_key``, or are read from the Secret named by
    ``admin_secret``. With ``via_kubernetes`` a port-forward to the in-cluster server is opened
    for the duration of the block; ``endpoint`` (optional then) only supplies the scheme (http
    by default).
    """
    params = module.params
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=to_native(BOTO3_IMPORT_ERROR))
    endpoint = params.get("endpoint")
    if endpoint:
        check_endpoint(module, endpoint)
    verify = _verify_option(params)
    access_key, secret_key, option, hint = admin_credentials(module)
    via = params.get("via_kubernetes")
    hook = run_lock_hook(module)
    if not via:
        conn = S3Connection(endpoint, access_key, secret_key, params.get("region"), verify,
                            params.get("connect_timeout") or 10, description=endpoint,
                            credentials_option=option, credentials_hint=hint)
        conn.write_hook["hook"] = hook
        yield conn
        return
    with port_forward(module, via, default_port=DEFAULT_PORT) as forwarded:
        host, port = forwarded[0], forwarded[1]
        url = _endpoint_through(endpoint, host, port)
        description = getattr(forwarded, "description", None) or url
        conn = S3Connection(url, access_key, secret_key, params.get("region"), verify,
                            params.get("connect_timeout") or 10, description=description,
                            credentials_option=option, credentials_hint=hint)
        conn.write_hook["hook"] = hook
        yield conn


def error_code(exc):
    """The S3 error code of a botocore ClientError (``NoSuchBucket``...), or None."""
    if isinstance(exc, ClientError):
        response = getattr(exc, "response", None) or {}
        return (response.get("Error") or {}).get("Code")
    return getattr(exc, "code", None)


def http_status(exc):
    if isinstance(exc, ClientError):
        response = getattr(exc, "response", None) or {}
        return (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return getattr(exc, "status", None)


def describe_error(exc, conn, action):
    """A one-line message for a failed S3 call: what failed, why, and which option to fix."""
    where = conn.description if conn is not None else "the S3 endpoint"
    code = error_code(exc)
    status = http_status(exc)
    if isinstance(exc, SSLError) or "CERTIFICATE_VERIFY_FAILED" in to_native(exc):
        return ("Cannot %s: TLS verification of %s failed (%s). Set ca_cert to the CA that signed the server "
                "certificate, or validate_certs: false for a test server." % (action, where, _short(exc)))
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return ("Cannot %s: the S3 endpoint %s is unreachable (%s). Check endpoint (scheme, host, port) "
                "or via_kubernetes." % (action, where, _short(exc)))
    if isinstance(exc, ReadTimeoutError):
        return "Cannot %s: %s did not answer in time (%s)." % (action, where, _short(exc))
    option = getattr(conn, "credentials_option", None) or "access_key"
    hint = getattr(conn, "credentials_hint", None) or "access_key and secret_key"
    if code in INVALID_CREDENTIAL_CODES:
        return ("Cannot %s: %s rejected the credentials (%s). Check %s (the admin "
                "credentials of the S3 server)." % (action, where, code, hint))
    if code in ("AccessDenied", "Forbidden") or status == 403:
        who = "The access_key" if option == "access_key" else "The access key of %s" % option
        return ("Cannot %s: access denied by %s (%s). %s must belong to an account that may "
                "manage buckets, policies and users." % (action, where, code or "HTTP 403", who))
    if code == "AuthorizationHeaderMalformed" or code == "InvalidRegion":
        return "Cannot %s: %s rejected the region (%s). Set region to the server's region." % (action, where, code)
    if code == "InvalidBucketName":
        return "Cannot %s: %s rejected the bucket name (InvalidBucketName). Fix name." % (action, where)
    if code:
        message = ""
        if isinstance(exc, ClientError):
            message = ((exc.response or {}).get("Error") or {}).get("Message") or ""
        status_text = " (HTTP %s)" % status if status else ""
        return "Cannot %s: %s answered %s%s%s." % (action, where, code, status_text, ": " + message if message else "")
    return "Cannot %s at %s: %s" % (action, where, _short(exc))


def _short(exc):
    text = to_native(exc)
    return text if len(text) < 300 else text[:297] + "..."
