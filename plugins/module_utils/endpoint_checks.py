# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real connection checks of the services Mastodon uses, for fediverse.mastodon.endpoint_check.

Every check logs in for real with the given credentials and returns ``(result, problems)``:
``result`` is a dict of what was learnt (server version, TLS, ...), ``problems`` a list of
one-line messages. Each message starts with the name of the variable to fix, taken from the
section's ``variables`` mapping (option -> variable name), e.g.::

    mastodon_smtp_password: the SMTP server refused AUTH for user bob (535 5.7.8 Authentication failed)

- PostgreSQL: psycopg2 (log in, ``SHOW server_version``).
- Redis: redis-py (``AUTH`` on connect, ``PING``, ``INFO server``), without retries.
- S3: boto3 (``ListObjectsV2`` on the bucket, ``CreateBucket`` when allowed).
- SMTP: smtplib (connect, EHLO, STARTTLS or implicit TLS, AUTH). No mail is ever sent.

No password or secret key ever appears in a message: each message is scrubbed of them.

Credentials can also come from Kubernetes Secrets (``password_secret`` and friends, see
``SECRET_REFS``): ``resolve_secret_refs`` reads them before the checks run and puts the values
in the section's parameters, together with ``_secrets`` (extra values to scrub) and, for an
SMTP login read from a Secret, ``_user_label`` (what the messages call the user instead).

SMTP never sends AUTH over an unencrypted connection unless the caller chose security ``none``:
with ``auto`` and a server that offers no STARTTLS, a configured user is a problem.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import smtplib
import socket
import ssl

from ansible.module_utils.common.text.converters import to_native, to_text


try:
    import psycopg2
    HAS_PSYCOPG2 = True
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    psycopg2 = None
    HAS_PSYCOPG2 = False

try:
    import redis as redis_lib
    from redis import backoff as redis_backoff
    from redis import exceptions as redis_exc
    from redis import retry as redis_retry
    HAS_REDIS = True
except ImportError:  # pragma: no cover - reported by check_redis
    redis_lib = redis_backoff = redis_exc = redis_retry = None
    HAS_REDIS = False

SECTIONS = ("postgresql", "redis", "smtp", "s3", "search")
REDACTED = "********"
SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
SMTP_SECURITY = ["starttls", "tls", "none", "auto"]
SMTP_AUTH_METHODS = {
    "auto": ["PLAIN", "LOGIN", "CRAM-MD5"],
    "plain": ["PLAIN"],
    "login": ["LOGIN"],
    "cram_md5": ["CRAM-MD5"],
}


# ---- names and messages -----------------------------------------------------------------------

def variable_names(section, params):
    """option -> variable name for ``section``: the caller's ``variables`` over checks.<section>.<option>."""
    given = params.get("variables") or {}

    def name(option):
        return given.get(option) or "checks.%s.%s" % (section, option)
    return name


def scrub(text, secrets):
    """``text`` with every non-empty secret replaced by ********."""
    text = to_text(text, errors="surrogate_or_replace")
    for secret in secrets:
        if secret:
            text = text.replace(to_text(secret), REDACTED)
    return text


def section_secrets(params, *options):
    """The values to scrub for a section: the given options' values plus the resolved ``_secrets``."""
    return [params.get(option) for option in options] + list(params.get("_secrets") or ())


def one_line(text, limit=300):
    """Collapse whitespace and cut long server messages."""
    text = re.sub(r"\s+", " ", to_text(text, errors="surrogate_or_replace")).strip()
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse_version(text):
    """'6.2.14' or 'PostgreSQL 16.4 (Debian...)' or '16' -> tuple of ints; () when there is none."""
    match = re.search(r"(\d+(?:\.\d+)*)", to_text(text or ""))
    if not match:
        return ()
    return tuple(int(part) for part in match.group(1).split("."))


def version_below(have, minimum):
    """True when version text ``have`` is lower than ``minimum`` (both parsed with parse_version)."""
    want = parse_version(minimum)
    got = parse_version(have)
    if not want or not got:
        return False
    size = max(len(want), len(got))
    return got + (0,) * (size - len(got)) < want + (0,) * (size - len(want))


