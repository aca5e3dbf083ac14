#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: backup_run
short_description: Make, check, restore or drill a backup set of a Mastodon instance from the controller
version_added: "1.0.0"
description:
  - Runs the backup role's script (C(roles/backup/files/mastodon_backup.py), the file the backup Job
    runs in the cluster) on the Ansible controller, with every credential given by reference. The
    module reads the passwords and keys from their Kubernetes Secrets (or from the vaulted options)
    and hands them to the script in its environment only. No credential is an argument, a result or
    a log line.
  - PostgreSQL is reached directly or through an in-process port-forward (O(via_kubernetes)),
    the same way provisioning reaches it. Use the server itself, not a pooler; C(pg_dump) and
    C(pg_restore) must be of the server's major version or newer.
  - O(command=backup) makes a set of the database and of the Secrets named in O(keys_secrets).
    O(command=restore-keys) writes the set's keys back into those Secrets, byte for byte.
  - Nothing is changed before every part of the set matched its manifest and the private key
    decrypted the set (see the script).
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
  - fediverse.mastodon.via_kubernetes
options:
  script:
    description: Path of C(mastodon_backup.py) on the controller (the backup role's C(files/)).
    type: path
    required: true
  command:
    description:
      - V(backup) makes a set and returns its manifest. V(list) returns the ids of the complete sets.
        V(check) verifies a set's parts against its manifest. V(restore-db) restores a set's
        database into the new database O(database). V(restore-keys) writes a set's keys into their
        Secrets. V(verify) restores into the scratch database O(database), compares the row
        counts with the manifest, and drops it.
      - V(prune) deletes the sets older than O(prune_days) days, every version, but never the
        O(prune_keep) newest complete sets. Give it keys that may delete (the target's admin).
      - V(mirror-media) copies the new and changed objects of the media bucket (O(media)) into the
        bucket O(media.target_bucket) of the backup target. V(media-replication) returns the media
        bucket's enabled replication rules, and fails when there is none.
      - V(db-state) tells whether O(database) exists, its owner and how many tables it holds.
        V(swap-db) renames O(target_database) (if it exists) to O(keep_as) and O(database) to
        O(target_database), owned by O(owner). Both log in as an admin.
    type: str
    required: true
    choices: [backup, list, check, restore-db, restore-keys, verify, prune, mirror-media, media-replication, db-state, swap-db]
  backup_set:
    description: The set's id (like V(20261202T031500Z)) or V(latest). For V(backup), the id of the new set (V(latest) takes the time).
    type: str
    default: latest
  database:
    description: The database that V(restore-db) creates, V(verify) creates and drops, V(db-state) looks at, and V(swap-db) moves.
    type: str
  prune_days:
    description: For V(prune), the age in days from which a set is deleted.
    type: int
    default: 30
  prune_keep:
    description: For V(prune), how many of the newest complete sets are kept whatever their age.
    type: int
    default: 3
  target_database:
    description: For V(swap-db), the database name the restored database takes.
    type: str
  owner:
    description: For V(swap-db), the role that owns the database afterwards.
    type: str
  keep_as:
    description: For V(swap-db), the name the old O(target_database) is kept under.
    type: str
  namespace:
    description: The namespace of the Secrets.
    type: str
    required: true
  postgresql:
    description:
      - Where the database is, and who logs in. Through a port-forward when O(via_kubernetes)
        names the PostgreSQL Service, else at O(postgresql.host).
    type: dict
    suboptions:
      host:
        description: The server, when it is reached directly.
        type: str
      port:
        description: The server's port.
        type: int
        default: 5432
      user:
        description: The role that logs in.
        type: str
        required: true
      password_secret:
        description: The Secret (V(name), V(key)) of the role's password.
        type: dict
        required: true
      database:
        description: The database to back up (and to connect to).
        type: str
        default: postgres
      ssl_mode:
        description: libpq's sslmode.
        type: str
        default: prefer
  s3:
    description: The backup target (every command but V(db-state) and V(swap-db)).
    type: dict
    suboptions:
      endpoint:
        description: The S3 endpoint URL.
        type: str
        required: true
      region:
        description: The region.
        type: str
        default: us-east-1
      bucket:
        description: The backup bucket.
        type: str
        required: true
      prefix:
        description: The prefix of this instance's sets.
        type: str
        default: ""
      credentials_secret:
        description: The Secret (V(name), V(access_key), V(secret_key)) that holds the keys to use.
        type: dict
      access_key:
        description: The access key, from the vault, instead of O(s3.credentials_secret).
        type: str
      secret_key:
        description: The secret key, from the vault, instead of O(s3.credentials_secret).
        type: str
  media:
    description: The media bucket, for V(mirror-media) and V(media-replication).
    type: dict
    suboptions:
      endpoint:
        description: Its S3 endpoint URL (the scheme only, with O(media.port_forward)).
        type: str
      port_forward:
        description:
          - The in-cluster S3 Service to port-forward to, as V(namespace), V(service) and V(port);
            the connection fact C(minio_connection.port_forward).
        type: dict
      region:
        description: The region.
        type: str
        default: us-east-1
      bucket:
        description: The media bucket.
        type: str
        required: true
      credentials_secret:
        description: The Secret (V(name), V(access_key), V(secret_key)) of keys that may read the bucket.
        type: dict
        required: true
      target_bucket:
        description: The bucket of the backup target the media are copied into.
        type: str
  keys_secrets:
    description: The Secrets that hold Mastodon's generated keys, backed up and restored whole.
    type: list
    elements: str
    default: []
  recipients:
    description: The age public keys (V(age1...)) a new set is encrypted to.
    type: list
    elements: str
    default: []
  identity_file:
    description: A file that holds the age private key (V(AGE-SECRET-KEY-1...)), to decrypt a set.
    type: path
  identity:
    description:
      - The age private key itself, from a vaulted variable, instead of O(identity_file). The
        module writes it to a file of its own (mode 0600) for the run and removes it after.
    type: str
  mastodon_version:
    description: The deployed Mastodon version, written into the manifest.
    type: str
  local_domain:
    description: LOCAL_DOMAIN, written into the manifest.
    type: str
  pg_dump:
    description: The C(pg_dump) program.
    type: str
    default: pg_dump
  pg_restore:
    description: The C(pg_restore) program.
    type: str
    default: pg_restore
  timeout:
    description: Seconds the script may run.
    type: int
    default: 7200
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: V(backup) is not run. V(restore-db) and V(verify) only check the set. V(restore-keys) reads the set and reports which Secrets would change.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
requirements:
  - kubernetes, boto3, psycopg2 and pyrage (Python libraries)
  - pg_dump and pg_restore of the server's major version or newer
'''

EXAMPLES = r'''
- name: Back up the instance now, from the controller
  fediverse.mastodon.backup_run:
    script: "{{ role_path }}/files/mastodon_backup.py"
    command: backup
    namespace: social
    via_kubernetes: {namespace: social, service: social-postgresql, port: 5432}
    postgresql:
      user: mastodon
      password_secret: {name: social-postgresql, key: mastodon-password}
      database: mastodon_production
    s3:
      endpoint: https://s3.backups.example.org
      bucket: social-backups
      prefix: social
      credentials_secret: {name: social-backup-writer, access_key: AWS_ACCESS_KEY_ID, secret_key: AWS_SECRET_ACCESS_KEY}
    keys_secrets: [social-mastodon-secrets, social-mastodon-s3]
    recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
'''

RETURN = r'''
result:
  description: What the script printed, as data. The manifest for V(backup), V(check), V(restore-db)
    and V(restore-keys); the list of set ids for V(list); the drill's result for V(verify).
  returned: success
  type: raw
  sample: {id: 20261202T031500Z, mastodon_version: v4.6.3, parts: {db.dump.age: {size: 1024, sha256: "..."}}}
secrets:
  description: For V(restore-keys), each Secret and whether it was V(created), V(replaced) or V(unchanged).
  returned: when O(command=restore-keys)
  type: dict
  sample: {social-mastodon-secrets: replaced}
'''

import base64
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_secret import read_secret_value, SecretStoreError
from ansible_collections.fediverse.mastodon.plugins.module_utils.portforward import port_forward, via_kubernetes_spec

try:
    from kubernetes.client import CoreV1Api
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - reported through missing_required_lib
    CoreV1Api = None
    ApiException = Exception

COMMANDS = ["backup", "list", "check", "restore-db", "restore-keys", "verify", "prune", "mirror-media", "media-replication",
            "db-state", "swap-db"]
READ_ONLY = ("list", "check", "db-state")


@contextmanager
def postgres_endpoint(module, pg):
    """(host, port) of the server: a port-forward when via_kubernetes is set, else host/port."""
    via = module.params.get("via_kubernetes")
    if via:
        with port_forward(module, via, default_port=pg["port"]) as forwarded:
            yield forwarded[0], forwarded[1]
        return
    yield pg.get("host"), pg["port"]


class Runner(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        if CoreV1Api is None:
            module.fail_json(msg=missing_required_lib("kubernetes"))
        try:
            self.api = k8s_client.build_api_client(k8s_client.auth_params(self.params))
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_json(msg="cannot set up the Kubernetes client: %s; check kubeconfig/context" % to_native(exc))
        self.work = tempfile.mkdtemp(prefix="fediverse-backup-")
        os.chmod(self.work, 0o700)

    def secret_value(self, name, key, option):
        try:
            value = read_secret_value(self.api, self.params["namespace"], dict(name=name, key=key), option)
        except SecretStoreError as exc:
            self.module.fail_json(msg=to_native(exc))
        except Exception as exc:  # pylint: disable=broad-except
            self.module.fail_json(msg="%s: cannot read Secret %s/%s: %s" % (option, self.params["namespace"], name, to_native(exc)))
        self.module.no_log_values.add(value)
        return value

    def environment(self, host, port):
        p = self.params
        pg, s3 = p["postgresql"] or {}, p["s3"]
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_")))
        env.update(BACKUP_RECIPIENTS=" ".join(p["recipients"]), BACKUP_PG_DUMP=p["pg_dump"], BACKUP_PG_RESTORE=p["pg_restore"])
        if s3:
            if s3.get("access_key") and s3.get("secret_key"):
                access, secret = s3["access_key"], s3["secret_key"]
            elif s3.get("credentials_secret"):
                ref = s3["credentials_secret"]
                access = self.secret_value(ref["name"], ref["access_key"], "s3.credentials_secret")
                secret = self.secret_value(ref["name"], ref["secret_key"], "s3.credentials_secret")
            else:
                self.module.fail_json(msg="s3: give credentials_secret, or access_key and secret_key")
            env.update(AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret, BACKUP_S3_ENDPOINT=s3["endpoint"],
                       BACKUP_S3_REGION=s3["region"], BACKUP_S3_BUCKET=s3["bucket"], BACKUP_S3_PREFIX=s3["prefix"] or "")
        elif p["command"] not in ("db-state", "swap-db", "media-replication"):
            self.module.fail_json(msg="s3 is required with command=%s" % p["command"])
        if pg:
            ref = pg["password_secret"]
            env.update(PGHOST=host or "", PGPORT=str(port), PGUSER=pg["user"], PGDATABASE=pg["database"], PGSSLMODE=pg["ssl_mode"],
                       PGPASSWORD=self.secret_value(ref["name"], ref["key"], "postgresql.password_secret"),
                       PGAPPNAME="fediverse.mastodon backup")
        identity_file = p["identity_file"]
        if p["identity"]:
            identity_file = os.path.join(self.work, "identity.txt")
            fd = os.open(identity_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(p["identity"].strip() + "\n")
        for name, value in (("MASTODON_VERSION", p["mastodon_version"]), ("LOCAL_DOMAIN", p["local_domain"]),
                            ("BACKUP_IDENTITY_FILE", identity_file)):
            if value:
                env[name] = value
        return env

    def keys_dir(self):
        """The keys Secrets as folders (a file per key), as the Job mounts them."""
        core = CoreV1Api(self.api)
        top = os.path.join(self.work, "keys")
        os.mkdir(top, 0o700)
        for name in self.params["keys_secrets"]:
            try:
                secret = core.read_namespaced_secret(name, self.params["namespace"])
            except ApiException as exc:
                self.module.fail_json(msg="keys_secrets: cannot read Secret %s/%s (%s); it must exist before a backup"
                                      % (self.params["namespace"], name, getattr(exc, "reason", exc)))
            folder = os.path.join(top, name)
            os.mkdir(folder, 0o700)
            for key, value in (secret.data or {}).items():
                raw = base64.b64decode(value)
                self.module.no_log_values.add(raw.decode("utf-8", "replace"))
                fd = os.open(os.path.join(folder, key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(raw)
        return top

    def script(self, env, *args):
        try:
            proc = subprocess.run([sys.executable, self.params["script"]] + list(args), env=env, capture_output=True,
                                  timeout=self.params["timeout"], check=False)
        except subprocess.TimeoutExpired:
            self.module.fail_json(msg="the backup script did not finish within %d s (timeout)" % self.params["timeout"])
        if proc.returncode == 1 and args[0] == "verify" and proc.stdout.strip():
            result = json.loads(proc.stdout.decode("utf-8"))
            self.module.fail_json(msg="backup_verify: set %s restored, but row counts differ from its manifest: %s" % (
                result.get("id"), ", ".join("%s (expected %s, restored %s)" % (t, d.get("expected"), d.get("restored"))
                                            for t, d in sorted((result.get("differences") or {}).items()))), result=result)
        if proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            self.module.fail_json(msg=(message[-1] if message else "the backup script failed (exit %d)" % proc.returncode),
                                  rc=proc.returncode)
        return json.loads(proc.stdout.decode("utf-8"))

    def apply_keys(self, path):
        """Write each Secret of the keys file back, data byte for byte (the values stay base64)."""
        with open(path, "rb") as handle:
            data = json.loads(handle.read())
        wanted = data.get("secrets") if isinstance(data, dict) else None
        if not isinstance(wanted, dict):
            self.module.fail_json(msg="restore: the set's keys are not in the format of this collection's backup Job")
        core, namespace, report = CoreV1Api(self.api), self.params["namespace"], {}
        for name in sorted(wanted):
            try:
                current = core.read_namespaced_secret(name, namespace)
            except ApiException as exc:
                if getattr(exc, "status", None) != 404:
                    self.module.fail_json(msg="restore: cannot read Secret %s/%s (%s)" % (namespace, name, exc.reason))
                current = None
            if current is not None and (current.data or {}) == wanted[name]:
                report[name] = "unchanged"
                continue
            report[name] = "created" if current is None else "replaced"
            if self.module.check_mode:
                continue
            if current is None:
                body = dict(apiVersion="v1", kind="Secret", type="Opaque", data=wanted[name],
                            metadata=dict(name=name, namespace=namespace))
                core.create_namespaced_secret(namespace, body)
            else:
                current.data = wanted[name]
                current.string_data = None
                core.replace_namespaced_secret(name, namespace, current)
        return report

    def run(self):
        p, command = self.params, self.params["command"]
        if command in ("restore-db", "verify", "db-state", "swap-db") and not p["database"]:
            self.module.fail_json(msg="database is required with command=%s" % command)
        if command == "swap-db" and not (p["target_database"] and p["owner"] and p["keep_as"]):
            self.module.fail_json(msg="target_database, owner and keep_as are required with command=swap-db")
        if command == "backup" and self.module.check_mode:
            self.module.exit_json(changed=True, result=None, msg="check mode: no backup was made")
        with postgres_endpoint(self.module, p["postgresql"] or dict(port=5432)) as (host, port):
            env = self.environment(host, port)
            if command == "backup":
                env["BACKUP_KEYS_DIR"] = self.keys_dir()
                if p["backup_set"] != "latest":
                    env["BACKUP_SET_ID"] = p["backup_set"]
                return dict(changed=True, result=self.script(env, "backup"))
            if command in READ_ONLY:
                args = dict(list=["list"], check=["check", p["backup_set"]], **{"db-state": ["db-state", p["database"]]})[command]
                return dict(changed=False, result=self.script(env, *args))
            if command in ("mirror-media", "media-replication"):
                return self.media(env, command)
            if command == "prune":
                if self.module.check_mode:
                    return dict(changed=False, result=None, msg="check mode: nothing was pruned")
                result = self.script(env, "prune", str(p["prune_days"]), str(p["prune_keep"]))
                return dict(changed=bool(result["deleted"]), result=result)
            if command == "swap-db":
                if self.module.check_mode:
                    return dict(changed=True, result=None)
                return dict(changed=True, result=self.script(env, "swap-db", p["database"], p["target_database"], p["owner"],
                                                             p["keep_as"]))
            if command == "restore-keys":
                path = os.path.join(self.work, "restored-keys.json")
                manifest = self.script(env, "restore-keys", p["backup_set"], path)
                report = self.apply_keys(path)
                return dict(changed=any(v != "unchanged" for v in report.values()), result=manifest, secrets=report)
            if self.module.check_mode:
                return dict(changed=True, result=self.script(env, "check", p["backup_set"]))
            result = self.script(env, command, p["backup_set"], p["database"])
            return dict(changed=command == "restore-db", result=result)

    def media(self, env, command):
        """Run a media command, through a port-forward to the in-cluster S3 server when asked."""
        media = self.params["media"]
        if not media:
            self.module.fail_json(msg="media is required with command=%s" % command)
        ref = media["credentials_secret"]
        env.update(MEDIA_S3_BUCKET=media["bucket"], MEDIA_S3_REGION=media["region"],
                   MEDIA_AWS_ACCESS_KEY_ID=self.secret_value(ref["name"], ref["access_key"], "media.credentials_secret"),
                   MEDIA_AWS_SECRET_ACCESS_KEY=self.secret_value(ref["name"], ref["secret_key"], "media.credentials_secret"),
                   BACKUP_MEDIA_BUCKET=media.get("target_bucket") or "")
        if command == "mirror-media" and self.module.check_mode:
            return dict(changed=True, result=None, msg="check mode: nothing was copied")
        if not media.get("port_forward"):
            env["MEDIA_S3_ENDPOINT"] = media.get("endpoint") or ""
            result = self.script(env, command)
        else:
            via = dict((k, v.get("default")) for k, v in via_kubernetes_spec()["options"].items())
            for key, spec in via_kubernetes_spec()["options"].items():
                if "fallback" in spec:
                    via[key] = spec["fallback"][0]()
            via.update((k, v) for k, v in media["port_forward"].items() if v is not None)
            with port_forward(self.module, via, default_port=9000) as forwarded:
                scheme = (media.get("endpoint") or "http://").split("://", 1)[0]
                env["MEDIA_S3_ENDPOINT"] = "%s://%s:%s" % (scheme, forwarded[0], forwarded[1])
                result = self.script(env, command)
        return dict(changed=command == "mirror-media" and bool(result.get("copied")), result=result)

    def close(self):
        shutil.rmtree(self.work, ignore_errors=True)


def main():
    spec = dict(
        script=dict(type="path", required=True),
        command=dict(type="str", required=True, choices=COMMANDS),
        backup_set=dict(type="str", default="latest"),
        database=dict(type="str"),
        prune_days=dict(type="int", default=30),
        prune_keep=dict(type="int", default=3),
        target_database=dict(type="str"),
        owner=dict(type="str"),
        keep_as=dict(type="str"),
        namespace=dict(type="str", required=True),
        via_kubernetes=via_kubernetes_spec(),
        postgresql=dict(type="dict", options=dict(
            host=dict(type="str"), port=dict(type="int", default=5432),
            user=dict(type="str", required=True), password_secret=dict(type="dict", required=True, no_log=False),
            database=dict(type="str", default="postgres"), ssl_mode=dict(type="str", default="prefer"))),
        s3=dict(type="dict", options=dict(
            endpoint=dict(type="str", required=True), region=dict(type="str", default="us-east-1"),
            bucket=dict(type="str", required=True), prefix=dict(type="str", default=""),
            credentials_secret=dict(type="dict", no_log=False), access_key=dict(type="str", no_log=True),
            secret_key=dict(type="str", no_log=True))),
        media=dict(type="dict", options=dict(
            endpoint=dict(type="str"), port_forward=dict(type="dict"), region=dict(type="str", default="us-east-1"),
            bucket=dict(type="str", required=True), credentials_secret=dict(type="dict", required=True, no_log=False),
            target_bucket=dict(type="str"))),
        keys_secrets=dict(type="list", elements="str", default=[], no_log=False),
        recipients=dict(type="list", elements="str", default=[]),
        identity_file=dict(type="path"),
        identity=dict(type="str", no_log=True),
        mastodon_version=dict(type="str"),
        local_domain=dict(type="str"),
        pg_dump=dict(type="str", default="pg_dump"),
        pg_restore=dict(type="str", default="pg_restore"),
        timeout=dict(type="int", default=7200),
    )
    spec.update(copy.deepcopy(k8s_client.K8S_AUTH_ARG_SPEC))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    runner = Runner(module)
    try:
        result = runner.run()
    finally:
        runner.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
