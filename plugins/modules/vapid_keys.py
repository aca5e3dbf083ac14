#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: vapid_keys
short_description: Generate or validate Mastodon's VAPID (Web Push) key pair
version_added: "1.0.0"
description:
  - With no input, generates a P-256 key pair in exactly the encoding of
    C(rake mastodon:webpush:generate_vapid_key), that is URL-safe base64 with C(=) padding of
    the 32-byte private scalar and of the 65-byte uncompressed public point (88 characters
    starting with C(B)).
  - Given O(private_key), checks it (format, curve, range) and derives the public key; given
    O(public_key) as well, also checks that the two are a pair. A malformed key or a mismatch
    fails the task; a key is never silently replaced. Private keys that Ruby encoded with a
    leading zero byte dropped (31 bytes, C(==) padding) are accepted and returned unchanged.
  - Prefer M(fediverse.mastodon.mastodon_secrets), which keeps the pair in a Kubernetes Secret
    without passing it through Ansible variables.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  private_key:
    description:
      - An existing VAPID private key (C(VAPID_PRIVATE_KEY)) to validate and keep.
      - When omitted, a new pair is generated.
    type: str
  public_key:
    description:
      - The existing public key (C(VAPID_PUBLIC_KEY)). Needs O(private_key).
      - When given it must belong to O(private_key); when omitted it is derived.
    type: str
requirements:
  - cryptography
notes:
  - The result holds the private key. Use C(no_log=true) on the task.
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Generates a pair in check mode too (it changes nothing outside the task result).
  diff_mode:
    support: none
'''

EXAMPLES = r'''
- name: Generate a VAPID key pair
  fediverse.mastodon.vapid_keys:
  register: vapid
  no_log: true

- name: Validate the pair from the vault, derive nothing new
  fediverse.mastodon.vapid_keys:
    private_key: "{{ vault_vapid_private_key }}"
    public_key: "{{ vault_vapid_public_key }}"
  no_log: true

- name: Derive the public key of a known private key
  fediverse.mastodon.vapid_keys:
    private_key: "{{ vault_vapid_private_key }}"
  register: vapid
  no_log: true
'''

RETURN = r'''
private_key:
  description: The private key, URL-safe base64 with padding (the input, byte for byte, when given).
  returned: success
  type: str
  sample: "<44 characters ending in =>"
public_key:
  description: The public key, URL-safe base64 of the uncompressed point, with padding.
  returned: success
  type: str
  sample: "<88 characters starting with B and ending in =>"
generated:
  description: Whether a new pair was generated.
  returned: success
  type: bool
  sample: false
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fediverse.mastodon.plugins.module_utils import secret_formats as sf


def main(module_class=AnsibleModule):
    module = module_class(
        argument_spec=dict(
            private_key=dict(type="str", no_log=True),
            public_key=dict(type="str", no_log=False),
        ),
        required_by=dict(public_key=["private_key"]),
        supports_check_mode=True,
    )
    if not sf.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(sf.CRYPTOGRAPHY_IMPORT_ERROR))
    private_key, public_key = module.params["private_key"], module.params["public_key"]
    if private_key is None:
        private_key, public_key = sf.generate_vapid_keys()
        generated = True
    else:
        generated = False
        if public_key is None:
            problem = sf.check_vapid_private_key(private_key)
            fix = "pass the private key exactly as rake mastodon:webpush:generate_vapid_key printed it"
        else:
            problem = sf.check_vapid_pair(private_key, public_key)
            fix = "pass the matching pair, or omit public_key to derive it"
        if problem:
            module.fail_json(msg="private_key/public_key: %s; %s." % (problem, fix))
        if public_key is None:
            public_key = sf.vapid_public_key(private_key)
    invocation = sf.return_values_intact(module, [private_key, public_key])
    module.exit_json(changed=generated, generated=generated, private_key=private_key, public_key=public_key,
                     invocation=invocation)


if __name__ == "__main__":
    main()
