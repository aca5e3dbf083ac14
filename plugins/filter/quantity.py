# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters k8s_cpu, k8s_memory and k8s_resources: quantities as the API server prints them."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import quantities


def _wrap(function):
    def filter_function(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except quantities.QuantityError as exc:
            raise AnsibleFilterError(str(exc))
    filter_function.__name__ = function.__name__
    return filter_function


class FilterModule:
    def filters(self):
        return {
            "k8s_cpu": _wrap(quantities.cpu),
            "k8s_memory": _wrap(quantities.memory),
            "k8s_resources": _wrap(quantities.resources),
        }
