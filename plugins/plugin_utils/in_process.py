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

The module's own ``main()`` runs unchanged: it receives :class:`ControllerModule` instead of
``AnsibleModule``, which validates the same argument spec (aliases, defaults, env fallbacks,
``no_log``), then masks every ``no_log`` value in the result exactly like ``AnsibleModule``.

The module runs as a normal module (``_execute_module``) instead when the task's connection is
not local, when the task is async, when a library the module needs is missing from the
controller's Python, or when the variable ``fediverse_mastodon_in_process`` (or the environment
variable ``FEDIVERSE_MASTODON_IN_PROCESS``) is false.
"""

from __future__ import annotations

import importlib.util
import json
import os
import traceback

from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

LOCAL_TRANSPORTS = ("local", "ansible.builtin.local")
SWITCH = "fediverse_mastodon_in_process"
SWITCH_ENV = "FEDIVERSE_MASTODON_IN_PROCESS"


class ModuleExit(BaseException):
    """Raised by exit_json/fail_json. A BaseException, like the SystemExit that AnsibleModule
    raises, so that no ``except Exception`` in module code swallows it."""

    def __init__(self, result):
        super().__init__("module exit")
        self.result = result


class ControllerModule:
    """The part of AnsibleModule's interface that this collection's modules use."""

    context = ({}, False, False, False, "module")  # (params, check_mode, diff, no_log, name), set by run_main

    def __init__(self, argument_spec, supports_check_mode=False, mutually_exclusive=None, required_together=None,
                 required_one_of=None, required_if=None, required_by=None, **_ignored):
        params, check_mode, diff, no_log, name = ControllerModule.context
        self.argument_spec = argument_spec
        self.check_mode = check_mode
        self._diff = diff
        self.no_log = no_log
        self._name = name
        self._warnings = []
        self._deprecations = []
        self.no_log_values = set()
        validator = ModuleArgumentSpecValidator(argument_spec, mutually_exclusive=mutually_exclusive,
                                                required_together=required_together, required_one_of=required_one_of,
                                                required_if=required_if, required_by=required_by)
        result = validator.validate(params)
        self.no_log_values.update(result._no_log_values)
        self.params = result.validated_parameters
        if result.error_messages:
            error = result.errors[0]
            msg = result.errors.msg
            if isinstance(error, UnsupportedError):
                msg = "Unsupported parameters for (%s) module: %s" % (name, msg)
            self.fail_json(msg=msg)
        if check_mode and not supports_check_mode:
            self.exit_json(skipped=True, msg="the module does not support check mode")

    def warn(self, warning):
        self._warnings.append(warning)

    def deprecate(self, msg, **_kwargs):
        self._deprecations.append(msg)

    def _finish(self, result):
        # like AnsibleModule: the arguments as the module saw them, no_log values masked below
        result.setdefault("invocation", {"module_args": self.params})
        if self._warnings:
            result["warnings"] = list(result.get("warnings") or []) + self._warnings
        if self._deprecations:
            result["deprecations"] = [dict(msg=m) for m in self._deprecations]
        # the same masking as AnsibleModule, then plain JSON types (as a module's stdout would give)
        result = remove_values(result, self.no_log_values)
        raise ModuleExit(json.loads(json.dumps(result, default=str)))

    def exit_json(self, **kwargs):
        kwargs.setdefault("changed", False)
        self._finish(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs["failed"] = True
        kwargs["msg"] = msg
        self._finish(kwargs)


def run_main(main, params, check_mode=False, diff=False, no_log=False, name="module"):
    """Call a module's ``main(module_class)`` with ``params`` and return its result dict."""
    ControllerModule.context = (dict(params), check_mode, diff, no_log, name)
    try:
        main(ControllerModule)
    except ModuleExit as done:
        return done.result
    except Exception as exc:  # what would be a module traceback
        return dict(failed=True, msg="%s failed: %s" % (name, exc), exception=traceback.format_exc())
    finally:
        ControllerModule.context = ({}, False, False, False, "module")
    return dict(failed=True, msg="%s returned without a result" % name)


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
        environment = {}
        self._compute_environment_string(environment)
        saved = dict(os.environ)
        os.environ.update(dict((k, str(v)) for k, v in environment.items()))
        try:
            result.update(run_main(self.module.main, self._task.args, check_mode=bool(self._task.check_mode),
                                   diff=bool(self._task.diff), no_log=bool(self._task.no_log),
                                   name=self._module_name()))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return result
