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

Error messages name the option to fix (endpoint, access_key/secret_key, region, ca_cert,
via_kubernetes) and never contain a key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from contextlib import contextmanager

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.six.moves.urllib.parse import urlsplit, urlunsplit

from ansible_collections.fediverse.mastodon.plugins.module_utils.portforward import (
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
    access_key=dict(type="str", required=True, no_log=False, aliases=["aws_access_key"]),
    secret_key=dict(type="str", required=True, no_log=True, aliases=["aws_secret_key"]),
    region=dict(type="str", default=DEFAULT_REGION),
    validate_certs=dict(type="bool", default=True),
    ca_cert=dict(type="path", aliases=["ca_bundle"]),
    connect_timeout=dict(type="int", default=10),
)
"""Connection options shared by the S3 modules (documented by the fediverse.mastodon.s3 fragment)."""

S3_MODULE_KWARGS = dict(
    required_one_of=[("endpoint", "via_kubernetes")],
    supports_check_mode=True,
)

INVALID_CREDENTIAL_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                            "AuthorizationHeaderMalformed", "InvalidClientTokenId")

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def s3_argument_spec(**extra):
    """The connection options plus via_kubernetes plus ``extra`` (the module's own options)."""
    spec = dict((k, dict(v)) for k, v in S3_CONNECTION_SPEC.items())
    spec["via_kubernetes"] = via_kubernetes_spec()
    spec.update(extra)
    return spec


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


class S3Connection(object):
    """Where to reach the server (after any port-forward) and how to sign for it."""

    def __init__(self, endpoint, access_key, secret_key, region, verify, connect_timeout=10, description=None):
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region or DEFAULT_REGION
        self.verify = verify
        self.connect_timeout = connect_timeout
        self.description = description or endpoint

    def client(self, service="s3", access_key=None, secret_key=None):
        """A boto3 client for this endpoint: path-style addressing, SigV4, few retries."""
        config = BotoConfig(
            signature_version="s3v4" if service == "s3" else "v4",
            s3={"addressing_style": "path"},
            connect_timeout=self.connect_timeout,
            read_timeout=60,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region,
            verify=self.verify,
            config=config,
        )

    def for_user(self, access_key, secret_key):
        """The same endpoint with other credentials (to check a user's keys)."""
        return S3Connection(self.endpoint, access_key, secret_key, self.region, self.verify,
                            self.connect_timeout, self.description)


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


@contextmanager
def s3_connection(module):
    """Yield an S3Connection built from the module's options.

    With ``via_kubernetes`` a port-forward to the in-cluster server is opened for the duration
    of the block; ``endpoint`` (optional then) only supplies the scheme (http by default).
    """
    params = module.params
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=to_native(BOTO3_IMPORT_ERROR))
    endpoint = params.get("endpoint")
    if endpoint:
        check_endpoint(module, endpoint)
    verify = _verify_option(params)
    via = params.get("via_kubernetes")
    if not via:
        yield S3Connection(endpoint, params["access_key"], params["secret_key"], params.get("region"), verify,
                           params.get("connect_timeout") or 10, description=endpoint)
        return
    with port_forward(module, via, default_port=DEFAULT_PORT) as forwarded:
        host, port = forwarded[0], forwarded[1]
        url = _endpoint_through(endpoint, host, port)
        description = getattr(forwarded, "description", None) or url
        yield S3Connection(url, params["access_key"], params["secret_key"], params.get("region"), verify,
                           params.get("connect_timeout") or 10, description=description)


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
    if code in INVALID_CREDENTIAL_CODES:
        return ("Cannot %s: %s rejected the credentials (%s). Check access_key and secret_key (the admin "
                "credentials of the S3 server)." % (action, where, code))
    if code in ("AccessDenied", "Forbidden") or status == 403:
        return ("Cannot %s: access denied by %s (%s). The access_key must belong to an account that may "
                "manage buckets, policies and users." % (action, where, code or "HTTP 403"))
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