def tls_context(validate_certs=True, ca_cert=None):
    """A client SSLContext: verify against ca_cert (or the system store), or not at all."""
    context = ssl.create_default_context(cafile=ca_cert) if ca_cert else ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _tls_fix(name):
    return ("set %s to the CA that signed the server certificate, or %s: false for a test server"
            % (name("ca_cert"), name("validate_certs")))


def network_problem(exc, name, what, host, port, tls_option=None):
    """A message for a failed TCP/TLS connection to host:port, naming the variables to fix."""
    where = "%s:%s" % (host, port)
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in to_native(exc):
        return "%s: the TLS certificate of %s %s was not accepted (%s); %s" % (
            name("ca_cert"), what, where, one_line(getattr(exc, "verify_message", None) or exc), _tls_fix(name))
    if isinstance(exc, ssl.SSLError):
        hint = ""
        if tls_option:
            hint = "; check %s (does the server speak TLS on this port?)" % name(tls_option)
        return "%s: the TLS handshake with %s %s failed (%s)%s" % (
            name(tls_option or "port"), what, where, one_line(exc), hint)
    if isinstance(exc, ConnectionRefusedError):
        return "%s, %s: %s %s refused the connection (nothing listens there); check the host and port" % (
            name("host"), name("port"), what, where)
    if isinstance(exc, socket.timeout):
        return "%s, %s: no answer from %s %s in time (%s); check the host, the port and firewalls" % (
            name("host"), name("port"), what, where, one_line(exc) or "timed out")
    if isinstance(exc, socket.gaierror):
        return "%s: the host name of %s %s does not resolve (%s)" % (name("host"), what, where, one_line(exc))
    return "%s, %s: cannot reach %s %s (%s)" % (name("host"), name("port"), what, where, one_line(exc))


# ---- credentials from Kubernetes Secrets --------------------------------------------------------

SECRET_REFS = {
    "postgresql": (("password_secret", "password"),),
    "redis": (("password_secret", "password"),),
    "s3": (("access_key_secret", "access_key"), ("secret_key_secret", "secret_key")),
    "smtp": (("login_secret", "user"), ("password_secret", "password")),
    "search": (("password_secret", "password"),),
}
"""section -> ((reference option, the plain option it fills), ...)."""


def secret_refs(checks):
    """Every reference given in ``checks``: a list of (section, reference option, plain option, ref)."""
    out = []
    for section in SECTIONS:
        params = checks.get(section)
        if not params:
            continue
        for ref_option, plain_option in SECRET_REFS[section]:
            if params.get(ref_option):
                out.append((section, ref_option, plain_option, params[ref_option]))
    return out


def secret_ref_label(section, params, ref_option, plain_option):
    """What messages call a reference: the caller's variable for it (or for the plain option), else the option path."""
    given = params.get("variables") or {}
    return given.get(ref_option) or given.get(plain_option) or "checks.%s.%s" % (section, ref_option)


def refs_without_namespace(checks, namespace):
    """Option paths of references that have no namespace while the module has none either."""
    if namespace:
        return []
    return ["checks.%s.%s" % (section, ref_option)
            for section, ref_option, dummy, ref in secret_refs(checks) if not ref.get("namespace")]


