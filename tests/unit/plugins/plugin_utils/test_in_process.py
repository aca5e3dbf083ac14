# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugin_utils/controller_module.py (used by in_process.py): a module's main() run in the controller process behaves like the
same main() run by AnsibleModule (validation, defaults, env fallbacks, no_log masking)."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.fediverse.mastodon.plugins.plugin_utils.controller_module import run_main

SPEC = dict(
    name=dict(type="str", required=True),
    count=dict(type="int", default=3),
    token=dict(type="str", no_log=True, fallback=(lambda: __import__("os").environ.get("TEST_TOKEN"),)),
    mode=dict(type="str", choices=["a", "b"], default="a"),
)


def main(module_class=AnsibleModule):
    module = module_class(argument_spec=SPEC, supports_check_mode=True)
    if module.params["name"] == "boom":
        raise RuntimeError("boom")
    if module.params["name"] == "fail":
        try:
            module.fail_json(msg="failed with %s" % module.params["token"])
        except Exception:  # module code that catches Exception must not swallow the exit
            raise AssertionError("fail_json was swallowed")
    if module.params["name"] == "warn":
        module.warn("careful")
    module.exit_json(changed=module.check_mode is False, count=module.params["count"], echo=module.params["token"],
                     diff_on=module._diff)


def as_module(params, capsys):
    with patch_module_args(params):
        with pytest.raises(SystemExit):
            main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


@pytest.mark.parametrize("params", [
    {"name": "x"},
    {"name": "x", "count": "7", "token": "hunter2-secret"},
    {"name": "fail", "token": "hunter2-secret"},
    {"name": "x", "mode": "z"},
    {"count": 1},
    {"name": "x", "unknown": 1},
])
def test_the_same_result_as_ansible_module(params, capsys):
    expected = as_module(params, capsys)
    got = run_main(main, params, name="test")
    if "invocation" not in expected:  # AnsibleModule failed before it had parameters
        got.pop("invocation", None)
    if "Unsupported parameters" in expected.get("msg", ""):
        assert got["failed"] and "Unsupported parameters for (test) module: unknown" in got["msg"]
    else:
        assert got == expected


def test_env_fallback_and_masking(monkeypatch):
    monkeypatch.setenv("TEST_TOKEN", "from-the-env-123")
    result = run_main(main, {"name": "x"})
    assert "from-the-env-123" not in json.dumps(result)  # a no_log value is masked wherever it shows


def test_check_mode_diff_and_warnings():
    result = run_main(main, {"name": "warn"}, check_mode=True, diff=True)
    assert result["changed"] is False and result["diff_on"] is True
    assert result["warnings"] == ["careful"]


def test_an_exception_is_a_failure_with_its_traceback():
    result = run_main(main, {"name": "boom"}, name="test")
    assert result["failed"] and result["msg"] == "test failed: boom"
    assert "RuntimeError" in result["exception"]
