# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the lab itself (issue 3, item 8).

They need a running lab: ``eval "$(bash tests/lab/lab.sh env)"`` (or ``make -s lab-env``).
Each test skips, with the reason, when the variables it needs are absent. Every object they
create lives in a throw-away namespace that is deleted at the end.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FAIL_LABEL = "lab.fediverse/fail"


def _env(*names):
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip("lab not configured: %s unset (run `eval \"$(bash tests/lab/lab.sh env)\"`)" % ", ".join(missing))
    return [os.environ[n] for n in names]


def _kubectl_path():
    path = os.environ.get("LAB_KUBECTL") or shutil.which("kubectl")
    if not path:
        pytest.skip("no kubectl: LAB_KUBECTL unset and kubectl not on PATH")
    return path


def _is_kwok_lab():
    """True when the cluster is the lab's own kwok cluster (not LAB_KUBECONFIG's)."""
    return bool(os.environ.get("LAB_AUDIT_LOG"))


class Kube:
    def __init__(self, kubectl, kubeconfig, namespace):
        self.kubectl = kubectl
        self.kubeconfig = kubeconfig
        self.ns = namespace

    def run(self, *args, stdin=None, check=True, namespaced=True, timeout=60):
        cmd = [self.kubectl, "--kubeconfig", self.kubeconfig]
        if namespaced:
            cmd += ["-n", self.ns]
        cmd += list(args)
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr.strip()))
        return proc

    def apply(self, obj):
        self.run("apply", "-f", "-", stdin=json.dumps(obj))

    def get(self, kind, name):
        return json.loads(self.run("get", kind, name, "-o", "json").stdout)

    def wait_for(self, what, predicate, timeout=90):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(1)
        raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


@pytest.fixture(scope="module")
def kube():
    (kubeconfig,) = _env("KUBECONFIG")
    k = Kube(_kubectl_path(), kubeconfig, "lab-selftest-" + uuid.uuid4().hex[:8])
    k.run("create", "namespace", k.ns, namespaced=False)
    # The ServiceAccount admission plugin needs the namespace's default ServiceAccount.
    k.wait_for("default ServiceAccount", lambda: k.run("get", "serviceaccount", "default", check=False).returncode == 0, 120)
    yield k
    k.run("delete", "namespace", k.ns, "--wait=false", namespaced=False, check=False)


def _labels(app):
    return {"app": app}


def _pod_template(app, ports=(), extra_labels=None, run_to_completion=False):
    """A pod template. In the kwok lab images are never pulled and nothing runs; on a real
    cluster (LAB_KUBECONFIG) these small images make the same tests meaningful."""
    labels = dict(_labels(app), **(extra_labels or {}))
    container = {"name": "main", "image": "registry.k8s.io/pause:3.10",
                 "ports": [{"containerPort": p} for p in ports]}
    if run_to_completion:
        container.update(image="busybox:1.36", command=["sh", "-c", "exit 0"])
    return {"metadata": {"labels": labels}, "spec": {"containers": [container]}}


def _condition(obj, ctype):
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == ctype:
            return c.get("status")
    return None


# --- Kubernetes --------------------------------------------------------------------------

def test_apiserver_healthz_and_version(kube):
    assert kube.run("get", "--raw", "/healthz", namespaced=False).stdout.strip() == "ok"
    version = json.loads(kube.run("version", "-o", "json", namespaced=False).stdout)
    if _is_kwok_lab():
        pinned = dict(line.strip().split("=", 1) for line in open(os.path.join(HERE, "versions.env"))
                      if "=" in line and not line.lstrip().startswith("#"))
        assert version["serverVersion"]["gitVersion"] == pinned["KUBERNETES_VERSION"]


def test_node_ready(kube):
    nodes = json.loads(kube.run("get", "nodes", "-o", "json", namespaced=False).stdout)["items"]
    ready = [n for n in nodes if _condition(n, "Ready") == "True"]
    assert ready, "no Ready node among %s" % [n["metadata"]["name"] for n in nodes]
    if _is_kwok_lab():
        # Everything the apiserver sends to a "kubelet" must stay on loopback.
        for n in nodes:
            for a in n["status"].get("addresses", []):
                if a["type"] in ("InternalIP", "ExternalIP"):
                    assert ipaddress.ip_address(a["address"]).is_loopback, (n["metadata"]["name"], a)


def test_deployment_two_replicas_available(kube):
    kube.apply({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": _labels("web")}, "template": _pod_template("web", [8080])},
    })

    def available():
        d = kube.get("deployment", "web")
        return _condition(d, "Available") == "True" and d["status"].get("availableReplicas") == 2

    kube.wait_for("Deployment web with 2 available replicas", available)