def resolve_secret_refs(checks, namespace, read_value, readable_errors=()):
    """Read every Secret reference of ``checks``; returns ``(resolved, skipped, values)``.

    ``read_value(namespace, ref, option)`` returns the value or raises. Exceptions of the
    ``readable_errors`` classes carry a message that already starts with ``option``; any other
    exception (client configuration, connection) is wrapped into a message here.

    ``resolved`` maps each section to its parameters with the plain options filled in, plus
    ``_secrets`` (the values read, for scrubbing) and ``_user_label`` for an SMTP login read from
    a Secret (the messages name the Secret, not the login). ``skipped`` maps a section whose
    reference could not be read to its problems (one line each, naming the variable, the Secret
    and the key; never a value); that section must not be checked. ``values`` lists every value
    read, so that the caller can mask them in its output too.
    """
    resolved = dict((section, dict(params) if params else params) for section, params in checks.items())
    skipped = {}
    values = []
    for section, ref_option, plain_option, ref in secret_refs(checks):
        params = resolved[section]
        label = secret_ref_label(section, checks[section], ref_option, plain_option)
        ns = ref.get("namespace") or namespace
        where = "Secret %s/%s, key %s" % (ns, ref.get("name"), ref.get("key"))
        try:
            value = read_value(namespace, ref, label)
        except readable_errors as exc:
            if getattr(exc, "reason", None):
                text = "%s: %s, so the %s check was skipped; %s" % (label, exc.reason, section, exc.fix or "fix the reference")
            else:
                text = one_line(exc, 600)
                if not text.startswith(label + ":"):
                    text = "%s: %s" % (label, text)
                text = "%s; the %s check was skipped" % (text, section)
            skipped.setdefault(section, []).append(scrub(text, values))
            continue
        except Exception as exc:  # pylint: disable=broad-except
            skipped.setdefault(section, []).append(scrub(
                "%s: cannot read %s from the Kubernetes API (%s: %s); check kubeconfig, context, host and the K8S_AUTH_* "
                "variables; the %s check was skipped" % (label, where, type(exc).__name__, one_line(exc), section), values))
            continue
        value = to_text(value, errors="surrogate_or_strict")
        values.append(value)
        params[plain_option] = value
        params["_secrets"] = list(params.get("_secrets") or ()) + [value]
        if section == "smtp" and plain_option == "user":
            params["_user_label"] = "(the login in %s)" % where
    return resolved, skipped, values


# ---- PostgreSQL -------------------------------------------------------------------------------

def postgresql_error_problem(text, params, name):
    """Classify a libpq connection error message into one problem naming the variable to fix."""
    where = "%s:%s" % (params["host"], params["port"])
    detail = one_line(text)
    low = detail.lower()
    user = params.get("user")
    database = params.get("database") or "postgres"
    if "password authentication failed" in low or "authentication failed" in low:
        return "%s: PostgreSQL at %s refused the password of user %s (%s); check %s too" % (
            name("password"), where, user, detail, name("user"))
    if "no password supplied" in low:
        return "%s: PostgreSQL at %s asks for a password for user %s and none was given" % (name("password"), where, user)
    if "role" in low and "does not exist" in low:
        return "%s: PostgreSQL at %s has no role %s (%s)" % (name("user"), where, user, detail)
    if "database" in low and "does not exist" in low:
        return "%s: PostgreSQL at %s has no database %s (%s)" % (name("database"), where, database, detail)
    if "pg_hba.conf" in low:
        return ("%s: PostgreSQL at %s does not admit user %s from this host with sslmode %s (%s); check %s, or ask "
                "the server's administrator for a pg_hba.conf entry" % (
                    name("sslmode"), where, user, params.get("sslmode"), detail, name("user")))
    if "ssl" in low and ("not support" in low or "unsupported" in low or "certificate" in low or "ssl error" in low):
        return "%s: the TLS setup with PostgreSQL at %s failed (%s); check %s and %s" % (
            name("sslmode"), where, detail, name("sslmode"), name("ca_cert"))
    if "could not translate host name" in low:
        return "%s: the host name of PostgreSQL %s does not resolve (%s)" % (name("host"), where, detail)
    if "connection refused" in low:
        return "%s, %s: PostgreSQL at %s refused the connection (nothing listens there); check the host and port" % (
            name("host"), name("port"), where)
    if "timeout expired" in low or "timed out" in low:
        return "%s, %s: no answer from PostgreSQL at %s within %ss; check the host, the port and firewalls" % (
            name("host"), name("port"), where, params.get("timeout"))
    return "%s, %s: cannot log in to PostgreSQL at %s as %s (%s)" % (name("host"), name("port"), where, user, detail)


