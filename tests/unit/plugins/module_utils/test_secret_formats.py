# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Formats of generated secrets, validation of present ones, and the Mastodon secret plan."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import re
import secrets
import string

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.fediverse.mastodon.plugins.module_utils import secret_formats as sf

AR = list(sf.AR_KEYS)
ALL_46 = ["SECRET_KEY_BASE", "VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"] + AR


def b64u(raw):
    return base64.urlsafe_b64encode(raw).decode("ascii")


def unb64u(text):
    return base64.urlsafe_b64decode(text.encode("ascii"))


def ruby_webpush_private_key(scalar):
    """Encode like Ruby's webpush gem: Base64.urlsafe_encode64(OpenSSL::BN#to_s(2)).

    BN#to_s(2) is the minimal big-endian byte string: leading zero bytes are dropped.
    """
    raw = scalar.to_bytes(32, "big").lstrip(b"\x00")
    return b64u(raw)


def scalar_with_leading_zero_byte():
    while True:
        scalar = int.from_bytes(b"\x00" + secrets.token_bytes(31), "big")
        if scalar >> 240:  # exactly one leading zero byte: 31 significant bytes
            return scalar


# --- generic formats -----------------------------------------------------------------------

def test_hex_secret_is_what_rake_secret_prints():
    value = sf.hex_secret()
    assert len(value) == 128
    assert re.match(r"^[0-9a-f]{128}$", value)
    assert sf.hex_secret() != value


def test_alphanumeric_secret_is_like_securerandom_alphanumeric_32():
    values = [sf.alphanumeric_secret(32) for dummy in range(300)]
    assert all(len(v) == 32 and re.match(r"^[A-Za-z0-9]{32}$", v) for v in values)
    # 9600 draws from 62 symbols: every symbol shows up (the alphabet is the whole of [A-Za-z0-9])
    assert set("".join(values)) == set(string.ascii_letters + string.digits)
    assert len(set(values)) == len(values)


@pytest.mark.parametrize("fmt,pattern", [("hex", r"^[0-9a-f]+$"), ("alphanumeric", r"^[A-Za-z0-9]+$"),
                                         ("urlsafe", r"^[A-Za-z0-9_-]+$")])
@pytest.mark.parametrize("length", [8, 31, 32, 64, 4096])
def test_generic_formats_have_exact_length_and_alphabet(fmt, pattern, length):
    value = sf.generate(fmt, length)
    assert len(value) == length
    assert re.match(pattern, value)
    assert sf.check_format(fmt, value, length) is None


def test_urlsafe_format_uses_dash_and_underscore():
    joined = "".join(sf.generate("urlsafe", 64) for dummy in range(100))
    assert "-" in joined and "_" in joined


@pytest.mark.parametrize("fmt,length,fragment", [("base64", 32, "format must be one of"), ("hex", 4, "length must be"),
                                                 ("hex", 5000, "length must be"), ("hex", "32", "length must be"),
                                                 ("hex", True, "length must be")])
def test_bad_generator_spec_is_rejected(fmt, length, fragment):
    assert fragment in sf.check_spec(fmt, length)
    with pytest.raises(sf.SecretFormatError, match=fragment):
        sf.generate(fmt, length)


def test_check_format_names_the_problem():
    assert "32 characters long, found 31" in sf.check_format("alphanumeric", "a" * 31, 32)
    assert "lowercase hex" in sf.check_format("hex", "ABCDEF12", 8)
    assert "A-Z, a-z, 0-9" in sf.check_format("alphanumeric", "abc-defg", 8)


# --- VAPID ---------------------------------------------------------------------------------

def test_generated_vapid_keys_have_mastodons_encoding():
    private, public = sf.generate_vapid_keys()
    assert len(private) == 44 and private.endswith("=") and not private.endswith("==")
    assert re.match(r"^[A-Za-z0-9_-]{43}=$", private)
    assert len(unb64u(private)) == 32
    assert len(public) == 88 and public.startswith("B") and public.endswith("=")
    assert re.match(r"^B[A-Za-z0-9_-]{86}=$", public)
    raw_public = unb64u(public)
    assert len(raw_public) == 65 and raw_public[0:1] == b"\x04"
    assert sf.check_vapid_pair(private, public) is None


