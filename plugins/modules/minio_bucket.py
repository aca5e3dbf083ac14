#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: minio_bucket
short_description: An S3 bucket for Mastodon's media, readable by anyone, listable by no one
version_added: "1.0.0"
description:
  - Makes sure an S3 bucket exists (or is gone) on MinIO, AWS S3, Ceph RGW or another
    S3-compatible server. Only the S3 API is used, so nothing here is MinIO-specific.
  - With O(anonymous_read=true) the bucket policy gets one statement, named
    C(FediverseMastodonAnonymousRead), that lets everyone C(s3:GetObject) the objects (all, or
    those under O(anonymous_read_prefixes)). It never grants C(s3:ListBucket), so visitors
    cannot enumerate the uploads.
  - >-
    The contract is enforced against what is already in the bucket policy. After a run with
    O(anonymous_read=true), the only thing anonymous visitors may do is C(s3:GetObject) on the
    objects of that statement. Any other Allow statement that applies to anonymous visitors
    (C(Principal) V(*), V({"AWS": "*"}) or V({"AWS": ["*"]}), or a C(NotPrincipal)) and grants
    more (another action, a wildcard action such as C(s3:*) or C(s3:Get*), C(NotAction),
    C(NotResource), other resources) is removed. When it also names specific principals, only
    V(*) is taken out of its C(Principal), so those principals keep what they had. An anonymous
    C(s3:GetObject) statement within the allowed objects is kept.
  - O(anonymous_read=false) removes that statement and every other Allow that applies to
    anonymous visitors (narrowed the same way when it also names specific principals).
  - Statements for specific principals and Deny statements are left as they are. What was removed
    is shown in the diff (the policy before and after) and returned in RV(anonymous_revoked).
  - O(policy) replaces the whole bucket policy with your own document instead.
  - Policies are compared after normalising them (key order, a single value against a list,
    the shapes of C(Principal), action case), so a rerun writes nothing unless the policy really
    differs. A statement changed or removed by hand is put back.
  - O(state=absent) deletes an empty bucket. A bucket that still holds objects is refused unless
    O(force=true), which deletes every object, object version and unfinished upload first.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - fediverse.mastodon.s3
  - fediverse.mastodon.via_kubernetes
  - fediverse.mastodon.run_lock
  - ansible.builtin.action_common_attributes