def check_postgresql(params):
    """Log in and read the server version."""
    name = variable_names("postgresql", params)
    secrets = section_secrets(params, "password")
    result = dict(ok=False, host=params["host"], port=params["port"], user=params["user"],
                  database=params.get("database") or "postgres", server_version=None)
    if not HAS_PSYCOPG2:
        return result, ["%s: the psycopg2 Python library is missing on the Ansible controller, so PostgreSQL cannot be checked"
                        % name("host")]
    kwargs = dict(host=params["host"], port=params["port"], user=params["user"], dbname=result["database"],
                  sslmode=params.get("sslmode") or "prefer", connect_timeout=params.get("timeout") or 10,
                  application_name="fediverse.mastodon preflight")
    if params.get("password") is not None:
        kwargs["password"] = params["password"]
    if params.get("ca_cert"):
        kwargs["sslrootcert"] = params["ca_cert"]
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        return result, [scrub(postgresql_error_problem(to_native(exc), params, name), secrets)]
    problems = []
    try:
        cur = conn.cursor()
        cur.execute("SHOW server_version")
        result["server_version"] = cur.fetchone()[0]
        result["ssl"] = bool(getattr(conn, "info", None) and conn.info.ssl_in_use)
        result["ok"] = True
    except psycopg2.Error as exc:
        problems.append(scrub("%s: logged in to PostgreSQL at %s:%s but could not read the server version (%s)" % (
            name("user"), params["host"], params["port"], one_line(exc)), secrets))
    finally:
        conn.close()
    minimum = params.get("min_version")
    if result["ok"] and minimum and version_below(result["server_version"], minimum):
        result["ok"] = False
        problems.append("%s, %s: PostgreSQL at %s:%s is version %s; Mastodon needs %s or newer" % (
            name("host"), name("port"), params["host"], params["port"], result["server_version"], minimum))
    return result, problems


# ---- Redis (redis-py) ---------------------------------------------------------------------------

def redis_auth_problem(message, params, name):
    """A message for a refused AUTH, naming the variable to fix."""
    where = "%s:%s" % (params["host"], params["port"])
    detail = one_line(message)
    if "without any password configured" in detail or "no password is set" in detail.lower():
        return ("%s: Redis at %s has no password but one was given (%s); leave the password empty"
                % (name("password"), where, detail))
    user = params.get("username") or "default"
    return "%s: Redis at %s refused AUTH for user %s (%s); check %s too" % (
        name("password"), where, user, detail, name("username"))


def _redis_client(params):
    """A redis-py client for one check: no retries, RESP2, our TLS settings."""
    timeout = params.get("timeout") or 10
    options = dict(host=params["host"], port=params["port"], username=params.get("username") or None,
                   password=params.get("password") or None, socket_timeout=timeout, socket_connect_timeout=timeout,
                   retry=redis_retry.Retry(redis_backoff.NoBackoff(), 0), decode_responses=True, protocol=2)
    if params.get("tls"):
        validate = params.get("validate_certs", True)
        options.update(ssl=True, ssl_ca_certs=params.get("ca_cert"), ssl_check_hostname=bool(validate),
                       ssl_cert_reqs="required" if validate else "none")
    return redis_lib.Redis(**options)


def _network_cause(exc):
    """The OSError (or ssl/socket error) under a redis-py connection error, if any."""
    seen = exc
    for dummy in range(4):
        seen = seen.__cause__ or seen.__context__
        if seen is None or isinstance(seen, (OSError, socket.timeout)):
            return seen
    return None


