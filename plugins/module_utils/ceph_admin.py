# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ceph RGW user management for minio_user (api: ceph).

- Users and their S3 keys: the RGW Admin Ops API (``/admin/user``), which needs an admin with
  the caps ``users=*`` (and ``user-policy=*`` for the policy calls below).
- The user's policy: the IAM ``PutUserPolicy`` / ``GetUserPolicy`` / ``DeleteUserPolicy``
  actions that RGW serves on the same endpoint.

Every request is signed with AWS SigV4 by botocore and sent with botocore's own HTTP session,
so no other HTTP library is needed. The Admin Ops API takes its arguments in the query string,
secret keys included: messages built here scrub them, and nothing logs a URL.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import xml.etree.ElementTree as ET

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.parse import quote

try:
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.httpsession import URLLib3Session
except ImportError:  # pragma: no cover - the modules check HAS_BOTO3 first
    S3SigV4Auth = SigV4Auth = AWSRequest = Credentials = URLLib3Session = None

_SECRET_IN_TEXT = re.compile(r"(secret-key=|secret_key=|SecretAccessKey=)[^&\s'\"]*", re.IGNORECASE)


def scrub(text):
    """``text`` with any secret-key query argument blanked out."""
    return _SECRET_IN_TEXT.sub(r"\1********", to_native(text))


class CephAdminError(Exception):
    """An Admin Ops or IAM call failed. ``code`` is RGW's error code, ``status`` the HTTP status."""

    def __init__(self, message, code=None, status=None, transport=False):
        super(CephAdminError, self).__init__(scrub(message))
        self.code = code
        self.status = status
        self.transport = transport


class SignedClient(object):
    """SigV4-signed calls to an S3 server's own endpoint: the IAM actions some servers serve there
    (Ceph RGW, SeaweedFS), and the transport for their other admin APIs."""

    def __init__(self, conn):
        self._conn = conn
        self._endpoint = conn.endpoint.rstrip("/")
        self._credentials = Credentials(conn.access_key, conn.secret_key)
        self._http = URLLib3Session(verify=conn.verify, timeout=(conn.connect_timeout, 60))

    # -- transport -------------------------------------------------------------------------
    def _send(self, method, url, body=b"", headers=None, service="s3"):
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
        signer = S3SigV4Auth if service == "s3" else SigV4Auth
        signer(self._credentials, service, self._conn.region).add_auth(request)
        try:
            response = self._http.send(request.prepare())
        except Exception as exc:  # botocore wraps urllib3 errors; their text may contain the URL
            raise CephAdminError("%s %s failed: %s" % (method, url.split("?")[0], exc), transport=True)
        return response.status_code, response.content or b""

    def _iam(self, action, params):
        if not action.startswith(("Get", "List")) and hasattr(self._conn, "about_to_write"):
            self._conn.about_to_write()
        form = dict(params, Action=action, Version="2010-05-08")
        body = "&".join("%s=%s" % (quote(k, safe=""), quote(to_text(v), safe="")) for k, v in sorted(form.items()))
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        status, content = self._send("POST", self._endpoint + "/", body.encode("utf-8"), headers, service="iam")
        if status >= 300:
            code = _xml_code(content)
            raise CephAdminError("IAM %s answered HTTP %s %s" % (action, status, code or ""), code=code, status=status)
        return content

    # -- user policies (IAM) ---------------------------------------------------------------
    def get_user_policy(self, uid, policy_name):
        """The policy document (JSON text), or None when the user has no such policy."""
        try:
            content = self._iam("GetUserPolicy", {"UserName": uid, "PolicyName": policy_name})
        except CephAdminError as exc:
            if exc.code == "NoSuchEntity":
                return None
            raise
        return _xml_text(content, "PolicyDocument")

    def put_user_policy(self, uid, policy_name, document):
        self._iam("PutUserPolicy", {"UserName": uid, "PolicyName": policy_name, "PolicyDocument": document})

    def delete_user_policy(self, uid, policy_name):
        try:
            self._iam("DeleteUserPolicy", {"UserName": uid, "PolicyName": policy_name})
        except CephAdminError as exc:
            if exc.code == "NoSuchEntity":
                return False
            raise
        return True


