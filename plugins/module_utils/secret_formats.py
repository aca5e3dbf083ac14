# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generators and validators for the secrets Mastodon and the backing services use.

Generated values are indistinguishable from what Mastodon's own tools print:

- ``SECRET_KEY_BASE`` / ``OTP_SECRET``: ``SecureRandom.hex(64)``, 128 lowercase hex characters;
- ``ACTIVE_RECORD_ENCRYPTION_*``: ``SecureRandom.alphanumeric(32)``;
- VAPID: a P-256 key pair as Ruby's webpush gem encodes it, URL-safe base64 with ``=`` padding
  of the raw private scalar (32 bytes; Ruby drops a leading zero byte, so 1 key in 256 is 31 bytes:
  accepted) and of the uncompressed public point ``0x04||X||Y`` (65 bytes, starts with ``B``).

Every ``check_*`` function returns ``None`` when the value is fine, else a short sentence that
names the problem and never contains the value. Generic formats for any password:
``hex``, ``alphanumeric`` and ``urlsafe`` (``[A-Za-z0-9_-]``), ``length`` counting characters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import re
import secrets
import string

from ansible_collections.fediverse.mastodon.plugins.module_utils import instance_record

try:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives import hashes, serialization
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported through missing_required_lib
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

HEX_ALPHABET = "0123456789abcdef"
ALPHANUMERIC_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits
URLSAFE_ALPHABET = ALPHANUMERIC_ALPHABET + "-_"
FORMATS = {"hex": HEX_ALPHABET, "alphanumeric": ALPHANUMERIC_ALPHABET, "urlsafe": URLSAFE_ALPHABET}
MIN_LENGTH = 8
MAX_LENGTH = 4096

# P-256 group order: a private scalar must lie in [1, N-1].
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
VAPID_PRIVATE_MIN_BYTES = 31  # Ruby's OpenSSL::BN#to_s(2) drops a leading zero byte (1 key in 256)
VAPID_PRIVATE_BYTES = 32
VAPID_PUBLIC_BYTES = 65
_URLSAFE_B64_RE = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


class SecretFormatError(ValueError):
    """A value does not have the required format. The message never contains the value."""


# --- generic formats -----------------------------------------------------------------------

def random_string(alphabet, length):
    """``length`` characters drawn uniformly from ``alphabet`` with the OS CSPRNG."""
    return "".join(secrets.choice(alphabet) for dummy in range(length))


