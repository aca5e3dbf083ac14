# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lookups' way to the cluster: the modules' access layer (module_utils/k8s_client.py and
KubeRest), one client per kubeconfig and context in a process, so that the lookups of one task
(which runs in its own worker process) share it and its discovery cache."""

from __future__ import annotations

import hashlib
import json
import os

from ansible.errors import AnsibleError

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_objects import KubeRest

_CLIENTS = {}


def rest_for(kubeconfig=None, context=None):
    """The shared KubeRest for this kubeconfig and context (the K8S_AUTH_* variables when unset)."""
    params = dict(kubeconfig=kubeconfig or os.environ.get("K8S_AUTH_KUBECONFIG"),
                  context=context or os.environ.get("K8S_AUTH_CONTEXT"))
    key = (params["kubeconfig"], params["context"])
    if key not in _CLIENTS:
        try:
            _CLIENTS[key] = KubeRest(k8s_client.build_api_client(params))
        except Exception as exc:  # kubeconfig problems come in many exception types
            raise AnsibleError("cannot configure the Kubernetes client: %s. Check kubeconfig/context or K8S_AUTH_* variables"
                               % exc) from exc
    return _CLIENTS[key]


def api_failure(what, exc):
    """An AnsibleError of one line for a failed read."""
    status, detail = k8s_client.api_error_detail(exc)
    if status:
        return AnsibleError("%s: the API server answered HTTP %s: %s" % (what, status, detail))
    return AnsibleError("%s: %s" % (what, exc))


def fingerprint(refs, data, values):
    """dict(checksum, missing) of ``refs`` (secret, key, name) over ``data`` (Secret name -> its
    base64 data, or None when the Secret is missing) and the play's own secret ``values``.

    The checksum is the SHA-256 of the JSON of ``[values, {"secret/key": base64 value}]`` with
    sorted keys (what the role computed in Jinja before, so that pods do not roll when the
    collection is upgraded)."""
    found, missing = {}, []
    for ref in refs:
        secret = data.get(ref["secret"])
        if secret is None or ref["key"] not in secret:
            missing.append("%s/%s (%s)" % (ref["secret"], ref["key"], ref.get("name")))
        else:
            found["%s/%s" % (ref["secret"], ref["key"])] = secret[ref["key"]]
    text = json.dumps([values, found], sort_keys=True)
    return dict(checksum=hashlib.sha256(text.encode("utf-8")).hexdigest(), missing=missing)
