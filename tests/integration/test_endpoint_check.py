# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests of fediverse.mastodon.endpoint_check against real servers on 127.0.0.1.

- PostgreSQL, Redis and S3: the lab's (LAB_PG_*, LAB_REDIS_URL, LAB_S3_*; make -s lab-env).
  Each group skips when its variables are absent.
- SMTP: real aiosmtpd servers started here, bound to 127.0.0.1: one with STARTTLS (a
  self-signed certificate made with `cryptography`) and AUTH for one user, one with implicit
  TLS, one plain without STARTTLS. Each server records the commands it received on every
  connection, and whether the connection was encrypted then, so the tests see on the server
  side whether AUTH was sent and how.
- Secret references: the lab apiserver (KUBECONFIG); a namespace per module run of tests,
  deleted at the end, with a Secret holding the lab credentials.

The check functions are called directly for the many small cases (fast); the module itself runs
through the real ansible-playbook for the combined run, check mode and the -vvv leak test.
"""

import base64
import datetime
import functools
import ipaddress
import json
import os
import socket
import ssl
import sys
import uuid

import pytest

from ansible_run import run_module

from ansible_collections.fediverse.mastodon.plugins.module_utils import endpoint_checks as ec

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover
    from urlparse import urlsplit

ENV = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}

PG = dict((k, os.environ.get("LAB_PG_" + k)) for k in ("HOST", "PORT", "USER", "PASSWORD"))
HAS_PG = all(PG.values())
REDIS_URL = os.environ.get("LAB_REDIS_URL")
S3 = dict((k, os.environ.get("LAB_S3_" + k)) for k in ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY"))
HAS_S3 = all(S3.values())

need_pg = pytest.mark.skipif(not HAS_PG, reason="lab PostgreSQL not configured: run `eval $(make -s lab-env)`")
need_redis = pytest.mark.skipif(not REDIS_URL, reason="lab Redis not configured: run `eval $(make -s lab-env)`")
need_s3 = pytest.mark.skipif(not HAS_S3, reason="lab S3 not configured: run `eval $(make -s lab-env)`")
need_lab = pytest.mark.skipif(not (HAS_PG and REDIS_URL and HAS_S3), reason="lab not configured: run `eval $(make -s lab-env)`")
need_k8s = pytest.mark.skipif(not (HAS_PG and REDIS_URL and HAS_S3 and os.environ.get("KUBECONFIG")),
                              reason="lab (with Kubernetes) not configured: run `eval $(make -s lab-env)`")

SMTP_USER = "notifications@lab.test"
SMTP_PASSWORD = "smtp-" + uuid.uuid4().hex


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def closed_port():
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    return free_port()


# ---- fixtures: lab endpoints --------------------------------------------------------------------

def pg_params(**extra):
    out = dict(host=PG["HOST"], port=int(PG["PORT"] or 0), user=PG["USER"], password=PG["PASSWORD"], database="postgres",
               sslmode="prefer", timeout=5, variables=dict(host="postgresql_external_host", port="postgresql_external_port",
                                                           user="postgresql_external_admin_user",
                                                           password="preflight_postgresql_admin_password",
                                                           database="checks.postgresql.database",
                                                           sslmode="postgresql_external_sslmode"))
    out.update(extra)
    return out


def redis_params(**extra):
    url = urlsplit(REDIS_URL or "redis://127.0.0.1:6379")
    out = dict(host=url.hostname, port=url.port or 6379, username=url.username or None, password=url.password, tls=False,
               timeout=5, variables=dict(host="redis_external_host", port="redis_external_port",
                                         password="preflight_redis_password", username="preflight_redis_username",
                                         tls="redis_external_tls"))
    out.update(extra)
    return out


def s3_params(**extra):
    out = dict(endpoint=S3["ENDPOINT"], access_key=S3["ACCESS_KEY"], secret_key=S3["SECRET_KEY"], region="us-east-1",
               bucket="pf-%s" % uuid.uuid4().hex[:10], create_bucket=False, validate_certs=True, timeout=5,
               variables=dict(endpoint="minio_external_endpoint", access_key="preflight_s3_access_key",
                              secret_key="preflight_s3_secret_key", bucket="mastodon_s3_bucket",
                              create_bucket="preflight_s3_create_bucket"))
    out.update(extra)
    return out


@pytest.fixture(scope="module")
def s3_client():
    if not HAS_S3:
        pytest.skip("lab S3 not configured")
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=S3["ENDPOINT"], aws_access_key_id=S3["ACCESS_KEY"],
                        aws_secret_access_key=S3["SECRET_KEY"], region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))


@pytest.fixture
def bucket(s3_client):
    """A bucket that exists for the test, removed afterwards."""
    name = "pf-%s" % uuid.uuid4().hex[:10]
    s3_client.create_bucket(Bucket=name)
    yield name
    s3_client.delete_bucket(Bucket=name)


def bucket_exists(client, name):
    try:
        client.head_bucket(Bucket=name)
        return True
    except Exception:  # pylint: disable=broad-except
        return False


# ---- fixtures: real SMTP servers (aiosmtpd) -------------------------------------------------------

@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost: (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec as crypto_ec
    from cryptography.x509.oid import NameOID

    key = crypto_ec.generate_private_key(crypto_ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, u"localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(u"localhost"),
                                                        x509.IPAddress(ipaddress.ip_address(u"127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert_path, key_path = str(folder / "cert.pem"), str(folder / "key.pem")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


class Handler(object):
    """Counts what reaches DATA: the checks must never send a message."""

    def __init__(self):
        self.messages = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages += 1
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult, LoginPassword
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
          and auth_data.password == SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


SMTP_COMMANDS = ("HELO", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN",
                 "HELP")


def recording_controller_class():
    """An aiosmtpd Controller whose servers record (command, encrypted) for every command they dispatch.

    ``controller.sessions`` gets one list per connection. Only the command name is recorded,
    never its argument (AUTH PLAIN carries the credentials).
    """
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    def recording(command):
        original = getattr(SMTP, "smtp_" + command)

        @functools.wraps(original)
        async def method(self, arg):
            self.commands.append((command, self.transport.get_extra_info("ssl_object") is not None))
            return await original(self, arg)
        return method

    server_class = type("RecordingSMTP", (SMTP,), dict(("smtp_" + c, recording(c)) for c in SMTP_COMMANDS))

    class RecordingController(Controller):
        def __init__(self, handler, **kwargs):
            super(RecordingController, self).__init__(handler, **kwargs)
            self.sessions = []

        def factory(self):
            server = server_class(self.handler, **self.SMTP_kwargs)
            server.commands = []
            self.sessions.append(server.commands)
            return server

    return RecordingController


def server_saw(controller, call):
    """Run ``call()``; return (its value, the command lists of the connections it made to ``controller``)."""
    before = len(controller.sessions)
    value = call()
    return value, controller.sessions[before:]


def start_smtp(kind, tls_files):
    Controller = recording_controller_class()
    cert_path, key_path = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    handler = Handler()
    port = free_port()
    kwargs = dict(hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=True)
    if kind == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    elif kind == "implicit":
        # aiosmtpd's auth_require_tls only knows STARTTLS; this session is TLS from the first byte
        kwargs.update(ssl_context=context, auth_require_tls=False)
    else:   # plain: no STARTTLS offered, AUTH allowed without TLS
        kwargs.update(auth_require_tls=False)
    controller = Controller(handler, **kwargs)
    controller.start()
    controller.fixture_handler = handler
    return controller


@pytest.fixture(scope="module")
def smtp_starttls(tls_files):
    controller = start_smtp("starttls", tls_files)
    yield controller
    controller.stop()
    assert controller.fixture_handler.messages == 0, "a check sent mail"


@pytest.fixture(scope="module")
def smtp_implicit(tls_files):
    controller = start_smtp("implicit", tls_files)
    yield controller
    controller.stop()
    assert controller.fixture_handler.messages == 0, "a check sent mail"


@pytest.fixture(scope="module")
def smtp_plain(tls_files):
    controller = start_smtp("plain", tls_files)
    yield controller
    controller.stop()


def smtp_params(controller, tls_files, **extra):
    out = dict(host="127.0.0.1", port=controller.port, security="starttls", user=SMTP_USER, password=SMTP_PASSWORD,
               validate_certs=True, ca_cert=tls_files[0], timeout=5,
               variables=dict(host="mastodon_smtp_server", port="mastodon_smtp_port", user="mastodon_smtp_login",
                              password="mastodon_smtp_password", security="mastodon_smtp_enable_starttls",
                              ca_cert="preflight_smtp_ca_cert", validate_certs="preflight_smtp_validate_certs"))
    out.update(extra)
    return out


# ---- SMTP -------------------------------------------------------------------------------------

def test_smtp_starttls_and_auth_pass(smtp_starttls, tls_files):
    result, problems = ec.check_smtp(smtp_params(smtp_starttls, tls_files))
    assert problems == []
    assert result["ok"] and result["tls"] and result["auth"]


def test_smtp_wrong_password_names_the_variable(smtp_starttls, tls_files):
    result, problems = ec.check_smtp(smtp_params(smtp_starttls, tls_files, password="wrong-" + SMTP_PASSWORD))
    assert len(problems) == 1, problems
    assert problems[0].startswith("mastodon_smtp_password: the SMTP server refused AUTH for user %s (535" % SMTP_USER)
    assert "wrong-" not in problems[0]
    assert result["tls"] and not result["auth"] and not result["ok"]


def test_smtp_wrong_user_fails(smtp_starttls, tls_files):
    problems = ec.check_smtp(smtp_params(smtp_starttls, tls_files, user="nobody@lab.test"))[1]
    assert len(problems) == 1 and "refused AUTH for user nobody@lab.test" in problems[0]
    assert "mastodon_smtp_login" in problems[0]


def test_smtp_untrusted_certificate_names_the_ca_variable(smtp_starttls, tls_files):
    problems = ec.check_smtp(smtp_params(smtp_starttls, tls_files, ca_cert=None))[1]
    assert len(problems) == 1 and problems[0].startswith("preflight_smtp_ca_cert: the TLS certificate"), problems


def test_smtp_unverified_tls_passes_when_asked(smtp_starttls, tls_files):
    result, problems = ec.check_smtp(smtp_params(smtp_starttls, tls_files, ca_cert=None, validate_certs=False))
    assert problems == [] and result["tls"] and result["auth"]


def test_smtp_auth_is_refused_in_plain_text_when_server_requires_tls(smtp_starttls, tls_files):
    # security none: no STARTTLS, and this server only offers AUTH after TLS
    problems = ec.check_smtp(smtp_params(smtp_starttls, tls_files, security="none"))[1]
    assert len(problems) == 1 and problems[0].startswith("mastodon_smtp_login:") and "offers no AUTH" in problems[0]


def test_smtp_starttls_required_but_not_offered(smtp_plain, tls_files):
    problems = ec.check_smtp(smtp_params(smtp_plain, tls_files))[1]
    assert len(problems) == 1 and problems[0].startswith("mastodon_smtp_enable_starttls: the SMTP server")
    assert "does not offer STARTTLS" in problems[0]


def test_smtp_auto_without_starttls_sends_no_auth_and_names_the_variables(smtp_plain, tls_files):
    (result, problems), sessions = server_saw(smtp_plain, lambda: ec.check_smtp(
        smtp_params(smtp_plain, tls_files, security="auto")))
    assert len(sessions) == 1
    commands = [command for command, dummy in sessions[0]]
    assert "EHLO" in commands and "AUTH" not in commands, commands
    assert len(problems) == 1, problems
    assert problems[0].startswith("mastodon_smtp_enable_starttls: the SMTP server 127.0.0.1:%d does not offer STARTTLS, "
                                  "so AUTH would send mastodon_smtp_login and mastodon_smtp_password in clear text; nothing "
                                  "was sent;" % smtp_plain.port), problems[0]
    assert "or set mastodon_smtp_enable_starttls: never to accept clear-text AUTH explicitly" in problems[0]
    assert "\n" not in problems[0] and SMTP_PASSWORD not in problems[0]
    assert not result["ok"] and not result["auth"] and not result["tls"]


def test_smtp_auto_without_starttls_and_without_credentials_passes(smtp_plain, tls_files):
    (result, problems), sessions = server_saw(smtp_plain, lambda: ec.check_smtp(
        smtp_params(smtp_plain, tls_files, security="auto", user=None, password=None)))
    assert problems == [] and result["ok"] and not result["tls"] and not result["auth"]
    assert len(sessions) == 1 and "AUTH" not in [command for command, dummy in sessions[0]]


def test_smtp_explicit_none_authenticates_in_plain_text(smtp_plain, tls_files):
    """security none is the explicit opt-in: the only case in which AUTH goes out unencrypted."""
    (result, problems), sessions = server_saw(smtp_plain, lambda: ec.check_smtp(
        smtp_params(smtp_plain, tls_files, security="none")))
    assert problems == [] and result["auth"] and not result["tls"]
    assert len(sessions) == 1 and ("AUTH", False) in sessions[0], sessions


def test_smtp_auto_with_starttls_sends_auth_only_encrypted(smtp_starttls, tls_files):
    (result, problems), sessions = server_saw(smtp_starttls, lambda: ec.check_smtp(
        smtp_params(smtp_starttls, tls_files, security="auto")))
    assert problems == [] and result["auth"] and result["tls"]
    assert len(sessions) == 1
    commands = sessions[0]
    assert commands[:4] == [("EHLO", False), ("STARTTLS", False), ("EHLO", True), ("AUTH", True)], commands
    assert [encrypted for command, encrypted in commands if command == "AUTH"] == [True]


def test_smtp_implicit_tls_passes(smtp_implicit, tls_files):
    result, problems = ec.check_smtp(smtp_params(smtp_implicit, tls_files, security="tls"))
    assert problems == [] and result["tls"] and result["auth"]


def test_smtp_implicit_tls_against_a_starttls_port_fails_clearly(smtp_starttls, tls_files):
    problems = ec.check_smtp(smtp_params(smtp_starttls, tls_files, security="tls", timeout=3))[1]
    assert len(problems) == 1 and problems[0].startswith("mastodon_smtp_enable_starttls: the TLS handshake"), problems


def test_smtp_closed_port_is_refused(tls_files):
    port = closed_port()
    params = dict(host="127.0.0.1", port=port, security="starttls", timeout=3,
                  variables=dict(host="mastodon_smtp_server", port="mastodon_smtp_port"))
    problems = ec.check_smtp(params)[1]
    assert problems == ["mastodon_smtp_server, mastodon_smtp_port: the SMTP server 127.0.0.1:%d refused the connection "
                        "(nothing listens there); check the host and port" % port]


# ---- PostgreSQL -------------------------------------------------------------------------------

@need_pg
def test_postgresql_login_passes_and_reports_the_version():
    result, problems = ec.check_postgresql(pg_params(min_version="13"))
    assert problems == []
    assert result["ok"] and ec.parse_version(result["server_version"]) >= (13,)


@need_pg
def test_postgresql_wrong_password_names_the_variable():
    wrong = "wrong-" + uuid.uuid4().hex
    problems = ec.check_postgresql(pg_params(password=wrong))[1]
    assert len(problems) == 1, problems
    assert problems[0].startswith("preflight_postgresql_admin_password: PostgreSQL at %s:%s refused the password of user %s"
                                  % (PG["HOST"], PG["PORT"], PG["USER"]))
    assert wrong not in problems[0]


@need_pg
def test_postgresql_missing_database_names_the_variable():
    problems = ec.check_postgresql(pg_params(database="no_such_db_%s" % uuid.uuid4().hex[:6]))[1]
    assert len(problems) == 1 and problems[0].startswith("checks.postgresql.database: PostgreSQL at"), problems


@need_pg
def test_postgresql_too_old_is_a_problem():
    problems = ec.check_postgresql(pg_params(min_version="99"))[1]
    assert len(problems) == 1 and "Mastodon needs 99 or newer" in problems[0]


def test_postgresql_closed_port_is_refused():
    port = closed_port()
    problems = ec.check_postgresql(pg_params(host="127.0.0.1", port=port, user="x", password="y"))[1]
    assert len(problems) == 1
    assert problems[0].startswith("postgresql_external_host, postgresql_external_port: PostgreSQL at 127.0.0.1:%d refused" % port)


# ---- Redis ------------------------------------------------------------------------------------

@need_redis
def test_redis_auth_and_ping_pass():
    result, problems = ec.check_redis(redis_params(min_version="6.2"))
    assert problems == [] and result["ok"] and result["server_version"]


@need_redis
def test_redis_wrong_password_names_the_variable():
    wrong = "wrong-" + uuid.uuid4().hex
    problems = ec.check_redis(redis_params(password=wrong))[1]
    assert len(problems) == 1
    assert problems[0].startswith("preflight_redis_password: Redis at") and "refused AUTH" in problems[0]
    # redis-py keeps the server's reason and drops its WRONGPASS code
    assert "invalid username-password pair" in problems[0] and wrong not in problems[0]


@need_redis
def test_redis_missing_password_is_reported():
    params = redis_params(password=None, username=None)
    problems = ec.check_redis(params)[1]
    assert len(problems) == 1 and problems[0].startswith("preflight_redis_password:") and "NOAUTH" in problems[0]


@need_redis
def test_redis_tls_against_a_plain_server_fails_clearly():
    problems = ec.check_redis(redis_params(tls=True, timeout=3))[1]
    assert len(problems) == 1 and problems[0].startswith("redis_external_tls: no TLS handshake"), problems


def test_redis_closed_port_is_refused():
    port = closed_port()
    problems = ec.check_redis(redis_params(host="127.0.0.1", port=port))[1]
    assert len(problems) == 1 and problems[0].startswith("redis_external_host, redis_external_port:") and "refused" in problems[0]


@need_pg
def test_redis_check_against_a_postgresql_port_says_it_is_not_redis():
    problems = ec.check_redis(redis_params(host=PG["HOST"], port=int(PG["PORT"]), password=None, username=None, timeout=3))[1]
    assert len(problems) == 1 and "redis_external_port" in problems[0], problems


# ---- S3 ---------------------------------------------------------------------------------------

@need_s3
def test_s3_existing_bucket_passes(bucket):
    result, problems = ec.check_s3(s3_params(bucket=bucket))
    assert problems == [] and result["bucket_exists"] and not result["created"]


@need_s3
def test_s3_wrong_secret_key_names_the_variable(bucket):
    wrong = "W" * 40
    problems = ec.check_s3(s3_params(bucket=bucket, secret_key=wrong))[1]
    assert len(problems) == 1
    assert problems[0].startswith("preflight_s3_secret_key: %s rejected the secret key" % S3["ENDPOINT"])
    assert wrong not in problems[0]


@need_s3
def test_s3_unknown_access_key_names_the_variable(bucket):
    problems = ec.check_s3(s3_params(bucket=bucket, access_key="NOSUCHKEY%s" % uuid.uuid4().hex[:8].upper()))[1]
    assert len(problems) == 1 and problems[0].startswith("preflight_s3_access_key:"), problems


@need_s3
def test_s3_missing_bucket_without_create_is_a_problem(s3_client):
    params = s3_params()
    problems = ec.check_s3(params)[1]
    assert problems == ["mastodon_s3_bucket: the bucket %s does not exist on %s; create it, or allow its creation "
                        "(preflight_s3_create_bucket)" % (params["bucket"], S3["ENDPOINT"])]
    assert not bucket_exists(s3_client, params["bucket"])


@need_s3
def test_s3_missing_bucket_is_created_only_outside_check_mode(s3_client):
    params = s3_params(create_bucket=True)
    result, problems = ec.check_s3(params, check_mode=True)
    assert problems == [] and result["would_create"] and not bucket_exists(s3_client, params["bucket"])
    result, problems = ec.check_s3(params, may_create=False)
    assert problems == [] and result["create_deferred"] and not bucket_exists(s3_client, params["bucket"])
    try:
        result, problems = ec.check_s3(params)
        assert problems == [] and result["created"] and bucket_exists(s3_client, params["bucket"])
        result, problems = ec.check_s3(params)
        assert problems == [] and result["bucket_exists"] and not result["created"]
    finally:
        s3_client.delete_bucket(Bucket=params["bucket"])


def test_s3_closed_port_is_unreachable():
    port = closed_port()
    problems = ec.check_s3(s3_params(endpoint="http://127.0.0.1:%d" % port, access_key="a", secret_key="b"))[1]
    assert len(problems) == 1 and problems[0].startswith("minio_external_endpoint: the S3 endpoint http://127.0.0.1:%d is unreachable" % port)


# ---- the module through ansible-playbook -------------------------------------------------------

@need_lab
def test_module_all_good_passes(smtp_starttls, tls_files, bucket):
    result, proc = run_module("endpoint_check", dict(checks=dict(
        postgresql=pg_params(), redis=redis_params(), s3=s3_params(bucket=bucket), smtp=smtp_params(smtp_starttls, tls_files))),
        env=ENV)
    assert not result.get("failed"), result.get("msg")
    assert result["problems"] == [] and result["changed"] is False
    assert set(result["services"]) == {"postgresql", "redis", "s3", "smtp"}
    assert all(r["ok"] for r in result["services"].values())


@need_lab
def test_module_reports_every_problem_at_once_and_leaks_no_secret(smtp_starttls, tls_files, s3_client):
    """Wrong PostgreSQL password, wrong Redis password, wrong S3 key, closed SMTP port: one failed run, four problems."""
    secrets = dict(pg="pg-" + uuid.uuid4().hex, redis="rd-" + uuid.uuid4().hex, s3="S3" + uuid.uuid4().hex.upper(),
                   smtp=SMTP_PASSWORD)
    port = closed_port()
    params = s3_params(secret_key=secrets["s3"], create_bucket=True)
    result, proc = run_module("endpoint_check", dict(checks=dict(
        postgresql=pg_params(password=secrets["pg"]),
        redis=redis_params(password=secrets["redis"]),
        s3=params,
        smtp=smtp_params(smtp_starttls, tls_files, port=port))), env=ENV, verbosity=3)
    assert result.get("failed") is True
    problems = result["problems"]
    assert len(problems) == 4, problems
    assert [p.split(":")[0] for p in problems] == [
        "preflight_postgresql_admin_password", "preflight_redis_password",
        "mastodon_smtp_server, mastodon_smtp_port", "preflight_s3_secret_key"]
    assert result["msg"].startswith("4 problem(s) found:")
    for problem in problems:
        assert problem in result["msg"]
    output = proc.stdout + proc.stderr
    for name, value in secrets.items():
        assert value not in output, "the %s password leaked into the -vvv output" % name
    assert not bucket_exists(s3_client, params["bucket"])


@need_s3
def test_module_check_mode_reports_the_bucket_it_would_create(s3_client):
    params = s3_params(create_bucket=True)
    result = run_module("endpoint_check", dict(checks=dict(s3=params)), check=True, diff=True, env=ENV)[0]
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["services"]["s3"]["would_create"] is True
    assert result["diff"]["after"] == "present\n"
    assert not bucket_exists(s3_client, params["bucket"])


def test_module_fail_on_problem_false_returns_the_problems():
    port = closed_port()
    result = run_module("endpoint_check", dict(
        checks=dict(smtp=dict(host="127.0.0.1", port=port, variables=dict(port="mastodon_smtp_port"))),
        fail_on_problem=False), env=ENV)[0]
    assert not result.get("failed")
    assert len(result["problems"]) == 1 and "mastodon_smtp_port" in result["problems"][0]


# ---- credentials by Secret reference (the lab apiserver) -----------------------------------------

SECRET_NAME = "lab-credentials"


def lab_credentials():
    """The lab's credentials as Secret data (name -> value)."""
    url = urlsplit(REDIS_URL)
    return {"postgres-password": PG["PASSWORD"], "redis-password": url.password, "access-key": S3["ACCESS_KEY"],
            "secret-key": S3["SECRET_KEY"], "smtp-login": SMTP_USER, "smtp-password": SMTP_PASSWORD,
            "wrong-postgres-password": "wrong-" + uuid.uuid4().hex}