def check_redis(params):
    """AUTH (when a password is given), PING and INFO server, with redis-py."""
    name = variable_names("redis", params)
    secrets = section_secrets(params, "password")
    host, port = params["host"], params["port"]
    timeout = params.get("timeout") or 10
    result = dict(ok=False, host=host, port=port, tls=bool(params.get("tls")), server_version=None)
    if not HAS_REDIS:
        return result, ["the Python library redis (redis-py) is missing on the controller; install the collection's requirements.txt"]
    if params.get("username") and not params.get("password"):
        return result, ["%s: a Redis user (%s) is set without a password" % (name("password"), params["username"])]
    client = _redis_client(params)
    not_redis = "%s, %s: %s:%s does not speak the Redis protocol (%%s); check the port%s" % (
        name("host"), name("port"), host, port, " or %s (the server may want TLS)" % name("tls") if not params.get("tls") else "")
    problems = []
    try:
        try:
            pong = client.ping()
        except redis_exc.AuthenticationError as exc:
            text = one_line(exc)
            if not params.get("password"):
                return result, ["%s: Redis at %s:%s needs a password and none was given (NOAUTH %s)" % (
                    name("password"), host, port, text)]
            return result, [scrub(redis_auth_problem(to_native(exc), params, name), secrets)]
        except redis_exc.NoPermissionError as exc:
            return result, [scrub("%s: Redis at %s:%s refused PING (%s); the user needs the ping command" % (
                name("username"), host, port, one_line(exc)), secrets)]
        except redis_exc.ResponseError as exc:
            text = one_line(exc)
            if "password" in text.lower() or "auth" in text.lower():
                return result, [scrub(redis_auth_problem(text, params, name), secrets)]
            return result, [scrub(not_redis % text, secrets)]
        except redis_exc.InvalidResponse as exc:
            return result, [not_redis % one_line(exc)]
        except (redis_exc.TimeoutError, redis_exc.ConnectionError) as exc:
            cause = _network_cause(exc)
            if params.get("tls") and isinstance(cause, socket.timeout):
                return result, ["%s: no TLS handshake from Redis %s:%s within %ss; does the server speak TLS on this port?"
                                % (name("tls"), host, port, timeout)]
            if cause is not None:
                return result, [scrub(network_problem(cause, name, "Redis", host, port, tls_option="tls"), secrets)]
            if "closed by server" in to_native(exc).lower():
                return result, [not_redis % one_line(exc)]
            return result, [scrub(network_problem(exc, name, "Redis", host, port, tls_option="tls"), secrets)]
        if pong is not True:
            return result, ["%s, %s: %s:%s answered %r to PING; is it Redis?" % (name("host"), name("port"), host, port, pong)]
        try:
            result["server_version"] = client.info("server").get("redis_version")
        except redis_exc.ResponseError:
            result["server_version"] = None   # INFO may be forbidden by an ACL: not a problem
        result["ok"] = True
    finally:
        client.close()
    minimum = params.get("min_version")
    if result["server_version"] and minimum and version_below(result["server_version"], minimum):
        result["ok"] = False
        problems.append("%s, %s: Redis at %s:%s is version %s; Mastodon needs %s or newer" % (
            name("host"), name("port"), host, port, result["server_version"], minimum))
    return result, problems


# ---- SMTP -------------------------------------------------------------------------------------

def smtp_cleartext_auth_problem(params, name):
    """security auto, no STARTTLS offered, a user configured: AUTH would go out in clear text."""
    given = params.get("variables") or {}
    if given.get("security"):
        # the caller's variable (mastodon_smtp_enable_starttls) says "never" for security none
        opt_in = "%s: never" % given["security"]
    else:
        opt_in = "%s: none" % name("security")
    return ("%s: the SMTP server %s:%s does not offer STARTTLS, so AUTH would send %s and %s in clear text; nothing "
            "was sent; use a server or port that offers STARTTLS or implicit TLS (check %s), or set %s to accept "
            "clear-text AUTH explicitly" % (
                name("security"), params["host"], params["port"], name("user"), name("password"),
                name("port"), opt_in))


