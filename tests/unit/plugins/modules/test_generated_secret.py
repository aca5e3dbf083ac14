# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fediverse.mastodon.generated_secret: argument handling, run in-process.

The Secret itself is exercised against the lab apiserver in tests/integration/test_generated_secret.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_secret
from ansible_collections.fediverse.mastodon.plugins.modules import generated_secret


def run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            generated_secret.main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_generators_follow_format_and_length():
    generators, problems = k8s_secret.build_generators({
        "a": {"format": "hex", "length": 64},
        "b": {"format": "urlsafe", "length": 40},
        "c": {},
        "d": None,
        "e": {"length": "12"},
    })
    assert problems == []
    assert re.match(r"^[0-9a-f]{64}$", generators["a"]())
    assert re.match(r"^[A-Za-z0-9_-]{40}$", generators["b"]())
    assert re.match(r"^[A-Za-z0-9]{32}$", generators["c"]())
    assert re.match(r"^[A-Za-z0-9]{32}$", generators["d"]())
    assert re.match(r"^[A-Za-z0-9]{12}$", generators["e"]())
    assert generators["a"]() != generators["a"]()


@pytest.mark.parametrize("keys,fragment", [
    ({"pw": {"format": "base64"}}, "keys.pw: format must be one of alphanumeric, hex, urlsafe"),
    ({"pw": {"length": 4}}, "keys.pw: length must be an integer between 8 and 4096"),
    ({"pw": {"size": 4}}, "keys.pw: unknown option(s) size"),
    ({"pw": "hex"}, "keys.pw: must be a dict with format and length"),
    ({"bad/key": {}}, "keys.bad/key: is not a valid Secret key name"),
])
def test_bad_key_specs_fail_naming_the_key(capsys, keys, fragment):
    result = run(capsys, {"namespace": "ns", "name": "s", "keys": keys})
    assert result["failed"] is True and fragment in result["msg"], result["msg"]


def test_rotate_must_name_managed_keys(capsys):
    result = run(capsys, {"namespace": "ns", "name": "s", "keys": {"pw": {}}, "rotate": ["other"]})
    assert result["failed"] is True and "rotate: other not in keys" in result["msg"]


def test_empty_keys_fail(capsys):
    result = run(capsys, {"namespace": "ns", "name": "s", "keys": {}})
    assert result["failed"] is True and "keys: name at least one key" in result["msg"]


def test_unreachable_api_fails_clearly(capsys):
    pytest.importorskip("kubernetes")
    result = run(capsys, {"namespace": "ns", "name": "s", "keys": {"pw": {}}, "host": "http://127.0.0.1:9"})
    assert result["failed"] is True
    assert result["msg"].startswith("Cannot reach the Kubernetes API for Secret ns/s")