def generate(fmt, length):
    """A new value in format ``fmt`` (hex, alphanumeric, urlsafe) of ``length`` characters."""
    problem = check_spec(fmt, length)
    if problem:
        raise SecretFormatError(problem)
    if fmt == "hex" and length % 2 == 0:
        return secrets.token_hex(length // 2)
    return random_string(FORMATS[fmt], length)


def check_spec(fmt, length):
    """Problem with a generator request (format name, length), or None."""
    if fmt not in FORMATS:
        return "format must be one of %s, not %r" % (", ".join(sorted(FORMATS)), fmt)
    if not isinstance(length, int) or isinstance(length, bool) or not MIN_LENGTH <= length <= MAX_LENGTH:
        return "length must be an integer between %d and %d" % (MIN_LENGTH, MAX_LENGTH)
    return None


def check_format(fmt, value, length=None):
    """Problem with ``value`` in format ``fmt`` (exact alphabet, and exact length when given)."""
    if not isinstance(value, str):
        return "must be a string"
    if length is not None and len(value) != length:
        return "must be %d characters long, found %d" % (length, len(value))
    alphabet = FORMATS[fmt]
    if not value or any(c not in alphabet for c in value):
        return "must contain only %s characters" % {"hex": "lowercase hex", "alphanumeric": "A-Z, a-z, 0-9",
                                                    "urlsafe": "A-Z, a-z, 0-9, '-', '_'"}[fmt]
    return None


def hex_secret():
    """Like Ruby's ``SecureRandom.hex(64)`` (``rake secret``): 128 lowercase hex characters."""
    return secrets.token_hex(64)


def alphanumeric_secret(length=32):
    """Like Ruby's ``SecureRandom.alphanumeric(length)``."""
    return random_string(ALPHANUMERIC_ALPHABET, length)


# --- VAPID (Web Push) keys -----------------------------------------------------------------

def _urlsafe_b64decode(value, what):
    if not isinstance(value, str) or not _URLSAFE_B64_RE.match(value):
        raise SecretFormatError("%s must be URL-safe base64 (A-Z, a-z, 0-9, '-', '_') with '=' padding" % what)
    if len(value) % 4:
        raise SecretFormatError("%s is not complete URL-safe base64 with '=' padding: its length is not a "
                                "multiple of 4 (truncated?)" % what)
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (binascii.Error, ValueError):
        raise SecretFormatError("%s is not valid URL-safe base64" % what)
    if _urlsafe_b64encode(raw) != value:
        raise SecretFormatError("%s is not canonical URL-safe base64 (wrong padding bits)" % what)
    return raw


def _urlsafe_b64encode(raw):
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _private_scalar(value):
    raw = _urlsafe_b64decode(value, "VAPID_PRIVATE_KEY")
    if not VAPID_PRIVATE_MIN_BYTES <= len(raw) <= VAPID_PRIVATE_BYTES:
        raise SecretFormatError("VAPID_PRIVATE_KEY must decode to the 32-byte P-256 private scalar "
                                "(or 31 bytes when Ruby dropped a leading zero byte), found %d bytes" % len(raw))
    scalar = int(binascii.hexlify(raw), 16)
    if not 0 < scalar < P256_ORDER:
        raise SecretFormatError("VAPID_PRIVATE_KEY is not a valid P-256 private scalar (out of range)")
    return scalar


def _public_from_scalar(scalar):
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    raw = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return _urlsafe_b64encode(raw)


def encode_vapid_private_key(scalar):
    """URL-safe base64 (padded) of the 32-byte big-endian scalar."""
    return _urlsafe_b64encode(scalar.to_bytes(VAPID_PRIVATE_BYTES, "big"))


def generate_vapid_keys():
    """A new pair ``(private_key, public_key)`` in Mastodon's encoding (44 and 88 characters)."""
    key = ec.generate_private_key(ec.SECP256R1())
    scalar = key.private_numbers().private_value
    return encode_vapid_private_key(scalar), _public_from_scalar(scalar)


def vapid_public_key(private_key):
    """Derive the public key (Mastodon's encoding) from a private key; SecretFormatError if invalid."""
    return _public_from_scalar(_private_scalar(private_key))


def _check(func, *args):
    try:
        func(*args)
    except SecretFormatError as exc:
        return str(exc)
    return None


def check_vapid_private_key(value):
    """Problem with a VAPID private key, or None. 31-byte keys from Ruby are accepted."""
    return _check(_private_scalar, value)


def _check_public(value):
    raw = _urlsafe_b64decode(value, "VAPID_PUBLIC_KEY")
    if len(raw) != VAPID_PUBLIC_BYTES or raw[0:1] != b"\x04":
        raise SecretFormatError("VAPID_PUBLIC_KEY must decode to the 65-byte uncompressed P-256 point "
                                "(0x04, X, Y; 88 characters starting with 'B'), found %d bytes" % len(raw))
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise SecretFormatError("VAPID_PUBLIC_KEY is not a point on the P-256 curve")


def check_vapid_public_key(value):
    """Problem with a VAPID public key, or None."""
    return _check(_check_public, value)


def check_vapid_pair(private_key, public_key):
    """Problem with a VAPID pair (each half, and that public == private x G), or None."""
    problem = check_vapid_private_key(private_key) or check_vapid_public_key(public_key)
    if problem:
        return problem
    if vapid_public_key(private_key) != public_key:
        return "VAPID_PUBLIC_KEY does not belong to VAPID_PRIVATE_KEY (the pair does not match)"
    return None


# --- a private CA and one certificate it signed ---------------------------------------------

TLS_KEYS = ("ca.crt", "tls.crt", "tls.key")


def _alt_name(name):
    import ipaddress
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _name(common_name, organization):
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []
    return x509.Name(parts + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def generate_tls_bundle(common_name, organization=None, names=(), days=3650, now=None):
    """A new private CA and one certificate it signed, as PEM text: ``{ca.crt, tls.crt, tls.key}``
    (the key names of a kubernetes.io/tls Secret with its CA, as cert-manager writes them).

    The certificate's subject is ``O=<organization>, CN=<common_name>`` (OpenSearch's
    ``nodes_dn`` reads ``CN=...,O=...``), valid for ``days`` for server and client use, with
    ``names`` as subjectAltName (an IP literal becomes an IP address entry, anything else a DNS
    name). The keys are RSA 2048, the leaf's in PKCS#8 (what Java
    servers read). The CA's key is not kept: nothing else can be signed with it later.
    """
    import datetime
    if not common_name or not isinstance(common_name, str):
        raise SecretFormatError("tls.common_name must be a non-empty string")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 36500:
        raise SecretFormatError("tls.days must be an integer between 1 and 36500")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = _name(common_name + " CA", organization)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (x509.CertificateBuilder().subject_name(_name(common_name, organization)).issuer_name(ca_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=False, crl_sign=False,
                                            content_commitment=False, data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    alt_names = [_alt_name(n) for n in names or ()]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    return {
        "ca.crt": ca.public_bytes(pem).decode("ascii"),
        "tls.crt": cert.public_bytes(pem).decode("ascii"),
        "tls.key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode("ascii"),
    }


# --- Mastodon's own secrets ----------------------------------------------------------------

SECRET_KEY_BASE = "SECRET_KEY_BASE"
OTP_SECRET = "OTP_SECRET"
VAPID_PRIVATE_KEY = "VAPID_PRIVATE_KEY"
VAPID_PUBLIC_KEY = "VAPID_PUBLIC_KEY"
AR_KEYS = ("ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY",
           "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT",
           "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY")
VAPID_KEYS = (VAPID_PRIVATE_KEY, VAPID_PUBLIC_KEY)
MASTODON_SECRET_NAMES = (SECRET_KEY_BASE, OTP_SECRET) + VAPID_KEYS + AR_KEYS
MIN_SECRET_KEY_BASE = 64
MIN_AR_KEY = 32


NEWEST = (99999, 0)  # a custom image tag is taken to be current Mastodon


def parse_version(version):
    """(major, minor) of a Mastodon version, with the collection's one version parser
    (instance_record.parse_version). A custom image tag (``main-nightly``, allowed with
    mastodon_version_guard=false) counts as the newest Mastodon."""
    parsed = instance_record.parse_version(version)
    if parsed is not None:
        return parsed[0], parsed[1]
    if instance_record.valid_image_tag(version):
        return NEWEST
    raise SecretFormatError("mastodon_version must be a release like v4.6.3 or a container image tag, not %r" % (version,))


def mastodon_secret_names(version, legacy_otp_secret=False):
    """The secrets Mastodon ``version`` needs, in a stable order.

    Before 4.3: SECRET_KEY_BASE, OTP_SECRET and the VAPID pair. From 4.3: SECRET_KEY_BASE, the VAPID
    pair and the three ACTIVE_RECORD_ENCRYPTION_* keys, plus OTP_SECRET with ``legacy_otp_secret``
    (an upgrade from before 4.3 runs one migration that reads it).
    """
    major_minor = parse_version(version)
    names = [SECRET_KEY_BASE]
    if major_minor < (4, 3) or legacy_otp_secret:
        names.append(OTP_SECRET)
    names.extend(VAPID_KEYS)
    if major_minor >= (4, 3):
        names.extend(AR_KEYS)
    return names


def _check_key_base(value):
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if any(c not in "0123456789abcdefABCDEF" for c in value):
        return "must be hex (what rake secret prints)"
    if len(value) < MIN_SECRET_KEY_BASE or len(value) % 2:
        return "must be at least %d hex characters and an even number of them, found %d (truncated?)" % (
            MIN_SECRET_KEY_BASE, len(value))
    return None


def _check_ar_key(value):
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if value.endswith("DO_NOT_USE_IN_PRODUCTION"):
        return "is a test value that Mastodon refuses in production"
    if len(value) < MIN_AR_KEY or any(c.isspace() or not c.isprintable() for c in value):
        return "must be at least %d printable characters without spaces (db:encryption:init gives 32), found %d" % (
            MIN_AR_KEY, len(value))
    return None


def check_mastodon_secret(name, value):
    """Problem with one of Mastodon's secrets on its own (VAPID pairing is checked separately), or None."""
    if name in (SECRET_KEY_BASE, OTP_SECRET):
        return _check_key_base(value)
    if name in AR_KEYS:
        return _check_ar_key(value)
    if name == VAPID_PRIVATE_KEY:
        return check_vapid_private_key(value)
    if name == VAPID_PUBLIC_KEY:
        return check_vapid_public_key(value)
    return "is not a Mastodon secret this collection manages (known: %s)" % ", ".join(MASTODON_SECRET_NAMES)


def generate_mastodon_secret(name):
    """A new value for a non-VAPID Mastodon secret, exactly as Mastodon's rake tasks make it."""
    if name in (SECRET_KEY_BASE, OTP_SECRET):
        return hex_secret()
    if name in AR_KEYS:
        return alphanumeric_secret(32)
    raise SecretFormatError("%s has no single-value generator (VAPID keys come as a pair)" % name)


# --- returning secret values from a module --------------------------------------------------

def return_values_intact(module, values):
    """Let ``module.exit_json`` return ``values`` unmasked although no_log options held them.

    Ansible replaces every returned string that equals (or contains) the value of a no_log
    option with ``********``. A module whose job is to hand back a kept secret (the calling task
    uses ``no_log: true``) calls this first: it drops exactly those values from the mask list and
    returns an ``invocation`` (pass it to exit_json) in which every no_log option is hidden by
    name, so the inputs still never show in the invocation.
    """
    keep = set(v for v in values if isinstance(v, str))
    module.no_log_values.difference_update(keep)
    args = {}
    for name, spec in module.argument_spec.items():
        if spec.get("no_log") and module.params.get(name):
            args[name] = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
        else:
            args[name] = module.params.get(name)
    return {"module_args": args}


def plan_mastodon_secrets(current, names, supplied=None, rotate=(), allow_data_loss=False):
    """Decide what to write so that ``current`` holds every secret in ``names``.

    ``current`` is what is stored now (Secret content or the ``existing`` dict), ``supplied`` the
    operator's values (they win over generated ones), ``rotate`` the names to replace on purpose.
    Returns ``(updates, report)``: ``updates`` maps names to new values; ``report`` has sorted
    lists ``generated``, ``rotated``, ``stored`` (operator values written where none was) and
    ``kept``. Raises SecretFormatError listing every problem (names and reasons, no values):
    invalid stored or supplied values, a supplied value that differs from the stored one without
    ``rotate``, a rotation of an Active Record key without ``allow_data_loss``.
    """
    supplied = dict(supplied or {})
    rotate = set(rotate or ())
    problems = []
    for name in sorted(set(supplied) - set(names)):
        problems.append("values.%s: not required by this Mastodon version/settings (required: %s)"
                        % (name, ", ".join(names)))
    for name in sorted(rotate - set(names)):
        problems.append("rotate: %s is not one of the required secrets (%s)" % (name, ", ".join(names)))
    for name in sorted(rotate & set(AR_KEYS)):
        if not allow_data_loss:
            problems.append("rotate: refusing to rotate %s: data encrypted with the old key becomes unreadable; "
                            "set i_understand_data_loss=true if that is really wanted" % name)
    for name in sorted(supplied):
        if name in names:
            problem = "must be a string" if not isinstance(supplied[name], str) else check_mastodon_secret(name, supplied[name])
            if problem:
                problems.append("values.%s: %s" % (name, problem))
    if problems:
        raise SecretFormatError("; ".join(problems))

    target = {}
    for name in names:
        if name in VAPID_KEYS:
            continue
        if name in supplied:
            target[name] = supplied[name]
        elif name in rotate or name not in current:
            target[name] = generate_mastodon_secret(name)
        else:
            problem = check_mastodon_secret(name, current[name])
            if problem:
                problems.append("%s (stored): %s; fix or remove it, or list it in rotate" % (name, problem))
            target[name] = current[name]
    if VAPID_PRIVATE_KEY in names:
        problems.extend(_plan_vapid(current, supplied, rotate, target))
    if problems:
        raise SecretFormatError("; ".join(problems))

    report = dict(generated=[], rotated=[], stored=[], kept=[])
    vapid_rotation = bool(rotate & set(VAPID_KEYS))
    for name in names:
        value = target[name]
        if name not in current:
            report["stored" if name in supplied else "generated"].append(name)
        elif current[name] == value:
            report["kept"].append(name)
        elif name in rotate or (name in VAPID_KEYS and vapid_rotation):
            report["rotated"].append(name)
        elif name == VAPID_PUBLIC_KEY and current.get(VAPID_PRIVATE_KEY) != target[VAPID_PRIVATE_KEY]:
            continue  # reported once, for the private key
        else:
            what = "the VAPID pair" if name in VAPID_KEYS else "it"
            problems.append("%s: the supplied value differs from the stored one; list %s in rotate to replace %s"
                            % (name, name, what))
    if problems:
        raise SecretFormatError("; ".join(problems))
    updates = dict((n, target[n]) for n in names if current.get(n) != target[n])
    return updates, dict((k, sorted(v)) for k, v in report.items())


def _plan_vapid(current, supplied, rotate, target):
    """Fill target[VAPID_*]; returns a list of problems. The pair is always handled as one."""
    priv, pub = supplied.get(VAPID_PRIVATE_KEY), supplied.get(VAPID_PUBLIC_KEY)
    if priv is not None:
        if pub is not None:
            problem = check_vapid_pair(priv, pub)
            if problem:
                return ["values: %s" % problem]
        target[VAPID_PRIVATE_KEY], target[VAPID_PUBLIC_KEY] = priv, vapid_public_key(priv)
        return []
    stored_priv, stored_pub = current.get(VAPID_PRIVATE_KEY), current.get(VAPID_PUBLIC_KEY)
    if pub is not None:
        if stored_priv is None or set(VAPID_KEYS) & set(rotate):
            return ["values.VAPID_PUBLIC_KEY: supplied without VAPID_PRIVATE_KEY; supply the private key too"]
        problem = check_vapid_pair(stored_priv, pub)
        if problem:
            return ["values.VAPID_PUBLIC_KEY with the stored VAPID_PRIVATE_KEY: %s" % problem]
        target[VAPID_PRIVATE_KEY], target[VAPID_PUBLIC_KEY] = stored_priv, pub
        return []
    if set(VAPID_KEYS) & set(rotate) or (stored_priv is None and stored_pub is None):
        target[VAPID_PRIVATE_KEY], target[VAPID_PUBLIC_KEY] = generate_vapid_keys()
        return []
    if stored_priv is None:
        return ["VAPID_PRIVATE_KEY (stored): missing while VAPID_PUBLIC_KEY is present; restore it, or list "
                "VAPID_PRIVATE_KEY in rotate to make a new pair (this breaks every push subscription)"]
    problem = check_vapid_private_key(stored_priv)
    if problem:
        return ["VAPID_PRIVATE_KEY (stored): %s; fix it, or list it in rotate" % problem]
    if stored_pub is None:
        target[VAPID_PRIVATE_KEY], target[VAPID_PUBLIC_KEY] = stored_priv, vapid_public_key(stored_priv)
        return []
    problem = check_vapid_pair(stored_priv, stored_pub)
    if problem:
        return ["VAPID keys (stored): %s; fix them, or list VAPID_PRIVATE_KEY in rotate" % problem]
    target[VAPID_PRIVATE_KEY], target[VAPID_PUBLIC_KEY] = stored_priv, stored_pub
    return []