def check_smtp(params):
    """Connect, EHLO, STARTTLS or implicit TLS as configured, AUTH when a user is given. Sends no mail."""
    name = variable_names("smtp", params)
    secrets = section_secrets(params, "password")
    user_label = params.get("_user_label") or params.get("user")
    host, port = params["host"], params["port"]
    security = params.get("security") or "starttls"
    timeout = params.get("timeout") or 10
    helo = params.get("helo_name") or None
    result = dict(ok=False, host=host, port=port, security=security, tls=False, auth=False, banner=None)
    context = tls_context(params.get("validate_certs", True), params.get("ca_cert"))
    try:
        if security == "tls":
            conn = smtplib.SMTP_SSL(host, port, local_hostname=helo, timeout=timeout, context=context)
            result["tls"] = True
        else:
            conn = smtplib.SMTP(host, port, local_hostname=helo, timeout=timeout)
    except smtplib.SMTPConnectError as exc:
        return result, ["%s, %s: the SMTP server %s:%s refused us (%s %s)" % (
            name("host"), name("port"), host, port, exc.smtp_code, one_line(exc.smtp_error))]
    except smtplib.SMTPServerDisconnected as exc:
        hint = " (does it want implicit TLS? check %s)" % name("security") if security != "tls" else ""
        return result, ["%s, %s: the SMTP server %s:%s closed the connection before its greeting%s: %s" % (
            name("host"), name("port"), host, port, hint, one_line(exc))]
    except (OSError, socket.timeout) as exc:
        return result, [network_problem(exc, name, "the SMTP server", host, port, tls_option="security")]
    problems = []
    try:
        code, message = conn.ehlo()
        if code != 250:
            return result, ["%s: the SMTP server %s:%s refused EHLO (%s %s)" % (
                name("host"), host, port, code, one_line(message))]
        result["banner"] = one_line(message, 120)
        if security in ("starttls", "auto"):
            if conn.has_extn("starttls"):
                try:
                    conn.starttls(context=context)
                except ssl.SSLError as exc:
                    return result, [network_problem(exc, name, "the SMTP server", host, port, tls_option="security")]
                except smtplib.SMTPResponseException as exc:
                    return result, ["%s: the SMTP server %s:%s refused STARTTLS (%s %s)" % (
                        name("security"), host, port, exc.smtp_code, one_line(exc.smtp_error))]
                conn.ehlo()
                result["tls"] = True
            elif security == "starttls":
                return result, ["%s: the SMTP server %s:%s does not offer STARTTLS; use security tls for implicit TLS "
                                "(usually port 465) or fix the port" % (name("security"), host, port)]
            elif params.get("user"):
                # auto without STARTTLS: AUTH would send the credentials in clear text. Only an
                # explicit security none accepts that; nothing secret has been sent at this point.
                return result, [scrub(smtp_cleartext_auth_problem(params, name), secrets)]
        if params.get("user"):
            if not conn.has_extn("auth"):
                hint = " before STARTTLS" if not result["tls"] else ""
                return result, [scrub("%s: the SMTP server %s:%s offers no AUTH%s, but a user (%s) is configured" % (
                    name("user"), host, port, hint, user_label), secrets)]
            offered = conn.esmtp_features.get("auth", "").upper().split()
            wanted = SMTP_AUTH_METHODS.get(params.get("auth_method") or "auto")
            mechanism = next((m for m in wanted if m in offered), None)
            if mechanism is None:
                return result, ["%s: the SMTP server %s:%s offers AUTH %s, none of %s" % (
                    name("auth_method"), host, port, " ".join(offered) or "(no mechanism)", ", ".join(wanted))]
            result["auth_mechanism"] = mechanism
            # One attempt with one mechanism: smtplib's login() would retry every mechanism,
            # and repeated failures can lock the account at some providers.
            conn.user, conn.password = params["user"], params.get("password") or ""
            try:
                conn.auth(mechanism, getattr(conn, "auth_" + mechanism.lower().replace("-", "_")), initial_response_ok=True)
                result["auth"] = True
            except smtplib.SMTPAuthenticationError as exc:
                problems.append(scrub("%s: the SMTP server refused AUTH for user %s (%s %s); check %s too" % (
                    name("password"), user_label, exc.smtp_code, one_line(exc.smtp_error), name("user")), secrets))
            except smtplib.SMTPNotSupportedError as exc:
                problems.append(scrub("%s: the SMTP server %s:%s does not support AUTH here (%s)" % (
                    name("user"), host, port, one_line(exc)), secrets))
            except smtplib.SMTPException as exc:
                problems.append(scrub("%s: AUTH for user %s failed on the SMTP server %s:%s (%s)" % (
                    name("password"), user_label, host, port, one_line(exc)), secrets))
        result["ok"] = not problems
    except smtplib.SMTPServerDisconnected as exc:
        problems.append(scrub("%s, %s: the SMTP server %s:%s closed the connection (%s)" % (
            name("host"), name("port"), host, port, one_line(exc)), secrets))
    except (OSError, socket.timeout) as exc:
        problems.append(scrub(network_problem(exc, name, "the SMTP server", host, port, tls_option="security"), secrets))
    finally:
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()
    return result, problems


# ---- S3 ---------------------------------------------------------------------------------------

