# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the pure logic of fediverse.mastodon.cluster_check (the API calls are tested
against the lab in tests/integration/test_preflight.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.fediverse.mastodon.plugins.modules import cluster_check as cc


def name(option):
    return {"min_version": "preflight_kubernetes_min_version", "max_version": "preflight_kubernetes_max_version"}.get(option, option)


@pytest.mark.parametrize("text, parsed", [
    ("1.30", (1, 30)), ("v1.34.2", (1, 34)), ({"major": "1", "minor": "31+"}, (1, 31)), ("latest", None), ("", None)])
def test_minor_version(text, parsed):
    assert cc.minor_version(text) == parsed


@pytest.mark.parametrize("version, minimum, maximum, heads", [
    ("v1.36.3", "1.30", None, []),
    ("v1.30.0", "1.30", "1.30", []),
    ("v1.29.9", "1.30", None, ["preflight_kubernetes_min_version"]),
    ("v1.36.3", "1.30", "1.35", ["preflight_kubernetes_max_version"]),
    ("v1.36.3", None, None, []),
])
def test_version_problems(version, minimum, maximum, heads):
    major, minor = version[1:].split(".")[:2]
    problems = cc.version_problems({"major": major, "minor": minor, "gitVersion": version}, minimum, maximum, name)
    assert [p.split(":")[0] for p in problems] == heads
    for problem in problems:
        assert version in problem


def test_storage_class_problems():
    classes = {"standard": True, "fast": False}
    assert cc.storage_class_problems([{"name": "fast", "variables": ["a"]}, {"name": None, "variables": ["b"]}], classes) == []
    problems = cc.storage_class_problems([{"name": "gold", "variables": ["postgresql_storage_class", "redis_storage_class"]}], classes)
    assert problems == ["postgresql_storage_class, redis_storage_class: the StorageClass gold does not exist (the cluster has: fast, standard)"]


@pytest.mark.parametrize("classes, fragment", [
    ({"fast": False}, "the cluster has none"),
    ({"a": True, "b": True}, "2 are marked default (a, b)"),
])
def test_default_storage_class_must_be_unique(classes, fragment):
    problems = cc.storage_class_problems([{"name": None, "variables": ["minio_storage_class"]}], classes)
    assert len(problems) == 1 and problems[0].startswith("minio_storage_class: null asks for the cluster's default")
    assert fragment in problems[0]