def test_job_completes(kube):
    tpl = _pod_template("job-ok", run_to_completion=True)
    tpl["spec"]["restartPolicy"] = "Never"
    kube.apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job-ok"},
                "spec": {"backoffLimit": 0, "template": tpl}})
    kube.wait_for("Job job-ok Complete", lambda: _condition(kube.get("job", "job-ok"), "Complete") == "True")
    assert kube.get("job", "job-ok")["status"].get("succeeded") == 1


def test_job_with_fail_label_fails(kube):
    if not _is_kwok_lab():
        pytest.skip("the %s label is a feature of the lab's kwok stages" % FAIL_LABEL)
    tpl = _pod_template("job-bad", extra_labels={FAIL_LABEL: "true"})
    tpl["spec"]["restartPolicy"] = "Never"
    kube.apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job-bad"},
                "spec": {"backoffLimit": 1, "template": tpl}})
    kube.wait_for("Job job-bad Failed", lambda: _condition(kube.get("job", "job-bad"), "Failed") == "True", 120)
    job = kube.get("job", "job-bad")
    assert not job["status"].get("succeeded")
    assert job["status"].get("failed", 0) >= 1


def test_logs_of_simulated_pod(kube):
    if not _is_kwok_lab():
        pytest.skip("simulated logs are a feature of the lab's kwok configuration")
    kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "logs", "labels": _labels("logs")},
                "spec": _pod_template("logs")["spec"]})
    kube.wait_for("pod logs Ready", lambda: _condition(kube.get("pod", "logs"), "Ready") == "True")
    out = kube.run("logs", "logs").stdout
    assert "simulated by kwok" in out, out


def test_statefulset_with_pvc_ready(kube):
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                "spec": {"clusterIP": "None", "selector": _labels("db"), "ports": [{"port": 5432}]}})
    kube.apply({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db", "replicas": 1, "selector": {"matchLabels": _labels("db")},
            "template": _pod_template("db", [5432]),
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    })
    kube.wait_for("StatefulSet db ready", lambda: kube.get("statefulset", "db")["status"].get("readyReplicas") == 1)
    pvc = kube.get("pvc", "data-db-0")
    assert pvc["status"]["phase"] == "Bound"


# --- port-forward through kwok to the real local services -----------------------------------

class PortForward:
    def __init__(self, kube, target, port):
        self.proc = subprocess.Popen(
            [kube.kubectl, "--kubeconfig", kube.kubeconfig, "-n", kube.ns, "port-forward",
             "--address", "127.0.0.1", target, ":%d" % port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
        if not m:
            self.close()
            raise AssertionError("port-forward %s %d did not start: %r %s" % (target, port, line, self.proc.stderr.read()))
        self.local_port = int(m.group(1))

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def service_pod(kube):
    if not _is_kwok_lab():
        pytest.skip("port-forward to the lab services needs the lab's kwok cluster")
    kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "services", "labels": _labels("services")},
                "spec": _pod_template("services", [5432, 6379, 8333, 9000, 9200])["spec"]})
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "postgresql"},
                "spec": {"selector": _labels("services"), "ports": [{"port": 5432, "targetPort": 5432}]}})
    kube.wait_for("pod services Ready", lambda: _condition(kube.get("pod", "services"), "Ready") == "True")
    return "services"


@pytest.mark.parametrize("target", ["pod/services", "svc/postgresql"])
def test_port_forward_reaches_postgresql(kube, service_pod, target):
    host, user, password = _env("LAB_PG_HOST", "LAB_PG_USER", "LAB_PG_PASSWORD")
    psql = shutil.which("psql") or "/usr/bin/psql"
    pf = PortForward(kube, target, 5432)
    try:
        proc = subprocess.run(
            [psql, "-h", "127.0.0.1", "-p", str(pf.local_port), "-U", user, "-d", "postgres", "-Atc",
             "select current_user || ' ' || inet_server_port()"],
            env=dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10"),
            capture_output=True, text=True, timeout=30, check=False)
    finally:
        pf.close()
    assert proc.returncode == 0, proc.stderr
    # Logged in as the lab superuser on the lab PostgreSQL's real port.
    assert proc.stdout.strip() == "%s %s" % (user, os.environ.get("LAB_PG_PORT", "15432"))


def test_port_forward_reaches_redis(kube, service_pod):
    (url,) = _env("LAB_REDIS_URL")
    password = re.match(r"redis://[^:]*:([^@]*)@", url).group(1)
    import socket
    pf = PortForward(kube, "pod/services", 6379)
    try:
        with socket.create_connection(("127.0.0.1", pf.local_port), timeout=10) as s:
            s.sendall(("AUTH default %s\r\nPING\r\n" % password).encode())
            data = b""
            while data.count(b"\r\n") < 2:
                chunk = s.recv(1024)
                if not chunk:
                    break
                data += chunk
    finally:
        pf.close()
    assert data == b"+OK\r\n+PONG\r\n", data


