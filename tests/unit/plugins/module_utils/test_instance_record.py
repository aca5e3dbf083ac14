# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure parts of module_utils.instance_record: the version parser and comparisons, the
check's problems and the update plan. The Kubernetes parts are tested against the lab
apiserver in tests/integration/test_instance_record.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

import pytest

from ansible_collections.fediverse.mastodon.plugins.module_utils import instance_record as ir

PARSE_CASES = [
    ("4.6.3", (4, 6, 3, ())),
    ("v4.6.3", (4, 6, 3, ())),
    ("v0.0.0", (0, 0, 0, ())),
    ("v10.20.30", (10, 20, 30, ())),
    ("v4.6.3-rc.1", (4, 6, 3, ("rc", 1))),
    ("4.6.3-rc.1", (4, 6, 3, ("rc", 1))),
    ("v4.6.0-beta.2", (4, 6, 0, ("beta", 2))),
    ("v4.6.0-beta1", (4, 6, 0, ("beta1",))),
    ("v4.6.0-alpha.1.2", (4, 6, 0, ("alpha", 1, 2))),
    ("v4.6.0-0.3.7", (4, 6, 0, (0, 3, 7))),
    ("v4.6.0-x-y-z.--", (4, 6, 0, ("x-y-z", "--"))),
    ("v4.6.0-0a", (4, 6, 0, ("0a",))),
    # refused
    ("v4.6.3+build", None),
    ("v4.6.3-rc.1+build.5", None),
    ("4.6.3+20240101", None),
    ("4.6", None),
    ("v4", None),
    ("4.6.3.1", None),
    ("04.6.3", None),
    ("4.06.3", None),
    ("4.6.03", None),
    ("v4.6.3-rc.01", None),
    ("v4.6.3-", None),
    ("v4.6.3-rc..1", None),
    ("v4.6.3-rc_1", None),
    ("V4.6.3", None),
    ("vv4.6.3", None),
    (" v4.6.3", None),
    ("v4.6.3 ", None),
    ("v4.6.3\n", None),
    ("edge", None),
    ("latest", None),
    ("main-abc1234", None),
    ("", None),
    (None, None),
    (4.6, None),
]


@pytest.mark.parametrize("text,expected", PARSE_CASES)
def test_parse_version(text, expected):
    assert ir.parse_version(text) == expected


# each pair is (lower, higher) by SemVer precedence
ORDERED = [
    ("v4.6.2", "v4.6.3"),
    ("v4.5.9", "v4.6.0"),
    ("v3.5.19", "v4.0.0"),
    ("v4.6.3-rc.1", "v4.6.3"),
    ("v4.6.3-alpha", "v4.6.3-alpha.1"),
    ("v4.6.3-alpha.1", "v4.6.3-alpha.beta"),
    ("v4.6.3-alpha.beta", "v4.6.3-beta"),
    ("v4.6.3-beta", "v4.6.3-beta.2"),
    ("v4.6.3-beta.2", "v4.6.3-beta.11"),
    ("v4.6.3-beta.11", "v4.6.3-rc.1"),
    ("v4.6.2", "v4.6.3-rc.1"),
    ("v4.6.9", "v4.6.10"),
]


@pytest.mark.parametrize("lower,higher", ORDERED)
def test_compare_versions_orders_by_semver_precedence(lower, higher):
    assert ir.compare_versions(lower, higher) == -1
    assert ir.compare_versions(higher, lower) == 1
    assert ir.version_lt(lower, higher) and not ir.version_lt(higher, lower)


@pytest.mark.parametrize("a,b", [("v4.6.3", "4.6.3"), ("v4.6.3-rc.1", "4.6.3-rc.1"), ((4, 6, 3, ()), "v4.6.3")])
def test_compare_versions_equal(a, b):
    assert ir.compare_versions(a, b) == 0


@pytest.mark.parametrize("bad", ["edge", "v4.6.3+build", "4.6"])
def test_compare_versions_refuses_what_does_not_parse(bad):
    with pytest.raises(ValueError):
        ir.compare_versions(bad, "v4.6.3")