options:
  name:
    description:
      - Name of the bucket. It must follow the S3 naming rules (3 to 63 characters, lower-case
        letters, digits, dots and hyphens), which the module checks before it connects.
    type: str
    required: true
    aliases: [bucket]
  state:
    description:
      - V(present) creates the bucket when missing; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - With O(state=absent), delete a bucket that still holds objects, with all its objects,
        object versions and unfinished multipart uploads. This cannot be undone.
    type: bool
    default: false
  anonymous_read:
    description:
      - V(true) lets anyone download objects without credentials (what Mastodon's media needs),
        V(false) removes that permission. Leave it unset to keep the bucket policy as it is.
      - Anonymous listing and anonymous writing are never granted.
      - Mutually exclusive with O(policy).
    type: bool
  anonymous_read_prefixes:
    description:
      - Limit anonymous reading to objects whose keys start with one of these prefixes, for
        example V(media_attachments/). Unset or empty means every object. Needs O(anonymous_read).
    type: list
    elements: str
  policy:
    description:
      - A complete bucket policy (a JSON string or a dictionary) that replaces the generated one
        and every other statement. For experts; mutually exclusive with O(anonymous_read).
      - An empty Statement list removes the bucket policy.
    type: json
  versioning:
    description:
      - V(true) enables object versioning, V(false) suspends it (S3 cannot switch it off once it was
        on). Leave it unset to keep the bucket's setting. Mastodon does not need versioning; it
        keeps deleted media recoverable at the price of storage.
    type: bool
  expire_days:
    description:
      - Keep the objects under O(expire_prefix) this many days, by a lifecycle rule of the bucket
        (ID C(fediverse-mastodon-retention), followed by the prefix). On a versioned bucket an
        object's older versions are kept as many days after they were replaced, and unfinished
        multipart uploads are removed after 7 days.
      - V(0) removes that rule. Leave it unset to keep the bucket's rules. Other rules (those of
        other prefixes included) are kept.
    type: int
  expire_prefix:
    description: The key prefix O(expire_days) applies to; empty for the whole bucket.
    type: str
    default: ""
  cors:
    description:
      - The bucket's CORS rules, in order (the first matching rule wins). An empty list removes
        them; leave it unset to keep the bucket's rules.
      - Mastodon's web interface loads media with plain C(<img>) and C(<video>) tags, which need no
        CORS. Browsers need CORS only for scripts that fetch media from another origin.
    type: list
    elements: dict
    suboptions:
      allowed_origins:
        description: Origins allowed, for example V(https://social.example.org), or V(*).
        type: list
        elements: str
        required: true
      allowed_methods:
        description: HTTP methods allowed.
        type: list
        elements: str
        required: true
        choices: [GET, HEAD, PUT, POST, DELETE]
      allowed_headers:
        description: Request headers allowed in a preflight request.
        type: list
        elements: str
      expose_headers:
        description: Response headers the browser may show to the script.
        type: list
        elements: str
      max_age_seconds:
        description: How long the browser may cache the preflight answer.
        type: int
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows whether the bucket exists and its normalised policy, before and after.
seealso:
  - module: fediverse.mastodon.minio_user
notes:
  - The account of O(access_key) (or of the keys in O(admin_secret)) needs the right to create and delete buckets and to read and
    write bucket policies (on MinIO the root user or a C(consoleAdmin)-like policy; on Ceph the
    bucket owner).
  - When O(anonymous_read) is unset, or O(policy) is used, the bucket policy's other statements are
    not changed; the module then warns when a statement lets anonymous visitors list or write.
'''

EXAMPLES = r'''
- name: Media bucket on the in-cluster MinIO, reached through a port-forward
  fediverse.mastodon.minio_bucket:
    name: social-media
    anonymous_read: true
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
    via_kubernetes:
      namespace: social
      service: social-minio
      port: 9000

- name: Media bucket on the in-cluster MinIO; the admin keys are read from its Secret by the module
  fediverse.mastodon.minio_bucket:
    name: social-media
    anonymous_read: true
    admin_secret:
      name: social-minio        # namespace: that of via_kubernetes
      access_key: root-user
      secret_key: root-password
    via_kubernetes:
      namespace: social
      service: social-minio
      port: 9000

- name: Media bucket on AWS S3 (only the upload prefixes are public)
  fediverse.mastodon.minio_bucket:
    name: social-example-media
    endpoint: https://s3.eu-central-1.amazonaws.com
    region: eu-central-1
    access_key: "{{ aws_access_key_id }}"
    secret_key: "{{ aws_secret_access_key }}"
    anonymous_read: true
    anonymous_read_prefixes:
      - accounts/
      - media_attachments/
      - custom_emojis/
      - site_uploads/
      - cache/

- name: Media bucket on Ceph RGW (Rook)
  fediverse.mastodon.minio_bucket:
    name: social-media
    endpoint: https://rgw.storage.example.org
    ca_cert: /etc/ssl/certs/internal-ca.pem
    access_key: "{{ rgw_admin_access_key }}"
    secret_key: "{{ rgw_admin_secret_key }}"
    anonymous_read: true

- name: Remove a test bucket and everything in it
  fediverse.mastodon.minio_bucket:
    name: social-media-staging
    endpoint: http://127.0.0.1:9000
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
    state: absent
    force: true
'''

RETURN = r'''
name:
  description: Name of the bucket.
  returned: always
  type: str
  sample: social-media
created:
  description: Whether the bucket was created (or would be, in check mode).
  returned: success
  type: bool
  sample: false
deleted_objects:
  description: How many objects and object versions O(force=true) deleted (0 in check mode).
  returned: when O(state=absent) and the bucket existed
  type: int
  sample: 0
policy:
  description: The bucket policy after the run, normalised; null when the bucket has none.
  returned: when O(state=present)
  type: dict
  sample:
    Version: "2012-10-17"
    Statement:
      - Sid: FediverseMastodonAnonymousRead
        Effect: Allow
        Principal: {AWS: ["*"]}
        Action: ["s3:GetObject"]
        Resource: ["arn:aws:s3:::social-media/*"]
expire_days:
  description: The days of the retention rule after the run (V(0) when the bucket has none).
  returned: when O(state=present) and O(expire_days) is set
  type: int
  sample: 30
versioning:
  description: The bucket's versioning status after the run (V(Enabled), V(Suspended), or V(null) when never enabled).
  returned: when O(state=present) and O(versioning) is set
  type: str
  sample: Enabled
cors:
  description: The bucket's CORS rules after the run, in S3's form.
  returned: when O(state=present) and O(cors) is set
  type: list
  elements: dict
  sample: [{AllowedOrigins: ["https://social.example.org"], AllowedMethods: [GET, HEAD], MaxAgeSeconds: 3000}]
anonymous:
  description: What the bucket policy lets anonymous visitors do (a coarse reading that ignores conditions).
  returned: when O(state=present)
  type: dict
  sample: {get: true, list: false, put: false}
anonymous_revoked:
  description:
    - The statements that granted anonymous visitors more than O(anonymous_read) allows, as they were
      in the bucket policy before the run (normalised), with what was done to them (V(removed), or V(narrowed) when
      only V(*) was taken out of their principals). Empty when there was nothing to revoke.
    - Also filled in check mode, where nothing is changed.
  returned: when O(state=present) and O(anonymous_read) is set
  type: list
  elements: dict
  sample:
    - action: removed
      statement: {Sid: PublicList, Effect: Allow, Principal: {AWS: ["*"]}, Action: ["s3:ListBucket"],
                  Resource: ["arn:aws:s3:::social-media"]}
endpoint:
  description: Where the module talked to (the port-forward, when O(via_kubernetes) is used).
  returned: always
  type: str
  sample: http://127.0.0.1:9000
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fediverse.mastodon.plugins.module_utils import s3 as s3u
from ansible_collections.fediverse.mastodon.plugins.module_utils import s3_policy as sp

DELETE_BATCH = 1000


class BucketModule(object):

    def __init__(self, module, conn):
        self.module = module
        self.conn = conn
        self.client = conn.client("s3")
        self.name = module.params["name"]
        self.result = dict(changed=False, name=self.name, endpoint=conn.description)

    def fail(self, exc, action):
        self.module.fail_json(msg=s3u.describe_error(exc, self.conn, action), **self.result)

    # -- reading -----------------------------------------------------------------------------
    def exists(self):
        try:
            self.client.head_bucket(Bucket=self.name)
            return True
        except s3u.ClientError as exc:
            status = s3u.http_status(exc)
            if status == 404 or s3u.error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            if status in (400, 403):
                self.diagnose_denied(exc)
            self.fail(exc, "check bucket %s" % self.name)
        except Exception as exc:  # pylint: disable=broad-except
            self.fail(exc, "check bucket %s" % self.name)

    def diagnose_denied(self, head_exc):
        """HEAD answers have no body: ask ListBuckets whether the keys or the rights are wrong."""
        try:
            self.client.list_buckets()
        except Exception as exc:  # pylint: disable=broad-except
            if s3u.error_code(exc) in s3u.INVALID_CREDENTIAL_CODES:
                self.fail(exc, "check bucket %s" % self.name)
        if s3u.http_status(head_exc) == 400:
            self.module.fail_json(msg="Cannot check bucket %s: %s answered HTTP 400 Bad Request. Check region (the "
                                      "bucket may live in another region) and endpoint." % (self.name, self.conn.description),
                                  **self.result)
        self.module.fail_json(msg="Cannot use bucket %s: access denied by %s. The bucket exists but belongs to another "
                                  "account, or access_key may not use it." % (self.name, self.conn.description),
                              **self.result)

    def current_policy(self):
        try:
            text = self.client.get_bucket_policy(Bucket=self.name)["Policy"]
        except s3u.ClientError as exc:
            if s3u.error_code(exc) in ("NoSuchBucketPolicy", "NoSuchPolicy") or s3u.http_status(exc) == 404:
                return None
            self.fail(exc, "read the policy of bucket %s" % self.name)
        except Exception as exc:  # pylint: disable=broad-except
            self.fail(exc, "read the policy of bucket %s" % self.name)
        try:
            return sp.load_policy(text)
        except sp.PolicyError as exc:
            self.module.fail_json(msg="The policy of bucket %s on the server is not understood (%s). Replace it with "
                                      "the policy option." % (self.name, exc), **self.result)

    # -- present -----------------------------------------------------------------------------
    def desired_policy(self, current):
        params = self.module.params
        if params["policy"] is not None:
            try:
                return sp.load_policy(params["policy"])
            except sp.PolicyError as exc:
                self.module.fail_json(msg="policy: %s. Give a JSON object with a Statement list." % exc, **self.result)
        if params["anonymous_read"] is None:
            return current
        statement, allowed = None, []
        if params["anonymous_read"]:
            statement = sp.anonymous_read_statement(self.name, params["anonymous_read_prefixes"] or [])
            allowed = statement["Resource"]
        merged = sp.merge_owned_statement(current, sp.ANONYMOUS_READ_SID, statement)
        desired, revoked = sp.restrict_anonymous(merged, allowed, keep_sid=sp.ANONYMOUS_READ_SID)
        self.result["anonymous_revoked"] = [dict(action=action, statement=sp.normalize_statement(st, fold_case=False))
                                            for st, action in revoked]
        return desired

    def present(self):
        params = self.module.params
        existed = self.exists()
        if not existed:
            self.result.update(changed=True, created=True)
            if not self.module.check_mode:
                self.create()
        else:
            self.result["created"] = False
        current = self.current_policy() if existed else None
        desired = self.desired_policy(current)
        before, after = sp.normalize_policy(current), sp.normalize_policy(desired)
        if before != after:
            self.result["changed"] = True
            if not self.module.check_mode:
                self.write_policy(desired)
        get, lst, put = sp.anonymous_access(after, self.name)
        self.result.update(policy=sp.display_policy(desired), anonymous=dict(get=get, list=lst, put=put))
        revoked = self.result.get("anonymous_revoked")
        if revoked:
            self.module.warn("%s %d statement(s) of the policy of bucket %s that let anonymous visitors do more than "
                             "anonymous_read allows (%s); the diff shows the policy before and after."
                             % ("Would revoke" if self.module.check_mode else "Revoked", len(revoked), self.name,
                                ", ".join("%s %s" % (r["action"], r["statement"].get("Sid") or "(no Sid)")
                                          for r in revoked)))
        if lst or put:
            self.module.warn("The policy of bucket %s lets anonymous visitors %s (a statement other than %s grants it). "
                             "Remove that statement unless you mean it."
                             % (self.name, " and ".join(w for w, on in (("list it", lst), ("write to it", put)) if on),
                                sp.ANONYMOUS_READ_SID))
        if params["anonymous_read"] and not get:
            self.module.warn("anonymous_read is true, but another statement of the bucket policy denies it.")
        before_state = dict(name=self.name, exists=existed, policy=sp.display_policy(current))
        after_state = dict(name=self.name, exists=True, policy=sp.display_policy(desired))
        if params["versioning"] is not None:
            self.sync_versioning(existed, before_state, after_state)
        if params["cors"] is not None:
            self.sync_cors(existed, before_state, after_state)
        if params["expire_days"] is not None:
            self.sync_lifecycle(existed, before_state, after_state)
        if self.module._diff:
            self.result["diff"] = dict(before=before_state, after=after_state)

    def sync_versioning(self, existed, before_state, after_state):
        status = None
        if existed:
            try:
                status = self.client.get_bucket_versioning(Bucket=self.name).get("Status")
            except Exception as exc:  # pylint: disable=broad-except
                self.fail(exc, "read the versioning of bucket %s" % self.name)
        wanted = "Enabled" if self.module.params["versioning"] else ("Suspended" if status else None)
        before_state["versioning"], after_state["versioning"] = status, wanted
        self.result["versioning"] = wanted
        if status == wanted:
            return
        self.result["changed"] = True
        if self.module.check_mode:
            return
        try:
            self.client.put_bucket_versioning(Bucket=self.name, VersioningConfiguration={"Status": wanted})
        except Exception as exc:  # pylint: disable=broad-except
            self.fail(exc, "set the versioning of bucket %s" % self.name)

    def sync_lifecycle(self, existed, before_state, after_state):
        rules = []
        if existed:
            try:
                rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.name).get("Rules") or []
            except s3u.ClientError as exc:
                if s3u.error_code(exc) != "NoSuchLifecycleConfiguration":
                    self.fail(exc, "read the lifecycle rules of bucket %s" % self.name)
            except Exception as exc:  # pylint: disable=broad-except
                self.fail(exc, "read the lifecycle rules of bucket %s" % self.name)
        prefix = self.module.params["expire_prefix"] or ""
        rule_id = retention_rule_id(prefix)
        others = [r for r in rules if r.get("ID") != rule_id]
        current = retention_days([r for r in rules if r.get("ID") == rule_id], prefix)
        days = self.module.params["expire_days"]
        before_state["expire_days"], after_state["expire_days"] = current, days
        self.result["expire_days"] = days
        if current == days:
            return
        self.result["changed"] = True
        if self.module.check_mode:
            return
        wanted = others + ([retention_rule(days, prefix)] if days else [])
        try:
            if wanted:
                self.client.put_bucket_lifecycle_configuration(Bucket=self.name, LifecycleConfiguration={"Rules": wanted})
            else:
                self.client.delete_bucket_lifecycle(Bucket=self.name)
        except Exception as exc:  # pylint: disable=broad-except
            self.fail(exc, "write the lifecycle rules of bucket %s" % self.name)

    def sync_cors(self, existed, before_state, after_state):
        current = []
        if existed:
            try:
                current = self.client.get_bucket_cors(Bucket=self.name).get("CORSRules") or []
            except s3u.ClientError as exc:
                if s3u.error_code(exc) != "NoSuchCORSConfiguration":
                    self.fail(exc, "read the CORS rules of bucket %s" % self.name)
            except Exception as exc:  # pylint: disable=broad-except
                self.fail(exc, "read the CORS rules of bucket %s" % self.name)
        current = [cors_rule(r) for r in current]
        wanted = [cors_rule(dict(AllowedOrigins=r["allowed_origins"], AllowedMethods=r["allowed_methods"],
                                 AllowedHeaders=r.get("allowed_headers"), ExposeHeaders=r.get("expose_headers"),
                                 MaxAgeSeconds=r.get("max_age_seconds")))
                  for r in self.module.params["cors"]]
        before_state["cors"], after_state["cors"] = current, wanted
        self.result["cors"] = wanted
        if current == wanted:
            return
        self.result["changed"] = True
        if self.module.check_mode:
            return
        try:
            if wanted:
                self.client.put_bucket_cors(Bucket=self.name, CORSConfiguration={"CORSRules": wanted})
            else:
                self.client.delete_bucket_cors(Bucket=self.name)
        except Exception as exc:  # pylint: disable=broad-except
            self.fail(exc, "write the CORS rules of bucket %s" % self.name)

    def create(self):
        kwargs = dict(Bucket=self.name)
        if self.conn.region and self.conn.region != s3u.DEFAULT_REGION:
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.conn.region}
        try:
            self.client.create_bucket(**kwargs)
        except s3u.ClientError as exc:
            code = s3u.error_code(exc)
            if code == "BucketAlreadyOwnedByYou":
                return
            if code == "BucketAlreadyExists":
                self.module.fail_json(msg="Cannot create bucket %s: the name is taken by another account on %s. Choose "
                                          "another name." % (self.name, self.conn.description), **self.result)
            self.fail(exc, "create bucket %s" % self.name)
        except Exception as exc:  # pylint: disable=broad-except
            self.fail(exc, "create bucket %s" % self.name)

    def write_policy(self, desired):
        try:
            if desired is None or not sp.normalize_policy(desired):
                self.client.delete_bucket_policy(Bucket=self.name)
            else:
                self.client.put_bucket_policy(Bucket=self.name, Policy=sp.policy_json(desired))
        except Exception as exc:  # pylint: disable=broad-except
            if s3u.error_code(exc) == "MalformedPolicy":
                self.module.fail_json(msg="The server refused the policy of bucket %s as malformed: %s. Fix policy."
                                          % (self.name, s3u.describe_error(exc, self.conn, "write it")), **self.result)
            self.fail(exc, "write the policy of bucket %s" % self.name)

    # -- absent ------------------------------------------------------------------------------
    def first_object(self):
        """The key of one object (or object version) in the bucket, or None when it is empty."""
        try:
            listing = self.client.list_objects_v2(Bucket=self.name, MaxKeys=1)
            if listing.get("Contents"):
                return listing["Contents"][0]["Key"]
            try:
                versions = self.client.list_object_versions(Bucket=self.name, MaxKeys=1)
            except s3u.ClientError as exc:
                if s3u.error_code(exc) in ("NotImplemented", "InvalidRequest", "InvalidArgument"):
                    return None
                raise
            for entry in (versions.get("Versions") or []) + (versions.get("DeleteMarkers") or []):
                return entry["Key"]
        except Exception as exc:  # pylint: disable=broad-except
            self.fail(exc, "list bucket %s" % self.name)
        return None

    def purge(self):
        """Delete every object version, object and unfinished upload. Returns how many were deleted."""
        deleted = 0
        try:
            for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.name):
                targets = [dict(Key=v["Key"], VersionId=v["VersionId"])
                           for v in (page.get("Versions") or []) + (page.get("DeleteMarkers") or [])
                           if v.get("VersionId") and v.get("VersionId") != "null"]
                deleted += self.delete_batch(targets)
        except s3u.ClientError as exc:
            if s3u.error_code(exc) not in ("NotImplemented", "InvalidRequest", "InvalidArgument"):
                self.fail(exc, "list the object versions of bucket %s" % self.name)
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
                deleted += self.delete_batch([dict(Key=o["Key"]) for o in page.get("Contents") or []])
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.name):
                for upload in page.get("Uploads") or []:
                    self.client.abort_multipart_upload(Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"])
        except Exception as exc:  # pylint: disable=broad-except
            self.fail(exc, "empty bucket %s" % self.name)
        return deleted

    def delete_batch(self, targets):
        count = 0
        for start in range(0, len(targets), DELETE_BATCH):
            chunk = targets[start:start + DELETE_BATCH]
            answer = self.client.delete_objects(Bucket=self.name, Delete=dict(Objects=chunk, Quiet=True))
            errors = answer.get("Errors") or []
            if errors:
                self.module.fail_json(msg="Cannot empty bucket %s: %d object(s) could not be deleted, e.g. %s: %s"
                                          % (self.name, len(errors), errors[0].get("Key"), errors[0].get("Code")),
                                      **self.result)
            count += len(chunk)
        return count

    def absent(self):
        existed = self.exists()
        if self.module._diff:
            self.result["diff"] = dict(before=dict(name=self.name, exists=existed), after=dict(name=self.name, exists=False))
        if not existed:
            return
        self.result.update(changed=True, deleted_objects=0)
        if not self.module.params["force"]:
            key = self.first_object()
            if key is not None:
                self.refuse_non_empty(key)
        if self.module.check_mode:
            return
        if self.module.params["force"]:
            self.result["deleted_objects"] = self.purge()
        try:
            self.client.delete_bucket(Bucket=self.name)
        except s3u.ClientError as exc:
            if s3u.error_code(exc) == "BucketNotEmpty":
                self.refuse_non_empty(None)
            if s3u.error_code(exc) in ("NoSuchBucket",):
                return
            self.fail(exc, "delete bucket %s" % self.name)
        except Exception as exc:  # pylint: disable=broad-except
            self.fail(exc, "delete bucket %s" % self.name)

    def refuse_non_empty(self, key):
        self.result["changed"] = False
        example = " (for example %r)" % key if key else ""
        self.module.fail_json(msg="Bucket %s is not empty: it still holds objects%s. Nothing was deleted. Set force: true "
                                  "to delete the bucket with all its objects, or empty it first."
                                  % (self.name, example), **self.result)


def cors_rule(rule):
    """A CORS rule in S3's form with sorted lists and no empty fields (server-added IDs dropped)."""
    out = {}
    for key in ("AllowedOrigins", "AllowedMethods", "AllowedHeaders", "ExposeHeaders"):
        values = rule.get(key) or []
        if values:
            out[key] = sorted(set(values))
    if rule.get("MaxAgeSeconds") is not None:
        out["MaxAgeSeconds"] = int(rule["MaxAgeSeconds"])
    return out


RETENTION_RULE = "fediverse-mastodon-retention"


def retention_rule_id(prefix):
    """The ID of the retention rule of ``prefix`` (one rule per prefix: instances share a bucket)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in prefix.strip("/"))
    return ("%s-%s" % (RETENTION_RULE, cleaned) if cleaned else RETENTION_RULE)[:255]


def retention_rule(days, prefix=""):
    """The lifecycle rule that keeps the objects under ``prefix`` ``days`` days (and replaced
    versions as long)."""
    return {"ID": retention_rule_id(prefix), "Status": "Enabled", "Filter": {"Prefix": prefix},
            "Expiration": {"Days": days}, "NoncurrentVersionExpiration": {"NoncurrentDays": days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}


def retention_days(rules, prefix=""):
    """The days of our retention rule among ``rules`` as the server returns them; 0 when it is
    missing, -1 when it is disabled or not the rule retention_rule() writes (then it is written
    again)."""
    for rule in rules:
        days = (rule.get("Expiration") or {}).get("Days")
        same = (rule.get("Status") == "Enabled"
                and (rule.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays") == days
                and (rule.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation") == 7
                and ((rule.get("Filter") or {}).get("Prefix") or rule.get("Prefix") or "") == prefix)
        return days if same and days else -1
    return 0


def main(module_class=AnsibleModule):
    argument_spec = s3u.s3_argument_spec(
        name=dict(type="str", required=True, aliases=["bucket"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        force=dict(type="bool", default=False),
        anonymous_read=dict(type="bool"),
        anonymous_read_prefixes=dict(type="list", elements="str"),
        policy=dict(type="json"),
        versioning=dict(type="bool"),
        expire_days=dict(type="int"),
        expire_prefix=dict(type="str", default=""),
        cors=dict(type="list", elements="dict", options=dict(
            allowed_origins=dict(type="list", elements="str", required=True),
            allowed_methods=dict(type="list", elements="str", required=True,
                                 choices=["GET", "HEAD", "PUT", "POST", "DELETE"]),
            allowed_headers=dict(type="list", elements="str"),
            expose_headers=dict(type="list", elements="str"),
            max_age_seconds=dict(type="int"),
        )),
    )
    module = module_class(argument_spec=argument_spec,
                          **s3u.s3_module_kwargs(mutually_exclusive=[("anonymous_read", "policy")],
                                                 required_by=dict(anonymous_read_prefixes=["anonymous_read"])))
    problem = s3u.bucket_name_problem(module.params["name"])
    if problem:
        module.fail_json(msg="name: %r is not a valid S3 bucket name: %s. Fix name." % (module.params["name"], problem),
                         name=module.params["name"], changed=False)
    with s3u.s3_connection(module) as conn:
        runner = BucketModule(module, conn)
        if module.params["state"] == "present":
            runner.present()
        else:
            runner.absent()
        result = runner.result
    module.exit_json(**result)


if __name__ == "__main__":
    main()
