# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL helpers shared by the collection's modules.

- connection options (documented by the fediverse.mastodon.postgres doc fragment) and connect();
- credentials given by Secret reference (``login_password_secret`` and a module's own), read from
  the Kubernetes API by the module itself (resolve_secret_refs());
- SCRAM-SHA-256 verifiers computed on the client, so a plaintext password never reaches the
  server or its logs, and compared with the stored one for idempotence;
- identifier validation;
- a query log that redacts secrets, and diff building.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import hashlib
import hmac
import re
import stringprep
import unicodedata

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text

try:
    import psycopg2
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported through missing_required_lib
    psycopg2 = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_secret import (
    SecretStoreError,
    read_secret_value,
    secret_ref_spec,
    valid_key_name,
)
from ansible_collections.fediverse.mastodon.plugins.module_utils.portforward import (
    ForwardedEndpoint,
    port_forward,
    via_kubernetes_spec,
)

DEFAULT_PORT = 5432
REDACTED = "********"
MAX_IDENTIFIER_BYTES = 63

SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

POSTGRES_CONNECTION_SPEC = dict(
    login_host=dict(type="str", aliases=["host"]),
    login_port=dict(type="int", default=DEFAULT_PORT, aliases=["port"]),
    login_user=dict(type="str", default="postgres", aliases=["login"]),
    login_password=dict(type="str", no_log=True),
    login_unix_socket=dict(type="str", aliases=["unix_socket"]),
    login_db=dict(type="str", default="postgres"),
    ssl_mode=dict(type="str", default="prefer", choices=SSL_MODES),
    ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
    connect_timeout=dict(type="int", default=10),
    via_kubernetes=via_kubernetes_spec(),
)
"""Connection options of every PostgreSQL-facing module (doc fragment fediverse.mastodon.postgres)."""


def secret_reference_spec():
    """A Secret reference option ``{name, key, namespace}``.

    Not no_log: a reference names a Secret and a key, which the error messages must be able to
    show; the value it points at is added to the module's no_log values once read.
    """
    spec = secret_ref_spec(no_log=False)
    spec["options"]["key"]["no_log"] = False
    return spec


def k8s_auth_spec():
    """The ``k8s_auth`` option: Kubernetes credentials for reading Secret references.

    They cannot be top-level options here: ``host`` is an alias of login_host and ``ca_cert``
    is PostgreSQL's CA. ``apply_defaults`` applies the K8S_AUTH_* fallbacks when it is omitted.
    """
    return dict(type="dict", options=copy.deepcopy(k8s_client.K8S_AUTH_ARG_SPEC), apply_defaults=True)


POSTGRES_SECRET_REF_SPEC = dict(
    login_password_secret=secret_reference_spec(),
    namespace=dict(type="str"),
    k8s_auth=k8s_auth_spec(),
)
"""Options that take credentials by Secret reference (doc fragment fediverse.mastodon.postgres)."""

POSTGRES_MUTUALLY_EXCLUSIVE = [
    ("via_kubernetes", "login_host"),
    ("via_kubernetes", "login_unix_socket"),
    ("login_host", "login_unix_socket"),
    ("login_password", "login_password_secret"),
    ("via_kubernetes", "k8s_auth"),
]


def postgres_argument_spec():
    """A fresh copy of the connection options, to extend with a module's own."""
    spec = dict(POSTGRES_CONNECTION_SPEC)
    spec["via_kubernetes"] = via_kubernetes_spec()
    spec.update(copy.deepcopy(POSTGRES_SECRET_REF_SPEC))
    return spec


# ---- credentials by Secret reference --------------------------------------------------------

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def default_secret_namespace(params):
    """The namespace of a reference without its own: the namespace option, else via_kubernetes's."""
    return params.get("namespace") or (params.get("via_kubernetes") or {}).get("namespace")


def secret_ref_location(params, option):
    """``namespace/name`` of the Secret that option ``option`` refers to (for messages)."""
    ref = params.get(option) or {}
    return "%s/%s" % (ref.get("namespace") or default_secret_namespace(params), ref.get("name"))


def secret_ref_problems(params, options):
    """Messages (naming the option) for malformed references among ``options``; no API call."""
    default_ns = default_secret_namespace(params)
    problems = []
    for option in options:
        ref = params.get(option)
        if not ref:
            continue
        name, key, ns = ref.get("name") or "", ref.get("key") or "", ref.get("namespace") or default_ns
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            problems.append("%s.name %r is not a Secret name (lower-case letters, digits, '-' and '.')" % (option, name))
        if not valid_key_name(key):
            problems.append("%s.key %r is not a Secret key (letters, digits, '-', '_' and '.')" % (option, key))
        if not ns:
            problems.append("%s has no namespace: set %s.namespace, or the module's namespace option "
                            "(via_kubernetes.namespace is the default when via_kubernetes is used)" % (option, option))
        elif len(ns) > 63 or not _DNS_LABEL.match(ns):
            problems.append("%s: namespace %r is not a namespace name" % (option, ns))
    return problems


def resolve_secret_refs(module, pairs, params=None):
    """Read the credentials given by Secret reference; return a copy of the params with them set.

    ``pairs`` lists ``(reference_option, plain_option)``, for example
    ``("login_password_secret", "login_password")``. For each reference that is set, its value is
    read from the Kubernetes API and put under ``plain_option`` in the returned dict (module.params
    itself is not changed, so the invocation shows the reference, not a value). The value is added
    to the module's no_log values. The API client is built from via_kubernetes (the same
    credentials as the port-forward) when it is set, else from k8s_auth. Failures call fail_json
    with a message naming the option, the Secret and the key, never a value.
    """
    params = dict(module.params if params is None else params)
    wanted = [(ref_option, plain) for ref_option, plain in pairs if params.get(ref_option)]
    if not wanted:
        return params
    options = [ref_option for ref_option, dummy in wanted]
    problems = secret_ref_problems(params, options)
    if problems:
        module.fail_json(msg="; ".join(problems), changed=False, queries=[])
    if not k8s_client.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes") + " (needed by %s)" % " and ".join(options),
                         exception=to_native(k8s_client.KUBERNETES_IMPORT_ERROR), changed=False, queries=[])
    via = params.get("via_kubernetes")
    auth_option = "via_kubernetes" if via else "k8s_auth"
    default_ns = default_secret_namespace(params)
    try:
        api_client = k8s_client.build_api_client(via or params.get("k8s_auth") or {})
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="%s: cannot set up the Kubernetes client from %s: %s: %s; check its kubeconfig/context/host "
                             "(or the K8S_AUTH_* variables and KUBECONFIG)"
                             % (" and ".join(options), auth_option, type(exc).__name__, to_native(exc)),
                         changed=False, queries=[])
    for ref_option, plain in wanted:
        ref = params[ref_option]
        where = secret_ref_location(params, ref_option)
        try:
            value = read_secret_value(api_client, default_ns, ref, ref_option)
        except SecretStoreError as exc:
            message = to_native(exc)
            if not message.startswith(ref_option):
                message = "%s: %s" % (ref_option, message)
            module.fail_json(msg=message, changed=False, queries=[])
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_json(msg="%s: cannot read Secret %s from the Kubernetes API: %s: %s; check %s (kubeconfig, context, "
                                 "host) and that the API server is reachable"
                                 % (ref_option, where, type(exc).__name__, to_native(exc), auth_option),
                             changed=False, queries=[])
        if value == "":
            module.fail_json(msg="%s: key %s of Secret %s is empty; put the credential there, or point %s at "
                                 "another key" % (ref_option, ref["key"], where, ref_option), changed=False, queries=[])
        module.no_log_values.add(value)
        params[plain] = value
    return params


