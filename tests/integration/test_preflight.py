# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fediverse.mastodon.cluster_check and the preflight role against the lab (real kube-apiserver,
PostgreSQL, Redis and S3), through the real ansible-playbook.

Needs KUBECONFIG, LAB_KUBECTL and the LAB_* endpoints from `make -s lab-env`; skips without them.
"""

import json
import os
import socket
import subprocess
import sys
import uuid

import pytest
import yaml

from ansible_run import run_module, run_playbook

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover
    from urlparse import urlsplit

pytestmark = [pytest.mark.lab, pytest.mark.skipif(
    not (os.environ.get("KUBECONFIG") and os.environ.get("LAB_PG_HOST") and os.environ.get("LAB_S3_ENDPOINT")
         and os.environ.get("LAB_REDIS_URL")),
    reason="needs the lab: eval \"$(make -s lab-env)\"")]

KUBECTL = os.environ.get("LAB_KUBECTL", "kubectl")
ENV = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}


def kubectl(*args, **kwargs):
    return subprocess.run([KUBECTL] + list(args), capture_output=True, text=True, check=kwargs.get("check", True), input=kwargs.get("input"))


def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def namespace_exists(name):
    return kubectl("get", "namespace", name, check=False).returncode == 0


# ---- cluster_check --------------------------------------------------------------------------------

def test_cluster_check_passes_on_the_lab():
    result = run_module("cluster_check", dict(namespace="default", storage_classes=[
        dict(name=None, variables=["postgresql_storage_class"]), dict(name="lab-hostpath", variables=["redis_storage_class"])],
        read_deployments=["no-such-web"]), env=ENV)[0]
    assert not result.get("failed"), result.get("msg")
    assert result["problems"] == []
    assert result["namespace_exists"] is True and result["namespace_create_allowed"] is None
    assert result["server_version"]["gitVersion"].startswith("v1.")
    assert result["storage_classes"]["lab-hostpath"] is True
    assert result["deployments"]["no-such-web"]["exists"] is False


def test_cluster_check_missing_namespace_and_class_are_all_reported():
    namespace = "pf-" + uuid.uuid4().hex[:8]
    args = dict(namespace=namespace, namespace_may_be_created=False, min_version="1.99",
                storage_classes=[dict(name="gold", variables=["minio_storage_class"])],
                variables=dict(namespace="mastodon_namespace", min_version="preflight_kubernetes_min_version"))
    result = run_module("cluster_check", args, env=ENV)[0]
    assert result.get("failed") is True
    problems = result["problems"]
    assert [p.split(":")[0] for p in problems] == ["preflight_kubernetes_min_version", "mastodon_namespace", "minio_storage_class"]
    assert "the namespace %s does not exist" % namespace in problems[1]
    assert "the StorageClass gold does not exist (the cluster has: lab-hostpath)" in problems[2]
    assert not namespace_exists(namespace)


def test_cluster_check_asks_whether_a_missing_namespace_may_be_created():
    namespace = "pf-" + uuid.uuid4().hex[:8]
    result = run_module("cluster_check", dict(namespace=namespace), check=True, env=ENV)[0]
    assert result["problems"] == [] and result["namespace_exists"] is False and result["namespace_create_allowed"] is True
    assert not namespace_exists(namespace)


def test_cluster_check_unreachable_api_names_the_kubeconfig(tmp_path):
    with open(os.environ["KUBECONFIG"]) as handle:
        config = yaml.safe_load(handle)
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:%d" % closed_port()
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    args = dict(kubeconfig=str(path), namespace="default", variables=dict(kubeconfig="preflight_kubeconfig"))
    result = run_module("cluster_check", args, env=ENV)[0]
    assert result.get("failed") is True
    assert len(result["problems"]) == 1
    assert result["problems"][0].startswith("preflight_kubeconfig: the Kubernetes API cannot be reached")


# ---- the role -------------------------------------------------------------------------------------

def role_play(variables, name="preflight"):
    """A play that runs the role without failing and prints its problems and report as JSON."""
    base = dict(preflight_kubeconfig=os.environ["KUBECONFIG"], preflight_fail_on_problem=False, mastodon_version="v4.6.3",
                mastodon_local_domain="preflight.lab.test", elasticsearch_enabled=False)
    base.update(variables)
    return {"name": name, "hosts": "localhost", "gather_facts": False, "vars": base, "tasks": [
        {"name": "Run the role", "ansible.builtin.include_role": {"name": "fediverse.mastodon.preflight"}},
        {"name": "Print the outcome", "ansible.builtin.debug": {
            "msg": "OUTCOME={{ {'problems': preflight_problems, 'report': preflight_report} | to_json }}"}},
    ]}


def outcomes(proc):
    """The OUTCOME of every play, read from the json callback's output."""
    start = proc.stdout.find("{")
    assert start >= 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    data = json.loads(proc.stdout[start:])
    found = []
    for play in data["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == "Print the outcome":
                found.append(json.loads(task["hosts"]["localhost"]["msg"].split("OUTCOME=", 1)[1]))
    assert found, proc.stdout[-3000:]
    return found


@pytest.fixture
def web_namespace():
    """A namespace whose <instance>-web Deployment runs Mastodon v4.4.2."""
    name = "pf-" + uuid.uuid4().hex[:8]
    kubectl("create", "namespace", name)
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name + "-web", "namespace": name},
                  "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "web", "image": "ghcr.io/mastodon/mastodon:v4.4.2"}]}}}}
    kubectl("apply", "-f", "-", input=json.dumps(deployment))
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_role_version_guard_against_the_running_deployment(web_namespace):
    common = dict(mastodon_instance=web_namespace)
    plays = [role_play(dict(common, mastodon_version=version), name=version)
             for version in ("v4.6.3", "v4.3.9", "v4.5.0", "v4.4.2")]
    plays.append(role_play(dict(common, mastodon_version="v4.3.9", mastodon_allow_downgrade=True), name="allowed"))
    proc = run_playbook(plays, env=ENV, callback="json")
    assert proc.returncode == 0, proc.stdout[-3000:]
    skip, down, minor, same, allowed = outcomes(proc)
    assert skip["report"]["running_version"] == "v4.4.2"
    expected = "mastodon_version: %s runs Mastodon v4.4.2; going straight to v4.6.3 skips a minor series" % web_namespace
    assert len(skip["problems"]) == 1 and skip["problems"][0].startswith(expected)
    assert len(down["problems"]) == 1 and "a downgrade" in down["problems"][0], down
    assert minor["problems"] == [] and same["problems"] == [] and allowed["problems"] == []