SKIP_CASES = [
    ("v4.4.2", "v4.5.0", False),
    ("v4.4.2", "v4.5.7", False),
    ("v4.4.2", "v4.4.9", False),
    ("v4.4.2", "v4.6.0", True),
    ("v4.4.2", "v4.6.0-rc.1", True),
    ("v4.5.3", "v4.6.0-rc.1", False),
    ("v3.5.19", "v4.0.0", False),
    ("v3.5.19", "v4.0.2", False),
    ("v3.5.19", "v4.1.0", True),
    ("v3.5.19", "v5.0.0", True),
    ("v4.6.3", "v4.4.0", False),  # a downgrade is not a skip
    ("v4.6.3", "v4.6.3", False),
]


@pytest.mark.parametrize("have,want,skips", SKIP_CASES)
def test_skips_minor(have, want, skips):
    assert ir.skips_minor(have, want) is skips


@pytest.mark.parametrize("text,meta", [("v4.6.3+build", "+build"), ("4.6.3-rc.1+b.5", "+b.5"),
                                       ("v4.6.3", None), ("edge+x", None), (None, None)])
def test_build_metadata(text, meta):
    assert ir.build_metadata(text) == meta


@pytest.mark.parametrize("tag,ok", [("v4.6.3", True), ("edge", True), ("main_2024.01-1", True),
                                    ("v4.6.3+build", False), ("-edge", False), ("", False), ("a" * 129, False),
                                    ("a b", False)])
def test_valid_image_tag(tag, ok):
    assert ir.valid_image_tag(tag) is ok


# ---------------------------------------------------------------------------------------------
# check_problems

RECORD = {
    "deployed_version": "v4.5.2", "migrated_version": "v4.5.2", "local_domain": "social.example",
    "db_host": "db.example", "db_name": "mastodon", "db_user": "mastodon",
    "s3_bucket": "media", "s3_endpoint": "https://s3.example",
}
SAME = {"version": "v4.5.2", "local_domain": "social.example", "db_host": "db.example", "db_name": "mastodon",
        "db_user": "mastodon", "s3_bucket": "media", "s3_endpoint": "https://s3.example"}
VARS = {"version": "mastodon_version", "local_domain": "mastodon_local_domain", "s3_bucket": "mastodon_s3_bucket",
        "s3_endpoint": "minio_external_endpoint", "db_name": "postgresql_database", "db_user": "postgresql_username"}


def problems(desired=None, record=None, **kw):
    want = dict(SAME)
    want.update(desired or {})
    record = RECORD if record is None else record
    kw.setdefault("variables", VARS)
    return ir.check_problems(record, want, "social", **kw)


def test_nothing_changed_is_fine():
    assert problems() == []


def test_first_install_has_no_record_and_no_problem():
    assert ir.check_problems(None, dict(SAME, version="v4.6.3"), "social") == []
    assert problems({"version": "v4.6.3"}, record={}) == []


def test_local_domain_change_is_refused_even_naming_the_override_value():
    found = problems({"local_domain": "other.example"})
    assert len(found) == 1
    line = found[0]
    assert line.startswith("mastodon_local_domain: ")
    assert "LOCAL_DOMAIN can never change" in line
    assert "add local_domain to mastodon_record_override" in line
    assert "'social.example'" in line and "'other.example'" in line
    assert "\n" not in line
    assert problems({"local_domain": "other.example"}, overrides=["local_domain"]) == []


@pytest.mark.parametrize("field,variable,value", [
    ("db_name", "postgresql_database", "other"), ("db_user", "postgresql_username", "other"),
    ("db_host", "db_host", "db2.example"), ("s3_bucket", "mastodon_s3_bucket", "media2"),
    ("s3_endpoint", "minio_external_endpoint", "https://s3b.example")])
def test_data_location_change_is_refused_unless_overridden(field, variable, value):
    found = problems({field: value})
    assert len(found) == 1 and found[0].startswith(variable + ": ")
    assert "add %s to mastodon_record_override" % field in found[0]
    assert problems({field: value}, overrides=[field]) == []


def test_variable_names_default_to_field_names():
    found = problems({"s3_bucket": "media2", "version": "v4.4.0"}, variables={})
    assert found[0].startswith("s3_bucket: ")
    assert found[1].startswith("version: ") and "mastodon_allow_downgrade=true" in found[1]


