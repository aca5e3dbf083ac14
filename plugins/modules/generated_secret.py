#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: generated_secret
short_description: Keep generated passwords in a Kubernetes Secret, generated once and never rotated by accident
version_added: "1.0.0"
description:
  - Makes sure a Kubernetes Secret holds every key of O(keys). A missing key gets a new random
    value in the requested format; a present key is kept byte for byte, whatever its value.
  - The values are generated and stored inside the module; they never pass through Ansible
    variables or output. Pods and other modules read them from the Secret.
  - Safe against concurrent runs, the same way as M(fediverse.mastodon.mastodon_secrets). The
    Secret is created only if absent, and updates carry the C(resourceVersion) that was read and
    are retried on conflict, so a value another run stored first is kept, never overwritten.
  - Keys of the Secret that are not in O(keys) are left alone.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
  - fediverse.mastodon.run_lock
  - ansible.builtin.action_common_attributes
options:
  namespace:
    description:
      - Namespace of the Secret. Must exist.
    type: str
    required: true
  name:
    description:
      - Name of the Secret.
    type: str
    required: true
  keys:
    description:
      - The keys to keep, each mapped to how a new value is generated.
      - C(format) is C(hex) (lowercase), C(alphanumeric) (C(A-Za-z0-9), the default) or
        C(urlsafe) (C(A-Za-z0-9-_)).
      - C(length) is the number of characters, 8 to 4096, default 32.
      - "Example: C({postgres-password: {format: alphanumeric, length: 32}})."
    type: dict
    required: true
  labels:
    description:
      - Labels set on the Secret when it is created, and added to it when missing.
    type: dict
    default: {}
  rotate:
    description:
      - Keys of O(keys) to replace with a new value even though they are present.
      - The service that uses the old value must be updated too, or it loses access.
    type: list
    elements: str
    default: []
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff lists key names only, never values.
seealso:
  - module: fediverse.mastodon.mastodon_secrets
'''

EXAMPLES = r'''
- name: PostgreSQL passwords, generated once
  fediverse.mastodon.generated_secret:
    namespace: social
    name: social-postgresql
    keys:
      postgres-password: {format: alphanumeric, length: 32}
      mastodon-password: {format: alphanumeric, length: 32}
    labels:
      app.kubernetes.io/part-of: mastodon
      app.kubernetes.io/instance: social
      app.kubernetes.io/name: postgresql
      app.kubernetes.io/managed-by: fediverse.mastodon

- name: Redis password, rotated on purpose
  fediverse.mastodon.generated_secret:
    namespace: social
    name: social-redis
    keys:
      redis-password: {format: hex, length: 64}
    rotate: [redis-password]
'''

RETURN = r'''
generated:
  description: Keys that were missing and got a new value.
  returned: success
  type: list
  elements: str
  sample: [postgres-password]
rotated:
  description: Keys replaced because O(rotate) named them.
  returned: success
  type: list
  elements: str
  sample: []
kept:
  description: Keys that were present and kept.
  returned: success
  type: list
  elements: str
  sample: [mastodon-password]
name:
  description: Name of the Secret.
  returned: success
  type: str
  sample: social-postgresql
namespace:
  description: Namespace of the Secret.
  returned: success
  type: str
  sample: social
resource_version:
  description: The Secret's resourceVersion after the run; null in check mode when it does not exist yet.
  returned: success
  type: str
  sample: "4711"
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_secret


def main(module_class=AnsibleModule):
    argument_spec = dict(
        namespace=dict(type="str", required=True),
        name=dict(type="str", required=True),
        keys=dict(type="dict", required=True, no_log=False),
        labels=dict(type="dict", default={}),
        rotate=dict(type="list", elements="str", default=[], no_log=False),
    )
    argument_spec.update(k8s_client.K8S_AUTH_ARG_SPEC)
    argument_spec.update(k8s_client.RUN_LOCK_ARG_SPEC)
    module = module_class(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    generators, problems = k8s_secret.build_generators(params["keys"])
    if not params["keys"]:
        problems.append("keys: name at least one key")
    unknown = sorted(set(params["rotate"]) - set(params["keys"]))
    if unknown:
        problems.append("rotate: %s not in keys" % ", ".join(unknown))
    if problems:
        module.fail_json(msg="; ".join(problems))
    if not k8s_client.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(k8s_client.KUBERNETES_IMPORT_ERROR))
    namespace, name = params["namespace"], params["name"]
    try:
        api = k8s_client.build_api_client(params)
        result = k8s_secret.ensure_secret_keys(api, namespace, name, generators, labels=params["labels"],
                                               check_mode=module.check_mode, rotate=params["rotate"])
    except k8s_secret.SecretStoreError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # connection and configuration errors of the kubernetes client
        module.fail_json(msg="Cannot reach the Kubernetes API for Secret %s/%s: %s: %s. Check kubeconfig, "
                         "context, host and the K8S_AUTH_* variables." % (namespace, name, type(exc).__name__, exc))
    out = dict(changed=result["changed"], name=name, namespace=namespace, resource_version=result["resource_version"],
               generated=result["generated"], rotated=result["rotated"], kept=result["kept"])
    if module._diff:
        out["diff"] = k8s_secret.names_diff(result["before_keys"], result)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
