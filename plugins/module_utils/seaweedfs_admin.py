# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SeaweedFS user management for minio_user (api: seaweedfs).

SeaweedFS serves a subset of AWS IAM on its S3 port (the embedded IAM API, on unless
``-s3.iam=false``; writes need ``-s3.iam.readOnly=false``). Users, their keys and their inline
policies are made there with an admin identity's keys, signed with SigV4 for the ``iam``
service. Two things differ from AWS:

- ``CreateAccessKey`` takes the key pair from the caller (``AccessKeyId`` and
  ``SecretAccessKey``, letters and digits, 4 to 128 characters for the id), so the key stored
  in a Kubernetes Secret first is the one the server gets;
- a user policy is reduced to SeaweedFS's coarse actions per bucket (Read, Write, List,
  WriteAcp, ...). Only ``Allow`` statements are taken, and AWS actions it does not know are
  refused (``SEAWEEDFS_UNKNOWN_ACTIONS`` lists the ones our policies would otherwise carry).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.fediverse.mastodon.plugins.module_utils.ceph_admin import CephAdminError, SignedClient

ACCESS_KEY_RE = re.compile(r"^[A-Za-z0-9]{4,128}$")

SEAWEEDFS_UNKNOWN_ACTIONS = frozenset(["s3:ListBucketMultipartUploads", "s3:ListMultipartUploadParts"])
"""AWS actions of our user policy that SeaweedFS's IAM refuses (it names them ListMultipartUploads and
ListParts). Neither is needed by Mastodon, which only starts, uploads, completes and aborts."""


def access_key_for(name):
    """The default access key of user ``name``: its letters and digits (SeaweedFS's rule)."""
    return re.sub(r"[^A-Za-z0-9]", "", name or "")


def access_key_problem(access_key):
    if not ACCESS_KEY_RE.match(access_key or ""):
        return "a SeaweedFS access key is 4 to 128 letters and digits"
    return None


def policy_for_server(policy):
    """``policy`` (ours, AWS style) as SeaweedFS takes it: without the actions it does not know.
    Raises ValueError for a policy it cannot enforce (a Deny statement)."""
    statements = []
    for statement in policy.get("Statement", []):
        if statement.get("Effect") != "Allow":
            raise ValueError("SeaweedFS user policies take Allow statements only")
        actions = statement.get("Action")
        actions = [actions] if isinstance(actions, str) else list(actions or [])
        kept = [a for a in actions if a not in SEAWEEDFS_UNKNOWN_ACTIONS]
        if kept:
            statements.append(dict(statement, Action=kept))
    return dict(policy, Statement=statements)


class SeaweedfsAdmin(SignedClient):
    """Users and keys through SeaweedFS's embedded IAM API (the policy calls come from SignedClient)."""

    def get_user(self, name):
        """True when the user exists, None when not."""
        try:
            self._iam("GetUser", {"UserName": name})
        except CephAdminError as exc:
            if exc.code == "NoSuchEntity":
                return None
            raise
        return True

    def access_keys(self, name):
        """The access key ids of user ``name``."""
        content = self._iam("ListAccessKeys", {"UserName": name})
        return sorted(set(k.decode("utf-8") for k in re.findall(br"<AccessKeyId>([^<]*)</AccessKeyId>", content)))

    def create_user(self, name):
        self._iam("CreateUser", {"UserName": name})

    def create_access_key(self, name, access_key, secret_key):
        self._iam("CreateAccessKey", {"UserName": name, "AccessKeyId": access_key, "SecretAccessKey": secret_key})

    def delete_access_key(self, name, access_key):
        self._iam("DeleteAccessKey", {"UserName": name, "AccessKeyId": access_key})

    def delete_user(self, name):
        try:
            self._iam("DeleteUser", {"UserName": name})
        except CephAdminError as exc:
            if exc.code == "NoSuchEntity":
                return False
            raise
        return True
