# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""execution-environment.yml: `ansible-builder create` (offline) and what the Containerfile installs.

Runs scripts/ee-context.sh (the script behind `make ee-context`) on this checkout. Building the
image needs a container engine, which test machines lack; see docs/awx.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCRIPT = os.path.join(REPO, "scripts", "ee-context.sh")


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    ctx = str(tmp_path_factory.mktemp("ee-context"))
    proc = subprocess.run(["bash", SCRIPT, ctx], capture_output=True, text=True, timeout=600, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ctx, proc.stdout


def test_ee_definition_is_version_3_with_our_requirement_files():
    with open(os.path.join(REPO, "execution-environment.yml")) as fh:
        ee = yaml.safe_load(fh)
    assert ee["version"] == 3
    assert ee["images"]["base_image"]["name"]
    deps = ee["dependencies"]
    assert deps["python"] == "requirements.txt"
    assert deps["system"] == "bindep.txt"
    assert "ansible-core" in deps["ansible_core"]["package_pip"]
    assert "ansible-runner" in deps["ansible_runner"]["package_pip"]
    assert {"name": "/build/fediverse_mastodon", "type": "dir"} in deps["galaxy"]["collections"]


def test_ee_context_script_passes_every_check(context):
    _ctx, out = context
    for line in ("created", "installs ansible-core, ansible-runner", "are ours",
                 "the galaxy stage installs fediverse.mastodon", "introspection of the installed collection"):
        assert any(line in entry and entry.startswith("ee-context: ok:") for entry in out.splitlines()), out


def test_containerfile_stages_in_order(context):
    ctx, _out = context
    with open(os.path.join(ctx, "Containerfile")) as fh:
        text = fh.read()
    stages = [line.split()[-1] for line in text.splitlines() if line.startswith("FROM ")]
    assert stages == ["base", "galaxy", "builder", "final"]
    galaxy = text.index("ansible-galaxy collection install")
    introspect = text.index("introspect.py introspect")
    assert galaxy < introspect  # requirements of installed collections are introspected after install
    assert "LABEL ansible-execution-environment=true" in text


def test_context_inside_repository_must_be_gitignored(tmp_path):
    inside = os.path.join(REPO, "awx", "not-ignored-ee-context")
    try:
        proc = subprocess.run(["bash", SCRIPT, inside], capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    finally:
        if os.path.isdir(inside):
            os.rmdir(inside)
    assert proc.returncode != 0
    assert "not ignored by git" in proc.stderr


def test_ee_ansible_core_matches_the_tested_one_and_the_collection():
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    with open(os.path.join(REPO, "execution-environment.yml")) as fh:
        ee = yaml.safe_load(fh)
    spec = SpecifierSet(ee["dependencies"]["ansible_core"]["package_pip"].split("ansible-core", 1)[1])
    with open(os.path.join(REPO, "meta", "runtime.yml")) as fh:
        requires = SpecifierSet(yaml.safe_load(fh)["requires_ansible"])
    tested = None
    with open(os.path.join(REPO, "constraints.txt")) as fh:
        for line in fh:
            if line.startswith("ansible-core=="):
                tested = Version(line.split("==", 1)[1].strip())
    assert tested is not None, "constraints.txt pins no ansible-core"
    assert tested in spec, "the EE's ansible-core %s excludes the tested %s" % (spec, tested)
    # every version the EE may install satisfies the collection's requires_ansible
    floor = min(Version(s.version) for s in spec if s.operator in (">=", "=="))
    assert floor in requires