def test_port_forward_reaches_s3(kube, service_pod):
    _env("LAB_S3_ENDPOINT")
    pf = PortForward(kube, "pod/services", 9000)
    try:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/" % pf.local_port, timeout=10) as r:
                body, status = r.read(), r.status
        except urllib.error.HTTPError as e:
            body, status = e.read(), e.code
    finally:
        pf.close()
    # An anonymous request to the S3 root answers with S3 XML (an empty bucket list or an error).
    assert status in (200, 403), status
    assert b"<?xml" in body or b"ListAllMyBucketsResult" in body, body[:200]


def test_port_forward_to_8333_reaches_seaweedfs(kube, service_pod):
    """The in-cluster S3 server's port reaches the lab's SeaweedFS: its admin keys are accepted there."""
    url, access_key, secret_key = _env("LAB_SEAWEEDFS_URL", "LAB_SEAWEEDFS_ACCESS_KEY", "LAB_SEAWEEDFS_SECRET_KEY")
    import boto3
    pf = PortForward(kube, "pod/services", 8333)
    try:
        client = boto3.client("s3", endpoint_url="http://127.0.0.1:%d" % pf.local_port, aws_access_key_id=access_key,
                              aws_secret_access_key=secret_key, region_name="us-east-1")
        answer = client.list_buckets()
    finally:
        pf.close()
    assert answer["ResponseMetadata"]["HTTPHeaders"]["server"].startswith("SeaweedFS"), answer["ResponseMetadata"]


def test_port_forward_reaches_opensearch(kube, service_pod):
    url, password, ca = _env("LAB_OPENSEARCH_URL", "LAB_OPENSEARCH_PASSWORD", "LAB_OPENSEARCH_CA")
    import ssl
    pf = PortForward(kube, "pod/services", 9200)
    try:
        token = base64.b64encode(("admin:%s" % password).encode()).decode()
        request = urllib.request.Request("https://127.0.0.1:%d/" % pf.local_port, headers={"Authorization": "Basic " + token})
        with urllib.request.urlopen(request, timeout=30, context=ssl.create_default_context(cafile=ca)) as r:
            body = json.loads(r.read())
    finally:
        pf.close()
    assert body["version"]["distribution"] == "opensearch" and body["version"]["number"].startswith("2.19."), body


# --- SMTP ----------------------------------------------------------------------------------

def test_smtp_needs_starttls_before_auth_and_keeps_the_mail():
    host, port, user, password, ca, maildir = _env("LAB_SMTP_HOST", "LAB_SMTP_PORT", "LAB_SMTP_USER", "LAB_SMTP_PASSWORD",
                                                   "LAB_SMTP_CA_CERT", "LAB_SMTP_MAILDIR")
    import mailbox
    import smtplib
    import ssl
    with smtplib.SMTP(host, int(port), timeout=10) as plain:
        plain.ehlo()
        assert "starttls" in plain.esmtp_features and "auth" not in plain.esmtp_features
        code, dummy = plain.docmd("AUTH", "PLAIN")
        assert code == 530, code                  # must issue STARTTLS first
    subject = "lab-selftest-" + uuid.uuid4().hex[:8]
    with smtplib.SMTP(host, int(port), timeout=10) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=ca))
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login(user, "wrong-" + password)
        smtp.login(user, password)
        smtp.sendmail("notifications@mastodon.lab.test", ["someone@example.test"],
                      "Subject: %s\r\n\r\nhello" % subject)
    kept = [m for m in mailbox.Maildir(maildir, create=False) if m["Subject"] == subject]
    assert len(kept) == 1 and kept[0]["X-Lab-Authenticated-As"] == user


# --- S3 ------------------------------------------------------------------------------------

def test_s3_anonymous_get_allowed_by_policy_and_list_refused():
    endpoint, key, secret = _env("LAB_S3_ENDPOINT", "LAB_S3_ACCESS_KEY", "LAB_S3_SECRET_KEY")
    boto3 = pytest.importorskip("boto3")
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                      region_name="us-east-1")
    bucket = "lab-selftest-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello lab")
        url = "%s/%s/hello.txt" % (endpoint.rstrip("/"), bucket)

        def anon(u):
            try:
                with urllib.request.urlopen(u, timeout=10) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()

        assert anon(url)[0] == 403, "anonymous GET must be refused without a policy"
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
                           "Resource": ["arn:aws:s3:::%s/*" % bucket]}],
        }))
        assert anon(url) == (200, b"hello lab")
        assert anon("%s/%s" % (endpoint.rstrip("/"), bucket))[0] == 403, "anonymous LIST must be refused"
    finally:
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)


