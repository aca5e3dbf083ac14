#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: url_secret
short_description: Keep connection URLs whose password comes from another Secret, percent-encoded, in a Secret
version_added: "1.0.0"
description:
  - Some clients take their credentials only inside a URL, for example Mastodon's C(REDIS_URL) for a
    Redis that speaks TLS (C(rediss://)). A password with C(@), C(:), C(/), C(?), C(#), C(%) or a space,
    pasted into the URL as it is, makes the URL point elsewhere or cut the password short.
  - This module reads each password from the Secret that holds it, builds the URL with the user
    and password percent-encoded (every client Mastodon uses decodes them), and keeps the URLs in
    one Secret, one key per URL. Pods reference those keys with C(secretKeyRef).
  - The passwords and URLs never pass through Ansible variables or output. A rerun with the same
    inputs reads two Secrets and writes nothing.
  - Keys of the Secret that are not in O(urls) are left alone.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
  - fediverse.mastodon.run_lock
  - ansible.builtin.action_common_attributes
options:
  namespace:
    description:
      - Namespace of the Secret, and the default namespace of the password references. Must exist.
    type: str
    required: true
  name:
    description:
      - Name of the Secret that holds the URLs.
    type: str
    required: true
  urls:
    description:
      - The URLs to keep, one per Secret key.
    type: list
    elements: dict
    required: true
    suboptions:
      key:
        description: The Secret key (and usually the environment variable), for example C(REDIS_URL).
        type: str
        required: true
      scheme:
        description: The URL scheme, for example C(rediss).
        type: str
        required: true
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: Port; left out of the URL when not given.
        type: int
      path:
        description: Path after the host, for example the Redis database number.
        type: str
      username:
        description: User name, percent-encoded into the URL.
        type: str
      password_secret:
        description:
          - Where the password is, C({name, key}) and optionally C(namespace). Without it the URL has
            no password.
        type: dict
        suboptions:
          name:
            description: Name of the Secret.
            type: str
            required: true
          key:
            description: Key in the Secret.
            type: str
            required: true
          namespace:
            description: Namespace of the Secret; defaults to O(namespace).
            type: str
  labels:
    description:
      - Labels set on the Secret when it is created, and added to it when missing.
    type: dict
    default: {}
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff names the keys that change, never a value.
seealso:
  - module: fediverse.mastodon.generated_secret
'''

EXAMPLES = r'''
- name: Keep REDIS_URL for a TLS Redis whose password is in social-redis
  fediverse.mastodon.url_secret:
    namespace: social
    name: social-mastodon-redis-urls
    urls:
      - key: REDIS_URL
        scheme: rediss
        host: redis.example.net
        port: 6380
        password_secret: {name: social-redis, key: redis-password}
'''

RETURN = r'''
updated:
  description: Keys whose URL was written (new or changed).
  returned: success
  type: list
  elements: str
  sample: [REDIS_URL]
kept:
  description: Keys whose URL was already right.
  returned: success
  type: list
  elements: str
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_secret
from ansible_collections.fediverse.mastodon.plugins.module_utils.conn_url import connection_url


def wanted_urls(api, namespace, urls):
    """Key -> URL, each password read from its Secret."""
    wanted = {}
    for index, spec in enumerate(urls):
        password = None
        if spec.get("password_secret"):
            password = k8s_secret.read_secret_value(api, namespace, spec["password_secret"],
                                                    option="urls[%d].password_secret" % index)
        wanted[spec["key"]] = connection_url(spec["scheme"], spec["host"], spec.get("port"), password,
                                             spec.get("username"), spec.get("path"))
    return wanted


def main(module_class=AnsibleModule):
    ref = k8s_secret.secret_ref_spec(no_log=False)
    argument_spec = dict(
        namespace=dict(type="str", required=True),
        name=dict(type="str", required=True),
        urls=dict(type="list", elements="dict", required=True, options=dict(
            key=dict(type="str", required=True, no_log=False),
            scheme=dict(type="str", required=True),
            host=dict(type="str", required=True),
            port=dict(type="int"),
            path=dict(type="str"),
            username=dict(type="str"),
            password_secret=ref,
        )),
        labels=dict(type="dict", default={}),
    )
    argument_spec.update(k8s_client.K8S_AUTH_ARG_SPEC)
    argument_spec.update(k8s_client.RUN_LOCK_ARG_SPEC)
    module = module_class(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    keys = [u["key"] for u in params["urls"]]
    problems = ["urls[%d].key: %r is not a valid Secret key name (letters, digits, '-', '_', '.')" % (i, k)
                for i, k in enumerate(keys) if not k8s_secret.valid_key_name(k)]
    if len(set(keys)) != len(keys):
        problems.append("urls: each key may appear once")
    if not keys:
        problems.append("urls: name at least one URL")
    if problems:
        module.fail_json(msg="; ".join(problems))
    if not k8s_client.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(k8s_client.KUBERNETES_IMPORT_ERROR))
    namespace, name = params["namespace"], params["name"]
    try:
        api = k8s_client.build_api_client(params)
        wanted = wanted_urls(api, namespace, params["urls"])

        def plan(current):
            return wanted, None

        result = k8s_secret.apply_secret(api, namespace, name, plan, labels=params["labels"],
                                         check_mode=module.check_mode)
    except (k8s_secret.SecretStoreError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # connection and configuration errors of the kubernetes client
        module.fail_json(msg="Cannot reach the Kubernetes API for Secret %s/%s: %s: %s. Check kubeconfig, "
                         "context, host and the K8S_AUTH_* variables." % (namespace, name, type(exc).__name__, exc))
    updated = result["updated_keys"]
    out = dict(changed=result["changed"], updated=updated, kept=sorted(set(keys) - set(updated)))
    if module._diff:
        before = dict((k, "(stored)") for k in result["before_keys"] or [])
        after = dict(before)
        after.update((k, "(updated)") for k in updated)
        out["diff"] = dict(before=before, after=after)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
