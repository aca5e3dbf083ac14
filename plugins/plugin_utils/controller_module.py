# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The part of AnsibleModule that this collection's modules use, for running a module's
``main(module_class)`` inside the controller process (see in_process.py, which uses it).

Kept apart from the action plugin base so that importing it does not import Ansible's
controller (ActionBase), which changes how AnsibleModule itself reports warnings in the same
process.
"""

from __future__ import annotations

import json
import traceback

from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError


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