# ---- identifiers ----------------------------------------------------------------------------

_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$.-]*$")


def validate_identifier(name, option, allow_pg_prefix=True):
    """Return None when ``name`` is acceptable for option ``option``, else a message with the fix.

    PostgreSQL's own rules: not empty, no NUL character, at most 63 bytes (longer names are
    silently truncated by the server, which would make a different object than asked).
    Our policy on top: ASCII letters, digits, ``_``, ``$``, ``.`` and ``-`` only, starting with a
    letter or ``_``. Names are always quoted with psycopg2.sql.Identifier anyway; the policy keeps
    quotes, semicolons, spaces and control characters out of names that end up in connection
    strings, URLs and Kubernetes Secrets. Role names must not start with ``pg_`` (reserved).
    """
    if name is None or to_text(name) == "":
        return "%s must not be empty" % option
    text = to_text(name)
    if "\x00" in text:
        return "%s contains a NUL character, which PostgreSQL never allows in a name" % option
    size = len(to_bytes(text, errors="surrogate_or_strict"))
    if size > MAX_IDENTIFIER_BYTES:
        return ("%s is %d bytes long; PostgreSQL names are at most %d bytes (longer ones are truncated), "
                "choose a shorter name" % (option, size, MAX_IDENTIFIER_BYTES))
    if not _SAFE_NAME.match(text):
        bad = sorted(set(c for c in text if not re.match(r"[A-Za-z0-9_$.-]", c)))
        shown = ", ".join(repr(c) for c in bad) if bad else "its first character %r" % text[0]
        return ("%s %r is refused: it contains %s; use only ASCII letters, digits, '_', '$', '.' and '-', "
                "starting with a letter or '_'" % (option, text, shown))
    if not allow_pg_prefix and text.lower().startswith("pg_"):
        return "%s %r starts with 'pg_', which PostgreSQL reserves for its own roles; choose another name" % (option, text)
    return None


