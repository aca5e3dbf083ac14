#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: mastodon_secrets
short_description: Generate Mastodon's secrets once, validate them always, never rotate them by accident
version_added: "1.0.0"
description:
  - Makes sure every secret a Mastodon version needs exists, in exactly the format of Mastodon's
    own rake tasks. C(SECRET_KEY_BASE) (and C(OTP_SECRET)) are C(SecureRandom.hex(64)), the VAPID
    pair is what C(rake mastodon:webpush:generate_vapid_key) prints, the three
    C(ACTIVE_RECORD_ENCRYPTION_*) keys are what C(bin/rails db:encryption:init) prints.
  - Missing secrets are generated; present ones are validated and kept byte for byte. An invalid
    present value (a truncated key, a VAPID pair that does not match) fails the task, naming the
    secret and the problem, never the value.
  - B(Kubernetes mode) (O(namespace) and O(name)) reads the Secret, generates only what is
    missing and writes it back. Values never pass through Ansible. Writes are safe against
    concurrent runs (create-if-absent, then updates guarded by C(resourceVersion) and retried
    on conflict), so a concurrent run never overwrites another's values.
  - B(Offline mode) (O(existing)) is for operators who keep the secrets in a vault; it returns
    the complete set in RV(secrets). Kept values come back byte for byte. Use C(no_log=true).
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
  - fediverse.mastodon.run_lock
  - ansible.builtin.action_common_attributes
options:
  mastodon_version:
    description:
      - The Mastodon version being deployed, for example C(4.6.3). It decides the required set.
      - A custom image tag (for example C(main-nightly), which the mastodon role allows with
        C(mastodon_version_guard=false)) counts as the newest Mastodon.
      - Before 4.3, C(SECRET_KEY_BASE), C(OTP_SECRET) and the VAPID pair.
      - From 4.3 on, C(SECRET_KEY_BASE), the VAPID pair and the three C(ACTIVE_RECORD_ENCRYPTION_*)
        keys (Mastodon aborts at boot without them).
    type: str
    required: true
  legacy_otp_secret:
    description:
      - Also manage C(OTP_SECRET) on 4.3 and later. Needed only when an upgrade comes from before 4.3,
        for the post-deploy migration that moves two-factor secrets; 4.4 and later do not read it.
    type: bool
    default: false
  namespace:
    description:
      - Namespace of the Secret (Kubernetes mode). Must exist.
    type: str
  name:
    description:
      - Name of the Secret that holds the values, one key per environment variable (Kubernetes mode).
    type: str
  labels:
    description:
      - Labels set on the Secret when it is created, and added to it when missing (Kubernetes mode).
    type: dict
    default: {}
  existing:
    description:
      - Offline mode. The secrets as stored in your vault, name to value; may be empty. Other
        names in it are passed through untouched.
      - Mutually exclusive with O(namespace) and O(name).
    type: dict
  values:
    description:
      - Values supplied by the operator, for example from a vault, name to value. They are
        validated and stored, and win over generated ones.
      - A supplied value that differs from the stored one is a rotation and follows the rules of
        O(rotate); without that the task fails.
      - C(VAPID_PUBLIC_KEY) is derived when only C(VAPID_PRIVATE_KEY) is supplied.
    type: dict
    default: {}
  rotate:
    description:
      - Names of secrets to replace on purpose (with the value from O(values), or a new one).
      - Naming either VAPID key replaces the pair. This breaks every push subscription.
      - A new C(SECRET_KEY_BASE) logs every user out.
      - Rotating an C(ACTIVE_RECORD_ENCRYPTION_*) key makes encrypted columns unreadable and is
        refused unless O(i_understand_data_loss=true).
    type: list
    elements: str
    default: []
  i_understand_data_loss:
    description:
      - Allow O(rotate) (or a differing supplied value) for the C(ACTIVE_RECORD_ENCRYPTION_*) keys.
    type: bool
    default: false
requirements:
  - cryptography
notes:
  - In offline mode the result holds every secret. Use C(no_log=true) on the task. The module
    warns when it is not set.
  - In Kubernetes mode the result holds names only, never a value.
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff lists secret names and what happens to them, never values.
seealso:
  - module: fediverse.mastodon.vapid_keys
  - module: fediverse.mastodon.generated_secret
'''

EXAMPLES = r'''
- name: Keep Mastodon's secrets in the instance's Secret
  fediverse.mastodon.mastodon_secrets:
    namespace: social
    name: social-mastodon-secrets
    mastodon_version: "4.6.3"
    labels:
      app.kubernetes.io/part-of: mastodon
      app.kubernetes.io/instance: social
      app.kubernetes.io/managed-by: fediverse.mastodon

- name: Upgrade from 4.2 - keep OTP_SECRET for the two-factor migration
  fediverse.mastodon.mastodon_secrets:
    namespace: social
    name: social-mastodon-secrets
    mastodon_version: "4.3.9"
    legacy_otp_secret: true

- name: Replace the VAPID pair on purpose
  fediverse.mastodon.mastodon_secrets:
    namespace: social
    name: social-mastodon-secrets
    mastodon_version: "4.6.3"
    rotate: [VAPID_PRIVATE_KEY]

- name: Offline mode, secrets kept in a vault
  fediverse.mastodon.mastodon_secrets:
    mastodon_version: "4.6.3"
    existing: "{{ vault_mastodon_secrets | default({}) }}"
  register: mastodon_secrets
  no_log: true
'''

RETURN = r'''
generated:
  description: Names of the secrets that were missing and were generated.
  returned: success
  type: list
  elements: str
  sample: [ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY]