class CephAdmin(SignedClient):
    """A small client of the RGW Admin Ops API and RGW's IAM user-policy actions."""

    def __init__(self, conn, admin_path="/admin"):
        super(CephAdmin, self).__init__(conn)
        self._admin_path = "/" + admin_path.strip("/")

    def _admin(self, method, resource, args, sub=None):
        query = []
        if sub:
            query.append(sub)
        for key in sorted(args):
            value = args[key]
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            query.append("%s=%s" % (quote(key, safe=""), quote(to_text(value), safe="")))
        url = "%s%s/%s?%s" % (self._endpoint, self._admin_path, resource, "&".join(query + ["format=json"]))
        if method != "GET" and hasattr(self._conn, "about_to_write"):
            self._conn.about_to_write()
        status, content = self._send(method, url)
        if status >= 300:
            code = _json_code(content)
            raise CephAdminError("Admin Ops %s /%s answered HTTP %s %s" % (method, resource, status, code or ""),
                                 code=code, status=status)
        if not content.strip():
            return None
        try:
            return json.loads(to_text(content))
        except ValueError:
            return None

    # -- users -----------------------------------------------------------------------------
    def get_user(self, uid):
        """The user's info (with ``keys``), or None when there is no such user."""
        try:
            return self._admin("GET", "user", {"uid": uid})
        except CephAdminError as exc:
            # Only RGW's own answer means "no such user": a bare 404 (another S3 server, where
            # /admin is just a bucket name) must stop us before anything is written there.
            if exc.code == "NoSuchUser":
                return None
            raise

    def create_user(self, uid, display_name, access_key, secret_key, max_buckets=None):
        return self._admin("PUT", "user", {
            "uid": uid, "display-name": display_name, "access-key": access_key, "secret-key": secret_key,
            "key-type": "s3", "generate-key": False, "max-buckets": max_buckets,
        })

    def modify_user(self, uid, **changes):
        args = dict((k.replace("_", "-"), v) for k, v in changes.items())
        args["uid"] = uid
        return self._admin("POST", "user", args)

    def delete_user(self, uid, purge_data=False):
        return self._admin("DELETE", "user", {"uid": uid, "purge-data": purge_data})

    def set_key(self, uid, access_key, secret_key):
        """Create the S3 key ``access_key`` for ``uid``, or replace its secret."""
        return self._admin("PUT", "user", {"uid": uid, "access-key": access_key, "secret-key": secret_key,
                                           "key-type": "s3", "generate-key": False}, sub="key")

    def remove_key(self, uid, access_key):
        return self._admin("DELETE", "user", {"uid": uid, "access-key": access_key, "key-type": "s3"}, sub="key")


def s3_keys(user_info):
    """``{access_key: secret_key}`` of the S3 keys in an Admin Ops user info."""
    keys = {}
    for entry in (user_info or {}).get("keys") or []:
        if entry.get("access_key"):
            keys[entry["access_key"]] = entry.get("secret_key")
    return keys


def _json_code(content):
    try:
        return json.loads(to_text(content)).get("Code")
    except (ValueError, AttributeError):
        return _xml_code(content)


def _xml_code(content):
    match = re.search(br"<Code>([^<]*)</Code>", content or b"")
    return to_text(match.group(1)) if match else None


def _xml_text(content, tag):
    """Text of the first ``tag`` element. RGW's XML is sometimes not well-formed: fall back to a regex."""
    try:
        root = ET.fromstring(content)
        for element in root.iter():
            if element.tag.split("}")[-1] == tag:
                return element.text
    except ET.ParseError:
        pass
    match = re.search(br"<" + tag.encode() + br">(.*?)</" + tag.encode() + br">", content or b"", re.S)
    if not match:
        return None
    text = to_text(match.group(1))
    for entity, char in (("&quot;", '"'), ("&apos;", "'"), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return text