# --- loopback only ---------------------------------------------------------------------------

def _lab_pids(state):
    """Pids of every process the lab started: the pids in its pid files, and their descendants."""
    roots = set()
    for dirpath, _dirs, files in os.walk(state):
        for f in files:
            if f.endswith(".pid"):
                try:
                    with open(os.path.join(dirpath, f)) as fh:
                        roots.add(int(fh.readline().strip()))
                except (OSError, ValueError):
                    pass
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as fh:
                    parent[int(d)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    pids = {p for p in roots if p in parent}
    grew = True
    while grew:
        new = {p for p, pp in parent.items() if pp in pids} - pids
        grew = bool(new)
        pids |= new
    return pids


def _sockets(*args):
    """(local address, peer address, owning pids, line) of each socket `ss -Hnp ARGS` lists."""
    out = subprocess.run(["ss", "-Hnp"] + list(args), capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        addrs = [f for f in line.split() if ":" in f and not f.startswith("users:")]
        if len(addrs) < 2:
            continue
        yield _addr(addrs[0]), _addr(addrs[1]), {int(p) for p in re.findall(r"pid=(\d+)", line)}, line


def _addr(hostport):
    host = hostport.rsplit(":", 1)[0].strip("[]")
    return host.split("%", 1)[0]


def _is_loopback(a):
    address = ipaddress.ip_address(a)
    # a Java server may show its IPv4 loopback as the IPv4-mapped IPv6 address ::ffff:127.0.0.1
    return address.is_loopback or bool(getattr(address, "ipv4_mapped", None) and address.ipv4_mapped.is_loopback)


def _loopback_or_wildcard_peer(a):
    return a in ("*", "0.0.0.0", "::") or _is_loopback(a)


def test_lab_processes_use_loopback_only():
    (state,) = _env("LAB_STATE")
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    pids = _lab_pids(state)
    if not pids and not _is_kwok_lab():
        pytest.skip("no lab process runs from %s (external cluster, no local services)" % state)
    assert pids, "no running lab process found under %s" % state
    seen, bad = 0, []
    for local, peer, owners, line in _sockets("-t", "state", "established"):
        if owners & pids:
            seen += 1
            if not (_is_loopback(local) and _is_loopback(peer)):
                bad.append(line)
    assert not bad, "established TCP connections of lab processes with a non-loopback address:\n" + "\n".join(bad)
    assert seen > 0, "no established connection of a lab process seen (pids %s)" % sorted(pids)
    for local, peer, owners, line in _sockets("-t", "-l"):
        if owners & pids:
            assert local != "*" and _is_loopback(local), "lab process listens beyond loopback: " + line
    # Connected UDP sockets (e.g. DNS queries) must not point off the machine either.
    for local, peer, owners, line in _sockets("-u", "-a"):
        if owners & pids:
            assert _loopback_or_wildcard_peer(peer), "lab process has a UDP socket to a non-loopback peer: " + line


def test_seaweedfs_starts_from_an_empty_state(tmp_path):
    """A new machine's first ``lab.sh up`` starts SeaweedFS (once refused: the forked shell's pid
    did not look like the server yet, so a fresh start was taken for a crash)."""
    (binary,) = _env("LAB_SEAWEEDFS_BIN")
    script = os.path.join(HERE, "services", "seaweedfs.sh")
    env = dict(os.environ, LAB_STATE=str(tmp_path / "state"), LAB_PORT_OFFSET="57",
               LAB_CACHE=os.path.dirname(os.path.dirname(binary)))
    try:
        up = subprocess.run(["bash", script, "up"], env=env, capture_output=True, text=True, timeout=180, check=False)
        assert up.returncode == 0, up.stderr
        status = subprocess.run(["bash", script, "status"], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert status.returncode == 0 and " up " in status.stdout, status.stdout + status.stderr
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % (18300 + 57), timeout=10) as resp:
            assert resp.status == 200
    finally:
        subprocess.run(["bash", script, "down"], env=env, capture_output=True, timeout=120, check=False)


def test_audit_log_records_requests_by_verb(kube):
    if not _is_kwok_lab():
        pytest.skip("LAB_AUDIT_LOG is only set for the lab's own cluster")
    path = os.environ["LAB_AUDIT_LOG"]
    marker = "audit-probe-" + uuid.uuid4().hex[:8]
    kube.run("create", "configmap", marker)
    found = False
    deadline = time.time() + 30
    while time.time() < deadline and not found:
        with open(path) as fh:
            for line in fh:
                if marker in line:
                    ev = json.loads(line)
                    found = ev["verb"] == "create" and ev["objectRef"]["resource"] == "configmaps"
                    if found:
                        break
        time.sleep(1)
    assert found, "create of configmap %s not in %s" % (marker, path)