def test_generated_vapid_pair_signs_and_verifies():
    private, public = sf.generate_vapid_keys()
    key = ec.derive_private_key(int.from_bytes(unb64u(private), "big"), ec.SECP256R1())
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(public))
    message = b"mastodon web push"
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    verifier.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        verifier.verify(signature, b"something else", ec.ECDSA(hashes.SHA256()))
    other_private, other_public = sf.generate_vapid_keys()
    other = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(other_public))
    with pytest.raises(InvalidSignature):
        other.verify(signature, message, ec.ECDSA(hashes.SHA256()))


def test_generated_private_scalar_keeps_leading_zero_bytes():
    # emit 32 bytes even when the scalar is small (Ruby would drop the zero byte)
    scalar = scalar_with_leading_zero_byte()
    encoded = sf.encode_vapid_private_key(scalar)
    assert len(encoded) == 44 and encoded.endswith("=") and not encoded.endswith("==")
    assert unb64u(encoded)[0:1] == b"\x00"


def test_ruby_webpush_31_byte_private_key_is_accepted():
    scalar = scalar_with_leading_zero_byte()
    ruby_key = ruby_webpush_private_key(scalar)
    assert len(unb64u(ruby_key)) == 31
    assert len(ruby_key) == 44 and ruby_key.endswith("==")
    assert sf.check_vapid_private_key(ruby_key) is None
    public = sf.vapid_public_key(ruby_key)
    # the same scalar in 32-byte form has the same public key
    assert public == sf.vapid_public_key(sf.encode_vapid_private_key(scalar))
    assert sf.check_vapid_pair(ruby_key, public) is None
    # and it is kept as Ruby wrote it
    updates, report = sf.plan_mastodon_secrets({"VAPID_PRIVATE_KEY": ruby_key, "VAPID_PUBLIC_KEY": public},
                                               ["VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"])
    assert updates == {} and report["kept"] == ["VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"]


def test_ruby_webpush_32_byte_key_is_the_same_as_ours():
    private, public = sf.generate_vapid_keys()
    scalar = int.from_bytes(unb64u(private), "big")
    if scalar >> 248:
        assert ruby_webpush_private_key(scalar) == private


def _bad_privates():
    private, dummy = sf.generate_vapid_keys()
    raw = unb64u(private)
    order = sf.P256_ORDER.to_bytes(32, "big")
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    # truncated and re-padded: 42 characters carry 31 bytes and 4 more bits, which must be set for
    # the value to be non-canonical (with the key's own last character they are zero 1 time in 16)
    repadded = private[:41] + alphabet[(alphabet.index(private[41]) & 0x30) | 0x01] + "=="
    return [
        (private[:-1], "multiple of 4"),                              # '=' lost
        (private[:40], "32-byte"),                                    # truncated to 30 bytes
        (private[:41], "multiple of 4"),                              # truncated
        (repadded, "canonical"),                                      # truncated, re-padded
        (base64.b64encode(raw).decode().replace("-", "+").rstrip("=") + "+=", "URL-safe base64"),  # '+' alphabet
        (private.rstrip("="), "multiple of 4"),                       # unpadded
        (b64u(raw + b"\x01"), "32-byte"),                             # 33 bytes
        (b64u(b"\x00" * 32), "out of range"),                         # zero
        (b64u(order), "out of range"),                                # = n
        (private + " ", "URL-safe base64"),
        ("", "URL-safe base64"),
    ]


@pytest.mark.parametrize("index", range(11))
def test_malformed_private_keys_are_rejected_without_the_value(index):
    value, fragment = _bad_privates()[index]
    problem = sf.check_vapid_private_key(value)
    assert problem and fragment in problem
    if len(value) > 4:
        assert value.strip() not in problem and value[:12] not in problem


def test_private_key_with_nonzero_padding_bits_is_rejected():
    private, dummy = sf.generate_vapid_keys()
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    last = private[-2]
    tweaked = private[:-2] + alphabet[alphabet.index(last) ^ 1] + "="
    assert "canonical" in sf.check_vapid_private_key(tweaked)