def test_role_check_mode_at_vvv_creates_nothing_and_leaks_no_secret():
    """Wrong PostgreSQL and Redis passwords, good S3 keys with a missing bucket, in check mode at -vvv."""
    namespace = "pf-" + uuid.uuid4().hex[:8]
    redis = urlsplit(os.environ["LAB_REDIS_URL"])
    secrets = dict(pg="pgpw-" + uuid.uuid4().hex, redis="rdpw-" + uuid.uuid4().hex, s3=os.environ["LAB_S3_SECRET_KEY"],
                   smtp="smtppw-" + uuid.uuid4().hex)
    bucket = namespace + "-media"
    play = role_play(dict(
        mastodon_instance=namespace,
        postgresql_mode="external", postgresql_external_host=os.environ["LAB_PG_HOST"],
        postgresql_external_port=int(os.environ["LAB_PG_PORT"]), postgresql_external_admin_user=os.environ["LAB_PG_USER"],
        preflight_postgresql_admin_password=secrets["pg"],
        redis_mode="external", redis_external_host=redis.hostname, redis_external_port=redis.port,
        preflight_redis_password=secrets["redis"],
        minio_mode="external", minio_external_endpoint=os.environ["LAB_S3_ENDPOINT"],
        preflight_s3_access_key=os.environ["LAB_S3_ACCESS_KEY"], preflight_s3_secret_key=secrets["s3"],
        mastodon_smtp_server="127.0.0.1", mastodon_smtp_port=closed_port(), mastodon_smtp_login="n@lab.test",
        mastodon_smtp_password=secrets["smtp"], preflight_endpoint_timeout=5))
    proc = run_playbook([play], args=["--check", "-vvv"], env=ENV, callback="json")
    assert proc.returncode == 0, proc.stdout[-3000:]
    outcome = outcomes(proc)[0]
    heads = [p.split(":")[0] for p in outcome["problems"]]
    assert heads == ["preflight_postgresql_admin_password", "preflight_redis_password", "mastodon_smtp_server, mastodon_smtp_port"], \
        outcome["problems"]
    # the bucket is missing: in check mode it is only reported, never created
    assert outcome["report"]["endpoints"]["s3"]["bucket_exists"] is False
    assert not namespace_exists(namespace)
    output = proc.stdout + proc.stderr
    for what, value in secrets.items():
        assert value not in output, "the %s secret leaked into the -vvv output" % what


def test_role_reads_external_credentials_from_the_secrets_the_roles_name():
    """No preflight_* credentials: PostgreSQL's comes from its Secret; S3's Secret is missing, which is one problem."""
    namespace = "pf-" + uuid.uuid4().hex[:8]
    kubectl("create", "namespace", namespace)
    try:
        kubectl("create", "secret", "generic", namespace + "-postgresql-external", "-n", namespace,
                "--from-literal=postgres-password=" + os.environ["LAB_PG_PASSWORD"])
        play = role_play(dict(
            mastodon_instance=namespace,
            postgresql_mode="external", postgresql_external_host=os.environ["LAB_PG_HOST"],
            postgresql_external_port=int(os.environ["LAB_PG_PORT"]), postgresql_external_admin_user=os.environ["LAB_PG_USER"],
            minio_mode="external", minio_external_endpoint=os.environ["LAB_S3_ENDPOINT"]))
        proc = run_playbook([play], env=ENV, callback="json")
        assert proc.returncode == 0, proc.stdout[-3000:]
        outcome = outcomes(proc)[0]
        assert outcome["report"]["endpoints"]["postgresql"]["ok"] is True
        # S3 was not checked: its credentials could not be read
        assert outcome["report"]["endpoints"].get("s3", {}).get("ok") is not True
        assert outcome["report"]["endpoints"].get("s3", {"skipped": True}).get("skipped") is True
        assert outcome["problems"] == [
            "minio_external_admin_secret (Secret %s/%s-s3-external, key %s): Secret %s/%s-s3-external does not exist, so the "
            "s3 check was skipped; create that Secret"
            % (namespace, namespace, key, namespace, namespace) for key in ("access-key", "secret-key")]
        assert os.environ["LAB_PG_PASSWORD"] not in proc.stdout + proc.stderr
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_role_applies_the_other_roles_argument_specs_first():
    """Bad values for later roles are reported by preflight, each naming its variable, once."""
    play = role_play(dict(mastodon_instance="pf-specs", postgresql_mode="foo", mastodon_smtp_auth_method="weird",
                          minio_storage_size="lots"))
    proc = run_playbook([play], env=ENV, callback="json")
    assert proc.returncode == 0, proc.stdout[-3000:]
    problems = outcomes(proc)[0]["problems"]
    heads = [p.split(":")[0] for p in problems]
    assert heads == ["postgresql_mode", "minio_storage_size", "mastodon_smtp_auth_method"], problems
    assert problems[2].startswith("mastodon_smtp_auth_method: is 'weird', not one of plain, login, cram_md5, none")
