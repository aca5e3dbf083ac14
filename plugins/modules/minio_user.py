#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: minio_user
short_description: A service user that may write to Mastodon's media buckets and do nothing else
version_added: "1.0.0"
description:
  - Makes sure an S3 service user exists with its own keys and a policy that lets it read and
    write the objects of O(buckets), and nothing else. The policy allows C(s3:ListBucket),
    C(s3:GetBucketLocation) and C(s3:ListBucketMultipartUploads) on each bucket, and
    C(s3:PutObject), C(s3:PutObjectAcl) (Mastodon uploads with an ACL), C(s3:GetObject),
    C(s3:DeleteObject), C(s3:AbortMultipartUpload) and C(s3:ListMultipartUploadParts) on its objects.
  - O(api) says how users are managed. V(minio) uses MinIO's admin API through the C(minio) Python
    SDK (C(MinioAdmin)) - a user, a canned policy, and the policy attached to the user. V(ceph) uses
    the Ceph RGW Admin Ops API for the user and its key (the user may not create buckets of its own),
    and RGW's IAM C(PutUserPolicy) on the same endpoint for the policy. V(seaweedfs) uses the IAM API
    SeaweedFS serves on its S3 port (C(CreateUser), C(CreateAccessKey) with the key pair given,
    C(PutUserPolicy)). Other S3 keys of a Ceph or SeaweedFS user (for example after O(user_access_key)
    changed) are removed.
  - SeaweedFS reduces a policy to its own coarse actions per bucket and takes C(Allow) statements only.
    Its user policy leaves out C(s3:ListBucketMultipartUploads) and C(s3:ListMultipartUploadParts),
    which it does not know, and O(access=add_only) cannot be enforced there, so it is refused.
  - "Keys: the user's access key is O(name) unless O(user_access_key) is given. Without
    O(user_secret_key) a new user gets a strong generated secret key (40 letters and digits). With
    O(store_in) the access key and secret key are written straight into a Kubernetes Secret
    (created if absent), so the secret never passes through Ansible; without it the generated key
    is returned once in RV(user_secret_key) and the task must use C(no_log)."
  - An existing user keeps its key unless O(update_secret=always). With O(store_in), the key in
    the Secret is the one that counts. A user missing on the server is created with it, and a
    server key that no longer matches it is set back to it.
  - The policy is compared after normalising it, so a rerun changes nothing unless something
    really differs.
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
      - Name of the user. For O(api=ceph) the RGW user id; for O(api=minio) the user's access key; for
        O(api=seaweedfs) the IAM user name.
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates the user; V(absent) deletes it and its policy. A Secret named by
        O(store_in) is never deleted.
    type: str
    choices: [present, absent]
    default: present
  api:
    description:
      - How users are managed. V(minio) for MinIO, V(ceph) for Ceph RGW (including Rook), V(seaweedfs) for
        SeaweedFS (the collection's in-cluster S3 server).
    type: str
    choices: [minio, ceph, seaweedfs]
    default: minio
  buckets:
    description:
      - Buckets the user may read and write. Required with O(state=present). The buckets need not exist yet.
    type: list
    elements: str
    default: []
  access:
    description:
      - V(read_write) (Mastodon's media user) gets the policy described above.
      - V(add_only) (a backup writer) may add objects under O(prefix) of the one bucket in O(buckets),
        multipart included, and nothing else. It may not read, list or delete objects or versions,
        nor change the bucket's versioning, lifecycle, object lock, policy or ACL. Use it on a
        versioned bucket, where writing over a key only adds a version.
    type: str
    choices: [read_write, add_only]
    default: read_write
  prefix:
    description: The key prefix an V(add_only) user may write under. Empty means the whole bucket.
    type: str
    default: ""
  policy_name:
    description:
      - Name of the policy. A canned policy for O(api=minio) (MinIO's policies are global, so the
        default includes the user name); the user's inline policy for O(api=ceph).
      - Defaults to C(<name>-mastodon-rw).
    type: str
  user_access_key:
    description:
      - The user's access key, when it must differ from O(name) (O(api=ceph) and O(api=seaweedfs); a MinIO
        user's access key is its name).
      - With O(api=seaweedfs) it defaults to the letters and digits of O(name), as SeaweedFS takes only those.
    type: str
  user_secret_key:
    description:
      - The user's secret key. Omit it to have one generated for a new user (see O(store_in)).
      - For an existing user it is applied only with O(update_secret=always).
    type: str
  update_secret:
    description:
      - V(on_create) sets the secret key only when the user is created (or when the key stored in
        O(store_in) no longer works).
      - V(always) makes the server's key equal O(user_secret_key); without O(user_secret_key) it
        generates a new key on every run (a rotation).
    type: str
    choices: [always, on_create]
    default: on_create
  store_in:
    description:
      - A Kubernetes Secret to keep the user's keys in. It is created when absent; other keys in it
        are left alone. Writes are guarded by C(resourceVersion), so concurrent runs cannot overwrite
        each other.
      - The keys are written to the Secret before the user is created on the server, so a failure in
        between loses nothing. The next run creates the user with the stored key.
    type: dict
    suboptions:
      namespace:
        description: Namespace of the Secret. Must exist.
        type: str
        required: true
      name:
        description: Name of the Secret.
        type: str
        required: true
      access_key_key:
        description: The key of the Secret's data that holds the access key.
        type: str
        default: AWS_ACCESS_KEY_ID
      secret_key_key:
        description: The key of the Secret's data that holds the secret key.
        type: str
        default: AWS_SECRET_ACCESS_KEY
      labels:
        description: Labels set on the Secret when it is created, and added when missing.
        type: dict
        default: {}
      kubeconfig:
        description:
          - Path to a kubeconfig file, or the kubeconfig as a dictionary.
          - Falls back to E(K8S_AUTH_KUBECONFIG), then to the pod's service account when running inside
            a cluster, then to E(KUBECONFIG) or C(~/.kube/config).
        type: raw
      context:
        description: The kubeconfig context to use. Falls back to E(K8S_AUTH_CONTEXT).
        type: str
      host:
        description: URL of the Kubernetes API server. Falls back to E(K8S_AUTH_HOST).
        type: str
      api_key:
        description: Bearer token for the API server. Falls back to E(K8S_AUTH_API_KEY).
        type: str
      validate_certs:
        description: Whether to verify the API server's TLS certificate. Falls back to E(K8S_AUTH_VERIFY_SSL).
        type: bool
        aliases: [verify_ssl]
      ca_cert:
        description: CA bundle that signs the API server's certificate. Falls back to E(K8S_AUTH_SSL_CA_CERT).
        type: path
        aliases: [ssl_ca_cert]
      client_cert:
        description: Client certificate for the API server. Falls back to E(K8S_AUTH_CERT_FILE).
        type: path
        aliases: [cert_file]
      client_key:
        description: Key of O(store_in.client_cert). Falls back to E(K8S_AUTH_KEY_FILE).
        type: path
        aliases: [key_file]
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows whether the user exists, its policy and its buckets; never a key.
requirements:
  - boto3 (Python library)
  - minio (Python library, 7.2 or later), for O(api=minio) only
  - kubernetes (Python library), for O(store_in), O(admin_secret) and O(via_kubernetes) only
seealso:
  - module: fediverse.mastodon.minio_bucket
notes:
  - O(access_key) and O(secret_key) (or the keys in O(admin_secret)) are the admin credentials. On MinIO the root user (or a user with
    the C(admin:CreateUser), C(admin:CreatePolicy), C(admin:AttachUserOrGroupPolicy) and
    C(admin:GetUser) actions). On Ceph RGW a user with the caps C(users=*) and C(user-policy=*). On
    SeaweedFS an identity with the C(Admin) action (the in-cluster server's C(AWS_ACCESS_KEY_ID)).
  - MinIO never returns a user's secret key. When a MinIO user exists but its key is unknown (neither
    given nor stored in O(store_in)), the module fails rather than rotate it. Set
    O(update_secret=always) to rotate on purpose.
  - With O(api=minio), the versions relied on are documented in docs/modules/s3.md of the collection.
'''

EXAMPLES = r'''
- name: Mastodon's user on the in-cluster MinIO; keys go straight into a Secret
  fediverse.mastodon.minio_user:
    api: minio
    name: social-mastodon
    buckets: [social-media]
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
    via_kubernetes:
      namespace: social
      service: social-minio
      port: 9000
    store_in:
      namespace: social
      name: social-mastodon-s3

- name: Mastodon's user on Ceph RGW (Rook), keys in a Secret
  fediverse.mastodon.minio_user:
    api: ceph
    name: social-mastodon
    buckets: [social-media]
    endpoint: https://rgw.storage.example.org
    access_key: "{{ rgw_admin_access_key }}"
    secret_key: "{{ rgw_admin_secret_key }}"
    store_in:
      namespace: social
      name: social-mastodon-s3

- name: The same, with the admin keys read from a Secret by the module (they never enter Ansible)
  fediverse.mastodon.minio_user:
    api: ceph
    name: social-mastodon
    buckets: [social-media]
    endpoint: https://rgw.storage.example.org
    admin_secret:
      namespace: rook-ceph
      name: rgw-admin-keys
      access_key: AccessKey
      secret_key: SecretKey
    store_in:
      namespace: social
      name: social-mastodon-s3

- name: Without a Secret, the generated key is returned once (keep it secret)
  fediverse.mastodon.minio_user:
    api: minio
    name: social-mastodon
    buckets: [social-media]
    endpoint: http://127.0.0.1:9000
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
  register: media_user
  no_log: true

- name: Rotate the key on purpose (Mastodon must be restarted with the new Secret)
  fediverse.mastodon.minio_user:
    api: ceph
    name: social-mastodon
    buckets: [social-media]
    endpoint: https://rgw.storage.example.org
    access_key: "{{ rgw_admin_access_key }}"
    secret_key: "{{ rgw_admin_secret_key }}"
    update_secret: always
    store_in:
      namespace: social
      name: social-mastodon-s3

# On AWS S3 itself, create IAM users with amazon.aws.iam_user and amazon.aws.iam_policy;
# minio_bucket works there unchanged.
'''

RETURN = r'''
name:
  description: The user's name.
  returned: always
  type: str
  sample: social-mastodon
user_access_key:
  description: The user's access key.
  returned: success
  type: str
  sample: social-mastodon
user_secret_key:
  description:
    - The secret key, only when the module generated it and O(store_in) is not used. Use C(no_log) on
      the task.
  returned: when a key was generated without O(store_in) (not in check mode)
  type: str
  sample: "<40 characters>"
created:
  description: Whether the user was created.
  returned: success
  type: bool
  sample: true
secret:
  description: What happened to the user's secret key.
  returned: success
  type: str
  choices: [unchanged, generated, set, rotated, restored]
  sample: unchanged
policy_name:
  description: Name of the policy.
  returned: success
  type: str
  sample: social-mastodon-mastodon-rw
policy:
  description: The user's policy after the run.
  returned: when O(state=present)
  type: dict
  sample: {Version: "2012-10-17", Statement: []}
secret_ref:
  description: Where the keys are stored, when O(store_in) is used (names only).
  returned: when O(store_in) is used
  type: dict
  sample: {namespace: social, name: social-mastodon-s3, access_key_key: AWS_ACCESS_KEY_ID, secret_key_key: AWS_SECRET_ACCESS_KEY}
endpoint:
  description: Where the module talked to.
  returned: always
  type: str
  sample: http://127.0.0.1:9000
'''

import copy
import secrets
import string

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.fediverse.mastodon.plugins.module_utils import s3 as s3u
from ansible_collections.fediverse.mastodon.plugins.module_utils import s3_policy as sp
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_secret
from ansible_collections.fediverse.mastodon.plugins.module_utils import ceph_admin
from ansible_collections.fediverse.mastodon.plugins.module_utils import minio_admin
from ansible_collections.fediverse.mastodon.plugins.module_utils import seaweedfs_admin

SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 40


def generate_secret():
    return "".join(secrets.choice(SECRET_ALPHABET) for dummy in range(SECRET_LENGTH))


class Backend(object):
    """What minio_user needs from a server: one class per api."""

    secret_known = False

    def get(self, name, access_key):
        """None, or dict(secret=<the access key's secret, or None when unknown>, policy=<doc or None>,
        attached=<bool>, drift=<dict of other settings that differ>)."""
        raise NotImplementedError

    def create(self, name, access_key, secret_key):
        raise NotImplementedError

    def set_secret(self, name, access_key, secret_key):
        raise NotImplementedError

    def set_policy(self, name, access_key, policy_name, document, attached):
        raise NotImplementedError

    def fix_settings(self, name, drift):
        pass

    def delete(self, name, access_key, policy_name):
        raise NotImplementedError


class CephBackend(Backend):
    secret_known = True

    def __init__(self, conn):
        self.admin = ceph_admin.CephAdmin(conn)

    def get(self, name, access_key):
        info = self.admin.get_user(name)
        if info is None:
            return None
        keys = ceph_admin.s3_keys(info)
        drift = {}
        if info.get("max_buckets") != -1:
            drift["max_buckets"] = -1
        # Keys other than the user's access key (left by a change of user_access_key, or added by
        # hand) are credentials nobody manages: they are removed.
        stale = sorted(k for k in keys if k != access_key)
        if stale:
            drift["stale_keys"] = stale
        return dict(secret=keys.get(access_key), has_key=access_key in keys, drift=drift, info=info)

    def policy(self, name, policy_name):
        text = self.admin.get_user_policy(name, policy_name)
        return sp.load_policy(text) if text else None

    def create(self, name, access_key, secret_key):
        # max-buckets -1: the user may not create buckets of its own.
        self.admin.create_user(name, name, access_key, secret_key, max_buckets=-1)

    def set_secret(self, name, access_key, secret_key):
        self.admin.set_key(name, access_key, secret_key)

    def set_policy(self, name, access_key, policy_name, document, attached):
        self.admin.put_user_policy(name, policy_name, document)

    def fix_settings(self, name, drift):
        drift = dict(drift)
        for stale in drift.pop("stale_keys", []):
            self.admin.remove_key(name, stale)
        if drift:
            self.admin.modify_user(name, **drift)

    def delete(self, name, access_key, policy_name):
        self.admin.delete_user_policy(name, policy_name)
        self.admin.delete_user(name)


class MinioBackend(Backend):
    secret_known = False

    def __init__(self, conn):
        self.users = minio_admin.MinioUsers(minio_admin.build_admin(conn), before_write=conn.about_to_write)

    def get(self, name, access_key):
        info = self.users.get_user(access_key)
        if info is None:
            return None
        return dict(secret=None, has_key=True, drift={}, info=info)

    def policy(self, name, policy_name):
        doc = self.users.get_policy(policy_name)
        return sp.load_policy(doc) if doc else None

    def create(self, name, access_key, secret_key):
        self.users.set_user(access_key, secret_key)

    def set_secret(self, name, access_key, secret_key):
        self.users.set_user(access_key, secret_key)

    def set_policy(self, name, access_key, policy_name, document, attached):
        if document is not None:
            self.users.put_policy(policy_name, document)
        if not attached:
            self.users.attach_policy(policy_name, access_key)

    def delete(self, name, access_key, policy_name):
        self.users.remove_user(access_key)
        self.users.remove_policy(policy_name)


class SeaweedfsBackend(Backend):
    """SeaweedFS's embedded IAM API: it never returns a secret, so a stored key is checked by using it."""

    secret_known = False

    def __init__(self, conn):
        self.admin = seaweedfs_admin.SeaweedfsAdmin(conn)

    def get(self, name, access_key):
        if self.admin.get_user(name) is None:
            return None
        keys = self.admin.access_keys(name)
        stale = sorted(k for k in keys if k != access_key)
        return dict(secret=None, has_key=access_key in keys, drift=dict(stale_keys=stale) if stale else {}, info={})

    def policy(self, name, policy_name):
        text = self.admin.get_user_policy(name, policy_name)
        return sp.load_policy(text) if text else None

    def create(self, name, access_key, secret_key):
        self.admin.create_user(name)
        self.admin.create_access_key(name, access_key, secret_key)

    def set_secret(self, name, access_key, secret_key):
        if access_key in self.admin.access_keys(name):
            self.admin.delete_access_key(name, access_key)
        self.admin.create_access_key(name, access_key, secret_key)

    def set_policy(self, name, access_key, policy_name, document, attached):
        if document is not None:
            self.admin.put_user_policy(name, policy_name, document)

    def fix_settings(self, name, drift):
        for stale in drift.get("stale_keys", []):
            self.admin.delete_access_key(name, stale)

    def delete(self, name, access_key, policy_name):
        self.admin.delete_user_policy(name, policy_name)
        for key in self.admin.access_keys(name):
            self.admin.delete_access_key(name, key)
        self.admin.delete_user(name)


BACKENDS = dict(ceph=CephBackend, minio=MinioBackend, seaweedfs=SeaweedfsBackend)


def default_access_key(params):
    if params["user_access_key"]:
        return params["user_access_key"]
    if params["api"] == "seaweedfs":
        return seaweedfs_admin.access_key_for(params["name"])
    return params["name"]


def desired_policy(params):
    if params["access"] == "add_only":
        policy = sp.backup_writer_policy(params["buckets"][0], params["prefix"])
    else:
        policy = sp.user_policy(params["buckets"])
    if params["api"] == "seaweedfs":
        policy = seaweedfs_admin.policy_for_server(policy)
    return policy


class UserModule(object):

    def __init__(self, module, conn):
        self.module = module
        self.conn = conn
        p = module.params
        self.name = p["name"]
        self.access_key = default_access_key(p)
        self.policy_name = p["policy_name"] or "%s-mastodon-rw" % p["name"]
        self.backend = BACKENDS[p["api"]](conn)
        self.result = dict(changed=False, name=self.name, endpoint=conn.description, policy_name=self.policy_name)
        self.diff_before = dict(name=self.name)
        self.diff_after = dict(name=self.name)

    # -- errors ------------------------------------------------------------------------------
    def fail(self, exc, action):
        code = getattr(exc, "code", None)
        where = self.conn.description
        if getattr(exc, "transport", False):
            msg = ("Cannot %s: the S3 endpoint %s is unreachable (%s). Check endpoint (scheme, host, port) or "
                   "via_kubernetes." % (action, where, exc))
        elif code in s3u.INVALID_CREDENTIAL_CODES:
            msg = ("Cannot %s: %s rejected the admin credentials (%s). Check %s."
                   % (action, where, code, self.conn.credentials_hint))
        elif code == "AccessDenied" or getattr(exc, "status", None) == 403:
            needs = {"ceph": "the caps users=* and user-policy=*",
                     "seaweedfs": "the Admin action (the server's AWS_ACCESS_KEY_ID identity)"}.get(
                self.module.params["api"], "admin rights on users and policies (the root user)")
            msg = "Cannot %s: %s denied access (%s). The admin account of %s needs %s." % (
                action, where, code or "HTTP 403", self.conn.credentials_option, needs)
        elif getattr(exc, "status", None) == 404 and self.module.params["api"] == "ceph":
            msg = ("Cannot %s: %s has no Ceph RGW Admin Ops API (HTTP 404 %s). Is it a Ceph RGW? Use api: minio for "
                   "MinIO." % (action, where, code or ""))
        elif self.module.params["api"] == "seaweedfs" and getattr(exc, "status", None) in (400, 404, 405, 501) \
                and code not in ("NoSuchEntity", "InvalidInput", "EntityAlreadyExists", "MalformedPolicyDocument"):
            msg = ("Cannot %s: %s does not serve SeaweedFS's IAM API (HTTP %s %s). Is it a SeaweedFS S3 gateway with "
                   "-s3.iam.readOnly=false? Use api: minio or api: ceph for other servers."
                   % (action, where, exc.status, code or ""))
        elif (self.module.params["api"] == "minio" and getattr(exc, "status", None) in (400, 404, 405)
              and not (code or "").startswith("XMinio")):
            msg = ("Cannot %s: %s does not speak MinIO's admin API (HTTP %s %s). Use api: ceph for Ceph RGW."
                   % (action, where, exc.status, code or ""))
        else:
            msg = "Cannot %s: %s" % (action, ceph_admin.scrub(to_native(exc)))
        self.module.fail_json(msg=msg, **self.result)

    def call(self, action, func, *args):
        try:
            return func(*args)
        except (ceph_admin.CephAdminError, minio_admin.MinioAdminError) as exc:
            self.fail(exc, action)
        except sp.PolicyError as exc:
            self.module.fail_json(msg="The policy %s of user %s on the server is not understood (%s); it will be "
                                      "replaced if you delete it." % (self.policy_name, self.name, exc), **self.result)

    # -- keys --------------------------------------------------------------------------------
    def key_works(self, secret_key):
        """Does the server accept (access_key, secret_key)? Used where the server hides secrets (MinIO)."""
        client = self.conn.for_user(self.access_key, secret_key).client("s3")
        try:
            client.list_objects_v2(Bucket=self.module.params["buckets"][0], MaxKeys=1)
        except s3u.ClientError as exc:
            if s3u.error_code(exc) in s3u.INVALID_CREDENTIAL_CODES:
                return False
            return True  # signed correctly; denied or no such bucket is not about the key
        except Exception as exc:  # pylint: disable=broad-except
            self.module.fail_json(msg=s3u.describe_error(exc, self.conn, "check the key of user %s" % self.name),
                                  **self.result)
        return True

    def choose_secret(self, user, stored):
        """The key the user must have after the run, and where it comes from.

        Returns ``(secret_key, source)``; source is ``set`` (user_secret_key applies), ``generated``,
        ``rotated``, ``stored`` (from store_in), ``current`` (the server's, Ceph), ``given``
        (user_secret_key for an existing MinIO user whose key is unknown; not applied) or
        ``unknown`` (secret_key None: an existing MinIO user, nothing given or stored).
        """
        p = self.module.params
        given = p["user_secret_key"]
        always = p["update_secret"] == "always"
        exists = user is not None and user.get("has_key")  # a user without this access key needs a new key
        current = user.get("secret") if exists else None
        if given is not None and (always or not exists):
            return given, "set"
        if given is None and always:
            return generate_secret(), "rotated" if exists else "generated"
        if stored:
            return stored, "stored"
        if current is not None:
            return current, "current"
        if given is not None:
            return given, "given"
        if not exists:
            return generate_secret(), "generated"
        return None, "unknown"

    # -- present -----------------------------------------------------------------------------
    def present(self):
        p = self.module.params
        user = self.call("read user %s" % self.name, self.backend.get, self.name, self.access_key)
        exists = user is not None
        self.diff_before.update(exists=exists)
        self.diff_after.update(exists=True, buckets=sorted(set(p["buckets"])))
        if p["store_in"]:
            secret_key, source = self.sync_store(user)
        else:
            secret_key, source = self.choose_secret(user, None)

        need_create = not exists
        need_key = False
        if need_create:
            label = {"stored": "restored", "set": "set"}.get(source, "generated")
        elif not user.get("has_key"):
            need_key = True
            label = {"stored": "restored"}.get(source, source)
        elif secret_key is None or source == "given":
            label = "unchanged"
        else:
            if self.backend.secret_known:
                need_key = user.get("secret") != secret_key
            elif source in ("generated", "rotated"):
                need_key = True
            elif source in ("set", "stored"):
                need_key = not self.key_works(secret_key)
            label = {"stored": "restored", "current": "restored"}.get(source, source) if need_key else "unchanged"
        if need_create or need_key:
            self.result["changed"] = True
            if not self.module.check_mode:
                if need_create:
                    self.call("create user %s" % self.name, self.backend.create, self.name, self.access_key, secret_key)
                else:
                    self.call("set the key of user %s" % self.name, self.backend.set_secret, self.name,
                              self.access_key, secret_key)
        self.result.update(created=need_create, secret=label, user_access_key=self.access_key)
        if not p["store_in"] and label in ("generated", "rotated") and not self.module.check_mode:
            self.result["user_secret_key"] = secret_key
            if not self.module.no_log:
                self.module.warn("minio_user returns the generated secret key in user_secret_key: set no_log: true on "
                                 "this task, or use store_in to keep it in a Kubernetes Secret.")

        drift = user.get("drift") if user else {}
        if drift:
            self.diff_before["other_access_keys"] = len(drift.get("stale_keys", []))
            self.diff_after["other_access_keys"] = 0
            self.result["changed"] = True
            if not self.module.check_mode:
                self.call("update user %s" % self.name, self.backend.fix_settings, self.name, drift)
        self.sync_policy(exists, user)
        if self.module._diff:
            self.diff_after["secret_key"] = "(%s)" % label
            self.result["diff"] = dict(before=self.diff_before, after=self.diff_after)

    def sync_policy(self, exists, user):
        p = self.module.params
        desired = desired_policy(p)
        current = self.call("read policy %s" % self.policy_name, self.backend.policy, self.name, self.policy_name) \
            if exists or self.module.params["api"] == "minio" else None
        attached = True
        if self.module.params["api"] == "minio":
            attached = bool(user) and self.policy_name in (user.get("info") or {}).get("policies", [])
        self.diff_before.update(policy=sp.display_policy(current), buckets=_policy_buckets(current))
        self.diff_after.update(policy=sp.display_policy(desired))
        if self.module.params["api"] == "minio":
            self.diff_before["policy_attached"] = attached
            self.diff_after["policy_attached"] = True
        differs = not sp.policies_equal(current, desired, ignore_sid=True)
        if differs or not attached:
            self.result["changed"] = True
            if not self.module.check_mode:
                self.call("write policy %s" % self.policy_name, self.backend.set_policy, self.name, self.access_key,
                          self.policy_name, sp.policy_json(desired) if differs else None, attached)
        self.result["policy"] = sp.display_policy(desired)

    def sync_store(self, user):
        """Keep the keys in the Kubernetes Secret; return (secret_key, what) for the server."""
        store = self.module.params["store_in"]
        if not k8s_client.HAS_KUBERNETES:
            self.module.fail_json(msg=missing_required_lib("kubernetes") + " (needed by store_in)",
                                  exception=to_native(k8s_client.KUBERNETES_IMPORT_ERROR))
        ak_key, sk_key = store["access_key_key"], store["secret_key_key"]
        decided = {}

        def plan(current):
            stored = current.get(sk_key) if current.get(ak_key) == self.access_key else None
            secret_key, what = self.choose_secret(user, stored)
            if secret_key is None:
                self.module.fail_json(
                    msg="User %s exists on %s, but its secret key is not in Secret %s/%s and MinIO cannot tell it. Give "
                        "user_secret_key, or set update_secret: always to generate a new key." % (
                            self.name, self.conn.description, store["namespace"], store["name"]), **self.result)
            decided.update(secret=secret_key, what=what)
            return {ak_key: self.access_key, sk_key: secret_key}, None

        try:
            api = k8s_client.build_api_client(store)
            stored = k8s_secret.apply_secret(api, store["namespace"], store["name"], plan, labels=store["labels"],
                                             check_mode=self.module.check_mode)
        except k8s_secret.SecretStoreError as exc:
            self.module.fail_json(msg="store_in: %s" % exc, **self.result)
        except Exception as exc:  # pylint: disable=broad-except
            self.module.fail_json(msg="store_in: cannot reach the Kubernetes API for Secret %s/%s: %s: %s. Check "
                                      "store_in.kubeconfig/context/host and the K8S_AUTH_* variables."
                                  % (store["namespace"], store["name"], type(exc).__name__, ceph_admin.scrub(exc)),
                                  **self.result)
        if stored["changed"]:
            self.result["changed"] = True
        self.result["secret_ref"] = dict(namespace=store["namespace"], name=store["name"], access_key_key=ak_key,
                                         secret_key_key=sk_key)
        self.diff_before["secret_ref_keys"] = stored["before_keys"]
        self.diff_after["secret_ref_keys"] = sorted(set((stored["before_keys"] or []) + [ak_key, sk_key]))
        return decided["secret"], decided["what"]

    # -- absent ------------------------------------------------------------------------------
    def absent(self):
        user = self.call("read user %s" % self.name, self.backend.get, self.name, self.access_key)
        self.diff_before.update(exists=user is not None)
        self.diff_after.update(exists=False)
        if user is not None:
            self.result["changed"] = True
            if not self.module.check_mode:
                self.call("delete user %s" % self.name, self.backend.delete, self.name, self.access_key,
                          self.policy_name)
        if self.module._diff:
            self.result["diff"] = dict(before=self.diff_before, after=self.diff_after)


def _policy_buckets(policy):
    """The buckets a user policy of ours covers (for the diff)."""
    norm = sp.normalize_policy(policy)
    if not norm:
        return []
    out = set()
    for st in norm["Statement"]:
        for res in st.get("Resource", []):
            if res.startswith("arn:aws:s3:::"):
                out.add(res[len("arn:aws:s3:::"):].split("/")[0])
    return sorted(out)


def store_in_spec():
    options = dict(
        namespace=dict(type="str", required=True),
        name=dict(type="str", required=True),
        access_key_key=dict(type="str", default="AWS_ACCESS_KEY_ID", no_log=False),
        secret_key_key=dict(type="str", default="AWS_SECRET_ACCESS_KEY", no_log=False),
        labels=dict(type="dict", default={}),
    )
    options.update(copy.deepcopy(k8s_client.K8S_AUTH_ARG_SPEC))
    return dict(type="dict", options=options)


def main(module_class=AnsibleModule):
    argument_spec = s3u.s3_argument_spec(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        api=dict(type="str", default="minio", choices=["minio", "ceph", "seaweedfs"]),
        buckets=dict(type="list", elements="str", default=[]),
        access=dict(type="str", default="read_write", choices=["read_write", "add_only"]),
        prefix=dict(type="str", default=""),
        policy_name=dict(type="str"),
        user_access_key=dict(type="str", no_log=False),
        user_secret_key=dict(type="str", no_log=True),
        update_secret=dict(type="str", default="on_create", choices=["always", "on_create"], no_log=False),
        store_in=store_in_spec(),
    )
    module = module_class(argument_spec=argument_spec, **s3u.s3_module_kwargs())
    p = module.params
    if p["state"] == "present" and not p["buckets"]:
        module.fail_json(msg="buckets: name at least one bucket the user may write to (state: present).")
    if p["access"] == "add_only" and len(p["buckets"]) > 1:
        module.fail_json(msg="buckets: access=add_only (a backup writer) takes one bucket; name one.")
    for bucket in p["buckets"]:
        problem = s3u.bucket_name_problem(bucket)
        if problem:
            module.fail_json(msg="buckets: %r is not a valid S3 bucket name: %s. Fix buckets." % (bucket, problem))
    if p["api"] == "minio":
        if not minio_admin.HAS_MINIO:
            module.fail_json(msg=missing_required_lib("minio") + " (needed by api: minio)",
                             exception=to_native(minio_admin.MINIO_IMPORT_ERROR))
        if p["user_access_key"] and p["user_access_key"] != p["name"]:
            module.fail_json(msg="user_access_key: a MinIO user's access key is its name; leave user_access_key unset "
                                 "or equal to name.")
    if p["api"] == "seaweedfs":
        if p["access"] == "add_only":
            module.fail_json(msg="access: add_only cannot be enforced on SeaweedFS, whose user policies take Allow "
                                 "statements only and whose Write action includes deletes. Keep backups on Ceph RGW, "
                                 "AWS S3 or MinIO, or set access: read_write.")
        problem = seaweedfs_admin.access_key_problem(default_access_key(p))
        if problem:
            module.fail_json(msg="user_access_key: %r is not usable: %s. Set user_access_key, or a name with letters "
                                 "and digits." % (default_access_key(p), problem))
    if p["user_secret_key"] is not None and not 8 <= len(p["user_secret_key"]) <= 128:
        module.fail_json(msg="user_secret_key must be 8 to 128 characters long (MinIO needs at least 8).")
    with s3u.s3_connection(module) as conn:
        runner = UserModule(module, conn)
        if p["state"] == "present":
            runner.present()
        else:
            runner.absent()
        result = runner.result
    module.exit_json(**result)


if __name__ == "__main__":
    main()