def test_unknown_override_is_a_problem():
    found = problems(overrides=["s3_bucket", "secret_key_base"])
    assert found == [found[0]] and found[0].startswith("mastodon_record_override: secret_key_base cannot")


def test_fields_not_given_or_not_recorded_are_not_checked():
    assert problems({"db_host": None, "s3_bucket": ""}) == []
    partial = dict(RECORD)
    del partial["s3_bucket"]
    assert problems({"s3_bucket": "anything"}, record=partial) == []


def test_downgrade_below_deployed_is_refused_unless_allowed():
    found = problems({"version": "v4.5.1"})
    assert len(found) == 1 and found[0].startswith("mastodon_version: ")
    assert "downgrade" in found[0] and "mastodon_allow_downgrade=true" in found[0] and "v4.5.2 or later" in found[0]
    assert problems({"version": "v4.5.1"}, allow_downgrade=True) == []


def test_downgrade_below_migrated_alone_is_refused():
    record = dict(RECORD, deployed_version="v4.4.0", migrated_version="v4.5.0")
    found = problems({"version": "v4.4.3"}, record=record)
    assert len(found) == 1 and "completed the migrations of v4.5.0" in found[0]


def test_downgrade_refused_even_with_guard_off():
    assert problems({"version": "v4.4.0"}, version_guard=False) != []


def test_minor_skip_is_refused_unless_guard_off():
    found = problems({"version": "v4.7.0"})
    assert len(found) == 1 and "skips a minor series" in found[0] and "latest 4.6.x first" in found[0]
    assert "mastodon_version_guard=false" in found[0]
    assert problems({"version": "v4.7.0"}, version_guard=False) == []


@pytest.mark.parametrize("want", ["v4.5.3", "v4.6.0", "v4.6.9", "4.6.0", "v4.6.0-rc.1", "v4.5.3-beta.1"])
def test_allowed_upgrades(want):
    assert problems({"version": want}) == []


def test_next_major_zero_series_is_allowed():
    record = dict(RECORD, deployed_version="v3.5.19", migrated_version="v3.5.19")
    assert problems({"version": "v4.0.2"}, record=record) == []
    assert "latest 4.0.x first" in problems({"version": "v4.1.0"}, record=record)[0]


def test_build_metadata_is_refused_whatever_the_guard():
    for guard in (True, False):
        found = problems({"version": "v4.5.2+build"}, version_guard=guard)
        assert len(found) == 1 and "build metadata ('+build')" in found[0] and "'v4.5.2'" in found[0]


def test_custom_tag_needs_the_guard_off():
    found = problems({"version": "edge"})
    assert len(found) == 1 and "mastodon_version_guard=false" in found[0]
    assert problems({"version": "edge"}, version_guard=False) == []


def test_recorded_custom_tag_cannot_be_compared_with_the_guard_on():
    record = dict(RECORD, deployed_version="edge", migrated_version="edge")
    found = problems({"version": "v4.6.0"}, record=record)
    assert found and all("custom tag 'edge'" in line for line in found)
    assert problems({"version": "v4.6.0"}, record=record, version_guard=False) == []


def test_credentials_in_desired_values_are_refused_without_echoing_them():
    found = problems({"s3_endpoint": "https://AKIA:hunter2@s3.example", "db_host": "u:pw@db"})
    assert len(found) == 2
    assert not any("hunter2" in line or "pw@" in line for line in found)


# ---------------------------------------------------------------------------------------------
# plan_update

def test_plan_creates_with_created_updated_and_one_history_entry():
    data, changed = ir.plan_update(None, {"deployed_version": "v4.5.2", "local_domain": "social.example"},
                                   event="install", now="2025-01-01T00:00:00Z")
    assert changed == ["deployed_version", "local_domain"]
    assert data["created"] == data["updated"] == "2025-01-01T00:00:00Z"
    assert json.loads(data["history"]) == [{"time": "2025-01-01T00:00:00Z", "version": "v4.5.2", "event": "install"}]