rotated:
  description: Names of the secrets that were replaced on request.
  returned: success
  type: list
  elements: str
  sample: []
stored:
  description: Names of operator-supplied values that were stored where none was.
  returned: success
  type: list
  elements: str
  sample: []
kept:
  description: Names of the secrets that were present, valid and kept byte for byte.
  returned: success
  type: list
  elements: str
  sample: [SECRET_KEY_BASE, VAPID_PRIVATE_KEY, VAPID_PUBLIC_KEY]
required:
  description: The names this Mastodon version needs (with the settings given).
  returned: success
  type: list
  elements: str
  sample: [SECRET_KEY_BASE, VAPID_PRIVATE_KEY, VAPID_PUBLIC_KEY]
name:
  description: Name of the Secret (Kubernetes mode).
  returned: in Kubernetes mode
  type: str
  sample: social-mastodon-secrets
namespace:
  description: Namespace of the Secret (Kubernetes mode).
  returned: in Kubernetes mode
  type: str
  sample: social
resource_version:
  description: The Secret's resourceVersion after the run; null in check mode when it does not exist yet.
  returned: in Kubernetes mode
  type: str
  sample: "4711"
secrets:
  description:
    - Offline mode only. O(existing) with the missing secrets added and the rotated ones replaced.
    - Store it back in your vault when RV(ignore:changed) is true.
  returned: in offline mode
  type: dict
  sample: {SECRET_KEY_BASE: "<128 hex characters>"}
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fediverse.mastodon.plugins.module_utils import secret_formats as sf
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_secret


def run_offline(module, names):
    existing = module.params["existing"]
    bad = sorted(n for n, v in existing.items() if not isinstance(v, str))
    if bad:
        module.fail_json(msg="existing: values must be strings, not for %s" % ", ".join(bad))
    try:
        updates, report = sf.plan_mastodon_secrets(existing, names, module.params["values"], module.params["rotate"],
                                                   module.params["i_understand_data_loss"])
    except sf.SecretFormatError as exc:
        module.fail_json(msg="Cannot keep Mastodon's secrets: %s" % exc, required=names)
    secrets = dict(existing)
    secrets.update(updates)
    if not module.no_log:
        module.warn("mastodon_secrets returns secret values in offline mode: set no_log: true on this task.")
    invocation = sf.return_values_intact(module, secrets.values())
    result = dict(changed=bool(updates), required=names, secrets=secrets, invocation=invocation, **report)
    if module._diff:
        result["diff"] = k8s_secret.names_diff(existing, report)
    module.exit_json(**result)


def run_kubernetes(module, names):
    if not k8s_client.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(k8s_client.KUBERNETES_IMPORT_ERROR))
    params = module.params
    namespace, name = params["namespace"], params["name"]

    def plan(current):
        return sf.plan_mastodon_secrets(current, names, params["values"], params["rotate"],
                                        params["i_understand_data_loss"])

    try:
        api = k8s_client.build_api_client(params)
        result = k8s_secret.apply_secret(api, namespace, name, plan, labels=params["labels"],
                                         check_mode=module.check_mode)
    except sf.SecretFormatError as exc:
        module.fail_json(msg="Cannot keep Mastodon's secrets in Secret %s/%s: %s" % (namespace, name, exc),
                         required=names)
    except k8s_secret.SecretStoreError as exc:
        module.fail_json(msg=str(exc), required=names)
    except Exception as exc:  # connection and configuration errors of the kubernetes client
        module.fail_json(msg="Cannot reach the Kubernetes API for Secret %s/%s: %s: %s. Check kubeconfig, "
                         "context, host and the K8S_AUTH_* variables." % (namespace, name, type(exc).__name__, exc))
    report = result["info"]
    out = dict(changed=result["changed"], required=names, name=name, namespace=namespace,
               resource_version=result["resource_version"], **report)
    if module._diff:
        out["diff"] = k8s_secret.names_diff(result["before_keys"], report)
    module.exit_json(**out)


def main(module_class=AnsibleModule):
    argument_spec = dict(
        mastodon_version=dict(type="str", required=True),
        legacy_otp_secret=dict(type="bool", default=False),
        namespace=dict(type="str"),
        name=dict(type="str"),
        labels=dict(type="dict", default={}),
        existing=dict(type="dict", no_log=True),
        values=dict(type="dict", default={}, no_log=True),
        rotate=dict(type="list", elements="str", default=[]),
        i_understand_data_loss=dict(type="bool", default=False),
    )
    argument_spec.update(k8s_client.K8S_AUTH_ARG_SPEC)
    argument_spec.update(k8s_client.RUN_LOCK_ARG_SPEC)
    module = module_class(
        argument_spec=argument_spec,
        mutually_exclusive=[("existing", "namespace"), ("existing", "name")],
        required_by=dict(namespace=["name"], name=["namespace"]),
        supports_check_mode=True,
    )
    if not sf.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(sf.CRYPTOGRAPHY_IMPORT_ERROR))
    if module.params["existing"] is None and not module.params["namespace"]:
        module.fail_json(msg="Set namespace and name (Kubernetes mode), or existing (offline mode; may be {}).")
    try:
        names = sf.mastodon_secret_names(module.params["mastodon_version"], module.params["legacy_otp_secret"])
    except sf.SecretFormatError as exc:
        module.fail_json(msg=str(exc))
    if module.params["existing"] is not None:
        run_offline(module, names)
    else:
        run_kubernetes(module, names)


if __name__ == "__main__":
    main()
