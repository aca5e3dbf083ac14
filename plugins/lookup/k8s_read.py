# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: k8s_read
author: fediverse.mastodon contributors (@fediverse-mastodon)
short_description: Read Kubernetes objects through the collection's access layer
version_added: "1.0.0"
extends_documentation_fragment:
  - fediverse.mastodon.k8s_lookup
description:
  - Returns the objects of one kind, in one namespace, that a name or a label selector picks,
    as the API server returns them. A missing object gives an empty list.
  - The reads go through the same client as the collection's modules. The lookups of one task
    share the client and its discovery cache.
  - Secrets are refused, because their values must not land in a variable. Use
    P(fediverse.mastodon.secret_fingerprint#lookup) to check or fingerprint Secret keys.
options:
  api_version:
    description: The apiVersion, like V(apps/v1).
    type: str
    required: true
  kind:
    description: The kind, like V(Deployment).
    type: str
    required: true
  namespace:
    description: The namespace of namespaced kinds.
    type: str
  name:
    description: One object by its name.
    type: str
  label_selector:
    description: A label selector, like C(app.kubernetes.io/instance=social), when O(name) is not set.
    type: str
'''

EXAMPLES = r'''
- name: Read the Deployments of an instance
  ansible.builtin.set_fact:
    deployments: >-
      {{ query('fediverse.mastodon.k8s_read', api_version='apps/v1', kind='Deployment', namespace='social',
               label_selector='app.kubernetes.io/instance=social') }}
'''

RETURN = r'''
_list:
  description: The objects, each as the API server returns it.
  type: list
  elements: dict
'''

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import k8s_lookup


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        opt = dict((k, self.get_option(k)) for k in ("api_version", "kind", "namespace", "name", "label_selector",
                                                     "kubeconfig", "context"))
        if opt["kind"] == "Secret" and opt["api_version"] == "v1":
            raise AnsibleError("k8s_read: refuses Secrets, whose values must not land in a variable; "
                               "use the lookup fediverse.mastodon.secret_fingerprint")
        rest = k8s_lookup.rest_for(opt["kubeconfig"], opt["context"])
        what = "reading %s %s in %s" % (opt["kind"], opt["name"] or opt["label_selector"] or "(all)", opt["namespace"])
        try:
            base, plural, namespaced = rest.resource(opt["api_version"], opt["kind"])
            if namespaced and not opt["namespace"]:
                raise AnsibleError("k8s_read: %s is namespaced; give namespace" % opt["kind"])
            collection = "%s/namespaces/%s/%s" % (base, opt["namespace"], plural) if namespaced else "%s/%s" % (base, plural)
            if opt["name"]:
                found = rest.get("%s/%s" % (collection, opt["name"]))
                return [found] if found else []
            query = [("labelSelector", opt["label_selector"])] if opt["label_selector"] else []
            listing = rest.call("GET", collection, query=query)
        except AnsibleError:
            raise
        except LookupError as exc:
            raise AnsibleError("k8s_read: %s" % exc) from exc
        except Exception as exc:  # ApiException, or a connection error
            raise k8s_lookup.api_failure("k8s_read: " + what, exc) from exc
        kind = opt["kind"]
        api_version = opt["api_version"]
        items = listing.get("items") or []
        for item in items:  # a list's items come without their kind
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
        return items