@pytest.fixture(scope="module")
def secret_namespace(core):
    """A fresh namespace with the Secret lab-credentials (every lab credential); deleted at the end."""
    name = "it-endpoint-%s" % uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": name}})
    data = dict((key, base64.b64encode(value.encode()).decode()) for key, value in lab_credentials().items())
    core.create_namespaced_secret(name, {"metadata": {"name": SECRET_NAME}, "type": "Opaque", "data": data})
    yield name
    core.delete_namespace(name)


def ref(key, name=SECRET_NAME, namespace=None):
    out = {"name": name, "key": key}
    if namespace:
        out["namespace"] = namespace
    return out


def pg_ref_params(**extra):
    out = pg_params(password=None, password_secret=ref("postgres-password"))
    out["variables"] = dict(out["variables"], password="postgresql_external_admin_secret")
    del out["password"]
    out.update(extra)
    return out


def redis_ref_params(**extra):
    out = redis_params(password_secret=ref("redis-password"))
    del out["password"]
    out["variables"] = dict(out["variables"], password="redis_external_password_secret")
    out.update(extra)
    return out


def s3_ref_params(**extra):
    out = s3_params(access_key_secret=ref("access-key"), secret_key_secret=ref("secret-key"))
    del out["access_key"], out["secret_key"]
    out["variables"] = dict(out["variables"], access_key="minio_external_admin_secret.access_key",
                            secret_key="minio_external_admin_secret.secret_key")
    out.update(extra)
    return out