def test_malformed_public_keys_are_rejected_without_the_value():
    private, public = sf.generate_vapid_keys()
    raw = bytearray(unb64u(public))
    raw[-1] ^= 1
    off_curve = b64u(bytes(raw))
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(public))
    compressed = b64u(point.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint))
    cases = [(off_curve, "not a point on the P-256 curve"), (compressed, "65-byte uncompressed"),
             (public[:80], "65-byte"), (public[:81], "multiple of 4"), (private, "65-byte")]
    for value, fragment in cases:
        problem = sf.check_vapid_public_key(value)
        assert problem and fragment in problem, (fragment, problem)
        assert value not in problem and value[:12] not in problem


def test_mismatched_pair_is_rejected():
    private, dummy = sf.generate_vapid_keys()
    dummy, other_public = sf.generate_vapid_keys()
    problem = sf.check_vapid_pair(private, other_public)
    assert problem == "VAPID_PUBLIC_KEY does not belong to VAPID_PRIVATE_KEY (the pair does not match)"


# --- Mastodon's secrets --------------------------------------------------------------------

@pytest.mark.parametrize("version,legacy,expected", [
    ("4.6.3", False, ALL_46),
    ("v4.4.0", False, ALL_46),
    ("4.3.0-beta.1", False, ALL_46),
    ("4.3.9", True, ["SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"] + AR),
    ("4.2.12", False, ["SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"]),
    ("main-nightly", False, ALL_46),  # a custom tag (mastodon_version_guard=false) is current Mastodon
    ("latest", False, ALL_46),
])
def test_required_set_follows_the_version(version, legacy, expected):
    assert sf.mastodon_secret_names(version, legacy) == expected


@pytest.mark.parametrize("version", ["", "not a tag", "v4.6.3+build", None])
def test_bad_version_is_rejected(version):
    with pytest.raises(sf.SecretFormatError, match="mastodon_version must be a release like v4.6.3 or a container image tag"):
        sf.mastodon_secret_names(version)


def test_first_plan_generates_everything_in_rake_format():
    updates, report = sf.plan_mastodon_secrets({}, ALL_46 + ["OTP_SECRET"])
    assert sorted(updates) == sorted(ALL_46 + ["OTP_SECRET"])
    assert report["generated"] == sorted(updates) and report["kept"] == [] and report["rotated"] == []
    assert re.match(r"^[0-9a-f]{128}$", updates["SECRET_KEY_BASE"])
    assert re.match(r"^[0-9a-f]{128}$", updates["OTP_SECRET"])
    for name in AR:
        assert re.match(r"^[A-Za-z0-9]{32}$", updates[name])
    assert sf.check_vapid_pair(updates["VAPID_PRIVATE_KEY"], updates["VAPID_PUBLIC_KEY"]) is None
    assert len(set(updates.values())) == len(updates)


def test_second_plan_with_the_output_of_the_first_changes_nothing():
    first, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    updates, report = sf.plan_mastodon_secrets(dict(first), ALL_46)
    assert updates == {}
    assert report == dict(generated=[], rotated=[], stored=[], kept=sorted(ALL_46))


def test_rotate_rotates_only_what_it_names():
    stored, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    updates, report = sf.plan_mastodon_secrets(dict(stored), ALL_46, rotate=["SECRET_KEY_BASE"])
    assert list(updates) == ["SECRET_KEY_BASE"] and updates["SECRET_KEY_BASE"] != stored["SECRET_KEY_BASE"]
    assert report["rotated"] == ["SECRET_KEY_BASE"] and len(report["kept"]) == len(ALL_46) - 1


def test_rotating_one_vapid_key_replaces_the_pair():
    stored, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    updates, report = sf.plan_mastodon_secrets(dict(stored), ALL_46, rotate=["VAPID_PRIVATE_KEY"])
    assert sorted(updates) == ["VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"]
    assert sf.check_vapid_pair(updates["VAPID_PRIVATE_KEY"], updates["VAPID_PUBLIC_KEY"]) is None
    assert report["rotated"] == ["VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"]


