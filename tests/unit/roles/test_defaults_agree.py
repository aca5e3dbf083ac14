# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every default is stated once and agreed on everywhere it is repeated.

The source is each role's ``defaults/main.yml``. Its argument specs (``meta/argument_specs.yml``)
and its README's variable tables repeat defaults for Ansible's validation and for readers; this
test fails when one of them says something else, or when a variable is missing from the specs.
"""

from __future__ import annotations

import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLES = sorted(r for r in os.listdir(os.path.join(REPO, "roles"))
               if os.path.exists(os.path.join(REPO, "roles", r, "defaults", "main.yml")))
ROW = re.compile(r"^\|\s*`([a-z0-9_]+)`\s*\|\s*`([^`|]*)`\s*\|")


def load(role, *path):
    with open(os.path.join(REPO, "roles", role, *path)) as fh:
        return yaml.safe_load(fh) or {}


def spec_options(role):
    specs = load(role, "meta", "argument_specs.yml")["argument_specs"]
    options = {}
    for entry in specs.values():
        options.update(entry.get("options") or {})
    return options


def same(a, b):
    if a == b:
        return True
    return str(a).strip() == str(b).strip()


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_in_the_argument_specs_with_the_same_value(role):
    defaults = load(role, "defaults", "main.yml")
    options = spec_options(role)
    missing = sorted(name for name in defaults if name not in options and not name.startswith(role + "__"))
    assert missing == [], "%s: variables of defaults/main.yml missing from meta/argument_specs.yml" % role
    disagree = ["%s: defaults %r, argument specs %r" % (name, defaults[name], options[name]["default"])
                for name in sorted(defaults) if name in options and "default" in options[name]
                and not same(defaults[name], options[name]["default"])]
    assert disagree == []


@pytest.mark.parametrize("role", ROLES)
def test_the_readme_tables_state_the_same_defaults(role):
    readme = os.path.join(REPO, "roles", role, "README.md")
    defaults = load(role, "defaults", "main.yml")
    disagree = []
    with open(readme) as fh:
        for line in fh:
            match = ROW.match(line)
            if not match or match.group(1) not in defaults:
                continue
            stated, actual = match.group(2), defaults[match.group(1)]
            if actual is None and stated in ("null", "~", ""):
                continue
            if isinstance(actual, bool) and stated in ("true", "false"):
                if stated != str(actual).lower():
                    disagree.append("%s: README `%s`, defaults %r" % (match.group(1), stated, actual))
                continue
            if not same(yaml.safe_load(stated) if stated else stated, actual) and not same(stated, actual):
                disagree.append("%s: README `%s`, defaults %r" % (match.group(1), stated, actual))
    assert disagree == []


@pytest.mark.parametrize("role", ROLES)
def test_the_cluster_is_named_in_one_place(role):
    """Every role's kubeconfig and context follow mastodon_k8s_kubeconfig and mastodon_k8s_context."""
    defaults = load(role, "defaults", "main.yml")
    for name, value in defaults.items():
        if name.endswith("_kubeconfig") and name != "mastodon_k8s_kubeconfig":
            assert value == "{{ mastodon_k8s_kubeconfig | default(none) }}", name
        if name.endswith(("_kube_context", "_k8s_context")) and name != "mastodon_k8s_context":
            assert value == "{{ mastodon_k8s_context | default(none) }}", name


@pytest.mark.parametrize("role", ["mastodon", "preflight"])
def test_the_readme_lists_every_variable(role):
    """These roles' READMEs document every variable of their defaults (a new one must be added there)."""
    defaults = load(role, "defaults", "main.yml")
    with open(os.path.join(REPO, "roles", role, "README.md")) as fh:
        readme = fh.read()
    assert [name for name in defaults if "`%s`" % name not in readme] == []
