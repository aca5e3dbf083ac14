# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fediverse.mastodon.vapid_keys, run in-process, and interop with py-vapid."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import secrets
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ansible.module_utils.testing import patch_module_args
from ansible_collections.fediverse.mastodon.plugins.modules import vapid_keys
from ansible_collections.fediverse.mastodon.plugins.module_utils import secret_formats as sf


def run(capsys, args, check=False):
    if check:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            vapid_keys.main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):]), out


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ruby_31_byte_key():
    while True:
        scalar = int.from_bytes(secrets.token_bytes(31), "big")
        if scalar >> 240:
            return base64.urlsafe_b64encode(scalar.to_bytes(31, "big")).decode(), scalar


def test_generates_a_pair_in_mastodons_format(capsys):
    result, dummy = run(capsys, {})
    assert result["changed"] is True and result["generated"] is True
    private, public = result["private_key"], result["public_key"]
    assert len(private) == 44 and private.endswith("=") and len(unb64u(private)) == 32
    assert len(public) == 88 and public.startswith("B") and public.endswith("=")
    assert sf.check_vapid_pair(private, public) is None


def test_second_call_with_the_output_of_the_first_changes_nothing(capsys):
    first, dummy = run(capsys, {})
    second, out = run(capsys, {"private_key": first["private_key"], "public_key": first["public_key"]})
    assert second["changed"] is False and second["generated"] is False
    # kept values come back intact, not masked although private_key is no_log
    assert second["private_key"] == first["private_key"]
    assert second["public_key"] == first["public_key"]
    assert "********" not in out
    assert second["invocation"]["module_args"]["private_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_derives_the_public_key_from_the_private_key(capsys):
    private, public = sf.generate_vapid_keys()
    result, dummy = run(capsys, {"private_key": private})
    assert result["changed"] is False
    assert result["private_key"] == private and result["public_key"] == public


def test_accepts_a_31_byte_key_from_ruby_webpush_and_keeps_it(capsys):
    ruby_key, scalar = ruby_31_byte_key()
    assert ruby_key.endswith("==")
    result, dummy = run(capsys, {"private_key": ruby_key})
    assert result["changed"] is False
    assert result["private_key"] == ruby_key
    expected = ec.derive_private_key(scalar, ec.SECP256R1()).public_key().public_numbers()
    raw = unb64u(result["public_key"])
    assert int.from_bytes(raw[1:33], "big") == expected.x and int.from_bytes(raw[33:], "big") == expected.y


def test_mismatch_fails_clearly_without_values(capsys):
    private, dummy = sf.generate_vapid_keys()
    dummy, public = sf.generate_vapid_keys()
    result, out = run(capsys, {"private_key": private, "public_key": public})
    assert result["failed"] is True
    assert "VAPID_PUBLIC_KEY does not belong to VAPID_PRIVATE_KEY" in result["msg"]
    assert "omit public_key" in result["msg"]
    assert private not in out and private[:12] not in out


def test_truncated_private_key_fails_without_value(capsys):
    private, dummy = sf.generate_vapid_keys()
    result, out = run(capsys, {"private_key": private[:41]})
    assert result["failed"] is True
    assert result["msg"].startswith("private_key/public_key: VAPID_PRIVATE_KEY is not complete URL-safe base64")
    assert private[:41] not in out and private[:10] not in result["msg"]


def test_public_key_alone_is_refused(capsys):
    dummy, public = sf.generate_vapid_keys()
    result, dummy = run(capsys, {"public_key": public})
    assert result["failed"] is True and "private_key" in result["msg"]


def test_check_mode_generates_and_reports_changed(capsys):
    result, dummy = run(capsys, {}, check=True)
    assert result["changed"] is True and sf.check_vapid_pair(result["private_key"], result["public_key"]) is None


def _verify_vapid_jwt(token, public_key):
    header, payload, signature = token.split(".")
    raw_sig = unb64u(signature)
    assert len(raw_sig) == 64
    der = encode_dss_signature(int.from_bytes(raw_sig[:32], "big"), int.from_bytes(raw_sig[32:], "big"))
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(public_key))
    verifier.verify(der, ("%s.%s" % (header, payload)).encode("ascii"), ec.ECDSA(hashes.SHA256()))
    assert json.loads(unb64u(header))["alg"] == "ES256"
    return json.loads(unb64u(payload))


@pytest.mark.parametrize("source", ["generated", "ruby31"])
def test_py_vapid_signs_a_jwt_that_verifies_against_the_generated_public_key(capsys, source):
    py_vapid = pytest.importorskip("py_vapid")
    args = {} if source == "generated" else {"private_key": ruby_31_byte_key()[0]}
    result, dummy = run(capsys, args)
    vapid = py_vapid.Vapid02.from_raw(result["private_key"].encode("ascii"))
    claims = {"sub": "mailto:admin@example.social", "aud": "https://push.example.net",
              "exp": int(time.time()) + 3600}
    headers = vapid.sign(claims)
    auth = headers["Authorization"]
    assert auth.startswith("vapid t=")
    token = auth[len("vapid t="):].split(",")[0]
    key_param = auth.split(",k=")[1]
    # the key py-vapid announces is our public key (it strips the padding)
    assert key_param.rstrip("=") == result["public_key"].rstrip("=")
    decoded = _verify_vapid_jwt(token, result["public_key"])
    assert decoded["aud"] == "https://push.example.net"
    # and it does not verify against another key
    dummy, other = sf.generate_vapid_keys()
    with pytest.raises(Exception):
        _verify_vapid_jwt(token, other)
