# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fediverse.mastodon.service_connections: the settings that argument specs cannot
check, and the connection facts of the backing services, in one step (plugin_utils/connections.py),
without touching the cluster."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import connections
from ansible_collections.fediverse.mastodon.plugins.plugin_utils.role_inputs import role_values

ARGUMENT_SPEC = dict(
    services=dict(type="list", elements="str", default=list(connections.SERVICES), choices=list(connections.SERVICES)),
    only_missing=dict(type="bool", default=False),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)
    _requires_connection = False
    _SUPPORTS_CHECK_MODE = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        checked = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if checked.error_messages:
            return dict(result, failed=True, msg="; ".join(checked.error_messages))
        params = checked.validated_parameters
        facts, problems, warnings = {}, [], []
        for service in params["services"]:
            fact = service + "_connection"
            if params["only_missing"] and fact in task_vars:
                continue
            names = connections.NAMES[service] + tuple(name % service for name in connections.COMMON)
            values = role_values(self._loader, self._templar, task_vars, service, names)
            found = connections.settings_problems(service, values)
            connection, problem = connections.SERVICES[service](values)
            problems.extend(found + ([problem] if problem else []))
            if not found and not problem:
                facts[fact] = connection
                warnings.extend(connections.warnings(service, values))
        if problems:
            return dict(result, failed=True, msg="\n".join(problems))
        result.update(changed=False, ansible_facts=facts)
        if warnings:
            result["warnings"] = warnings
        return result
