# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """How the collection's lookups reach the cluster (plugin_utils/k8s_lookup.py)."""

    DOCUMENTATION = r'''
options:
  kubeconfig:
    description: Path of the kubeconfig; null uses E(K8S_AUTH_KUBECONFIG), the service account or E(KUBECONFIG).
    type: str
  context:
    description: Context of the kubeconfig; null uses E(K8S_AUTH_CONTEXT) or the current one.
    type: str
'''
