# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: secret_fingerprint
author: fediverse.mastodon contributors (@fediverse-mastodon)
short_description: Check that Secret keys exist and fingerprint their values, without returning them
version_added: "1.0.0"
extends_documentation_fragment:
  - fediverse.mastodon.k8s_lookup
description:
  - Reads the Secrets that O(refs) name, each once, and returns the refs whose Secret or key is
    missing and one SHA-256 over every referenced value plus O(values).
  - The checksum changes when any of those values changes, so a pod annotation that carries it
    rolls the pods when a Secret they read changes.
  - No value leaves the plugin, only the checksum and the names of what is missing. Give the task
    C(no_log) anyway, because O(values) holds secrets.
options:
  namespace:
    description: The namespace of the Secrets.
    type: str
    required: true
  refs:
    description: The references, each with C(secret), C(key) and C(name) (the variable that reads it, for the message).
    type: list
    elements: dict
    default: []
  values:
    description: Secret values known to the play (a role's own), included in the checksum.
    type: dict
    default: {}
'''

EXAMPLES = r'''
- name: Fingerprint the Secrets the pods read
  ansible.builtin.set_fact:
    fingerprint: >-
      {{ lookup('fediverse.mastodon.secret_fingerprint', namespace='social',
                refs=[{'secret': 'social-db', 'key': 'password', 'name': 'DB_PASS'}]) }}
  no_log: true
'''

RETURN = r'''
_raw:
  description: One dictionary, with C(checksum) (hex SHA-256) and C(missing) (C(secret/key (name)) of each missing ref).
  type: list
  elements: dict
'''

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import k8s_lookup


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        namespace, refs = self.get_option("namespace"), self.get_option("refs") or []
        for index, ref in enumerate(refs):
            if not isinstance(ref, dict) or not ref.get("secret") or not ref.get("key"):
                raise AnsibleError("secret_fingerprint: refs[%d] needs secret and key" % index)
        rest = k8s_lookup.rest_for(self.get_option("kubeconfig"), self.get_option("context"))
        data = {}
        for name in sorted(set(ref["secret"] for ref in refs)):
            try:
                found = rest.get("/api/v1/namespaces/%s/secrets/%s" % (namespace, name))
            except Exception as exc:  # ApiException, or a connection error
                raise k8s_lookup.api_failure("secret_fingerprint: reading Secret %s/%s" % (namespace, name), exc) from exc
            data[name] = None if found is None else (found.get("data") or {})
        return [k8s_lookup.fingerprint(refs, data, self.get_option("values") or {})]