def test_rotating_an_active_record_key_needs_the_data_loss_flag():
    stored, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    name = "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"
    with pytest.raises(sf.SecretFormatError, match="refusing to rotate %s.*i_understand_data_loss" % name):
        sf.plan_mastodon_secrets(dict(stored), ALL_46, rotate=[name])
    updates, report = sf.plan_mastodon_secrets(dict(stored), ALL_46, rotate=[name], allow_data_loss=True)
    assert list(updates) == [name] and report["rotated"] == [name]


def test_supplied_values_win_and_are_stored():
    private, public = sf.generate_vapid_keys()
    supplied = {"SECRET_KEY_BASE": "ab" * 64, "VAPID_PRIVATE_KEY": private}
    updates, report = sf.plan_mastodon_secrets({}, ALL_46, supplied)
    assert updates["SECRET_KEY_BASE"] == "ab" * 64
    assert updates["VAPID_PRIVATE_KEY"] == private and updates["VAPID_PUBLIC_KEY"] == public
    assert report["stored"] == ["SECRET_KEY_BASE", "VAPID_PRIVATE_KEY"]
    assert "VAPID_PUBLIC_KEY" in report["generated"]


def test_supplied_value_that_differs_from_stored_is_a_rotation():
    stored, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    new = "cd" * 64
    with pytest.raises(sf.SecretFormatError) as info:
        sf.plan_mastodon_secrets(dict(stored), ALL_46, {"SECRET_KEY_BASE": new})
    assert "SECRET_KEY_BASE: the supplied value differs from the stored one; list SECRET_KEY_BASE in rotate" in str(info.value)
    assert new not in str(info.value) and stored["SECRET_KEY_BASE"] not in str(info.value)
    updates, report = sf.plan_mastodon_secrets(dict(stored), ALL_46, {"SECRET_KEY_BASE": new}, rotate=["SECRET_KEY_BASE"])
    assert updates == {"SECRET_KEY_BASE": new} and report["rotated"] == ["SECRET_KEY_BASE"]
    # the same value as stored is simply kept
    updates, report = sf.plan_mastodon_secrets(dict(stored), ALL_46, {"SECRET_KEY_BASE": stored["SECRET_KEY_BASE"]})
    assert updates == {} and "SECRET_KEY_BASE" in report["kept"]


def test_supplied_active_record_key_that_differs_needs_the_flag():
    stored, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    name = "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY"
    with pytest.raises(sf.SecretFormatError, match="list %s in rotate" % name):
        sf.plan_mastodon_secrets(dict(stored), ALL_46, {name: "X" * 32})
    with pytest.raises(sf.SecretFormatError, match="refusing to rotate"):
        sf.plan_mastodon_secrets(dict(stored), ALL_46, {name: "X" * 32}, rotate=[name])


def test_invalid_stored_values_fail_listing_names_not_values():
    stored, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    broken = dict(stored)
    broken["VAPID_PRIVATE_KEY"] = stored["VAPID_PRIVATE_KEY"][:30]
    broken["SECRET_KEY_BASE"] = stored["SECRET_KEY_BASE"][:63]
    broken["ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"] = "short"
    with pytest.raises(sf.SecretFormatError) as info:
        sf.plan_mastodon_secrets(broken, ALL_46)
    message = str(info.value)
    assert "SECRET_KEY_BASE (stored): must be at least 64 hex characters" in message
    assert "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY (stored): must be at least 32" in message
    assert "VAPID_PRIVATE_KEY (stored)" in message and "multiple of 4" in message
    for value in list(broken.values()) + list(stored.values()):
        assert value not in message
        assert value[:10] not in message


def test_mismatched_stored_vapid_pair_fails():
    stored, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    dummy, other_public = sf.generate_vapid_keys()
    stored["VAPID_PUBLIC_KEY"] = other_public
    with pytest.raises(sf.SecretFormatError, match="VAPID keys \\(stored\\): VAPID_PUBLIC_KEY does not belong"):
        sf.plan_mastodon_secrets(stored, ALL_46)


