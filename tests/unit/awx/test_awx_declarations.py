# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""awx/configure.yml checked against the REAL awx.awx argument specs and AWX's own rules."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import awx_emulation as awx  # noqa: E402  pylint: disable=wrong-import-position

EXTRA_VARS = {
    "mastodon_awx_scm_url": "https://git.example.org/ops/fediverse-mastodon.git",
    "mastodon_awx_ee_image": "registry.example.org/ops/mastodon-ee:1.0.0",
}
EXPECTED_MODULES = ("credential_type", "execution_environment", "project", "inventory",
                    "inventory_source", "job_template")


@pytest.fixture(scope="module")
def kubeconfig_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    return str(path)


@pytest.fixture(scope="module")
def tasks(kubeconfig_file):
    extra = dict(EXTRA_VARS, mastodon_awx_kubeconfig_file=kubeconfig_file)
    return awx.declared_tasks(extra)


def _only(tasks, module):
    found = [t for t in tasks if t["module"] == module]
    assert len(found) == 1, "expected one awx.awx.%s call, got %d" % (module, len(found))
    return found[0]["params"]


def _templates(tasks):
    return dict((t["params"]["name"], t["params"]) for t in tasks if t["module"] == "job_template")


# ---------------------------------------------------------------- the installed collection

def test_awx_awx_is_installed_and_specs_are_real():
    path = awx.awx_collection_path()
    assert os.path.isfile(os.path.join(path, "plugins", "modules", "job_template.py"))
    spec, _rules = awx.real_argument_spec("job_template")
    assert spec["ask_limit_on_launch"]["type"] == "bool"
    assert spec["survey_spec"]["type"] == "dict"
    # the controller auth options that ControllerModule merges in are part of the captured spec
    assert "controller_host" in spec and "controller_password" in spec


def test_playbook_declares_every_object(tasks):
    modules = [t["module"] for t in tasks]
    for module in EXPECTED_MODULES + ("credential",):
        assert module in modules
    assert modules.count("job_template") == 4


# ---------------------------------------------------------------- parameters vs the real specs

@pytest.mark.parametrize("index", range(10))
def test_declared_parameters_match_real_argument_spec(tasks, index):
    assert len(tasks) == 10
    task = tasks[index]
    errors, validated = awx.validate_params(task["module"], task["params"])
    assert errors == [], "%s (awx.awx.%s): %s" % (task["name"], task["module"], errors)
    # nothing was silently dropped or renamed by the validator
    for key in task["params"]:
        assert key in validated


BROKEN = [
    ("job_template", "ask_limit_on_lunch", True, "ask_limit_on_lunch"),          # typo in a key
    ("job_template", "ask_limit_on_launch", "sometimes", "ask_limit_on_launch"),  # not a bool
    ("job_template", "survey_spec", ["question"], "survey_spec"),                # not a dict
    ("job_template", "verbosity", 9, "verbosity"),                               # not a choice
    ("job_template", "job_type", "deploy", "job_type"),                           # not a choice
    ("job_template", "credentials", {"a": 1}, "credentials"),                    # not a list
    ("credential_type", "kind", "kubernetes_config", "kind"),                    # not a choice
    ("credential_type", "injectors", "K8S_AUTH_KUBECONFIG", "injectors"),        # not a dict
    ("project", "scm_type", "github", "scm_type"),
    ("project", "scm_update_on_launch", "perhaps", "scm_update_on_launch"),
    ("inventory_source", "source", "git", "source"),
    ("execution_environment", "pull", "sometimes", "pull"),
    ("execution_environment", "image_name", "x", "image_name"),
]


@pytest.mark.parametrize("module,key,value,named", BROKEN)
def test_wrong_keys_or_types_fail_validation(tasks, module, key, value, named):
    params = copy.deepcopy([t for t in tasks if t["module"] == module][-1]["params"])
    errors, dummy = awx.validate_params(module, params)
    assert errors == []
    params[key] = value
    errors, dummy = awx.validate_params(module, params)
    assert errors, "awx.awx.%s accepted %s=%r" % (module, key, value)
    assert any(named in e for e in errors)


def test_missing_required_parameter_fails(tasks):
    params = copy.deepcopy(_only(tasks, "inventory"))
    del params["organization"]  # required by awx.awx.inventory
    errors, dummy = awx.validate_params("inventory", params)
    assert any("organization" in e for e in errors)


# ---------------------------------------------------------------- controller credentials

def test_controller_credentials_come_only_from_environment(tasks):
    spec, dummy = awx.real_argument_spec("job_template")
    auth = [k for k in spec if k.startswith("controller_")]
    assert auth
    for task in tasks:
        for key in task["params"]:
            assert not key.startswith(("controller_", "tower_")), "%s sets %s" % (task["name"], key)
    # the env variables the playbook checks are the ones awx.awx falls back to
    host_fallback = spec["controller_host"]["fallback"][1]
    assert "CONTROLLER_HOST" in host_fallback
    assert "CONTROLLER_OAUTH_TOKEN" in spec["controller_oauthtoken"]["fallback"][1]
    with open(awx.PLAYBOOK) as fh:
        text = fh.read()
    for var in ("CONTROLLER_HOST", "CONTROLLER_OAUTH_TOKEN", "CONTROLLER_USERNAME", "CONTROLLER_PASSWORD"):
        assert var in text


