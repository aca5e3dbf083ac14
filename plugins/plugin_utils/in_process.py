# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module of this collection inside the controller process, not as a new Python process.

Why: every module call otherwise starts a Python interpreter on the target, unpacks the
AnsiballZ payload and imports the kubernetes client (about 1.2 s on a small machine) before it
sends its first request. Our modules always run against ``ansible_connection: local``, so that
cost buys nothing. Ansible's linear strategy loads each task's action plugin class in the main
process before it forks the worker for the task; the action plugins of this collection import
their module (and so the kubernetes client) at that point, once per run, and every forked worker
inherits it.

The module's own ``main()`` runs unchanged: it receives ``controller_module.ControllerModule`` instead of
``AnsibleModule``, which validates the same argument spec (aliases, defaults, env fallbacks,
``no_log``), then masks every ``no_log`` value in the result exactly like ``AnsibleModule``.

The module runs as a normal module (``_execute_module``) instead when the task's connection is
not local, when the task is async, when a library the module needs is missing from the
controller's Python, or when the variable ``fediverse_mastodon_in_process`` (or the environment
variable ``FEDIVERSE_MASTODON_IN_PROCESS``) is false.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.fediverse.mastodon.plugins.plugin_utils.controller_module import run_main

LOCAL_TRANSPORTS = ("local", "ansible.builtin.local")
SWITCH = "fediverse_mastodon_in_process"
SWITCH_ENV = "FEDIVERSE_MASTODON_IN_PROCESS"


@contextlib.contextmanager
def task_environment(action):
    """The task's ``environment`` (the play's K8S_AUTH_* variables) in ``os.environ`` for the
    duration, as a module process would see it; the controller's environment is restored after."""
    environment = {}
    action._compute_environment_string(environment)  # pylint: disable=protected-access
    saved = dict(os.environ)
    os.environ.update(dict((k, str(v)) for k, v in environment.items()))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class InProcessAction(ActionBase):
    """Base of the action plugins that run a module of this collection on the controller."""

    # the module (a Python module object with main(module_class)) and the libraries it needs
    module = None
    libraries = ("kubernetes",)
    _SUPPORTS_CHECK_MODE = True

    def _module_name(self):
        return "fediverse.mastodon." + self.module.__name__.rsplit(".", 1)[-1]

    def _runs_here(self, task_vars):
        if self._task.async_val:
            return False
        if self._connection.transport not in LOCAL_TRANSPORTS:
            return False
        if not boolean(task_vars.get(SWITCH, os.environ.get(SWITCH_ENV, True)), strict=False):
            return False
        return all(importlib.util.find_spec(lib) is not None for lib in self.libraries)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        if not self._runs_here(task_vars):
            result.update(self._execute_module(module_name=self._module_name(), module_args=self._task.args,
                                               task_vars=task_vars))
            return result
        with task_environment(self):
            result.update(run_main(self.module.main, self._task.args, check_mode=bool(self._task.check_mode),
                                   diff=bool(self._task.diff), no_log=bool(self._task.no_log),
                                   name=self._module_name()))
        return result
