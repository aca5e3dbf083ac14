# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fediverse.mastodon.preflight_inputs: the complete merged input, checked at once.

Runs on the controller only; the work is ``plugin_utils/role_inputs.py``, which the action
``preflight_check`` (the whole preflight in one step) shares.

Nothing is sent anywhere; the result carries problem lines and a few derived, non-secret
settings, never a variable's value.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.fediverse.mastodon.plugins.plugin_utils.role_inputs import RoleInputs


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roles",))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        checked = RoleInputs(self._loader, self._templar).check(task_vars or {}, self._task.args.get("roles"))
        checked.pop("merged")
        result.update(changed=False, **checked)
        return result