def smtp_ref_params(controller, tls_files, **extra):
    out = smtp_params(controller, tls_files, login_secret=ref("smtp-login"), password_secret=ref("smtp-password"))
    del out["user"], out["password"]
    out["variables"] = dict(out["variables"], user="mastodon_secret_refs.SMTP_LOGIN", password="mastodon_secret_refs.SMTP_PASSWORD")
    out.update(extra)
    return out


@need_k8s
def test_module_reads_every_credential_from_a_secret_and_prints_none(secret_namespace, smtp_starttls, tls_files, bucket):
    """No credential in the task: the module reads them from the Secret; -vvv shows none of them."""
    (result, proc), sessions = server_saw(smtp_starttls, lambda: run_module("endpoint_check", dict(
        namespace=secret_namespace,
        checks=dict(postgresql=pg_ref_params(), redis=redis_ref_params(), s3=s3_ref_params(bucket=bucket),
                    smtp=smtp_ref_params(smtp_starttls, tls_files))), env=ENV, verbosity=3))
    assert not result.get("failed"), result.get("msg") or proc.stdout[-2000:]
    assert result["problems"] == []
    assert set(result["services"]) == {"postgresql", "redis", "s3", "smtp"}
    assert all(r["ok"] for r in result["services"].values()), result["services"]
    # the SMTP server saw the login with the credentials of the Secret, over TLS only
    assert len(sessions) == 1 and ("AUTH", True) in sessions[0] and ("AUTH", False) not in sessions[0]
    assert result["services"]["smtp"]["auth"] is True
    output = proc.stdout + proc.stderr
    for key, value in lab_credentials().items():
        if key != "access-key":   # an access key id is not secret, but it is not printed either
            assert value not in output, "%s leaked into the -vvv output" % key
    assert S3["ACCESS_KEY"] not in output