S3_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": "access_key",
    "InvalidClientTokenId": "access_key",
    "SignatureDoesNotMatch": "secret_key",
    "InvalidToken": "secret_key",
}


def s3_error_problem(code, status, message, params, name, action):
    """A message for a failed S3 call, naming the variable to fix."""
    where = params["endpoint"]
    bucket = params["bucket"]
    detail = "%s%s%s" % (code or "HTTP %s" % status, " (HTTP %s)" % status if code and status else "",
                         ": " + one_line(message) if message else "")
    if code in S3_CREDENTIAL_CODES:
        option = S3_CREDENTIAL_CODES[code]
        which = "access key" if option == "access_key" else "secret key"
        return "%s: %s rejected the %s when trying to %s bucket %s (%s)" % (name(option), where, which, action, bucket, detail)
    if code in ("AuthorizationHeaderMalformed", "InvalidRegion", "IllegalLocationConstraintException"):
        return "%s: %s rejected the region %s (%s)" % (name("region"), where, params.get("region"), detail)
    if code in ("AccessDenied", "Forbidden", "AllAccessDisabled") or status == 403:
        return ("%s: %s denied the credentials permission to %s bucket %s (%s); give that account access to the "
                "bucket or use other credentials (%s)" % (name("access_key"), where, action, bucket, detail, name("secret_key")))
    if code in ("BucketAlreadyExists",):
        return "%s: the bucket name %s is taken by another account on %s; choose another name" % (name("bucket"), bucket, where)
    if code in ("InvalidBucketName",):
        return "%s: %s rejected the bucket name %s (%s)" % (name("bucket"), where, bucket, detail)
    return "%s: %s failed to %s bucket %s (%s)" % (name("endpoint"), where, action, bucket, detail)


def check_s3(params, check_mode=False, may_create=True):
    """List the bucket (one key); create it when it is missing and create_bucket allows it.

    ``may_create`` false defers the creation (other problems were found first): the result then
    says so and nothing is written.
    """
    # imported here: boto3 takes a second or more to import, and most runs check no S3
    from ansible_collections.fediverse.mastodon.plugins.module_utils import s3 as s3u

    name = variable_names("s3", params)
    secrets = section_secrets(params, "secret_key")
    bucket = params["bucket"]
    result = dict(ok=False, endpoint=params["endpoint"], bucket=bucket, bucket_exists=None, created=False,
                  would_create=False, create_deferred=False)
    bad_name = s3u.bucket_name_problem(bucket)
    if bad_name:
        return result, ["%s: %r is not a valid S3 bucket name: %s" % (name("bucket"), bucket, bad_name)]
    if not s3u.HAS_BOTO3:
        return result, ["%s: the boto3 Python library is missing on the Ansible controller, so S3 cannot be checked"
                        % name("endpoint")]
    if not re.match(r"^https?://[^/]+", params["endpoint"] or ""):
        return result, ["%s: %r is not an http:// or https:// URL" % (name("endpoint"), params["endpoint"])]
    verify = params.get("ca_cert") or bool(params.get("validate_certs", True))
    conn = s3u.S3Connection(params["endpoint"], params["access_key"], params["secret_key"], params.get("region"),
                            verify, connect_timeout=params.get("timeout") or 10)
    client = conn.client("s3")

    def problem(exc, action):
        if isinstance(exc, s3u.ClientError):
            message = ((exc.response or {}).get("Error") or {}).get("Message") or ""
            return scrub(s3_error_problem(s3u.error_code(exc), s3u.http_status(exc), message, params, name, action), secrets)
        if isinstance(exc, s3u.SSLError) or "CERTIFICATE_VERIFY_FAILED" in to_native(exc):
            return "%s: the TLS certificate of %s was not accepted (%s); %s" % (
                name("ca_cert"), params["endpoint"], one_line(exc), _tls_fix(name))
        if isinstance(exc, (s3u.EndpointConnectionError, s3u.ConnectTimeoutError)):
            return "%s: the S3 endpoint %s is unreachable (%s); check its scheme, host and port" % (
                name("endpoint"), params["endpoint"], one_line(exc))
        return scrub("%s: %s failed to %s bucket %s (%s)" % (name("endpoint"), params["endpoint"], action, bucket, one_line(exc)),
                     secrets)

    try:
        client.list_objects_v2(Bucket=bucket, MaxKeys=1)
        result["bucket_exists"] = True
        result["ok"] = True
        return result, []
    except (s3u.ClientError, s3u.BotoCoreError) as exc:
        if s3u.error_code(exc) != "NoSuchBucket":
            return result, [problem(exc, "list")]
    result["bucket_exists"] = False
    if not params.get("create_bucket"):
        return result, ["%s: the bucket %s does not exist on %s; create it, or allow its creation (%s)" % (
            name("bucket"), bucket, params["endpoint"], name("create_bucket"))]
    if check_mode:
        result["would_create"] = True
        result["ok"] = True
        return result, []
    if not may_create:
        result["create_deferred"] = True
        result["ok"] = True
        return result, []
    kwargs = dict(Bucket=bucket)
    if conn.region and conn.region != s3u.DEFAULT_REGION:
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": conn.region}
    try:
        client.create_bucket(**kwargs)
    except (s3u.ClientError, s3u.BotoCoreError) as exc:
        if s3u.error_code(exc) != "BucketAlreadyOwnedByYou":
            return result, [problem(exc, "create")]
    result["created"] = True
    result["bucket_exists"] = True
    result["ok"] = True
    return result, []


