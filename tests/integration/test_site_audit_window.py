# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit-log reader of the site scenario (extensions/molecule/site/audit_window.py), on
audit events written here in the kube-apiserver's format: what counts as a write of the
playbooks, what is only a tunnel, which deletes are seen, and the order query. Needs no lab."""

import json
import os
import subprocess
import sys

from ansible_run import REPO

SCENARIO = os.path.join(REPO, "extensions", "molecule", "site")
sys.path.insert(0, SCENARIO)

import audit_window  # noqa: E402  pylint: disable=wrong-import-position

OURS = "fediverse.mastodon"
CLIENT = "OpenAPI-Generator/36.0.3/python"
KCM = "kube-controller-manager/v1.36.3 (linux/amd64) kubernetes/$Format/statefulset-controller"


def event(verb, resource, name, namespace="inst", agent=OURS, sub=None, uri=None, code=200, stage="ResponseComplete",
          time="2026-11-26T03:00:00.000001Z"):
    ref = {"resource": resource, "namespace": namespace, "name": name, "apiVersion": "v1"}
    if sub:
        ref["subresource"] = sub
    if namespace is None:
        del ref["namespace"]
    return {"kind": "Event", "stage": stage, "verb": verb, "userAgent": agent, "objectRef": ref,
            "requestURI": uri or "/api/v1/namespaces/%s/%s/%s" % (namespace, resource, name),
            "responseStatus": {"code": code}, "requestReceivedTimestamp": time, "stageTimestamp": time}


def write_log(path, events):
    with open(str(path), "w") as handle:
        for item in events:
            if item is None:
                handle.write("not json, or a line cut in half\n")
            else:
                handle.write(json.dumps(item) + "\n")
    return str(path)


def test_reads_only_is_zero_writes(tmp_path):
    log = write_log(tmp_path / "audit.log", [
        event("get", "secrets", "inst-postgresql"), event("list", "deployments", None, agent=CLIENT),
        event("get", "secrets", "inst-postgresql", stage="ResponseStarted"),
        event("create", "pods", "inst-web-1", agent=KCM),            # controllers write, they are not the playbook
        event("get", "pods", "inst-postgresql-0", agent=None, sub="portforward"),
        event("patch", "deployments", "other-web", namespace="other"),  # another instance's run
        None,
    ])
    result = audit_window.writes(log, 0, None, ["inst"])
    assert result["writes"] == [] and result["other_writes"] == []
    assert result["requests"] == 2 and result["by_verb"] == {"get": 1, "list": 1}
    assert result["portforwards"] == 1


def test_every_kind_of_write_is_caught(tmp_path):
    log = write_log(tmp_path / "audit.log", [
        event("patch", "deployments", "inst-web"),
        event("create", "secrets", "inst-redis", agent=CLIENT, code=409),          # refused, still an attempt
        event("patch", "configmaps", "inst-env", uri="/api/v1/namespaces/inst/configmaps/inst-env?dryRun=All&fieldManager=x"),
        event("get", "jobs", "inst-job", uri="/apis/batch/v1/namespaces/inst/jobs/inst-job?dryRun=All"),
        event("delete", "persistentvolumeclaims", "data-inst-postgresql-0", agent=KCM),
        event("create", "namespaces", "inst", namespace=None),
        event("update", "secrets", "inst-minio", agent="kubectl/v1.36.3 (linux/amd64) kubernetes/$Format"),
    ])
    result = audit_window.writes(log, 0, None, ["inst"])
    assert [(w["verb"], w["resource"]) for w in result["writes"]] == [
        ("patch", "deployments"), ("create", "secrets"), ("patch", "configmaps"), ("get", "jobs"), ("create", "namespaces")]
    assert [(w["verb"], w["resource"]) for w in result["other_writes"]] == [("update", "secrets")]
    assert [(d["resource"], d["name"]) for d in result["deleted_by_anyone"]] == [("persistentvolumeclaims", "data-inst-postgresql-0")]


def test_the_window_is_by_byte_offset(tmp_path):
    path = tmp_path / "audit.log"
    write_log(path, [event("patch", "deployments", "inst-web")])
    start = os.path.getsize(str(path))
    with open(str(path), "a") as handle:
        handle.write(json.dumps(event("get", "deployments", "inst-web")) + "\n")
    end = os.path.getsize(str(path))
    with open(str(path), "a") as handle:
        handle.write(json.dumps(event("delete", "secrets", "inst-web")) + "\n")
    inside = audit_window.writes(str(path), start, end, ["inst"])
    assert inside["writes"] == [] and inside["requests"] == 1 and inside["deleted_by_anyone"] == []
    assert len(audit_window.writes(str(path), 0, None, ["inst"])["writes"]) == 2


def test_order_takes_successful_real_requests(tmp_path):
    log = write_log(tmp_path / "audit.log", [
        event("update", "jobs", "inst-pre", sub="status", agent=KCM, time="2026-11-26T03:00:01.000000Z"),
        event("update", "jobs", "inst-pre", sub="status", agent=KCM, time="2026-11-26T03:00:02.000000Z"),
        event("create", "replicasets", "inst-web-abc", agent=KCM, code=409, time="2026-11-26T03:00:02.500000Z"),
        event("create", "replicasets", "inst-web-abc", agent=KCM, time="2026-11-26T03:00:03.000000Z"),
        event("patch", "jobs", "inst-post", uri="/apis/batch/v1/namespaces/inst/jobs/inst-post?dryRun=All", time="2026-11-26T03:00:03.500000Z"),
        event("patch", "jobs", "inst-post", time="2026-11-26T03:00:04.000000Z"),
    ])
    found = audit_window.order(log, 0, None, "inst", [
        "pre=update:jobs/status:inst-pre:last", "rs=create:replicasets:inst-web-abc:first",
        "post=create,patch:jobs:inst-post:first", "none=delete:jobs:inst-pre:first"])
    assert found == {"pre": "2026-11-26T03:00:02.000000Z", "rs": "2026-11-26T03:00:03.000000Z",
                     "post": "2026-11-26T03:00:04.000000Z", "none": None}


def test_command_line(tmp_path):
    log = write_log(tmp_path / "audit.log", [event("patch", "deployments", "inst-web")])
    marks = str(tmp_path / "marks")
    script = os.path.join(SCENARIO, "audit_window.py")
    subprocess.run([sys.executable, script, "mark", log, marks, "start"], check=True)
    with open(marks) as handle:
        assert handle.read() == "start %d\n" % os.path.getsize(log)
    out = subprocess.run([sys.executable, script, "writes", log, "0", "-", "inst"], check=True, capture_output=True, text=True).stdout
    assert len(json.loads(out)["writes"]) == 1
    assert subprocess.run([sys.executable, script, "nonsense"], capture_output=True, check=False).returncode == 2