@need_k8s
def test_module_uses_the_value_in_the_secret(secret_namespace):
    """A wrong password in the Secret is refused by the real server: the value read is the one used."""
    result = run_module("endpoint_check", dict(namespace=secret_namespace, checks=dict(
        postgresql=pg_ref_params(password_secret=ref("wrong-postgres-password")))), env=ENV)[0]
    assert result.get("failed") is True
    assert len(result["problems"]) == 1, result["problems"]
    assert result["problems"][0].startswith("postgresql_external_admin_secret: PostgreSQL at %s:%s refused the password of "
                                            "user %s" % (PG["HOST"], PG["PORT"], PG["USER"])), result["problems"][0]


@need_k8s
def test_module_missing_key_is_a_named_problem_and_skips_only_that_check(secret_namespace, smtp_starttls, tls_files, s3_client):
    params = s3_ref_params(create_bucket=True)
    result = run_module("endpoint_check", dict(namespace=secret_namespace, checks=dict(
        postgresql=pg_ref_params(password_secret=ref("no-such-key")),
        s3=params, smtp=smtp_ref_params(smtp_starttls, tls_files))), env=ENV)[0]
    assert result.get("failed") is True
    assert result["problems"] == [
        "postgresql_external_admin_secret: Secret %s/%s has no key no-such-key (it has: %s), so the postgresql check was "
        "skipped; add the key to that Secret"
        % (secret_namespace, SECRET_NAME, ", ".join(sorted(lab_credentials())))]
    assert result["msg"].startswith("1 problem(s) found:") and "Traceback" not in result["msg"]
    assert result["services"]["postgresql"] == {"ok": False, "skipped": True}
    assert result["services"]["smtp"]["ok"] and result["services"]["smtp"]["auth"]
    # the problem holds the bucket back: nothing is created while a check is missing
    assert result["services"]["s3"]["create_deferred"] is True
    assert not bucket_exists(s3_client, params["bucket"])


