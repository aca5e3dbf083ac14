# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The configuration the postgresql and redis roles render, started by real servers.

The lab's pods never run, so the objects the roles render are taken here as they would reach a
container, and run by the same programs (Debian's): Redis with each rendered redis.conf and the
container's own start command, PostgreSQL with the StatefulSet's server arguments, PgBouncer with
the rendered pgbouncer.ini and the userlist its init container writes, in front of the lab's
PostgreSQL. Only what ties a file to a pod is changed, and each change is listed where it is
made: container paths become a temporary directory, the listening address becomes 127.0.0.1 and a
spare port, and the Service host name becomes the lab server. Every setting is then read back from
the running server (CONFIG GET, SHOW), and logins are tried for real.
"""

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "unit", "roles"))
from role_render import by_kind, render_role  # noqa: E402  pylint: disable=wrong-import-position

psycopg2 = pytest.importorskip("psycopg2")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("the server exited with %s: %s" % (proc.returncode, proc.stdout.read() if proc.stdout else ""))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("nothing listens on 127.0.0.1:%d after %ds" % (port, seconds))


def as_unprivileged(cmd):
    """PostgreSQL and PgBouncer refuse to run as root: as root, run them in a user namespace as uid 1000."""
    if os.geteuid() == 0:
        return ["unshare", "--user", "--map-user=1000", "--map-group=1000", "--"] + cmd
    return cmd


def stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


# ---- Redis ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def redis_objects():
    return render_role("redis", {"redis_cache": True, "redis_memory_limit": "512M", "redis_appendfsync": "always"})


def _redis_container(objects, name):
    sts = [s for s in by_kind(objects, "StatefulSet") if s["metadata"]["name"] == name][0]
    return sts["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("name,expected", [
    ("localhost-redis", {"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction",
                         "maxmemory": str(512 * 1024 * 1024 * 8 // 10), "protected-mode": "yes"}),
    ("localhost-redis-cache", {"appendonly": "no", "save": "", "maxmemory-policy": "allkeys-lru", "protected-mode": "yes"}),
])
def test_redis_starts_with_the_rendered_config_and_its_start_command(redis_objects, tmp_path, name, expected):
    conf = [c for c in by_kind(redis_objects, "ConfigMap") if c["metadata"]["name"] == name][0]["data"]["redis.conf"]
    command = _redis_container(redis_objects, name)["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    port, password = free_port(), secrets.token_hex(16)
    run, data = tmp_path / "run", tmp_path / "data"
    run.mkdir()
    data.mkdir()
    # pod -> host: the listening address and port, the data volume, the memory volume, the ConfigMap's mount
    assert "bind * -::*\nport 6379\n" in conf and "dir /data\n" in conf and "include /run/redis/auth.conf" in conf
    host_conf = (conf.replace("bind * -::*\nport 6379\n", "bind 127.0.0.1\nport %d\n" % port)
                 .replace("dir /data\n", "dir %s\n" % data).replace("/run/redis/", "%s/" % run))
    (tmp_path / "redis.conf").write_text(host_conf)
    script = command[2].replace("/run/redis/", "%s/" % run).replace("/etc/redis/redis.conf", str(tmp_path / "redis.conf"))
    proc = subprocess.Popen(["/bin/sh", "-c", script], env=dict(os.environ, REDIS_PASSWORD=password),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_port(port, proc)
        assert oct((run / "auth.conf").stat().st_mode & 0o777) == "0o600"
        redis = pytest.importorskip("redis")
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, password="wrong").ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port).ping()
        client = redis.Redis(host="127.0.0.1", port=port, password=password, decode_responses=True)
        for key, value in expected.items():
            assert client.config_get(key) == {key: value}, key
        # the password is in the memory volume, not in the process arguments
        with open("/proc/%d/cmdline" % proc.pid, "rb") as f:
            assert password.encode() not in f.read()
        # the container's probes, against this server (the port is the only change)
        container = _redis_container(redis_objects, name)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            cmd = [part.replace("-p 6379", "-p %d" % port) for part in container[probe]["exec"]["command"]]
            assert subprocess.run(cmd, env=dict(os.environ, REDISCLI_AUTH=password), timeout=30, check=False).returncode == 0, probe
            assert subprocess.run(cmd, env=dict(os.environ, REDISCLI_AUTH="wrong"), timeout=30, check=False,
                                  capture_output=True).returncode != 0, probe
    finally:
        stop(proc)


# ---- PostgreSQL -----------------------------------------------------------------------------

def pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        pytest.skip("needs Debian's PostgreSQL server (make lab-up installs it)")
    return os.path.dirname(found[-1])


@pytest.fixture(scope="module")
def postgresql_objects():
    return render_role("postgresql", {"postgresql_pgbouncer": True, "postgresql_max_connections": 150,
                                      "postgresql_shared_buffers": "64MB",
                                      "postgresql_parameters": {"work_mem": "8MB", "log_min_duration_statement": "500ms"}})


def test_postgresql_starts_with_the_rendered_server_arguments(postgresql_objects, tmp_path):
    bindir = pg_bindir()
    container = by_kind(postgresql_objects, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    settings = dict(args[i + 1].split("=", 1) for i in range(0, len(args), 2) if args[i] == "-c")
    assert settings == {"max_connections": "150", "shared_buffers": "64MB", "work_mem": "8MB", "log_min_duration_statement": "500ms"}
    data = tmp_path / "data"
    subprocess.run(as_unprivileged([os.path.join(bindir, "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                    "--no-instructions", "-E", "UTF8"]), check=True, capture_output=True, timeout=120)
    port = free_port()
    # pod -> host: the image listens on every address at 5432; here 127.0.0.1 and a spare port
    proc = subprocess.Popen(as_unprivileged([os.path.join(bindir, "postgres"), "-D", str(data), "-p", str(port), "-k", str(tmp_path),
                                             "-c", "listen_addresses=127.0.0.1"] + args),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_port(port, proc)
        deadline = time.time() + 30
        while True:   # the port opens before the server accepts logins ("starting up")
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=10)
                break
            except psycopg2.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        try:
            with conn.cursor() as cur:
                for name, value in settings.items():
                    cur.execute("SELECT current_setting(%s), source FROM pg_settings WHERE name = %s", (name, name))
                    got, source = cur.fetchone()
                    assert (got, source) == (value, "command line"), name
        finally:
            conn.close()
        # the probes, then the preStop hook (fast shutdown), as the kubelet would run them
        env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]), PGDATA=str(data))
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            cmd = [part.replace("--port=5432", "--port=%d" % port) for part in container[probe]["exec"]["command"]]
            assert subprocess.run(cmd, env=env, timeout=30, check=False).returncode == 0, probe
        pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        subprocess.run(as_unprivileged(pre_stop), env=env, timeout=90, check=True)
        assert proc.wait(30) == 0
        for probe in ("readinessProbe",):
            cmd = [part.replace("--port=5432", "--port=%d" % port) for part in container[probe]["exec"]["command"]]
            assert subprocess.run(cmd, env=env, timeout=30, check=False).returncode != 0
    finally:
        stop(proc)


# ---- PgBouncer in front of the lab's PostgreSQL --------------------------------------------------

LAB_PG = ("LAB_PG_HOST", "LAB_PG_PORT", "LAB_PG_USER", "LAB_PG_PASSWORD")


@pytest.fixture(scope="module")
def lab_pg():
    missing = [n for n in LAB_PG if not os.environ.get(n)]
    if missing:
        pytest.skip("no lab PostgreSQL: %s not set (eval \"$(make -s lab-env)\")" % ", ".join(missing))
    if not os.path.exists("/usr/sbin/pgbouncer"):
        pytest.skip("needs Debian's pgbouncer (make lab-up installs it)")
    env = dict((n, os.environ[n]) for n in LAB_PG)
    # The role's auth_user is the image's superuser, postgres; the lab's is `lab` (adopt-instance.sh
    # gives the lab a postgres superuser with the same password, as here).
    conn = psycopg2.connect(host=env["LAB_PG_HOST"], port=int(env["LAB_PG_PORT"]), user=env["LAB_PG_USER"],
                            password=env["LAB_PG_PASSWORD"], dbname="postgres", connect_timeout=10)
    conn.autocommit = True
    user, password = "it_pgb_%s" % uuid.uuid4().hex[:8], secrets.token_hex(16)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'postgres'")
        verb = "ALTER" if cur.fetchone() else "CREATE"
        cur.execute("%s ROLE postgres SUPERUSER LOGIN PASSWORD %%s" % verb, (env["LAB_PG_PASSWORD"],))
        cur.execute("SET password_encryption = 'scram-sha-256'")
        cur.execute("CREATE ROLE %s LOGIN PASSWORD %%s" % user, (password,))
        cur.execute("CREATE DATABASE %s OWNER %s" % (user, user))
    yield dict(env, user=user, password=password)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % user)
        cur.execute("DROP ROLE IF EXISTS %s" % user)
    conn.close()


def test_pgbouncer_runs_the_rendered_ini_in_front_of_postgresql(postgresql_objects, lab_pg, tmp_path):
    ini = [c for c in by_kind(postgresql_objects, "ConfigMap") if c["metadata"]["name"].endswith("-pgbouncer")][0]["data"]["pgbouncer.ini"]
    pod = [d for d in by_kind(postgresql_objects, "Deployment") if d["metadata"]["name"].endswith("-pgbouncer")][0]["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert pod["containers"][0]["command"] == ["/usr/bin/pgbouncer", "/etc/pgbouncer/pgbouncer.ini"]
    auth_dir = tmp_path / "auth"
    auth_dir.mkdir()
    # the init container's own command, with its memory volume at a temporary path
    assert init["command"][:2] == ["/bin/sh", "-c"] and "/etc/pgbouncer-auth/userlist.txt" in init["command"][2]
    subprocess.run(["/bin/sh", "-c", init["command"][2].replace("/etc/pgbouncer-auth/", "%s/" % auth_dir)],
                   env=dict(os.environ, POSTGRES_PASSWORD=lab_pg["LAB_PG_PASSWORD"]), check=True, timeout=30)
    userlist = auth_dir / "userlist.txt"
    assert oct(userlist.stat().st_mode & 0o777) == "0o600"
    assert userlist.read_text() == '"postgres" "%s"\n' % lab_pg["LAB_PG_PASSWORD"]
    port = free_port()
    # pod -> host: the listening address and port, the Service host name, the auth volume's path
    replaced = {"listen_addr = 0.0.0.0": "listen_addr = 127.0.0.1", "listen_port = 6432": "listen_port = %d" % port,
                "auth_file = /etc/pgbouncer-auth/userlist.txt": "auth_file = %s" % userlist,
                "* = host=localhost-postgresql.localhost.svc port=5432": "* = host=%s port=%s" % (lab_pg["LAB_PG_HOST"], lab_pg["LAB_PG_PORT"])}
    host_ini = ini
    for old, new in replaced.items():
        assert old in host_ini, old
        host_ini = host_ini.replace(old, new)
    (tmp_path / "pgbouncer.ini").write_text(host_ini)
    os.chmod(str(tmp_path), 0o755)
    proc = subprocess.Popen(as_unprivileged(["/usr/sbin/pgbouncer", str(tmp_path / "pgbouncer.ini")]),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_port(port, proc)
        # Mastodon's user logs in through PgBouncer with its own SCRAM password (auth_query), and
        # its queries work with prepared statements off (what the mastodon role sets with a pooler).
        for attempt in range(2):
            conn = psycopg2.connect(host="127.0.0.1", port=port, user=lab_pg["user"], password=lab_pg["password"],
                                    dbname=lab_pg["user"], connect_timeout=10)
            conn.autocommit = attempt == 1
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS statuses (id bigint PRIMARY KEY, text text)")
                cur.execute("INSERT INTO statuses VALUES (%d, 'héllo') ON CONFLICT DO NOTHING" % attempt)
                cur.execute("SELECT current_user, count(*) FROM statuses")
                assert cur.fetchone() == (lab_pg["user"], attempt + 1)
            conn.commit()
            conn.close()
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(host="127.0.0.1", port=port, user=lab_pg["user"], password="wrong", dbname=lab_pg["user"],
                             connect_timeout=10).close()
        # the admin console: transaction pooling, as rendered
        admin = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", password=lab_pg["LAB_PG_PASSWORD"],
                                 dbname="pgbouncer", connect_timeout=10)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SHOW CONFIG")
            config = dict((row[0], row[1]) for row in cur.fetchall())
        admin.close()
        assert config["pool_mode"] == "transaction" and config["auth_type"] == "scram-sha-256"
        assert config["auth_user"] == "postgres" and config["ignore_startup_parameters"] == "extra_float_digits"
    finally:
        stop(proc)
    shutil.rmtree(str(auth_dir), ignore_errors=True)