def test_no_secret_or_controller_address_in_awx_dir():
    for root, _dirs, files in os.walk(awx.AWX_DIR):
        for name in files:
            with open(os.path.join(root, name)) as fh:
                text = fh.read()
            for needle in ("controller_password:", "controller_oauthtoken:", "controller_host:",
                           "client-key-data", "token:", "BEGIN "):
                assert needle not in text, "%s contains %r" % (name, needle)


def test_kubeconfig_credential_task_is_no_log(tasks, kubeconfig_file):
    task = [t for t in tasks if t["module"] == "credential"][0]
    assert task["no_log"] is True
    with open(kubeconfig_file) as fh:
        assert task["params"]["inputs"]["kubeconfig"] == fh.read().rstrip("\n")


def test_kubeconfig_credential_skipped_without_file():
    tasks = awx.declared_tasks(EXTRA_VARS)
    assert "credential" not in [t["module"] for t in tasks]
    # the job templates still attach the credential by name: it is created in the UI instead
    for params in _templates(tasks).values():
        assert params["credentials"] == ["Mastodon cluster kubeconfig"]


def test_vault_credential_is_attached_when_named():
    tasks = awx.declared_tasks(dict(EXTRA_VARS, mastodon_awx_vault_credential="Mastodon vault"))
    for params in _templates(tasks).values():
        assert params["credentials"] == ["Mastodon cluster kubeconfig", "Mastodon vault"]
        errors, dummy = awx.validate_params("job_template", params)
        assert errors == []


# ---------------------------------------------------------------- consistency between objects

def test_objects_reference_each_other_by_the_declared_names(tasks):
    ctype = _only(tasks, "credential_type")
    cred = _only(tasks, "credential")
    ee = _only(tasks, "execution_environment")
    project = _only(tasks, "project")
    inventory = _only(tasks, "inventory")
    source = _only(tasks, "inventory_source")
    assert ctype["name"] == "Kubernetes kubeconfig"
    assert cred["credential_type"] == ctype["name"]
    assert project["default_environment"] == ee["name"]
    assert source["inventory"] == inventory["name"]
    assert source["source_project"] == project["name"]
    assert source["source"] == "scm"
    assert source["source_path"] == "inventories/prod"
    assert project["scm_url"] == EXTRA_VARS["mastodon_awx_scm_url"]
    assert ee["image"] == EXTRA_VARS["mastodon_awx_ee_image"]
    for params in _templates(tasks).values():
        assert params["project"] == project["name"]
        assert params["inventory"] == inventory["name"]
        assert params["execution_environment"] == ee["name"]
        assert cred["name"] in params["credentials"]


def test_templates_run_our_playbooks_on_one_instance(tasks):
    templates = _templates(tasks)
    playbooks = sorted(p["playbook"] for p in templates.values())
    assert playbooks == ["playbooks/backup.yml", "playbooks/teardown.yml", "playbooks/upgrade.yml", "site.yml"]
    for params in templates.values():
        assert params["ask_limit_on_launch"] is True
        assert params["limit"] == "choose-one-instance"
        assert params["allow_simultaneous"] is False


def _list_hosts(inventory, pattern):
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible"), "-i", inventory, pattern, "--list-hosts"],
        capture_output=True, text=True, timeout=300, check=False, cwd=awx.REPO,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line.strip() for line in proc.stdout.splitlines()[1:] if line.strip()]


def test_limit_placeholder_matches_no_inventory_host():
    inventory = os.path.join(awx.REPO, "inventories", "prod")
    if not os.path.exists(inventory):
        pytest.skip("inventories/prod is not in the tree yet")
    assert _list_hosts(inventory, "all"), "inventories/prod has no host"
    # a template launched without choosing an instance targets nothing (ansible-playbook stops)
    assert _list_hosts(inventory, "choose-one-instance") == []


def test_inventory_has_no_whole_file_vault():
    # AWX syncs inventories/prod with ansible-inventory and no vault password: a file encrypted as
    # a whole fails the sync, in-line !vault values pass through to the jobs (docs/awx.md)
    inventory = os.path.join(awx.REPO, "inventories", "prod")
    if not os.path.exists(inventory):
        pytest.skip("inventories/prod is not in the tree yet")
    vaulted = []
    for root, dummy_dirs, files in os.walk(inventory):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                if fh.read(14) == b"$ANSIBLE_VAULT":
                    vaulted.append(os.path.relpath(os.path.join(root, name), awx.REPO))
    assert vaulted == [], "whole-file vault breaks the AWX inventory sync: %s" % vaulted


