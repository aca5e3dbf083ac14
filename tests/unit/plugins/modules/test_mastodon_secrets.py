# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fediverse.mastodon.mastodon_secrets run in-process (offline mode and argument handling).

Kubernetes mode runs against the lab apiserver in tests/integration/test_mastodon_secrets.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.fediverse.mastodon.plugins.modules import mastodon_secrets
from ansible_collections.fediverse.mastodon.plugins.module_utils import secret_formats as sf

AR = list(sf.AR_KEYS)
REQUIRED = ["SECRET_KEY_BASE", "VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"] + AR


def run(capsys, args, check=False, diff=False, no_log=True):
    args = dict(args, _ansible_check_mode=check, _ansible_diff=diff, _ansible_no_log=no_log)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            mastodon_secrets.main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):]), out


def offline(capsys, existing=None, **kwargs):
    args = dict(mastodon_version="4.6.3", existing=existing if existing is not None else {})
    args.update(kwargs)
    return run(capsys, args)


def test_offline_first_run_generates_every_required_secret(capsys):
    result, dummy = offline(capsys)
    assert result["changed"] is True
    assert result["required"] == REQUIRED
    assert result["generated"] == sorted(REQUIRED) and result["kept"] == []
    secrets = result["secrets"]
    assert sorted(secrets) == sorted(REQUIRED)
    assert re.match(r"^[0-9a-f]{128}$", secrets["SECRET_KEY_BASE"])
    assert all(re.match(r"^[A-Za-z0-9]{32}$", secrets[n]) for n in AR)
    assert sf.check_vapid_pair(secrets["VAPID_PRIVATE_KEY"], secrets["VAPID_PUBLIC_KEY"]) is None


def test_offline_second_run_keeps_values_intact_and_unmasked(capsys):
    first, dummy = offline(capsys)
    second, out = offline(capsys, dict(first["secrets"]))
    assert second["changed"] is False
    assert second["kept"] == sorted(REQUIRED) and second["generated"] == []
    assert second["secrets"] == first["secrets"]
    assert "********" not in out
    assert second["invocation"]["module_args"]["existing"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_offline_keeps_unrelated_names_and_fills_only_the_gap(capsys):
    first, dummy = offline(capsys)
    existing = dict(first["secrets"])
    del existing["ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"]
    existing["OTP_SECRET"] = "ab" * 64
    result, dummy = offline(capsys, existing)
    assert result["changed"] is True
    assert result["generated"] == ["ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"]
    for name, value in existing.items():
        assert result["secrets"][name] == value
    assert result["secrets"]["ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"] != first["secrets"]["ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"]


def test_rotate_rotates_only_what_it_names(capsys):
    first, dummy = offline(capsys)
    result, dummy = offline(capsys, dict(first["secrets"]), rotate=["SECRET_KEY_BASE"])
    assert result["changed"] is True and result["rotated"] == ["SECRET_KEY_BASE"]
    for name in REQUIRED:
        same = result["secrets"][name] == first["secrets"][name]
        assert same == (name != "SECRET_KEY_BASE")


def test_active_record_rotation_is_refused_without_the_flag(capsys):
    first, dummy = offline(capsys)
    name = "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"
    result, out = offline(capsys, dict(first["secrets"]), rotate=[name])
    assert result["failed"] is True
    assert "refusing to rotate %s" % name in result["msg"] and "i_understand_data_loss=true" in result["msg"]
    for value in first["secrets"].values():
        assert value not in out
    result, dummy = offline(capsys, dict(first["secrets"]), rotate=[name], i_understand_data_loss=True)
    assert result["rotated"] == [name]


def test_invalid_existing_value_fails_listing_names_never_values(capsys):
    first, dummy = offline(capsys)
    existing = dict(first["secrets"])
    existing["VAPID_PRIVATE_KEY"] = existing["VAPID_PRIVATE_KEY"][:43]
    result, out = offline(capsys, existing)
    assert result["failed"] is True
    assert "VAPID_PRIVATE_KEY (stored)" in result["msg"]
    for value in list(existing.values()) + list(first["secrets"].values()):
        assert value not in out


def test_operator_values_are_validated_and_win(capsys):
    private, public = sf.generate_vapid_keys()
    result, out = offline(capsys, {}, values={"VAPID_PRIVATE_KEY": private, "SECRET_KEY_BASE": "0f" * 64})
    assert result["changed"] is True
    assert result["stored"] == ["SECRET_KEY_BASE", "VAPID_PRIVATE_KEY"]
    assert result["secrets"]["VAPID_PRIVATE_KEY"] == private and result["secrets"]["VAPID_PUBLIC_KEY"] == public
    assert result["secrets"]["SECRET_KEY_BASE"] == "0f" * 64
    bad, out = offline(capsys, {}, values={"SECRET_KEY_BASE": "zz" * 64})
    assert bad["failed"] is True and "values.SECRET_KEY_BASE: must be hex" in bad["msg"]
    assert "zz" * 64 not in out


def test_legacy_otp_secret_is_added_on_request(capsys):
    result, dummy = offline(capsys, {}, legacy_otp_secret=True)
    assert "OTP_SECRET" in result["generated"] and re.match(r"^[0-9a-f]{128}$", result["secrets"]["OTP_SECRET"])


def test_check_mode_and_diff_show_names_only(capsys):
    result, out = run(capsys, dict(mastodon_version="4.6.3", existing={}), check=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"] == dict((n, "(generated)") for n in REQUIRED)


def test_warns_when_the_task_lacks_no_log(capsys):
    result, dummy = run(capsys, dict(mastodon_version="4.6.3", existing={}), no_log=False)
    assert "set no_log: true on this task" in json.dumps(result.get("warnings"))


@pytest.mark.parametrize("args,fragment", [
    (dict(mastodon_version="4.6.3"), "Set namespace and name (Kubernetes mode), or existing"),
    (dict(mastodon_version="not a tag", existing={}), "mastodon_version must be a release like v4.6.3 or a container image tag"),
    (dict(mastodon_version="4.6.3", existing={}, namespace="x", name="y"), "mutually exclusive"),
    (dict(mastodon_version="4.6.3", namespace="x"), "name"),
    (dict(mastodon_version="4.6.3", existing={}, rotate=["DB_PASS"]), "rotate: DB_PASS is not one of the required"),
])
def test_bad_arguments_fail_naming_the_option(capsys, args, fragment):
    result, dummy = run(capsys, args)
    assert result["failed"] is True and fragment in result["msg"], result["msg"]


def test_kubernetes_mode_unreachable_api_fails_clearly(capsys):
    pytest.importorskip("kubernetes")
    result, dummy = run(capsys, dict(mastodon_version="4.6.3", namespace="ns", name="s", host="http://127.0.0.1:9",
                                     kubeconfig=None))
    assert result["failed"] is True
    assert "Secret ns/s" in result["msg"]