def test_mismatched_supplied_vapid_pair_fails():
    private, dummy = sf.generate_vapid_keys()
    dummy, public = sf.generate_vapid_keys()
    with pytest.raises(sf.SecretFormatError, match="values: VAPID_PUBLIC_KEY does not belong") as info:
        sf.plan_mastodon_secrets({}, ALL_46, {"VAPID_PRIVATE_KEY": private, "VAPID_PUBLIC_KEY": public})
    assert private not in str(info.value) and public not in str(info.value)


def test_missing_public_key_is_derived_not_regenerated():
    stored, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    partial = dict(stored)
    del partial["VAPID_PUBLIC_KEY"]
    updates, report = sf.plan_mastodon_secrets(partial, ALL_46)
    assert updates == {"VAPID_PUBLIC_KEY": stored["VAPID_PUBLIC_KEY"]}
    assert report["generated"] == ["VAPID_PUBLIC_KEY"]


def test_missing_private_key_with_public_present_fails():
    stored, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    del stored["VAPID_PRIVATE_KEY"]
    with pytest.raises(sf.SecretFormatError, match="VAPID_PRIVATE_KEY \\(stored\\): missing while VAPID_PUBLIC_KEY"):
        sf.plan_mastodon_secrets(stored, ALL_46)
    updates, report = sf.plan_mastodon_secrets(stored, ALL_46, rotate=["VAPID_PRIVATE_KEY"])
    assert sorted(updates) == ["VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"]


def test_missing_key_is_generated_and_the_rest_kept_byte_for_byte():
    stored, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    partial = dict(stored)
    del partial["ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT"]
    updates, report = sf.plan_mastodon_secrets(partial, ALL_46)
    assert list(updates) == ["ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT"]
    assert report["generated"] == ["ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT"]
    assert report["kept"] == sorted(set(ALL_46) - set(["ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT"]))


def test_unknown_names_and_bad_rotate_are_rejected():
    with pytest.raises(sf.SecretFormatError, match="values.OTP_SECRET: not required"):
        sf.plan_mastodon_secrets({}, ALL_46, {"OTP_SECRET": "ab" * 64})
    with pytest.raises(sf.SecretFormatError, match="rotate: DB_PASS is not one of the required secrets"):
        sf.plan_mastodon_secrets({}, ALL_46, rotate=["DB_PASS"])


def test_test_environment_active_record_keys_are_refused():
    value = "abcdefghijklmnopDO_NOT_USE_IN_PRODUCTION"
    assert "test value" in sf.check_mastodon_secret("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", value)


def test_unrelated_keys_in_current_are_left_alone():
    stored, dummy = sf.plan_mastodon_secrets({}, ALL_46)
    stored["OTP_SECRET"] = "whatever"
    updates, report = sf.plan_mastodon_secrets(dict(stored), ALL_46)
    assert updates == {} and "OTP_SECRET" not in report["kept"]


def test_a_tls_bundle_is_a_ca_and_a_certificate_it_signed():
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import serialization
    bundle = sf.generate_tls_bundle("opensearch-node", "fediverse.mastodon", ["a", "a.ns.svc"], days=30)
    assert sorted(bundle) == ["ca.crt", "tls.crt", "tls.key"]
    ca = x509.load_pem_x509_certificate(bundle["ca.crt"].encode())
    cert = x509.load_pem_x509_certificate(bundle["tls.crt"].encode())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == "CN=opensearch-node,O=fediverse.mastodon"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30
    key = serialization.load_pem_private_key(bundle["tls.key"].encode(), None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    assert bundle["tls.key"].startswith("-----BEGIN PRIVATE KEY-----")   # PKCS#8, what Java servers read
    other = sf.generate_tls_bundle("opensearch-node")
    assert other["ca.crt"] != bundle["ca.crt"] and other["tls.key"] != bundle["tls.key"]


@pytest.mark.parametrize("kwargs", [dict(common_name=""), dict(common_name="x", days=0), dict(common_name="x", days=True)])
def test_a_tls_bundle_refuses_bad_requests(kwargs):
    with pytest.raises(sf.SecretFormatError):
        sf.generate_tls_bundle(**kwargs)