# ---- OpenSearch / Elasticsearch ---------------------------------------------------------------

def check_search(params):
    """``GET /`` with basic authentication: the server answers with its name and version."""
    import base64
    import json
    from ansible.module_utils.six.moves import http_client
    from ansible.module_utils.six.moves.urllib import error as urllib_error
    from ansible.module_utils.six.moves.urllib import request as urllib_request

    name = variable_names("search", params)
    secrets = section_secrets(params, "password")
    url = "%s://%s:%s" % (params.get("scheme") or "https", params["host"], params.get("port") or 9200)
    result = dict(ok=False, url=url, distribution=None, server_version=None)
    headers = {"Accept": "application/json"}
    if params.get("user"):
        token = base64.b64encode(("%s:%s" % (params["user"], params.get("password") or "")).encode("utf-8")).decode("ascii")
        headers["Authorization"] = "Basic " + token
    handlers = []
    if url.startswith("https:"):
        context = tls_context(params.get("validate_certs", True), params.get("ca_cert"))
        handlers.append(urllib_request.HTTPSHandler(context=context))
    opener = urllib_request.build_opener(*handlers)
    try:
        response = opener.open(urllib_request.Request(url + "/", headers=headers), timeout=params.get("timeout") or 10)
        body = json.loads(to_text(response.read()) or "{}")
    except urllib_error.HTTPError as exc:
        if exc.code == 401:
            who = params.get("user")
            if not who:
                return result, ["%s: %s asks for a login; set the user and its password" % (name("user"), url)]
            return result, ["%s: %s refused the login of user %s (HTTP 401); check %s too" % (
                name("password"), url, who, name("user"))]
        if exc.code == 403:
            return result, ["%s: %s let user %s in but refused GET / (HTTP 403); give it the cluster_monitor permission" % (
                name("user"), url, params.get("user"))]
        return result, [scrub("%s: %s answered HTTP %s to GET /" % (name("host"), url, exc.code), secrets)]
    except ValueError:
        return result, ["%s: %s did not answer GET / with JSON; is it a search server?" % (name("host"), url)]
    except (urllib_error.URLError, socket.error, ssl.SSLError, http_client.HTTPException) as exc:
        reason = exc.reason if isinstance(getattr(exc, "reason", None), Exception) else exc
        if url.startswith("http:") and isinstance(reason, (ConnectionResetError, http_client.BadStatusLine)):
            return result, ["%s: %s closed the connection on a plain HTTP request (%s); does it speak https?" % (
                name("scheme"), url, one_line(reason) or type(reason).__name__)]
        return result, [scrub(network_problem(reason, name, "the search server", params["host"], params.get("port"),
                                              tls_option="scheme"), secrets)]
    version = body.get("version") or {}
    result.update(ok=True, distribution=version.get("distribution") or "elasticsearch", server_version=version.get("number"))
    return result, []
