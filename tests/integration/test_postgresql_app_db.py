# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests of fediverse.mastodon.postgresql_app_db against the lab's real PostgreSQL.

The module runs through the real ansible-playbook (tests/integration/ansible_run.py); what it
did is checked with psycopg2 directly. Needs LAB_PG_HOST/PORT/USER/PASSWORD (make -s lab-env);
the via_kubernetes tests also need KUBECONFIG (the lab's kwok cluster, whose port-forward to any
pod's port 5432 reaches the same PostgreSQL).
"""

import datetime
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

psycopg2 = pytest.importorskip("psycopg2")
from psycopg2 import sql  # noqa: E402

from ansible_run import run_module  # noqa: E402

LAB = dict((k, os.environ.get("LAB_PG_" + k)) for k in ("HOST", "PORT", "USER", "PASSWORD"))
pytestmark = pytest.mark.skipif(not all(LAB.values()), reason="lab PostgreSQL not configured: run `eval $(make -s lab-env)`")

PREFIX = "h4t%s" % uuid.uuid4().hex[:6]
ENV = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}


def name(tag):
    return "%s_%s" % (PREFIX, tag)


def admin_conn(dbname="postgres"):
    conn = psycopg2.connect(host=LAB["HOST"], port=int(LAB["PORT"]), user=LAB["USER"], password=LAB["PASSWORD"],
                            dbname=dbname, connect_timeout=5)
    conn.autocommit = True
    return conn


def q(query, params=None, dbname="postgres"):
    conn = admin_conn(dbname)
    try:
        cur = conn.cursor()
        cur.execute(query, params)
        return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def login(role, password, dbname):
    """Connect as the application role over TCP (raises psycopg2.OperationalError when refused)."""
    return psycopg2.connect(host=LAB["HOST"], port=int(LAB["PORT"]), user=role, password=password, dbname=dbname,
                            connect_timeout=5)


def can_login(role, password, dbname):
    try:
        login(role, password, dbname).close()
        return True
    except psycopg2.OperationalError:
        return False


def role_exists(role):
    return bool(q("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]))


def db_exists(db):
    return bool(q("SELECT 1 FROM pg_database WHERE datname = %s", [db]))


def args(db, role, password="pw-" + uuid.uuid4().hex, **extra):
    out = dict(login_host=LAB["HOST"], login_port=int(LAB["PORT"]), login_user=LAB["USER"],
               login_password=LAB["PASSWORD"], database=db, role=role, password=password)
    out.update(extra)
    return out


def run(module_args, **kw):
    kw.setdefault("env", ENV)
    result, proc = run_module("postgresql_app_db", module_args, **kw)
    return result, proc


def drop_everything(prefix=PREFIX):
    """Remove every database and role this test run created."""
    for (db,) in q("SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"]) or []:
        q(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
    roles = [r for (r,) in q("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [prefix + "%"]) or []]
    for role in roles:
        q(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(role)))
        q(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    for role in roles:
        q(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module", autouse=True)
def cleanup():
    yield
    drop_everything()


def nothing_created(tag):
    pattern = name(tag) + "%"
    return not q("SELECT 1 FROM pg_roles WHERE rolname LIKE %s", [pattern]) and \
        not q("SELECT 1 FROM pg_database WHERE datname LIKE %s", [pattern])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# 1. create, idempotence, check mode -----------------------------------------------------------

def test_create_then_rerun_unchanged_and_check_mode_creates_nothing():
    db = role = name("app")
    a = args(db, role, password="first-" + uuid.uuid4().hex)
    result, proc = run(a, diff=True)
    assert result.get("changed") is True and not result.get("failed"), result
    assert role_exists(role) and db_exists(db)
    assert result["diff"]["before"]["role"]["exists"] is False and result["diff"]["after"]["role"]["exists"] is True
    assert any(x.startswith("CREATE ROLE") for x in result["queries"])
    assert all(a["password"] not in x for x in result["queries"])

    again, dummy = run(a, diff=True)
    assert again.get("changed") is False, again
    assert again["queries"] == []

    fresh = name("chk")
    checked, dummy = run(args(fresh, fresh), check=True, diff=True)
    assert checked.get("changed") is True and not checked.get("failed"), checked
    assert checked["queries"], "check mode lists what it would run"
    assert not role_exists(fresh) and not db_exists(fresh)
    real, dummy = run(args(fresh, fresh), diff=True)
    assert real["queries"] == checked["queries"], "check mode predicts exactly what the real run does"
    assert real["diff"] == checked["diff"]

    # check mode on the existing, converged pair changes nothing and reports nothing
    checked, dummy = run(a, check=True)
    assert checked.get("changed") is False


# 2. least privilege --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app():
    db = role = name("lp")
    password = "lp-" + uuid.uuid4().hex
    result, dummy = run(args(db, role, password=password))
    assert result.get("changed") is True, result
    other = name("other")
    result, dummy = run(args(other, other))
    assert result.get("changed") is True, result
    return dict(db=db, role=role, password=password, other=other)


def test_role_logs_in_over_tcp_and_creates_tables(app):
    conn = login(app["role"], app["password"], app["db"])
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT inet_server_addr() IS NOT NULL, current_user")  # TCP, not a Unix socket
    assert cur.fetchone() == (True, app["role"])
    cur.execute("CREATE TABLE accounts (id bigserial PRIMARY KEY, name text)")
    cur.execute("INSERT INTO accounts (name) VALUES ('alice') RETURNING id")
    assert cur.fetchone()[0] == 1
    cur.execute("CREATE TEMPORARY TABLE scratch (x int)")
    conn.close()


def test_role_cannot_create_database_or_role(app):
    conn = login(app["role"], app["password"], app["db"])
    conn.autocommit = True
    cur = conn.cursor()
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name("evil_db"))))
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name("evil_role"))))
    conn.close()
    row = q("SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin, "
            "left(rolpassword, 14) FROM pg_authid WHERE rolname = %s", [app["role"]])[0]
    assert row == (False, False, False, False, False, True, "SCRAM-SHA-256$")


def test_role_cannot_connect_to_a_database_it_was_not_granted(app):
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        login(app["role"], app["password"], app["other"])


def test_public_cannot_connect(app):
    outsider, password = name("outsider"), "o-" + uuid.uuid4().hex
    q(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(outsider), sql.Literal(password)))
    assert can_login(outsider, password, "postgres"), "the outsider role itself works"
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        login(outsider, password, app["db"])
    acl = q("SELECT a.grantee, a.privilege_type FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s",
            [app["db"]])
    assert acl and all(grantee != 0 for grantee, dummy in acl), "no PUBLIC entry in the database ACL"


def test_pre_pg15_public_schema_layout_is_made_least_privilege():
    """PostgreSQL 13/14 create `public` owned by the bootstrap superuser with CREATE for PUBLIC.
    Recreate that layout on this server: the role must end with its own CREATE, PUBLIC without."""
    db, role = name("legacy"), name("legacyr")
    q(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(db)))
    q(sql.SQL("ALTER SCHEMA public OWNER TO {}; GRANT ALL ON SCHEMA public TO PUBLIC").format(sql.Identifier(LAB["USER"])),
      dbname=db)
    a = args(db, role, reassign_owner=True)
    result, dummy = run(a, diff=True)
    assert result.get("changed") is True, result
    assert "REVOKE CREATE ON SCHEMA public FROM PUBLIC" in result["queries"]
    assert any(x.startswith("GRANT USAGE, CREATE ON SCHEMA public TO") for x in result["queries"])
    assert not q("SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = 'public' AND a.grantee = 0 "
                 "AND a.privilege_type = 'CREATE'", dbname=db)
    conn = login(role, a["password"], db)
    conn.autocommit = True
    conn.cursor().execute("CREATE TABLE schema_migrations (version text PRIMARY KEY)")
    conn.close()
    assert run(a)[0].get("changed") is False


# 3. password rotation ------------------------------------------------------------------------

def test_password_rotation_always_and_on_create():
    db = role = name("rot")
    old, new, ignored = ("old-" + uuid.uuid4().hex, "new-" + uuid.uuid4().hex, "ign-" + uuid.uuid4().hex)
    assert run(args(db, role, password=old))[0].get("changed") is True
    assert can_login(role, old, db)

    result, dummy = run(args(db, role, password=new, update_password="always"), diff=True)
    assert result.get("changed") is True and result["changes"] == ["role.password"], result
    assert not can_login(role, old, db)
    assert can_login(role, new, db)
    # same password again: recomputed with the stored salt, so no change
    assert run(args(db, role, password=new, update_password="always"))[0].get("changed") is False

    result, dummy = run(args(db, role, password=ignored, update_password="on_create"))
    assert result.get("changed") is False, result
    assert can_login(role, new, db) and not can_login(role, ignored, db)


# 4. drift repair -----------------------------------------------------------------------------

def test_drift_is_repaired_and_reported():
    db = role = name("drift")
    a = args(db, role)
    assert run(a)[0].get("changed") is True
    q(sql.SQL("ALTER ROLE {} SUPERUSER CREATEDB").format(sql.Identifier(role)))
    q(sql.SQL("GRANT CONNECT ON DATABASE {} TO PUBLIC").format(sql.Identifier(db)))
    result, dummy = run(a, diff=True)
    assert result.get("changed") is True, result
    assert "role.superuser" in result["changes"] and "role.createdb" in result["changes"]
    assert "grants.connect" in result["changes"]
    assert result["diff"]["before"]["role"]["superuser"] is True and result["diff"]["after"]["role"]["superuser"] is False
    assert q("SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = %s", [role])[0] == (False, False)
    assert not q("SELECT 1 FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s AND a.grantee = 0", [db])
    assert run(a)[0].get("changed") is False


# 5. absent -----------------------------------------------------------------------------------

def test_absent_keeps_data_unless_drop_database():
    db = role = name("gone")
    a = args(db, role)
    assert run(a)[0].get("changed") is True
    conn = login(role, a["password"], db)
    conn.autocommit = True
    conn.cursor().execute("CREATE TABLE statuses (id int); INSERT INTO statuses VALUES (1), (2), (3)")
    conn.close()

    result, dummy = run(dict(a, state="absent"), diff=True)
    assert result.get("changed") is True, result
    assert not role_exists(role) and db_exists(db)
    assert q("SELECT count(*) FROM statuses", dbname=db) == [(3,)], "the data is kept"
    assert q("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [db]) == [(LAB["USER"],)]
    assert run(dict(a, state="absent"))[0].get("changed") is False

    checked, dummy = run(dict(a, state="absent", drop_database=True), check=True)
    assert checked.get("changed") is True and db_exists(db)
    result, dummy = run(dict(a, state="absent", drop_database=True))
    assert result.get("changed") is True, result
    assert not db_exists(db)
    assert run(dict(a, state="absent", drop_database=True))[0].get("changed") is False


def test_absent_refuses_to_drop_another_roles_database():
    db, role, owner = name("foreign"), name("foreignr"), name("foreigno")
    q(sql.SQL("CREATE ROLE {}").format(sql.Identifier(owner)))
    q(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(owner)))
    result, dummy = run(dict(args(db, role), state="absent", drop_database=True))
    assert result.get("failed") is True and "refusing to drop" in result["msg"] and owner in result["msg"], result
    assert db_exists(db)


# 6. bad input --------------------------------------------------------------------------------

HOSTILE = 'x"; DROP DATABASE postgres; --'


@pytest.mark.parametrize("option", ["database", "role"])
def test_hostile_name_is_refused_and_nothing_is_created(option):
    db = role = name("hostile")
    a = args(db, role)
    a[option] = HOSTILE
    result, dummy = run(a)
    assert result.get("failed") is True
    assert result["msg"].startswith(option) and "'\"'" in result["msg"] and "';'" in result["msg"], result["msg"]
    assert nothing_created("hostile")
    assert not role_exists(HOSTILE) and not db_exists(HOSTILE)
    assert db_exists("postgres")


def test_unusual_but_allowed_names_are_quoted_exactly():
    db = name("Mixed-Case.db$")
    role = name("Role-With.Dots")
    a = args(db, role)
    result, dummy = run(a)
    assert result.get("changed") is True, result
    assert db_exists(db) and role_exists(role), "case and punctuation kept, so every identifier was quoted"
    assert can_login(role, a["password"], db)
    assert run(a)[0].get("changed") is False


def test_too_long_name_is_refused():
    result, dummy = run(args("d" * 64, name("long")))
    assert result.get("failed") is True and "at most 63 bytes" in result["msg"], result
    assert nothing_created("long")


def test_wrong_admin_password_fails_clearly_and_creates_nothing():
    db = role = name("badpw")
    result, dummy = run(args(db, role, login_password="wrong-" + uuid.uuid4().hex))
    assert result.get("failed") is True
    assert "password authentication failed" in result["msg"] and "login_password" in result["msg"], result["msg"]
    assert nothing_created("badpw")


def test_unreachable_port_fails_clearly_and_creates_nothing():
    db = role = name("noport")
    port = free_port()
    start = time.time()
    result, dummy = run(args(db, role, login_port=port, connect_timeout=3))
    assert result.get("failed") is True
    assert "127.0.0.1:%d" % port in result["msg"] and "login_port" in result["msg"], result["msg"]
    assert time.time() - start < 60
    assert nothing_created("noport")


def test_failure_after_creating_the_role_leaves_nothing_half_created():
    db = role = name("half")
    result, dummy = run(args(db, role, lc_collate="xx_XX.no-such-locale"))
    assert result.get("failed") is True
    assert "no-such-locale" in result["msg"] and "dropped again" in result["msg"], result["msg"]
    assert nothing_created("half")


def test_database_owned_by_another_role_is_refused_unless_reassign_owner():
    db, role = name("taken"), name("taker")
    q(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    result, dummy = run(args(db, role))
    assert result.get("failed") is True and "reassign_owner" in result["msg"] and LAB["USER"] in result["msg"], result
    assert not role_exists(role), "refused before creating anything"
    result, dummy = run(args(db, role, reassign_owner=True))
    assert result.get("changed") is True, result
    assert q("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [db]) == [(role,)]


def test_existing_database_with_other_encoding_is_refused():
    db, role = name("latin"), name("latinr")
    q(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'").format(sql.Identifier(db)))
    result, dummy = run(args(db, role, reassign_owner=True))
    assert result.get("failed") is True and "LATIN1" in result["msg"] and "encoding" in result["msg"], result
    assert not role_exists(role)


@pytest.mark.parametrize("has,lacks", [("CREATEDB", "CREATEROLE"), ("CREATEROLE", "CREATEDB")])
def test_admin_lacking_createrole_or_createdb_is_told_so(has, lacks):
    weak, weak_pw = name("weak" + lacks.lower()), "w-" + uuid.uuid4().hex
    q(sql.SQL("CREATE ROLE {} LOGIN " + has + " PASSWORD {}").format(sql.Identifier(weak), sql.Literal(weak_pw)))
    db = role = name("by" + lacks.lower())
    result, dummy = run(args(db, role, login_user=weak, login_password=weak_pw))
    assert result.get("failed") is True and lacks in result["msg"] and weak in result["msg"], result
    assert nothing_created("by" + lacks.lower())


def test_non_superuser_admin_with_createrole_and_createdb_works():
    """The managed-server case (RDS/Cloud SQL): no pg_authid access, so the password check logs in."""
    mgr, mgr_pw = name("mgr"), "m-" + uuid.uuid4().hex
    q(sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(sql.Identifier(mgr), sql.Literal(mgr_pw)))
    db = role = name("managed")
    a = args(db, role, login_user=mgr, login_password=mgr_pw)
    result, dummy = run(a)
    assert result.get("changed") is True and not result.get("failed"), result
    assert q("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [db]) == [(role,)]
    assert can_login(role, a["password"], db)
    assert run(a)[0].get("changed") is False, "password verified by logging in, so no change"
    rotated = dict(a, password="r-" + uuid.uuid4().hex)
    assert run(rotated)[0].get("changed") is True
    assert can_login(role, rotated["password"], db) and not can_login(role, a["password"], db)
    gone, dummy = run(dict(rotated, state="absent"))
    assert gone.get("changed") is True and not gone.get("failed"), gone
    assert not role_exists(role) and db_exists(db)
    assert q("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [db]) == [(mgr,)]


# extras: extensions and read-only roles ------------------------------------------------------

def test_extensions_and_readonly_roles():
    db = role = name("ro")
    reader, reader_pw = name("reader"), "r-" + uuid.uuid4().hex
    q(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(reader), sql.Literal(reader_pw)))
    a = args(db, role, extensions=["pgcrypto"], readonly_roles=[reader])
    assert run(a)[0].get("changed") is True
    assert q("SELECT extname FROM pg_extension WHERE extname = 'pgcrypto'", dbname=db) == [("pgcrypto",)]
    conn = login(role, a["password"], db)
    conn.autocommit = True
    conn.cursor().execute("CREATE TABLE later (id serial, v text); INSERT INTO later (v) VALUES ('x')")
    conn.close()
    ro = login(reader, reader_pw, db)
    ro.autocommit = True
    cur = ro.cursor()
    cur.execute("SELECT v FROM later")
    assert cur.fetchall() == [("x",)], "default privileges cover tables created later"
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("INSERT INTO later (v) VALUES ('y')")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("CREATE TABLE mine (x int)")
    ro.close()
    assert run(a)[0].get("changed") is False


def test_readonly_role_must_exist():
    db = role = name("romissing")
    result, dummy = run(args(db, role, readonly_roles=[name("ghost")]))
    assert result.get("failed") is True and "readonly_roles" in result["msg"] and "does not exist" in result["msg"]
    assert nothing_created("romissing")


# 7. secrets never in the output ---------------------------------------------------------------

def test_passwords_never_appear_at_vvv():
    db = role = name("vvv")
    secret = "vvv-role-" + uuid.uuid4().hex
    outputs = []
    for kw in (dict(verbosity=3, diff=True), dict(verbosity=3, diff=True, check=True)):
        result, proc = run(args(db, role, password=secret), **kw)
        assert not result.get("failed"), result
        outputs.append(proc.stdout + proc.stderr)
    rotated = "vvv-rot-" + uuid.uuid4().hex
    result, proc = run(args(db, role, password=rotated), verbosity=3, diff=True)
    assert result.get("changed") is True
    outputs.append(proc.stdout + proc.stderr)
    result, proc = run(args(db, role, password=rotated, login_password=LAB["PASSWORD"] + "x"), verbosity=3)
    assert result.get("failed") is True
    outputs.append(proc.stdout + proc.stderr)
    text = "\n".join(outputs)
    assert "postgresql_app_db" in text and len(text) > 1000, "the -vvv output was captured"
    for value in (secret, rotated, LAB["PASSWORD"], LAB["PASSWORD"] + "x"):
        assert value not in text
    verifier = q("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role])[0][0]
    assert verifier.split("$")[2] not in text, "not even the SCRAM verifier"


class _WireTap(object):
    """A TCP relay on 127.0.0.1 in front of the lab PostgreSQL that keeps every byte clients send."""

    def __init__(self):
        self.sent = bytearray()
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, dummy = self.srv.accept()
            except OSError:
                return
            upstream = socket.create_connection((LAB["HOST"], int(LAB["PORT"])))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src, dst, record):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record:
                    with self.lock:
                        self.sent.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.srv.close()


def test_plaintext_password_never_reaches_the_server():
    """Everything the module sends to PostgreSQL (TLS off) is captured: only the SCRAM verifier goes out."""
    db = role = name("wire")
    first, second = "wire1-" + uuid.uuid4().hex, "wire2-" + uuid.uuid4().hex
    tap = _WireTap()
    try:
        for password in (first, second, second):
            result, dummy = run(args(db, role, password=password, login_port=tap.port, ssl_mode="disable"))
            assert not result.get("failed"), result
    finally:
        tap.close()
    assert b"CREATE ROLE" in tap.sent and b"SCRAM-SHA-256$4096:" in tap.sent, "the tap saw the statements"
    for secret in (first, second, LAB["PASSWORD"]):
        assert secret.encode() not in tap.sent
    assert can_login(role, second, db)


def test_login_unix_socket():
    socket_dir = q("SHOW unix_socket_directories")[0][0].split(",")[0].strip()
    if not os.path.isdir(socket_dir):
        pytest.skip("the server's socket directory %s is not on this host" % socket_dir)
    db = role = name("sock")
    a = args(db, role, login_unix_socket=socket_dir)
    a.pop("login_host")
    result, dummy = run(a)
    assert result.get("changed") is True and not result.get("failed"), result
    assert can_login(role, a["password"], db)


# via_kubernetes: the lab's kube-apiserver, kwok port-forward -> real PostgreSQL ----------------

KUBECONFIG = os.environ.get("KUBECONFIG")
needs_kube = pytest.mark.skipif(not (KUBECONFIG and os.path.isfile(KUBECONFIG)),
                                reason="lab Kubernetes not configured (KUBECONFIG from make -s lab-env)")


@pytest.fixture(scope="module")
def kube_ns():
    pytest.importorskip("kubernetes")
    from kubernetes import client, config
    config.load_kube_config(config_file=KUBECONFIG)
    core = client.CoreV1Api()
    ns = PREFIX.replace("_", "-") + "-pg"
    labels = {"app": "pg"}
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    try:
        # A bare pod: kwok makes it Running and Ready; its port-forward to 5432 reaches the lab PostgreSQL.
        core.create_namespaced_pod(ns, client.V1Pod(
            metadata=client.V1ObjectMeta(name="pg-0", labels=labels),
            spec=client.V1PodSpec(containers=[client.V1Container(
                name="postgres", image="postgres:15",
                ports=[client.V1ContainerPort(name="postgres", container_port=5432)])])))
        core.create_namespaced_service(ns, client.V1Service(
            metadata=client.V1ObjectMeta(name="pg"),
            spec=client.V1ServiceSpec(selector=labels,
                                      ports=[client.V1ServicePort(name="sql", port=15999, target_port="postgres")])))
        deadline = time.time() + 180
        pods = []
        while time.time() < deadline:
            pods = core.list_namespaced_pod(ns, label_selector="app=pg").items
            if any(p.status.phase == "Running" and any(c.type == "Ready" and c.status == "True"
                                                       for c in p.status.conditions or []) for p in pods):
                break
            time.sleep(1)
        else:
            pytest.fail("the lab's kwok never made pod pg-0 Running and Ready in %s: %s"
                        % (ns, [(p.metadata.name, p.spec.node_name, p.status.phase) for p in pods]))
        yield ns
    finally:
        core.delete_namespace(ns)


def via_args(db, role, ns, **via):
    a = args(db, role)
    for key in ("login_host", "login_port"):
        a.pop(key)
    a["via_kubernetes"] = dict(dict(namespace=ns, kubeconfig=KUBECONFIG), **via)
    return a


@needs_kube
def test_via_kubernetes_service_named_target_port(kube_ns):
    db = role = name("k8s")
    a = via_args(db, role, kube_ns, service="pg", port=15999)
    result, proc = run(a, diff=True)
    assert result.get("changed") is True and not result.get("failed"), (result, proc.stderr[-2000:])
    assert role_exists(role) and db_exists(db) and can_login(role, a["password"], db)
    assert run(a)[0].get("changed") is False
    # the service has a single port (15999): no port needed, not even the PostgreSQL default
    no_port = dict(a, via_kubernetes=dict(namespace=kube_ns, kubeconfig=KUBECONFIG, service="pg"))
    again, dummy = run(no_port)
    assert again.get("changed") is False and not again.get("failed"), again
    assert not [p for p in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout.splitlines()
                if "kubectl" in p and "port-forward" in p], "no kubectl port-forward process"


@needs_kube
def test_via_kubernetes_pod_selector_and_default_port(kube_ns):
    db = role = name("k8sps")
    a = via_args(db, role, kube_ns, pod_selector={"app": "pg"})
    result, dummy = run(a)
    assert result.get("changed") is True and not result.get("failed"), result
    assert can_login(role, a["password"], db)


@needs_kube
def test_via_kubernetes_errors_name_the_option(kube_ns):
    result, dummy = run(via_args(name("k8sbad"), name("k8sbad"), kube_ns, service="no-such-service"))
    assert result.get("failed") is True and "via_kubernetes" in result["msg"] and "no-such-service" in result["msg"], result
    result, dummy = run(via_args(name("k8sbad"), name("k8sbad"), kube_ns, pod_selector="app=nothing-here"))
    assert result.get("failed") is True and "no Running and Ready pod" in result["msg"], result
    result, dummy = run(via_args(name("k8sbad"), name("k8sbad"), kube_ns, service="pg", port=1))
    assert result.get("failed") is True and "via_kubernetes.port" in result["msg"], result
    # the stream opens, but nothing listens behind the pod's port 5999: the kubelet's reason is shown
    result, dummy = run(via_args(name("k8sbad"), name("k8sbad"), kube_ns, pod_selector="app=pg", port=5999))
    assert result.get("failed") is True and "port-forward to pod" in result["msg"] and "port 5999:" in result["msg"], result
    assert "check via_kubernetes.port" in result["msg"]
    assert nothing_created("k8sbad")


class _Module(object):
    def fail_json(self, **kwargs):
        raise AssertionError(kwargs)


@needs_kube
def test_port_forward_in_process_relays_and_closes_everything(kube_ns):
    from ansible_collections.fediverse.mastodon.plugins.module_utils.portforward import port_forward
    before = threading.active_count()
    via = dict(namespace=kube_ns, service="pg", port=15999, mode="port_forward", kubeconfig=KUBECONFIG, request_timeout=30)
    with port_forward(_Module(), via) as (host, port):
        assert host == "127.0.0.1"
        conns = [psycopg2.connect(host=host, port=port, user=LAB["USER"], password=LAB["PASSWORD"], dbname="postgres",
                                  connect_timeout=10) for dummy in range(3)]
        for conn in conns:
            cur = conn.cursor()
            cur.execute("SELECT repeat('x', 200000)")  # larger than one websocket frame
            assert len(cur.fetchone()[0]) == 200000
            conn.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    for dummy in range(100):
        if threading.active_count() <= before:
            break
        time.sleep(0.1)
    assert threading.active_count() <= before, [t.name for t in threading.enumerate()]


# Secret references: both passwords read by the module from Secrets in the lab's kube-apiserver -----

def _core():
    pytest.importorskip("kubernetes")
    from kubernetes import client, config
    return client.CoreV1Api(config.new_client_from_config(config_file=KUBECONFIG))


def _put_secret(core, ns, name, data):
    """Create or replace Secret ns/name with ``data`` (plain strings)."""
    import base64
    from kubernetes.client.rest import ApiException
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name},
            "data": dict((k, base64.b64encode(v.encode()).decode()) for k, v in data.items())}
    try:
        core.create_namespaced_secret(ns, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_secret(name, ns, body)


@pytest.fixture(scope="module")
def secret_ns():
    """A fresh namespace with the admin password (the lab's) and a generated application password."""
    core = _core()
    from kubernetes import client
    ns = PREFIX.replace("_", "-") + "-refs"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    try:
        app_password = "ref-" + uuid.uuid4().hex
        _put_secret(core, ns, "pg-admin", {"admin-password": LAB["PASSWORD"], "unrelated": "x"})
        _put_secret(core, ns, "app-db", {"password": app_password})
        yield dict(ns=ns, core=core, app_password=app_password)
    finally:
        core.delete_namespace(ns)


def ref_args(db, role, ns, password_key="password", **extra):
    """Module arguments with secret references only: no password of any kind in them."""
    out = dict(login_host=LAB["HOST"], login_port=int(LAB["PORT"]), login_user=LAB["USER"], namespace=ns,
               login_password_secret=dict(name="pg-admin", key="admin-password"),
               password_secret=dict(name="app-db", key=password_key), database=db, role=role)
    out.update(extra)
    return out


@needs_kube
def test_secret_refs_only_role_logs_in_with_the_generated_password_and_rerun_is_unchanged(secret_ns):
    db = role = name("refs")
    a = ref_args(db, role, secret_ns["ns"])
    result, proc = run(a, diff=True)
    assert result.get("changed") is True and not result.get("failed"), (result, proc.stderr[-2000:])
    # a real login, over TCP, as the application role with the password only the Secret holds
    conn = login(role, secret_ns["app_password"], db)
    cur = conn.cursor()
    cur.execute("SELECT current_user, current_database()")
    assert cur.fetchone() == (role, db)
    conn.close()
    assert not can_login(role, "not-" + secret_ns["app_password"], db)
    assert result["invocation"]["module_args"]["password"] is None
    assert result["invocation"]["module_args"]["login_password"] is None
    assert result["invocation"]["module_args"]["password_secret"] == dict(name="app-db", key="password", namespace=None)

    again, dummy = run(a, diff=True)
    assert again.get("changed") is False and again["queries"] == [], again
    # the same, with the Kubernetes credentials given explicitly instead of KUBECONFIG
    explicit, dummy = run(dict(a, k8s_auth=dict(kubeconfig=KUBECONFIG)), env=dict(ENV, KUBECONFIG="/nonexistent"))
    assert explicit.get("changed") is False and not explicit.get("failed"), explicit


@needs_kube
def test_secret_refs_update_password_always_and_on_create(secret_ns):
    db = role = name("refrot")
    ns, core = secret_ns["ns"], secret_ns["core"]
    first, second, third = ("r1-" + uuid.uuid4().hex, "r2-" + uuid.uuid4().hex, "r3-" + uuid.uuid4().hex)
    _put_secret(core, ns, "rot-db", {"password": first})
    a = ref_args(db, role, ns, password_secret=dict(name="rot-db", key="password"))
    assert run(a)[0].get("changed") is True
    assert can_login(role, first, db)

    _put_secret(core, ns, "rot-db", {"password": second})
    result, dummy = run(dict(a, update_password="always"), diff=True)
    assert result.get("changed") is True and result["changes"] == ["role.password"], result
    assert can_login(role, second, db) and not can_login(role, first, db)
    assert run(dict(a, update_password="always"))[0].get("changed") is False

    _put_secret(core, ns, "rot-db", {"password": third})
    result, dummy = run(dict(a, update_password="on_create"))
    assert result.get("changed") is False, result
    assert can_login(role, second, db) and not can_login(role, third, db)


@needs_kube
def test_secret_ref_errors_name_the_option_the_secret_and_the_key(secret_ns):
    ns = secret_ns["ns"]
    db = role = name("referr")
    result, dummy = run(ref_args(db, role, ns, password_key="no-such-key"))
    assert result.get("failed") is True, result
    assert result["msg"].startswith("password_secret: Secret %s/app-db has no key no-such-key" % ns), result["msg"]
    assert "(it has: password)" in result["msg"]

    result, dummy = run(ref_args(db, role, ns, password_secret=dict(name="ghost", key="password")))
    assert result.get("failed") is True and result["msg"].startswith("password_secret: Secret %s/ghost does not exist" % ns)

    result, dummy = run(ref_args(db, role, ns, login_password_secret=dict(name="pg-admin", key="missing")))
    assert result.get("failed") is True and result["msg"].startswith("login_password_secret: Secret %s/pg-admin" % ns)
    assert "admin-password, unrelated" in result["msg"]

    # a Secret whose value is wrong: PostgreSQL refuses, and the hint names the reference
    result, dummy = run(ref_args(db, role, ns, login_password_secret=dict(name="app-db", key="password")))
    assert result.get("failed") is True and "password authentication failed" in result["msg"], result["msg"]
    assert "login_password_secret (key password of Secret %s/app-db)" % ns in result["msg"]

    # the API server refuses a bad token: the message names the option and the Secret
    import yaml
    with open(KUBECONFIG) as fh:
        server = yaml.safe_load(fh)["clusters"][0]["cluster"]["server"]
    bad = dict(host=server, api_key="not-a-token", validate_certs=False)
    result, dummy = run(ref_args(db, role, ns, k8s_auth=bad))
    assert result.get("failed") is True and result["msg"].startswith("login_password_secret: Cannot read Secret"), result
    assert "HTTP 401" in result["msg"] and "pg-admin" in result["msg"]

    assert LAB["PASSWORD"] not in str(result) and secret_ns["app_password"] not in str(result)
    assert nothing_created("referr")


@needs_kube
def test_secret_refs_never_appear_at_vvv(secret_ns):
    ns, core = secret_ns["ns"], secret_ns["core"]
    db = role = name("refvvv")
    first, rotated = "v1-" + uuid.uuid4().hex, "v2-" + uuid.uuid4().hex
    _put_secret(core, ns, "vvv-db", {"password": first})
    a = ref_args(db, role, ns, password_secret=dict(name="vvv-db", key="password"))
    outputs = []
    for kw in (dict(check=True), dict(), dict(), dict(rotate=True)):
        if kw.pop("rotate", False):
            _put_secret(core, ns, "vvv-db", {"password": rotated})
        result, proc = run(a, verbosity=3, diff=True, **kw)
        assert not result.get("failed"), result
        outputs.append(proc.stdout + proc.stderr)
    assert result.get("changed") is True and result["changes"] == ["role.password"], result
    result, proc = run(dict(a, password_secret=dict(name="vvv-db", key="nope")), verbosity=3)
    assert result.get("failed") is True and "password_secret" in result["msg"]
    outputs.append(proc.stdout + proc.stderr)
    text = "\n".join(outputs)
    assert "postgresql_app_db" in text and "vvv-db" in text and len(text) > 1000, "the -vvv output was captured"
    for value in (first, rotated, LAB["PASSWORD"]):
        assert value not in text
    assert can_login(role, rotated, db) and not can_login(role, first, db)


@needs_kube
def test_secret_refs_through_via_kubernetes_default_to_its_namespace(kube_ns):
    core = _core()
    password = "via-" + uuid.uuid4().hex
    _put_secret(core, kube_ns, "pg-admin", {"admin-password": LAB["PASSWORD"]})
    _put_secret(core, kube_ns, "app-db", {"password": password})
    db = role = name("refvia")
    a = dict(via_kubernetes=dict(namespace=kube_ns, kubeconfig=KUBECONFIG, service="pg"), login_user=LAB["USER"],
             login_password_secret=dict(name="pg-admin", key="admin-password"),
             password_secret=dict(name="app-db", key="password"), database=db, role=role)
    # no KUBECONFIG in the environment: the Secrets are read with via_kubernetes's credentials
    env = dict(ENV, KUBECONFIG="/nonexistent")
    result, proc = run(a, env=env)
    assert result.get("changed") is True and not result.get("failed"), (result, proc.stderr[-2000:])
    assert can_login(role, password, db)
    assert run(a, env=env)[0].get("changed") is False


# the run lock -------------------------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs the lab apiserver for the run lock")
def test_run_lock_is_taken_before_the_first_statement_and_another_runs_lock_refuses_it():
    """The database is a write like any other: another run's live lock refuses it before any
    statement; this run's first statement takes the lock; a no-op takes none."""
    from kubernetes import client as kube
    from kubernetes.config import new_client_from_config

    api = new_client_from_config(os.environ["KUBECONFIG"])
    core, coordination = kube.CoreV1Api(api), kube.CoordinationV1Api(api)
    namespace = "it-pglock-" + uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        def lock(run_id):
            return dict(namespace=namespace, name="inst-run-lock", duration=900, renew_every=300,
                        holder=dict(run_id=run_id, host="ci-host", user=run_id, started="2026-12-01T10:00:00Z"))

        coordination.create_namespaced_lease(namespace, {"metadata": {"name": "inst-run-lock"}, "spec": {
            "holderIdentity": "other@ci-host", "leaseDurationSeconds": 900,
            "renewTime": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}})
        db, role = name("locked"), name("locked_r")
        result, proc = run(args(db, role, run_lock=lock("mine")))
        assert result.get("failed") and "run_lock:" in result["msg"] and "locked by" in result["msg"], result
        assert "nothing was changed in the database" in result["msg"]
        assert not role_exists(role) and not db_exists(db)

        coordination.delete_namespaced_lease("inst-run-lock", namespace)
        result, proc = run(args(db, role, password="pw-lock", run_lock=lock("mine")))
        assert result["changed"] is True and role_exists(role) and db_exists(db), result
        assert coordination.read_namespaced_lease("inst-run-lock", namespace).spec.holder_identity == "mine@ci-host"

        coordination.delete_namespaced_lease("inst-run-lock", namespace)
        result, proc = run(args(db, role, password="pw-lock", run_lock=lock("mine")))
        assert result["changed"] is False, result
        assert not coordination.list_namespaced_lease(namespace).items, "a run that changed nothing took the lock"
    finally:
        core.delete_namespace(namespace)


def test_the_stored_verifier_is_made_by_libpq_with_a_fresh_salt():
    """The password reaches the server as a SCRAM-SHA-256 verifier made by libpq
    (psycopg2's encrypt_password): a fresh salt per role, and our comparison recognises it."""
    from ansible_collections.fediverse.mastodon.plugins.module_utils import postgres as pg

    password = "same-" + uuid.uuid4().hex
    roles = [name("salt1"), name("salt2")]
    for role in roles:
        result, dummy = run(args(role, role, password=password))
        assert result.get("changed") is True and not result.get("failed"), result
        assert can_login(role, password, role)
    verifiers = [q("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [r])[0][0] for r in roles]
    parsed = [pg.parse_scram_verifier(v) for v in verifiers]
    assert all(p is not None and len(p[1]) == 16 for p in parsed), verifiers
    assert parsed[0][1] != parsed[1][1], "each role gets its own salt"
    assert all(pg.scram_password_matches(v, password) for v in verifiers)
    assert not any(pg.scram_password_matches(v, password + "x") for v in verifiers)
