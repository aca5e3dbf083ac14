# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input is refused by preflight, before anything changes: the real site.yml, the shipped
inventories/prod, the lab's real kube-apiserver and its audit log.

Every case is one instance (one inventory host) whose host_vars are the shipped prod instance's
plus one mistake an operator really makes. All cases run in one `ansible-playbook site.yml`, as
one inventory with many instances, so the suite costs one run. For each case:

- the host fails in preflight (the failing task is the preflight role's), and in no later phase;
- the message has one line per problem, and a line starts with the variable to fix;
- no traceback and no argument-spec dump anywhere in the output;
and for the whole run: the audit log shows zero mutating requests from anything but the control
plane, and none of the cases' namespaces exists afterwards.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from ansible_run import REPO, ansible_env
from audit import AuditWindow

pytestmark = pytest.mark.lab

PROD = os.path.join(REPO, "inventories", "prod")
LONG = "a" * 40

# (case id, overrides of the prod instance's host_vars, the variable the message must name).
# Every address is on loopback (port 9 is closed): preflight may try to log in, and a test here
# never connects anywhere else.
CASES = [
    ("s3-api-choice", {"provision_s3_api": "s3"}, "provision_s3_api"),
    ("version-no-v", {"mastodon_version": "4.6.3"}, "mastodon_version"),
    ("version-build-metadata", {"mastodon_version": "v4.6.3+glitch.1"}, "mastodon_version"),
    ("version-not-semver", {"mastodon_version": "latest"}, "mastodon_version"),
    ("version-missing", {"mastodon_version": None}, "mastodon_version"),
    ("custom-tag-invalid", {"mastodon_version": "my tag", "mastodon_version_guard": False}, "mastodon_version"),
    ("domain-uppercase", {"mastodon_local_domain": "Social.Example.org"}, "mastodon_local_domain"),
    ("domain-missing", {"mastodon_local_domain": None}, "mastodon_local_domain"),
    ("domain-single-label", {"mastodon_local_domain": "mastodon"}, "mastodon_local_domain"),
    ("web-domain-underscore", {"mastodon_web_domain": "www_social.example.org"}, "mastodon_web_domain"),
    ("alternate-domain", {"mastodon_alternate_domains": ["ok.example.org", "not a domain"]}, "mastodon_alternate_domains"),
    ("instance-uppercase", {"mastodon_instance": "Social"}, "mastodon_instance"),
    ("instance-too-long", {"mastodon_instance": LONG + "b"}, "mastodon_instance"),
    ("job-name-over-63", {"mastodon_instance": LONG, "mastodon_version": "v4.6.3-rc.1"}, "mastodon_instance"),
    ("namespace-underscore", {"mastodon_namespace": "my_social"}, "mastodon_namespace"),
    ("pg-mode-choice", {"postgresql_mode": "managed"}, "postgresql_mode"),
    ("pg-external-no-host", {"postgresql_mode": "external"}, "postgresql_external_host"),
    ("pg-external-port-type", {"postgresql_mode": "external", "postgresql_external_host": "127.0.0.1",
                               "postgresql_external_port": "five-four-three-two"}, "postgresql_external_port"),
    ("redis-external-no-host", {"redis_mode": "external"}, "redis_external_host"),
    ("search-external-no-host", {"elasticsearch_mode": "external"}, "elasticsearch_external_host"),
    ("search-flavor-choice", {"elasticsearch_flavor": "solr"}, "elasticsearch_flavor"),
    ("search-enabled-type", {"elasticsearch_enabled": "sometimes"}, "elasticsearch_enabled"),
    ("reindex-without-search", {"elasticsearch_enabled": False, "mastodon_search_reindex": True}, "mastodon_search_reindex"),
    ("s3-external-no-endpoint", {"minio_mode": "external"}, "minio_external_endpoint"),
    ("s3-endpoint-with-path", {"minio_mode": "external", "minio_external_endpoint": "https://127.0.0.1:9/social-media"},
     "minio_external_endpoint"),
    ("s3-endpoint-no-scheme", {"minio_mode": "external", "minio_external_endpoint": "127.0.0.1:9"}, "minio_external_endpoint"),
    ("s3-endpoint-credentials", {"minio_mode": "external", "minio_external_endpoint": "https://AKIA:pw@127.0.0.1:9"},
     "minio_external_endpoint"),
    ("pg-image-too-old", {"postgresql_image": "postgres:13.20-alpine"}, "postgresql_image"),
    ("redis-image-too-old", {"redis_image": "redis:6.2.19-alpine"}, "redis_image"),
    ("pg-floor-below", {"preflight_postgresql_min_version": "12"}, "preflight_postgresql_min_version"),
    ("sidekiq-no-scheduler", {"mastodon_sidekiq_workers": [{"name": "all", "queues": ["default", "push"]}]},
     "mastodon_sidekiq_workers"),
    ("sidekiq-two-schedulers", {"mastodon_sidekiq_workers": [{"name": "all", "queues": ["scheduler"], "replicas": 2}]},
     "mastodon_sidekiq_workers"),
    ("sidekiq-duplicate-names", {"mastodon_sidekiq_workers": [{"name": "w", "queues": ["scheduler"]},
                                                              {"name": "w", "queues": ["default"]}]},
     "mastodon_sidekiq_workers"),
    ("sidekiq-wrong-type", {"mastodon_sidekiq_workers": ["default"]}, "mastodon_sidekiq_workers"),
    ("smtp-login-without-password", {"mastodon_smtp_server": "127.0.0.1", "mastodon_smtp_port": 9, "mastodon_smtp_login": "social"},
     "mastodon_smtp_password"),
    ("smtp-starttls-choice", {"mastodon_smtp_enable_starttls": "sometimes"}, "mastodon_smtp_enable_starttls"),
    ("smtp-delivery-choice", {"mastodon_smtp_delivery_method": "pigeon"}, "mastodon_smtp_delivery_method"),
    ("kubeconfig-inline", {"mastodon_k8s_kubeconfig": {"apiVersion": "v1", "kind": "Config", "clusters": []}},
     "mastodon_k8s_kubeconfig"),
    ("routing-choice", {"mastodon_routing": "gateway"}, "mastodon_routing"),
    ("httproute-without-crd", {"mastodon_routing": "httproute"}, "mastodon_routing"),
    ("ingress-class-missing", {"mastodon_ingress_class_name": "no-such-class"}, "mastodon_ingress_class_name"),
    ("cluster-issuer-without-cert-manager", {"mastodon_ingress_cluster_issuer": "letsencrypt"},
     "mastodon_ingress_cluster_issuer"),
    ("issuer-without-cert-manager", {"mastodon_ingress_issuer": "letsencrypt"}, "mastodon_ingress_issuer"),
    ("replicas-type", {"mastodon_web_replicas": "three"}, "mastodon_web_replicas"),
    ("storage-size-type", {"postgresql_storage_size": "lots"}, "postgresql_storage_size"),
    ("storage-class-missing", {"postgresql_storage_class": "no-such-class"}, "postgresql_storage_class"),
    ("appendfsync-choice", {"redis_appendfsync": "sometimes"}, "redis_appendfsync"),
    ("secret-ref-type", {"mastodon_db_password_secret": "social-postgresql"}, "mastodon_db_password_secret"),
    ("downgrade-flag-type", {"mastodon_allow_downgrade": "perhaps"}, "mastodon_allow_downgrade"),
    ("kubernetes-too-old-for-floor", {"preflight_kubernetes_min_version": "1.99"}, "preflight_kubernetes_min_version"),
    # a reference to a variable nobody defined (a vault file not loaded): named, not skipped
    ("undefined-reference", {"redis_storage_class": "{{ vault_storage_class }}"}, "redis_storage_class"),
]
# Two instances on one external database server with the same role and database name: each of
# them is refused (the check sees the whole inventory).
SHARED_DB = {"postgresql_mode": "external", "postgresql_external_host": "127.0.0.1",
             "preflight_check_endpoints": False}
SHARED = [("shared-db-a", "mastodon_db_user"), ("shared-db-b", "mastodon_db_user")]


def host_name(case_id):
    return "bad-" + case_id


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if not os.environ.get("LAB_AUDIT_LOG") or not os.environ.get("KUBECONFIG"):
        pytest.skip("lab not configured: eval \"$(bash tests/lab/lab.sh env)\"")
    inv = tmp_path_factory.mktemp("bad-inventory")
    shutil.copytree(os.path.join(PROD, "group_vars"), inv / "group_vars")
    with open(os.path.join(PROD, "host_vars", "social", "main.yml")) as fh:
        base = yaml.safe_load(fh) or {}
    hosts = {}
    for case_id, overrides, dummy in CASES:
        hosts[host_name(case_id)] = dict(base, **overrides)
    for case_id, dummy in SHARED:
        hosts[host_name(case_id)] = dict(base, **SHARED_DB)
    for name, values in hosts.items():
        (inv / "host_vars" / name).mkdir(parents=True)
        (inv / "host_vars" / name / "main.yml").write_text(yaml.safe_dump(dict(values), sort_keys=False))
    (inv / "hosts.yml").write_text(yaml.safe_dump({"mastodon_instances": {"hosts": dict((h, None) for h in hosts)}}))
    env = ansible_env({"ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_FORKS": "10"})
    t0 = time.time()
    with AuditWindow() as window:
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inv),
                               os.path.join(REPO, "site.yml")], env=env,
                              capture_output=True, text=True, timeout=900, cwd=REPO, check=False)
    start = proc.stdout.find("{")
    assert start >= 0, "no JSON from ansible-playbook:\n%s\n%s" % (proc.stdout[-3000:], proc.stderr[-3000:])
    data = json.loads(proc.stdout[start:])
    # the last failure of each host is the one that stopped it (earlier ones were ignored on purpose:
    # preflight collects a held lock or an unreadable record as problems and goes on)
    failures = {}
    for play in data["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed") and not res.get("skipped"):
                    failures[host] = dict(play=play["play"]["name"], task=task["task"]["name"],
                                          role=(task["task"].get("path") or ""), msg=str(res.get("msg", "")), result=res)
    # the cases' namespaces and every cluster-scoped object (other tests of the lab may run beside)
    namespaces = set(hosts) | set(v.get("mastodon_namespace") or v.get("mastodon_instance") or h for h, v in hosts.items())
    return dict(proc=proc, failures=failures, writes=window.writes(namespaces=namespaces), hosts=sorted(hosts), data=data, seconds=time.time() - t0)


