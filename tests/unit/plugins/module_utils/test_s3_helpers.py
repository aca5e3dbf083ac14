# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers of module_utils/s3.py and module_utils/ceph_admin.py (no server involved).

The S3 and Admin Ops calls themselves are tested against the lab's real Ceph RGW in
tests/integration/test_minio_bucket.py and test_minio_user.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.fediverse.mastodon.plugins.module_utils import ceph_admin
from ansible_collections.fediverse.mastodon.plugins.module_utils import s3 as s3u

botocore_exceptions = pytest.importorskip("botocore.exceptions")


def test_scrub_blanks_secret_keys_in_urls_and_texts():
    text = 'Could not connect to "http://h/admin/user?access-key=a&secret-key=TOPSECRET&uid=u"'
    assert "TOPSECRET" not in ceph_admin.scrub(text)
    assert "access-key=a" in ceph_admin.scrub(text)
    assert "TOPSECRET" not in ceph_admin.scrub("SecretAccessKey=TOPSECRET")
    assert "TOPSECRET" not in str(ceph_admin.CephAdminError("failed: secret-key=TOPSECRET"))


def test_xml_text_reads_entity_encoded_policy_documents():
    body = (b'<GetUserPolicyResponse><GetUserPolicyResult><PolicyName>p</PolicyName>'
            b'<PolicyDocument>{&quot;Version&quot;: &quot;2012-10-17&quot;}</PolicyDocument>'
            b'</GetUserPolicyResult></GetUserPolicyResponse>')
    assert ceph_admin._xml_text(body, "PolicyDocument") == '{"Version": "2012-10-17"}'


def test_xml_code_survives_rgw_malformed_error_documents():
    # RGW 16 nests a second XML declaration inside the response (not well-formed XML).
    body = (b'<GetUserPolicyResponse><GetUserPolicyResult><?xml version="1.0" encoding="UTF-8"?>'
            b'<Error><Code>NoSuchEntity</Code></Error>')
    assert ceph_admin._xml_code(body) == "NoSuchEntity"
    assert ceph_admin._json_code(b'{"Code":"NoSuchUser","Message":""}') == "NoSuchUser"
    assert ceph_admin._json_code(b'<Error><Code>NoSuchBucket</Code></Error>') == "NoSuchBucket"


def test_s3_keys_of_user_info():
    info = {"keys": [{"user": "u", "access_key": "A", "secret_key": "S"},
                     {"user": "u", "access_key": "B", "secret_key": "T"}]}
    assert ceph_admin.s3_keys(info) == {"A": "S", "B": "T"}
    assert ceph_admin.s3_keys(None) == {}


@pytest.mark.parametrize("endpoint,expected", [
    (None, "http://127.0.0.1:4242"),
    ("https://minio.social.svc:9000", "https://127.0.0.1:4242"),
    ("http://minio:9000/", "http://127.0.0.1:4242/"),
])
def test_endpoint_through_port_forward_keeps_scheme(endpoint, expected):
    assert s3u._endpoint_through(endpoint, "127.0.0.1", 4242) == expected


def _client_error(code, status):
    return botocore_exceptions.ClientError({"Error": {"Code": code, "Message": "m"},
                                            "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


CONN = s3u.S3Connection("http://127.0.0.1:17480", "ak", "sk-very-secret", "us-east-1", True)


@pytest.mark.parametrize("exc,fragments", [
    (_client_error("InvalidAccessKeyId", 403), ["rejected the credentials", "access_key and secret_key"]),
    (_client_error("SignatureDoesNotMatch", 403), ["rejected the credentials"]),
    (_client_error("AccessDenied", 403), ["access denied", "may manage buckets"]),
    (_client_error("InvalidBucketName", 400), ["Fix name"]),
    (_client_error("SlowDown", 503), ["answered SlowDown (HTTP 503): m"]),
    (botocore_exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1/"), ["unreachable", "endpoint"]),
])
def test_describe_error_names_cause_and_option(exc, fragments):
    msg = s3u.describe_error(exc, CONN, "do it")
    for fragment in fragments:
        assert fragment in msg, msg
    assert "sk-very-secret" not in msg
