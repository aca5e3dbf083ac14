# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  endpoint:
    description:
      - URL of the S3 server, for example V(http://social-minio.social.svc:9000),
        V(https://s3.eu-central-1.amazonaws.com) or V(https://rgw.example.org). Requests use path-style
        addressing and AWS Signature Version 4.
      - With O(via_kubernetes), the host and port are replaced by the port-forward (or the Service DNS
        name), and only the scheme of O(endpoint) is used (V(http) when O(endpoint) is omitted).
      - One of O(endpoint) and O(via_kubernetes) is required.
    type: str
    aliases: [endpoint_url, s3_url]
  access_key:
    description:
      - Access key of the account that manages buckets and users (MinIO root user, Ceph RGW admin,
        AWS IAM user).
    type: str
    required: true
    aliases: [aws_access_key]
  secret_key:
    description:
      - Secret key of O(access_key). Never shown in output.
    type: str
    required: true
    aliases: [aws_secret_key]
  region:
    description:
      - Region used to sign requests and, for new buckets, their location. MinIO and Ceph RGW accept
        the default.
    type: str
    default: us-east-1
  validate_certs:
    description:
      - Whether to verify the server's TLS certificate (https endpoints).
    type: bool
    default: true
  ca_cert:
    description:
      - CA bundle (PEM file) that signs the server's certificate, when it is not a public CA.
    type: path
    aliases: [ca_bundle]
  connect_timeout:
    description:
      - Seconds to wait for a TCP connection to the server.
    type: int
    default: 10
requirements:
  - boto3 (Python library)
notes:
  - Tested against Ceph RGW 16 (the lab's real S3 server). The S3 calls used (HeadBucket, CreateBucket,
    Get/Put/DeleteBucketPolicy, ListObjectsV2, ListObjectVersions, DeleteObjects) are the same on MinIO
    and AWS S3.
  - Through a port-forward, TLS certificates are checked against C(127.0.0.1); set O(ca_cert) to a CA
    whose certificate names that address, or O(validate_certs=false).
'''
