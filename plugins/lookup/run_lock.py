# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: run_lock
author: fediverse.mastodon contributors (@fediverse-mastodon)
short_description: Keep this run's instance lock alive from a wait loop
version_added: "0.2.0"
description:
  - Renews the run lock (a C(coordination.k8s.io/v1) Lease, see the C(instance_lock) module)
    when it is older than its C(renew_every) seconds, and does nothing otherwise. Put it in the
    condition of a long C(until) loop (a migration Job, a rollout) so that the lock outlives the
    wait, since it is evaluated again on every poll.
  - Returns C(true) while this run holds the lock (or when there is no lock to keep). Fails,
    naming the other run, when another run took the lock; the waiting run must stop then.
  - Sends nothing when the lock is not due, and only ever renews a lock this run already took.
options:
  _terms:
    description: The run lock, as given to the modules' O(fediverse.mastodon.k8s_objects#module:run_lock) option.
    type: dict
    required: true
  kubeconfig:
    description: Path of the kubeconfig; null uses E(K8S_AUTH_KUBECONFIG), the service account or E(KUBECONFIG).
    type: str
  context:
    description: Context of the kubeconfig; null uses E(K8S_AUTH_CONTEXT) or the current one.
    type: str
'''

EXAMPLES = r'''
- name: Wait for the Job, keeping the run lock alive
  vars:
    lock_alive: "{{ lookup('fediverse.mastodon.run_lock', fediverse_mastodon_run_lock) }}"
  ansible.builtin.set_fact:
    waited: true
  until: lock_alive and job_done
  retries: 100
  delay: 5
'''

RETURN = r'''
_raw:
  description: C(true) while this run holds the lock.
  type: list
  elements: bool
'''

import os

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client, lease, run_lock

_CLIENTS = {}


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        lock = terms[0] if terms else None
        if not lock:
            return [True]
        if not isinstance(lock, dict) or not lock.get("namespace") or not lock.get("name") or not lock.get("holder"):
            raise AnsibleError("run_lock: give the run lock dict (namespace, name, holder) as the first term")
        params = dict(kubeconfig=self.get_option("kubeconfig") or os.environ.get("K8S_AUTH_KUBECONFIG"),
                      context=self.get_option("context") or os.environ.get("K8S_AUTH_CONTEXT"))
        key = (params["kubeconfig"], params["context"])
        if key not in _CLIENTS:  # one client per controller process: the renewal clock lives with it
            _CLIENTS[key] = k8s_client.build_api_client(params)
        try:
            run_lock.keep(_CLIENTS[key], dict(lock))
        except lease.LeaseError as exc:
            raise AnsibleError(str(exc))
        return [True]
