# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests run modules' main() with AnsibleModule in the pytest process.

Once any test module has imported Ansible's controller (a filter plugin imports ansible.errors),
AnsibleModule in this process would hand its warnings to the controller's Display instead of
returning them in its result, as it does in a real module process, and warnings of one test
would stay for the next. Each test here runs as a fresh module process would.
"""

import pytest


@pytest.fixture(autouse=True)
def as_in_a_module_process(monkeypatch):
    from ansible.module_utils import _internal
    from ansible.module_utils.common import warnings

    monkeypatch.setattr(_internal, "is_controller", False)
    # and, as in a fresh module process, no warning or deprecation left over from another test
    monkeypatch.setattr(warnings, "_global_warnings", {})
    monkeypatch.setattr(warnings, "_global_deprecations", {})