def test_playbook_fails_early_without_controller_environment():
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("CONTROLLER_", "TOWER_")))
    env["ANSIBLE_NOCOLOR"] = "1"
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", awx.PLAYBOOK,
         "-e", "mastodon_awx_scm_url=x", "-e", "mastodon_awx_ee_image=y"],
        env=env, capture_output=True, text=True, timeout=300, check=False, cwd=awx.REPO)
    assert proc.returncode != 0
    assert "Export CONTROLLER_HOST" in proc.stdout
    assert "credential_type" not in proc.stdout.split("Export CONTROLLER_HOST")[0].split("TASK [")[-1]
    assert "ok=0" in proc.stdout and "failed=1" in proc.stdout


def test_playbook_syntax_check():
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "--syntax-check", "-i", "localhost,",
         awx.PLAYBOOK],
        capture_output=True, text=True, timeout=300, check=False, cwd=awx.REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------- surveys

def test_survey_specs_pass_fake_awx_survey_rules(tasks):
    templates = _templates(tasks)
    for name, params in templates.items():
        if params["survey_enabled"]:
            assert awx.validate_survey_spec(params["survey_spec"]) == [], name
        else:
            assert params["survey_spec"] == {}, name  # {} makes awx.awx delete a stale survey


def test_upgrade_survey_asks_for_mastodon_version_fake_awx_answers(tasks):
    spec = _templates(tasks)["Mastodon upgrade"]["survey_spec"]
    (question,) = spec["spec"]
    assert question["variable"] == "mastodon_version"
    assert question["required"] is True and question["type"] == "text"
    assert "default" not in question
    assert awx.survey_answer_errors(spec, {"mastodon_version": "v4.6.3"}) == []
    assert awx.survey_answer_errors(spec, {}) != []
    assert awx.survey_answer_errors(spec, {"mastodon_version": "v4"}) != []


def test_teardown_survey_requires_the_confirmation_text_fake_awx_answers(tasks):
    spec = _templates(tasks)["Mastodon teardown"]["survey_spec"]
    questions = dict((q["variable"], q) for q in spec["spec"])
    confirm = questions["teardown_confirm"]
    assert confirm["required"] is True and confirm["type"] == "text"
    assert "default" not in confirm, "a default would answer the confirmation for the operator"
    delete = questions["teardown_delete_data"]
    assert delete["type"] == "multiplechoice" and delete["default"] == "false"
    assert sorted(delete["choices"]) == ["false", "true"]
    # without an answer to the confirmation AWX refuses to launch
    assert awx.survey_answer_errors(spec, {}) == ["teardown_confirm is required"]
    assert awx.survey_answer_errors(spec, {"teardown_confirm": ""}) != []
    assert awx.survey_answer_errors(spec, {"teardown_confirm": "social", "teardown_delete_data": "maybe"}) != []
    assert awx.survey_answer_errors(spec, {"teardown_confirm": "social"}) == []


SURVEY_MISTAKES = [
    ("type", "string"),              # not an AWX question type
    ("required", "yes"),             # must be a JSON boolean
    ("variable", "mastodon-version"),  # not a variable name
    ("requried", True),              # typo in a key
    ("min", "5"),                    # must be an integer
    ("default", 4),                  # default of a text question must be a string
]


@pytest.mark.parametrize("key,value", SURVEY_MISTAKES)
def test_broken_survey_specs_fail_fake_awx_survey_rules(tasks, key, value):
    spec = copy.deepcopy(_templates(tasks)["Mastodon upgrade"]["survey_spec"])
    spec["spec"][0][key] = value
    assert awx.validate_survey_spec(spec) != []


def test_broken_survey_structure_fails_fake_awx_survey_rules(tasks):
    good = _templates(tasks)["Mastodon teardown"]["survey_spec"]
    no_spec = dict(good, spec=[])
    assert awx.validate_survey_spec(no_spec) != []
    missing_name = dict((k, v) for k, v in good.items() if k != "name")
    assert awx.validate_survey_spec(missing_name) != []
    dup = copy.deepcopy(good)
    dup["spec"][1]["variable"] = "teardown_confirm"
    assert any("duplicated" in e for e in awx.validate_survey_spec(dup))
    bad_default = copy.deepcopy(good)
    bad_default["spec"][1]["default"] = "yes"
    assert any("not one of the choices" in e for e in awx.validate_survey_spec(bad_default))
    no_choices = copy.deepcopy(good)
    del no_choices["spec"][1]["choices"]
    assert awx.validate_survey_spec(no_choices) != []


@pytest.mark.parametrize("playbook,variables", [
    ("playbooks/upgrade.yml", ["mastodon_version"]),
    ("playbooks/teardown.yml", ["teardown_confirm", "teardown_delete_data"]),
])
def test_survey_variables_are_used_by_the_playbooks(playbook, variables):
    path = os.path.join(awx.REPO, playbook)
    if not os.path.isfile(path):
        pytest.skip("%s is not in the tree yet" % playbook)
    text = ""
    for root, _dirs, files in os.walk(os.path.join(awx.REPO, "playbooks")):
        for name in files:
            with open(os.path.join(root, name)) as fh:
                text += fh.read()
    for var in variables:
        assert var in text, "%s is asked by the survey but used by no playbook" % var
