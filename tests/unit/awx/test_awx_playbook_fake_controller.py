# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""awx/configure.yml run for real (ansible-playbook, the installed awx.awx modules) against a FAKE
AWX API on 127.0.0.1 (fake_awx_api.py): no AWX can run here. The fake applies AWX's rules and
records what it accepted, so these tests see the objects as AWX would hold them, the second
run's idempotence, and that the kubeconfig never shows in the output, even at -vvv.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import awx_emulation as awx  # noqa: E402  pylint: disable=wrong-import-position
from fake_awx_api import FakeAWX, project_playbooks  # noqa: E402  pylint: disable=wrong-import-position

REFERENCED = ("site.yml", "playbooks/upgrade.yml", "playbooks/teardown.yml")
SECRET = "fake-awx-secret-%s" % uuid.uuid4().hex
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://127.0.0.1:16443", insecure-skip-tls-verify: true}
users:
- name: deployer
  user: {token: %s}
contexts:
- name: prod
  context: {cluster: prod, user: deployer}
current-context: prod
""" % SECRET


def _run(url, token, kubeconfig_file, *args, **kwargs):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("CONTROLLER_", "TOWER_")))
    env.update({"CONTROLLER_HOST": url, "CONTROLLER_OAUTH_TOKEN": token, "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_STDOUT_CALLBACK": kwargs.get("callback", "json"), "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
                "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
                "ANSIBLE_PIPELINING": "1"})
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", awx.PLAYBOOK,
           "-e", "mastodon_awx_scm_url=https://git.example.org/ops/fediverse-mastodon.git",
           "-e", "mastodon_awx_ee_image=registry.example.org/ops/mastodon-ee:0.1.0",
           "-e", "mastodon_awx_kubeconfig_file=%s" % kubeconfig_file,
           "-e", "mastodon_awx_vault_credential='Mastodon vault'"] + list(args)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False, cwd=awx.REPO)
    data = None
    if env["ANSIBLE_STDOUT_CALLBACK"] == "json":
        start = proc.stdout.find("{")
        data = json.loads(proc.stdout[start:]) if start >= 0 else None
    return proc, data


def _changed_tasks(data):
    out = []
    for task in data["plays"][0]["tasks"]:
        result = task["hosts"]["localhost"]
        if result.get("changed"):
            out.append(task["task"]["name"])
        for item in result.get("results", []):
            if item.get("changed") and task["task"]["name"] not in out:
                out.append(task["task"]["name"])
    return out


@pytest.fixture(scope="module")
def controller(tmp_path_factory):
    token = uuid.uuid4().hex
    missing = [p for p in REFERENCED if p not in project_playbooks(awx.REPO)]
    fake = FakeAWX(awx.REPO, token, assume_playbooks=missing)
    vault_type = fake._add("credential_types", {"name": "Vault", "kind": "vault", "managed": True, "inputs": {
        "fields": [{"id": "vault_password", "label": "Vault Password", "type": "string", "secret": True}]}})
    fake._add("credentials", {"name": "Mastodon vault", "credential_type": vault_type["id"],
                              "organization": fake.by_name("organizations", "Default")["id"],
                              "inputs": {"vault_password": "not-used"}})
    url = fake.start()
    kubeconfig_file = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig_file.write_text(KUBECONFIG)
    # what an operator sees: the default output, at -vvv
    first = _run(url, token, str(kubeconfig_file), "-vvv", callback="default")
    second = _run(url, token, str(kubeconfig_file))
    yield {"fake": fake, "url": url, "token": token, "kubeconfig": str(kubeconfig_file),
           "first": first, "second": second, "missing": missing}
    fake.stop()


def test_fake_controller_first_run_creates_everything(controller):
    proc, _data = controller["first"]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = re.search(r"^localhost\s*: ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0", proc.stdout, re.M)
    assert recap, proc.stdout[-2000:]
    # 2 checks + credential type, credential, EE, project, inventory, inventory source, templates
    assert (int(recap.group(1)), int(recap.group(2))) == (9, 7)


def test_fake_controller_kubeconfig_never_in_output_even_at_vvv(controller):
    proc, _data = controller["first"]
    assert SECRET not in proc.stdout and SECRET not in proc.stderr
    assert controller["token"] not in proc.stdout and controller["token"] not in proc.stderr


def test_fake_controller_holds_the_declared_objects(controller):
    fake = controller["fake"]
    org = fake.by_name("organizations", "Default")
    ctype = fake.by_name("credential_types", "Kubernetes kubeconfig")
    assert ctype["kind"] == "cloud" and ctype["managed"] is False
    assert ctype["injectors"]["env"] == {"K8S_AUTH_KUBECONFIG": "{{ tower.filename.kubeconfig }}"}
    cred = fake.by_name("credentials", "Mastodon cluster kubeconfig")
    assert cred["credential_type"] == ctype["id"] and cred["organization"] == org["id"]
    assert cred["inputs"] == {"kubeconfig": "$encrypted$"}
    assert fake.secret_input("Mastodon cluster kubeconfig", "kubeconfig") == KUBECONFIG.rstrip("\n")
    ee = fake.by_name("execution_environments", "fediverse.mastodon")
    assert ee["image"] == "registry.example.org/ops/mastodon-ee:0.1.0" and ee["pull"] == "missing"
    project = fake.by_name("projects", "fediverse.mastodon")
    assert project["scm_url"] == "https://git.example.org/ops/fediverse-mastodon.git"
    assert project["default_environment"] == ee["id"] and project["organization"] == org["id"]
    inventory = fake.by_name("inventories", "Mastodon instances")
    source = fake.by_name("inventory_sources", "Mastodon instances from inventories/prod")
    assert source["inventory"] == inventory["id"] and source["source_project"] == project["id"]
    assert source["source"] == "scm" and source["source_path"] == "inventories/prod"
    vault = fake.by_name("credentials", "Mastodon vault")
    templates = dict((jt["name"], jt) for jt in fake.objects("job_templates"))
    assert sorted(templates) == ["Mastodon backup", "Mastodon deploy", "Mastodon teardown", "Mastodon upgrade"]
    for jt in templates.values():
        assert jt["project"] == project["id"] and jt["inventory"] == inventory["id"]
        assert jt["execution_environment"] == ee["id"]
        assert jt["ask_limit_on_launch"] is True and jt["limit"] == "choose-one-instance"
        assert fake.jt_credentials[jt["id"]] == [cred["id"], vault["id"]]
    assert templates["Mastodon deploy"]["playbook"] == "site.yml"
    assert fake.surveys[templates["Mastodon deploy"]["id"]] == {}
    assert templates["Mastodon backup"]["playbook"] == "playbooks/backup.yml"
    upgrade = fake.surveys[templates["Mastodon upgrade"]["id"]]
    assert [q["variable"] for q in upgrade["spec"]] == ["mastodon_version"]
    teardown = fake.surveys[templates["Mastodon teardown"]["id"]]
    assert [q["variable"] for q in teardown["spec"]] == ["teardown_confirm", "teardown_delete_data"]
    assert templates["Mastodon teardown"]["survey_enabled"] is True


def test_fake_controller_stored_credential_injects_the_kubeconfig(controller, tmp_path):
    fake = controller["fake"]
    ctype = fake.by_name("credential_types", "Kubernetes kubeconfig")
    secret = fake.secret_input("Mastodon cluster kubeconfig", "kubeconfig")
    env, _files = awx.inject_credential(ctype["inputs"], ctype["injectors"], {"kubeconfig": secret}, str(tmp_path))
    with open(env["K8S_AUTH_KUBECONFIG"]) as fh:
        assert fh.read() == KUBECONFIG.rstrip("\n")


def test_fake_controller_second_run_changes_only_the_secret(controller):
    proc, data = controller["second"]
    assert proc.returncode == 0, proc.stdout[-4000:]
    # AWX never returns a secret, so awx.awx re-sends the kubeconfig and reports a change;
    # everything else is compared with what the controller holds and left alone
    assert _changed_tasks(data) == ["Store the cluster kubeconfig as a credential"]
    assert len(controller["fake"].objects("job_templates")) == 4


def test_fake_controller_drift_is_corrected(controller):
    fake = controller["fake"]
    jt = fake.by_name("job_templates", "Mastodon teardown")
    fake.db["job_templates"][jt["id"]]["ask_limit_on_launch"] = False
    fake.surveys[jt["id"]] = {}
    proc, data = _run(controller["url"], controller["token"], controller["kubeconfig"])
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Declare the job templates" in _changed_tasks(data)
    assert fake.db["job_templates"][jt["id"]]["ask_limit_on_launch"] is True
    assert [q["variable"] for q in fake.surveys[jt["id"]]["spec"]] == ["teardown_confirm", "teardown_delete_data"]


def test_fake_controller_rejects_a_wrong_token(controller):
    proc, data = _run(controller["url"], "not-the-token", controller["kubeconfig"])
    assert proc.returncode != 0
    assert "Invalid authentication credentials" in proc.stdout


@pytest.mark.parametrize("playbook", REFERENCED)
def test_job_template_playbooks_exist_in_the_project(playbook):
    if playbook not in project_playbooks(awx.REPO):
        pytest.skip("%s is not in the tree yet (the fake controller assumed it)" % playbook)
    assert os.path.isfile(os.path.join(awx.REPO, playbook))
