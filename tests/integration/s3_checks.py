# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers the S3 integration tests share."""

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def s3_client(server, access_key, secret_key):
    """A boto3 S3 client of ``server`` ({endpoint, ...}) signed with the given keys, path-style, no retries."""
    return boto3.client("s3", endpoint_url=server["endpoint"], aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def denied(call):
    """True when ``call()`` is refused with AccessDenied."""
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"] == "AccessDenied"
    return False


def remove_bucket(client, bucket):
    """Delete every object version and delete marker of ``bucket``, then the bucket."""
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in (page.get("Versions") or []) + (page.get("DeleteMarkers") or []):
            client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
    client.delete_bucket(Bucket=bucket)