# ---- SCRAM-SHA-256 --------------------------------------------------------------------------

def _in_table_c(char):
    tables = (stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3, stringprep.in_table_c4,
              stringprep.in_table_c5, stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
              stringprep.in_table_c9)
    return any(table(char) for table in tables)


def saslprep(password):
    """SASLprep (RFC 4013) of ``password`` as PostgreSQL applies it, or None when it does not apply.

    Like the server (src/common/saslprep.c), a password that is not valid UTF-8 or that
    SASLprep prohibits is used as raw bytes instead (we return None for that).
    """
    if isinstance(password, bytes):
        try:
            password = password.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if all(0x20 <= ord(c) < 0x7f for c in password):
        return password  # printable ASCII is left as is
    mapped = []
    for char in password:
        if stringprep.in_table_b1(char):
            continue
        mapped.append(" " if stringprep.in_table_c12(char) else char)
    text = unicodedata.normalize("NFKC", "".join(mapped))
    if not text:
        return None
    for char in text:
        if _in_table_c(char) or stringprep.in_table_a1(char):
            return None
    has_randal = any(stringprep.in_table_d1(c) for c in text)
    if has_randal:
        if any(stringprep.in_table_d2(c) for c in text):
            return None
        if not (stringprep.in_table_d1(text[0]) and stringprep.in_table_d1(text[-1])):
            return None
    return text


def _password_bytes(password):
    prepared = saslprep(password)
    if prepared is None:
        return password if isinstance(password, bytes) else to_bytes(password, errors="surrogate_or_strict")
    return prepared.encode("utf-8")


