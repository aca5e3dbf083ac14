# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mastodon_pause.plan: the one patch per Deployment that stops it (keeping its replicas in an
annotation) or starts it again; the module itself runs against the lab in
tests/integration/test_backup_playbooks.py."""

from types import SimpleNamespace

from ansible_collections.fediverse.mastodon.plugins.modules.mastodon_pause import ANNOTATION, SUSPEND_ANNOTATION, cronjob_plan, plan


def deployment(replicas, annotations=None):
    return SimpleNamespace(metadata=SimpleNamespace(annotations=annotations), spec=SimpleNamespace(replicas=replicas))


def test_stopping_keeps_the_replicas_in_the_same_patch():
    assert plan(deployment(3), "stopped") == ({"metadata": {"annotations": {ANNOTATION: "3"}}, "spec": {"replicas": 0}}, "stopped")


def test_stopping_twice_keeps_the_first_count():
    assert plan(deployment(0, {ANNOTATION: "3"}), "stopped") == (None, "unchanged")
    # scaled up by someone in between: stopped again, still remembering 3
    assert plan(deployment(1, {ANNOTATION: "3"}), "stopped")[0]["metadata"]["annotations"][ANNOTATION] == "3"


def test_starting_gives_the_replicas_back_and_removes_the_annotation():
    assert plan(deployment(0, {ANNOTATION: "3"}), "started") == (
        {"metadata": {"annotations": {ANNOTATION: None}}, "spec": {"replicas": 3}}, "started")
    assert plan(deployment(2, {"other": "x"}), "started") == (None, "unchanged")


def test_a_missing_deployment_is_skipped():
    assert plan(None, "stopped") == (None, "absent") and plan(None, "started") == (None, "absent")


def cronjob(suspend, annotations=None):
    return SimpleNamespace(metadata=SimpleNamespace(annotations=annotations), spec=SimpleNamespace(suspend=suspend))


def test_cronjobs_are_suspended_and_given_back_what_they_had():
    assert cronjob_plan(cronjob(False), "stopped") == (
        {"metadata": {"annotations": {SUSPEND_ANNOTATION: "false"}}, "spec": {"suspend": True}}, "stopped")
    assert cronjob_plan(cronjob(True, {SUSPEND_ANNOTATION: "false"}), "stopped") == (None, "unchanged")
    assert cronjob_plan(cronjob(True, {SUSPEND_ANNOTATION: "false"}), "started") == (
        {"metadata": {"annotations": {SUSPEND_ANNOTATION: None}}, "spec": {"suspend": False}}, "started")
    # one the operator had suspended stays suspended
    assert cronjob_plan(cronjob(True), "stopped")[0]["metadata"]["annotations"][SUSPEND_ANNOTATION] == "true"
    assert cronjob_plan(cronjob(True, {SUSPEND_ANNOTATION: "true"}), "started")[0]["spec"] == {"suspend": True}