@pytest.mark.parametrize("case_id,variable", [(c[0], c[2]) for c in CASES] + SHARED,
                         ids=[c[0] for c in CASES] + [s[0] for s in SHARED])
def test_bad_input_fails_in_preflight_naming_the_variable(run, case_id, variable):
    failure = run["failures"].get(host_name(case_id))
    assert failure, "%s did not fail at all" % case_id
    assert failure["play"] == "Mastodon preflight", failure
    assert "/roles/preflight/" in failure["role"], failure
    lines = [line[2:] for line in failure["msg"].splitlines() if line.startswith("- ")]
    assert lines, failure["msg"]
    assert any(line.startswith(variable + ":") for line in lines), failure["msg"]
    for line in lines:
        assert len(line) < 600, line
        assert "argument_spec" not in line and "'options':" not in line, line


def test_no_traceback_and_no_spec_dump(run):
    text = run["proc"].stdout + run["proc"].stderr
    assert "Traceback" not in text
    for host, failure in run["failures"].items():
        assert "Traceback (most recent call last)" not in json.dumps(failure["result"]), host
        assert "argument_spec" not in json.dumps(failure["result"]), (host, failure["msg"][:500])


def test_every_case_failed_and_nothing_was_written(run):
    assert sorted(run["failures"]) == run["hosts"], set(run["hosts"]) - set(run["failures"])
    assert run["writes"] == [], "mutating requests during a run that failed in preflight:\n" + "\n".join(run["writes"])
    print("%d cases refused in one site.yml run in %.0f s" % (len(run["hosts"]), run["seconds"]))


def test_no_case_namespace_exists(run):
    kubectl = os.environ.get("LAB_KUBECTL") or "kubectl"
    out = subprocess.run([kubectl, "get", "namespaces", "-o", "name"], capture_output=True, text=True, check=True).stdout
    assert not [h for h in run["hosts"] if "namespace/" + h in out.split()]