@need_k8s
def test_module_missing_secret_is_a_named_problem(secret_namespace, smtp_starttls, tls_files):
    other = "it-endpoint-none-%s" % uuid.uuid4().hex[:6]   # never created: the ref's own namespace
    result = run_module("endpoint_check", dict(checks=dict(
        smtp=smtp_ref_params(smtp_starttls, tls_files, login_secret=ref("smtp-login", namespace=secret_namespace),
                             password_secret=ref("smtp-password", name="absent", namespace=other)))), env=ENV)[0]
    assert result.get("failed") is True
    assert result["problems"] == [
        "mastodon_secret_refs.SMTP_PASSWORD: Secret %s/absent does not exist, so the smtp check was skipped; "
        "create that Secret" % other]
    assert SMTP_USER not in json.dumps(result)


@need_k8s
def test_module_refs_in_check_mode(secret_namespace, s3_client):
    params = s3_ref_params(create_bucket=True)
    result = run_module("endpoint_check", dict(namespace=secret_namespace, checks=dict(s3=params)), check=True, env=ENV)[0]
    assert not result.get("failed"), result.get("msg")
    assert result["services"]["s3"]["would_create"] is True and result["changed"] is True
    assert not bucket_exists(s3_client, params["bucket"])


def test_module_unreachable_api_is_a_problem_not_a_crash():
    """The Kubernetes API refuses the connection: each check with a reference is skipped with one line."""
    port = closed_port()
    result = run_module("endpoint_check", dict(
        namespace="social", host="http://127.0.0.1:%d" % port,
        checks=dict(redis=dict(host="127.0.0.1", port=closed_port(), password_secret=ref("redis-password"),
                               variables=dict(password="redis_external_password_secret")))), env=ENV)[0]
    assert result.get("failed") is True
    assert len(result["problems"]) == 1, result["problems"]
    problem = result["problems"][0]
    assert problem.startswith("redis_external_password_secret: cannot read Secret social/%s, key redis-password from the "
                              "Kubernetes API (" % SECRET_NAME), problem
    assert problem.endswith("; check kubeconfig, context, host and the K8S_AUTH_* variables; the redis check was skipped")
    assert result["services"]["redis"] == {"ok": False, "skipped": True}