def scram_keys(password, salt, iterations):
    """(StoredKey, ServerKey) for ``password`` with ``salt`` (bytes) and ``iterations``."""
    salted = hashlib.pbkdf2_hmac("sha256", _password_bytes(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


_VERIFIER = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")


def parse_scram_verifier(verifier):
    """(iterations, salt, stored_key, server_key) of a SCRAM-SHA-256 verifier, or None."""
    match = _VERIFIER.match(verifier or "")
    if not match:
        return None
    try:
        return (int(match.group(1)), base64.b64decode(match.group(2)), base64.b64decode(match.group(3)),
                base64.b64decode(match.group(4)))
    except (ValueError, TypeError):
        return None


def scram_password_matches(verifier, password):
    """True when ``verifier`` (a stored rolpassword) was made from ``password``.

    Recomputes the keys with the stored salt and iteration count and compares in constant time.
    Any other format (md5, NULL, unreadable) counts as not matching, so the password gets set.
    """
    parsed = parse_scram_verifier(verifier)
    if parsed is None:
        return False
    iterations, salt, stored_key, server_key = parsed
    new_stored, new_server = scram_keys(password, salt, iterations)
    return hmac.compare_digest(new_stored, stored_key) and hmac.compare_digest(new_server, server_key)


# ---- connection -----------------------------------------------------------------------------

def connection_kwargs(params, host, port, dbname=None, user=None, password=None):
    kwargs = dict(
        host=host,
        port=port,
        user=user or params.get("login_user"),
        dbname=dbname or params.get("login_db") or "postgres",
        connect_timeout=params.get("connect_timeout") or 10,
        application_name="ansible-fediverse.mastodon",
    )
    secret = password if user else params.get("login_password")
    if secret:
        kwargs["password"] = secret
    if params.get("ssl_mode"):
        kwargs["sslmode"] = params["ssl_mode"]
    if params.get("ca_cert"):
        kwargs["sslrootcert"] = params["ca_cert"]
    return dict((k, v) for k, v in kwargs.items() if v is not None)


class Endpoint(object):
    """Where the server is: host and port to connect to, and a description for messages."""

    def __init__(self, host, port, description, forwarded=None):
        self.host = host
        self.port = port
        self.description = description
        self.forwarded = forwarded

    def errors(self, wait=0.0):
        return self.forwarded.errors(wait=wait) if self.forwarded is not None else []


class _DirectEndpoint(object):
    def __init__(self, params):
        self.params = params

    def __enter__(self):
        params = self.params
        host = params.get("login_unix_socket") or params.get("login_host")
        port = params.get("login_port") or DEFAULT_PORT
        if params.get("login_unix_socket"):
            where = "unix socket %s (port %s)" % (host, port)
        elif host:
            where = "%s:%s" % (host, port)
        else:
            where = "the libpq default host (PGHOST or the local socket), port %s" % port
        return Endpoint(host, port, where)

    def __exit__(self, *exc):
        return False


class _ViaKubernetes(object):
    def __init__(self, module, params):
        self.module = module
        self.context = port_forward(module, params["via_kubernetes"], default_port=DEFAULT_PORT)

    def __enter__(self):
        forwarded = self.context.__enter__()
        return Endpoint(forwarded[0], forwarded[1], forwarded.description,
                        forwarded if isinstance(forwarded, ForwardedEndpoint) and forwarded.forwarded else None)

    def __exit__(self, *exc):
        return self.context.__exit__(*exc)


def endpoint(module):
    """Context manager yielding the Endpoint for the module's connection options."""
    if module.params.get("via_kubernetes"):
        return _ViaKubernetes(module, module.params)
    return _DirectEndpoint(module.params)


def require_psycopg2(module):
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2 (or the psycopg2-binary wheel)"),
                         exception=to_native(PSYCOPG2_IMPORT_ERROR))


def connection_error_hint(error_text, option_prefix="login_"):
    """A fix for the common connection failures, naming the options."""
    text = error_text.lower()
    if "password authentication failed" in text or "no password supplied" in text:
        return "check %suser and %spassword" % (option_prefix, option_prefix)
    if "does not exist" in text and "database" in text:
        return "check %sdb" % option_prefix
    if "pg_hba.conf" in text:
        return "allow this client in the server's pg_hba.conf, or check ssl_mode"
    if "connection refused" in text or "could not connect" in text or "timeout" in text or "timed out" in text:
        return "check %shost/%sport (or via_kubernetes) and that the server is running" % (option_prefix, option_prefix)
    if "could not translate host name" in text:
        return "check %shost" % option_prefix
    if "ssl" in text or "certificate" in text:
        return "check ssl_mode and ca_cert"
    return "check the connection options"


def connect(module, where, dbname=None, autocommit=True, raise_errors=False, params=None):
    """Connect as the admin (login_user) to ``dbname`` (default login_db) through ``where``.

    ``params`` defaults to module.params (pass the result of resolve_secret_refs()). Calls
    fail_json with the cause and the fix on failure (or re-raises with raise_errors=True, for a
    caller that must undo something first).
    """
    kwargs = connection_kwargs(module.params if params is None else params, where.host, where.port, dbname=dbname)
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        if raise_errors:
            raise
        message = to_native(exc).strip()
        forward_errors = where.errors(wait=2.0)
        extra = (" (port-forward: %s)" % "; ".join(forward_errors)) if forward_errors else ""
        hint = connection_error_hint(message)
        if module.params.get("login_password_secret") and "login_password" in hint:
            hint = hint.replace("login_password", "login_password_secret (key %s of Secret %s)" % (
                module.params["login_password_secret"]["key"], secret_ref_location(module.params, "login_password_secret")))
        if forward_errors:
            hint = "check via_kubernetes.port and that PostgreSQL listens on that port in the pod"
        module.fail_json(msg="could not connect to PostgreSQL at %s, database %s, as %s: %s%s; %s"
                         % (where.description, kwargs["dbname"], kwargs.get("user"), message, extra, hint))
    conn.autocommit = autocommit
    return conn


def try_login(where, params, user, password, dbname):
    """True when ``user`` can log in with ``password`` (used when pg_authid is not readable)."""
    try:
        conn = psycopg2.connect(**connection_kwargs(params, where.host, where.port, dbname=dbname, user=user,
                                                    password=password))
    except psycopg2.Error:
        return False
    conn.close()
    return True


# ---- query log ------------------------------------------------------------------------------

class QueryLog(object):
    """Runs statements (unless in check mode) and keeps their text with secrets redacted."""

    def __init__(self, check_mode=False, before_first_write=None):
        self.check_mode = check_mode
        self.queries = []
        # called once, right before the first statement that really runs (the run lock)
        self.before_first_write = before_first_write

    def render(self, cursor, query, params=None, secret=False):
        text = query.as_string(cursor) if hasattr(query, "as_string") else query
        if params:
            if secret:
                text = text.replace("%s", "'%s'" % REDACTED)
            else:
                text = to_text(cursor.mogrify(query, params))
        return text

    def run(self, cursor, query, params=None, secret=False):
        if not self.check_mode and self.before_first_write is not None:
            hook, self.before_first_write = self.before_first_write, None
            hook()
        self.queries.append(self.render(cursor, query, params, secret))
        if not self.check_mode:
            cursor.execute(query, params)


# ---- diff -----------------------------------------------------------------------------------

def changed_keys(before, after, prefix=""):
    """Sorted dotted paths whose values differ between two nested dicts."""
    keys = set(before or {}) | set(after or {})
    out = []
    for key in sorted(keys):
        b = (before or {}).get(key)
        a = (after or {}).get(key)
        path = "%s%s" % (prefix, key)
        if isinstance(b, dict) or isinstance(a, dict):
            out.extend(changed_keys(b if isinstance(b, dict) else {}, a if isinstance(a, dict) else {}, path + "."))
        elif b != a:
            out.append(path)
    return out


def build_diff(before, after, header=None):
    """The ``diff`` return value: before/after dicts (Ansible renders them as YAML-ish text)."""
    diff = dict(before=before, after=after)
    if header:
        diff["before_header"] = header
        diff["after_header"] = header
    return diff