def test_plan_with_nothing_new_returns_the_same_data():
    data, dummy = ir.plan_update(None, {"deployed_version": "v4.5.2"}, now="2025-01-01T00:00:00Z")
    again, changed = ir.plan_update(data, {"deployed_version": "v4.5.2", "db_host": None, "s3_bucket": ""},
                                    now="2025-02-02T00:00:00Z")
    assert again is data and changed == []


def test_plan_change_keeps_created_and_foreign_keys_and_appends_history():
    data, dummy = ir.plan_update(None, {"deployed_version": "v4.5.2"}, now="2025-01-01T00:00:00Z")
    data["note"] = "by hand"
    new, changed = ir.plan_update(data, {"deployed_version": "v4.6.0"}, now="2025-02-02T00:00:00Z")
    assert changed == ["deployed_version"]
    assert new["created"] == "2025-01-01T00:00:00Z" and new["updated"] == "2025-02-02T00:00:00Z"
    assert new["note"] == "by hand"
    assert [e["event"] for e in json.loads(new["history"])] == ["created", "updated deployed_version"]


def test_history_keeps_the_last_twenty():
    data = None
    for i in range(25):
        data, dummy = ir.plan_update(data, {"deployed_version": "v4.5.%d" % i}, now="2025-01-01T00:00:%02dZ" % i)
    history = json.loads(data["history"])
    assert len(history) == ir.HISTORY_LIMIT
    assert history[0]["version"] == "v4.5.5" and history[-1]["version"] == "v4.5.24"


def test_plan_refuses_unknown_fields():
    with pytest.raises(ir.RecordError):
        ir.plan_update(None, {"password": "x"})


def test_now_iso_is_utc_with_z():
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", ir.now_iso())


@pytest.mark.parametrize("labels,ok", [
    ({"team": "ops"}, True),
    ({"app.kubernetes.io/managed-by": "fediverse.mastodon"}, False),
    ({"app.kubernetes.io/managed-by": "someone-else"}, True),
    ({"mastodon.fediverse/record": "false"}, False),
    ({"mastodon.fediverse/record": "true", "app.kubernetes.io/part-of": "mastodon"}, True),
    ({"app.kubernetes.io/part-of": "other"}, False),
    ({"app.kubernetes.io/instance": "social"}, True),
    ({"app.kubernetes.io/instance": "other"}, False),
    ({"team": "not ok"}, False),
])
def test_labels_problem(labels, ok):
    assert (ir.labels_problem(labels, "social") is None) is ok


@pytest.mark.parametrize("instance,ok", [("social", True), ("my-social-2", True), ("Social", False),
                                         ("-social", False), ("a" * 57, False), ("", False)])
def test_instance_problem(instance, ok):
    assert (ir.instance_problem(instance) is None) is ok


def test_a_switch_of_the_in_cluster_s3_server_is_refused_naming_minio_s3_server():
    """Records made before SeaweedFS say "incluster" for MinIO: the new default must not take over
    an instance whose media live in MinIO, and the message says how to keep it."""
    found = problems({"s3_endpoint": "incluster:seaweedfs"}, dict(RECORD, s3_endpoint="incluster"))
    assert len(found) == 1 and found[0].startswith("minio_s3_server: social keeps its media in the in-cluster minio"), found
    assert "Set minio_s3_server: minio to keep it" in found[0]
    assert problems({"s3_endpoint": "incluster:seaweedfs"}, dict(RECORD, s3_endpoint="incluster:seaweedfs")) == []
    assert problems({"s3_endpoint": "incluster"}, dict(RECORD, s3_endpoint="incluster:seaweedfs"))[0].startswith(
        "minio_s3_server: social keeps its media in the in-cluster seaweedfs")


def test_the_record_names_the_in_cluster_s3_server():
    from ansible_collections.fediverse.mastodon.plugins.plugin_utils import inputs
    base = dict(minio_mode="incluster", mastodon_s3_enabled=True)
    assert inputs.record_identity(dict(base, minio_s3_server="seaweedfs"))["s3_endpoint"] == "incluster:seaweedfs"
    assert inputs.record_identity(dict(base, minio_s3_server="minio"))["s3_endpoint"] == "incluster"
    assert inputs.record_identity(dict(base, minio_mode="external", minio_external_endpoint="https://s3.example"))[
        "s3_endpoint"] == "https://s3.example"
