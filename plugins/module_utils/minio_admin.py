# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MinIO user management for minio_user (api: minio), kept thin on purpose.

It uses the ``minio`` Python SDK's ``MinioAdmin`` (7.2.x, Apache-2.0), which speaks MinIO's
admin API (``/minio/admin/v3/...``). Only these calls are made:

- ``user_info(access_key)``      does the user exist, which policies are attached
- ``user_add(access_key, secret_key)``  create the user, or set its secret
- ``user_remove(access_key)``
- ``policy_info(name)``          read our canned policy
- ``policy_add(name, policy_file)``  create or replace it (the SDK reads a file)
- ``policy_remove(name)``
- ``attach_policy([name], user=...)`` (SDK >= 7.2.6; ``policy_set(name, user=...)`` on older SDKs)

MinIO never returns a user's secret key, so ``secret_known`` is False: the module checks a
stored key by signing one S3 request with it instead.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import tempfile

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.parse import urlsplit

# The SDK is imported when a MinIO server is administered (build_admin), not before: most runs
# talk to another S3 server, and importing it costs about half a second.
try:
    from importlib.util import find_spec
    HAS_MINIO = find_spec("minio") is not None
except (ImportError, ValueError):  # pragma: no cover
    HAS_MINIO = False
MINIO_IMPORT_ERROR = None if HAS_MINIO else ImportError("No module named 'minio'")


class MinioAdminError(Exception):
    """A MinIO admin call failed. ``code`` is MinIO's error code, ``status`` the HTTP status."""

    def __init__(self, message, code=None, status=None, transport=False):
        super(MinioAdminError, self).__init__(message)
        self.code = code
        self.status = status
        self.transport = transport


def build_admin(conn):
    """A MinioAdmin for an S3Connection (endpoint URL, admin keys, TLS settings).

    Our own urllib3 pool: short connect timeout and few retries (the SDK's default waits minutes).
    """
    import urllib3  # a dependency of the SDK
    from minio import MinioAdmin
    from minio.credentials import StaticProvider

    parts = urlsplit(conn.endpoint)
    pool = dict(timeout=urllib3.Timeout(connect=conn.connect_timeout, read=60),
                retries=urllib3.Retry(total=2, connect=1, backoff_factor=0.2, status_forcelist=[502, 503, 504]))
    if conn.verify is False:
        pool["cert_reqs"] = "CERT_NONE"
    else:
        pool["cert_reqs"] = "CERT_REQUIRED"
        if isinstance(conn.verify, str):
            pool["ca_certs"] = conn.verify
        else:
            try:
                import certifi
                pool["ca_certs"] = os.environ.get("SSL_CERT_FILE") or certifi.where()
            except ImportError:
                pass
    # Keyword arguments only: SDK 7.2.16+ makes them keyword-only, older ones accept them too.
    return MinioAdmin(endpoint=parts.netloc, credentials=StaticProvider(conn.access_key, conn.secret_key),
                      region=conn.region or "", secure=parts.scheme == "https",
                      cert_check=conn.verify is not False, http_client=urllib3.PoolManager(**pool))


def _error(exc, action):
    """Turn an SDK or transport exception into a MinioAdminError that holds no secret."""
    status = getattr(exc, "_code", None) or getattr(exc, "code", None)
    body = getattr(exc, "_body", None) or getattr(exc, "body", None)
    code = None
    if body:
        try:
            code = json.loads(to_text(body)).get("Code")
        except (ValueError, AttributeError):
            match = re.search(r"<Code>([^<]*)</Code>", to_text(body))  # an S3 server that is not MinIO
            code = match.group(1) if match else None
    if status is None and code is None:
        return MinioAdminError("MinIO admin API: %s failed: %s" % (action, type(exc).__name__), transport=True)
    try:
        status = int(status)
    except (TypeError, ValueError):
        pass
    return MinioAdminError("MinIO admin API: %s answered HTTP %s %s" % (action, status, code or ""),
                           code=code, status=status)


class MinioUsers(object):
    """The few MinioAdmin calls minio_user needs."""

    secret_known = False

    def __init__(self, admin, before_write=None):
        self._admin = admin
        self._before_write = before_write

    def _call(self, action, func, *args, **kwargs):
        if self._before_write is not None and action not in ("user-info", "info-canned-policy"):
            self._before_write()
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            raise _error(exc, action)

    def get_user(self, access_key):
        """``{"policies": [...], "status": ...}`` or None when there is no such user."""
        try:
            text = self._call("user-info", self._admin.user_info, access_key)
        except MinioAdminError as exc:
            if exc.code in ("XMinioAdminNoSuchUser", "XMinioAdminNoSuchUserException"):
                return None
            raise
        info = json.loads(to_text(text) or "{}")
        policies = [p.strip() for p in (info.get("policyName") or "").split(",") if p.strip()]
        return dict(policies=policies, status=info.get("status"))

    def set_user(self, access_key, secret_key):
        """Create the user, or give an existing one this secret key."""
        self._call("add-user", self._admin.user_add, access_key, secret_key)

    def remove_user(self, access_key):
        self._call("remove-user", self._admin.user_remove, access_key)

    def get_policy(self, name):
        """Our canned policy as a dict, or None when MinIO has no policy of that name."""
        try:
            text = self._call("info-canned-policy", self._admin.policy_info, name)
        except MinioAdminError as exc:
            if exc.code in ("XMinioAdminNoSuchPolicy",):
                return None
            raise
        doc = json.loads(to_text(text) or "null")
        if isinstance(doc, dict) and "Statement" not in doc and isinstance(doc.get("Policy"), dict):
            doc = doc["Policy"]  # newer servers wrap it: {"PolicyName": ..., "Policy": {...}}
        return doc

    def put_policy(self, name, document):
        """Create or replace the canned policy ``name`` (the SDK wants a file)."""
        fd, path = tempfile.mkstemp(suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(document)
            self._call("add-canned-policy", self._admin.policy_add, name, path)
        finally:
            os.unlink(path)

    def remove_policy(self, name):
        try:
            self._call("remove-canned-policy", self._admin.policy_remove, name)
        except MinioAdminError as exc:
            if exc.code in ("XMinioAdminNoSuchPolicy",):
                return False
            raise
        return True

    def attach_policy(self, name, access_key):
        """Attach with the builtin-IDP attach API; fall back to set-user-or-group-policy.

        The fallback serves SDKs without ``attach_policy`` and servers older than the attach API
        (they answer it with a non-MinIO 4xx).
        """
        attach = getattr(self._admin, "attach_policy", None)
        if attach is not None:
            try:
                self._call("attach-policy", attach, [name], user=access_key)
                return
            except MinioAdminError as exc:
                if exc.code == "XMinioAdminPolicyChangeAlreadyApplied":
                    return
                if exc.transport or exc.status not in (400, 404, 405, 501) or (exc.code or "").startswith("XMinioAdminNoSuch"):
                    raise
        self._call("set-user-or-group-policy", self._admin.policy_set, name, user=access_key)


def describe(exc):
    return to_native(exc)
