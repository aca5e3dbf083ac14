# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the run lock (module_utils.lease): time parsing, expiry, holder formatting, decisions.

The Lease behaviour against a real API server is in tests/integration/test_instance_lock.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar

import pytest

from ansible_collections.fediverse.mastodon.plugins.module_utils import lease

T0 = calendar.timegm((2025, 5, 1, 10, 0, 0, 0, 0, 0))  # 2025-05-01T10:00:00Z


def make_lease(identity="run-a@ctl-1", renew="2025-05-01T10:00:00.000000Z", duration=900, acquire=None,
               annotations=None, transitions=None):
    spec = {}
    if identity is not None:
        spec["holderIdentity"] = identity
    if renew is not None:
        spec["renewTime"] = renew
    if acquire is not None:
        spec["acquireTime"] = acquire
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    if transitions is not None:
        spec["leaseTransitions"] = transitions
    return {"metadata": {"name": "social-run-lock", "namespace": "social", "resourceVersion": "7",
                         "annotations": annotations or {}}, "spec": spec}


ANNOTATED = {
    "mastodon.fediverse/holder-run-id": "run-a",
    "mastodon.fediverse/holder-host": "ctl-1",
    "mastodon.fediverse/holder-user": "alice",
    "mastodon.fediverse/holder-started": "2025-05-01T09:58:00Z",
    "mastodon.fediverse/holder-awx-job-id": "42",
}


@pytest.mark.parametrize("text, expected", [
    ("2025-05-01T10:00:00Z", T0),
    ("2025-05-01T10:00:00.250000Z", T0 + 0.25),
    ("2025-05-01T10:00:00.5Z", T0 + 0.5),
    ("2025-05-01T12:00:00+02:00", T0),
    ("2025-05-01T07:30:00-0230", T0),
    ("2025-05-01t10:00:00z", T0),
])
def test_parse_time(text, expected):
    assert lease.parse_time(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", [None, "", "yesterday", "2025-05-01 10:00", "2025-13-01T10:00:00Z", 12345])
def test_parse_time_rejects_garbage(text):
    assert lease.parse_time(text) is None


def test_micro_time_round_trip_keeps_microseconds_and_the_apiserver_format():
    text = lease.format_micro_time(T0 + 1.234567)
    assert text == "2025-05-01T10:00:01.234567Z"
    assert lease.parse_time(text) == pytest.approx(T0 + 1.234567)
    assert lease.format_micro_time(T0) == "2025-05-01T10:00:00.000000Z"  # always 6 digits (RFC3339Micro)
    assert lease.format_time(T0 + 0.9) == "2025-05-01T10:00:00Z"


def test_parse_http_date():
    assert lease.parse_http_date("Thu, 01 May 2025 10:00:00 GMT") == T0
    assert lease.parse_http_date("not a date") is None
    assert lease.parse_http_date(None) is None


def test_identity_format_and_parse():
    assert lease.format_identity("run-a", "ctl-1") == "run-a@ctl-1"
    assert lease.format_identity("run-a", None) == "run-a"
    assert lease.parse_identity("run-a@ctl-1") == ("run-a", "ctl-1")
    assert lease.parse_identity("run-a@ctl@odd") == ("run-a", "ctl@odd")
    assert lease.parse_identity("kube-controller-manager_1234") == ("kube-controller-manager_1234", None)
    assert lease.parse_identity("") == (None, None)


@pytest.mark.parametrize("run_id, ok", [("3f6c1a9e-7b1d-4c8e-9a53-0f6f3c2b1a77", True), ("a", True),
                                        ("x" * 128, True), ("x" * 129, False), ("", False), (None, False),
                                        ("a@b", False), ("a b", False)])
def test_check_run_id(run_id, ok):
    problem = lease.check_run_id(run_id)
    assert (problem is None) is ok
    if not ok:
        assert problem.startswith("holder.run_id: ")


def test_status_of_absent_lease():
    status = lease.lease_status(None, T0)
    assert status["exists"] is False and status["held"] is False and status["live"] is False
    assert status["holder"] is None and status["expires_at"] is None


def test_expiry_is_renew_time_plus_duration():
    status = lease.lease_status(make_lease(duration=900), T0 + 100)
    assert status["expires_at"] == T0 + 900
    assert status["renewed_ago"] == pytest.approx(100)
    assert status["expires_in"] == pytest.approx(800)
    assert status["live"] is True


def test_lease_lapses_exactly_at_expiry():
    assert lease.lease_status(make_lease(duration=2), T0 + 1.999)["live"] is True
    assert lease.lease_status(make_lease(duration=2), T0 + 2)["live"] is False
    lapsed = lease.lease_status(make_lease(duration=2), T0 + 3)
    assert lapsed["held"] is True and lapsed["expires_in"] == pytest.approx(-1)


def test_acquire_time_stands_in_for_a_missing_renew_time():
    status = lease.lease_status(make_lease(renew=None, acquire="2025-05-01T10:00:00Z", duration=10), T0 + 5)
    assert status["expires_at"] == T0 + 10 and status["live"] is True


def test_a_held_lease_without_a_duration_or_time_never_lapses():
    for raw in (make_lease(duration=None), make_lease(renew=None)):
        status = lease.lease_status(raw, T0 + 10 ** 7)
        assert status["live"] is True and status["expires_at"] is None and status["expires_in"] is None


def test_a_lease_without_holder_is_free_even_if_recent():
    status = lease.lease_status(make_lease(identity=""), T0)
    assert status["exists"] is True and status["held"] is False and status["live"] is False


def test_renew_time_in_the_future_counts_as_just_renewed():
    status = lease.lease_status(make_lease(duration=60), T0 - 5)
    assert status["renewed_ago"] == 0 and status["expires_in"] == pytest.approx(65)


def test_holder_from_annotations():
    holder = lease.holder_from_lease(make_lease(annotations=ANNOTATED))
    assert holder == {"run_id": "run-a", "host": "ctl-1", "user": "alice", "started": "2025-05-01T09:58:00Z",
                      "awx_job_id": "42", "identity": "run-a@ctl-1"}


def test_holder_annotations_of_another_run_are_ignored():
    holder = lease.holder_from_lease(make_lease(identity="run-b@ctl-2", annotations=ANNOTATED))
    assert holder == {"run_id": "run-b", "host": "ctl-2", "user": None, "started": None, "awx_job_id": None,
                      "identity": "run-b@ctl-2"}


def test_describe_holder():
    holder = lease.holder_from_lease(make_lease(annotations=ANNOTATED))
    assert lease.describe_holder(holder) == "alice@ctl-1 since 2025-05-01T09:58:00Z (AWX job 42)"
    bare = lease.holder_from_lease(make_lease(identity="run-b@ctl-2"))
    assert lease.describe_holder(bare, acquired_at=T0) == "ctl-2 since 2025-05-01T10:00:00Z (run run-b)"
    foreign = lease.holder_from_lease(make_lease(identity="some-controller"))
    assert lease.describe_holder(foreign) == "some-controller since an unknown time (run some-controller)"
    assert lease.describe_holder(None) == "nobody"


def test_locked_message_is_the_documented_line():
    status = lease.lease_status(make_lease(annotations=ANNOTATED, duration=900), T0 + 120)
    assert lease.locked_message("social", "social-run-lock", status) == (
        "mastodon_lock: instance social/social-run-lock is locked by alice@ctl-1 since 2025-05-01T09:58:00Z "
        "(AWX job 42), renewed 120s ago, expires in 780s; wait for that run, or pass -e mastodon_lock_break=true "
        "if it is dead")
    assert "\n" not in lease.locked_message("social", "social-run-lock", status)


def test_locked_message_without_expiry():
    status = lease.lease_status(make_lease(identity="other", duration=None), T0 + 1)
    assert "renewed 1s ago, never expires (no leaseDurationSeconds)" in lease.locked_message("ns", "l", status)


ABSENT = lease.lease_status(None, T0)
FREE = lease.lease_status(make_lease(identity=""), T0)
OURS = lease.lease_status(make_lease(identity="me@h"), T0 + 10)
OURS_LAPSED = lease.lease_status(make_lease(identity="me@h", duration=2), T0 + 10)
OTHER_LIVE = lease.lease_status(make_lease(identity="other@h"), T0 + 10)
OTHER_LAPSED = lease.lease_status(make_lease(identity="other@h", duration=2), T0 + 10)


@pytest.mark.parametrize("state, status, break_lock, expected", [
    ("acquired", ABSENT, False, ("create", "free")),
    ("acquired", FREE, False, ("take_over", "free")),
    ("acquired", OURS, False, ("renew", "ours")),
    ("acquired", OURS_LAPSED, False, ("renew", "ours")),
    ("acquired", OTHER_LIVE, False, ("none", "locked")),
    ("acquired", OTHER_LIVE, True, ("take_over", "broken")),
    ("acquired", OTHER_LAPSED, False, ("take_over", "lapsed")),
    ("checked", ABSENT, False, ("none", "free")),
    ("checked", OURS, False, ("none", "ours")),
    ("checked", OTHER_LIVE, False, ("none", "locked")),
    ("checked", OTHER_LIVE, True, ("none", "broken")),
    ("checked", OTHER_LAPSED, False, ("none", "lapsed")),
    ("renewed", OURS, False, ("renew", "ours")),
    ("renewed", OURS_LAPSED, False, ("renew", "ours")),
    ("renewed", ABSENT, False, ("none", "gone")),
    ("renewed", FREE, False, ("none", "gone")),
    ("renewed", OTHER_LIVE, False, ("none", "taken")),
    ("renewed", OTHER_LAPSED, True, ("none", "taken")),
    ("released", OURS, False, ("delete", "ours")),
    ("released", OURS_LAPSED, False, ("delete", "ours")),
    ("released", ABSENT, False, ("none", "free")),
    ("released", OTHER_LIVE, False, ("none", "locked")),
    ("released", OTHER_LIVE, True, ("none", "broken")),
    ("released", OTHER_LAPSED, False, ("none", "lapsed")),
])
def test_decide(state, status, break_lock, expected):
    assert lease.decide(state, status, "me", break_lock) == expected


def test_decide_compares_run_ids_not_hosts():
    status = lease.lease_status(make_lease(identity="me@another-host"), T0)
    assert lease.decide("acquired", status, "me") == ("renew", "ours")


class _Ticks(object):
    def __init__(self, start):
        self.value = start

    def __call__(self):
        return self.value


def test_server_clock_follows_the_date_header_not_the_wall_clock_fake():
    wall, mono = _Ticks(T0 + 3600), _Ticks(1000.0)  # this host's wall clock is an hour ahead
    clock = lease.ServerClock(wall=wall, monotonic=mono)
    assert clock.now() == T0 + 3600 and not clock.synced  # no header yet: the wall clock
    assert clock.observe("Thu, 01 May 2025 10:00:00 GMT")
    assert clock.now() == T0
    mono.value += 2.5
    wall.value += 500  # the wall clock jumps: ignored
    assert clock.now() == pytest.approx(T0 + 2.5)


def test_server_clock_keeps_the_tightest_lower_bound_fake():
    mono = _Ticks(0.0)
    clock = lease.ServerClock(wall=lambda: 0, monotonic=mono)
    clock.observe("Thu, 01 May 2025 10:00:00 GMT")  # really 10:00:00.9, truncated
    mono.value = 0.3
    clock.observe("Thu, 01 May 2025 10:00:01 GMT")  # ticked: better bound
    mono.value = 0.5
    assert clock.now() == pytest.approx(T0 + 1.2)
    clock.observe("Thu, 01 May 2025 10:00:01 GMT")  # older information than the estimate: ignored
    assert clock.now() == pytest.approx(T0 + 1.2)
    assert not clock.observe(None) and not clock.observe("garbage")


def test_header_lookup_accepts_dicts_and_pairs():
    assert lease._header({"Date": "x"}, "Date") == "x"
    assert lease._header({"date": "y"}, "Date") == "y"
    assert lease._header([("DATE", "z")], "Date") == "z"
    assert lease._header(None, "Date") is None


def test_take_over_body_replaces_holder_annotations_and_counts_the_transition():
    raw = make_lease(identity="run-a@ctl-1", annotations=dict(ANNOTATED, keep="me"), transitions=3)
    raw["metadata"]["managedFields"] = [{"manager": "x"}]
    previous = lease.holder_from_lease(raw)
    holder = {"run_id": "run-b", "host": "ctl-2", "user": "bob", "started": "2025-05-01T10:05:00Z", "awx_job_id": None}
    body = lease._take_over_body(raw, holder, 60, {"a": "b"}, T0 + 1, previous)
    spec, meta = body["spec"], body["metadata"]
    assert spec["holderIdentity"] == "run-b@ctl-2" and spec["leaseDurationSeconds"] == 60
    assert spec["leaseTransitions"] == 4 and spec["renewTime"] == spec["acquireTime"] == "2025-05-01T10:00:01.000000Z"
    assert meta["resourceVersion"] == "7" and "managedFields" not in meta
    assert meta["annotations"] == {
        "keep": "me",
        "mastodon.fediverse/holder-run-id": "run-b",
        "mastodon.fediverse/holder-host": "ctl-2",
        "mastodon.fediverse/holder-user": "bob",
        "mastodon.fediverse/holder-started": "2025-05-01T10:05:00Z",
        "mastodon.fediverse/previous-holder": "alice@ctl-1 since 2025-05-01T09:58:00Z (AWX job 42), identity run-a@ctl-1",
    }
    assert meta["labels"] == {"a": "b"}
    assert raw["spec"]["holderIdentity"] == "run-a@ctl-1"  # the input is not modified


def test_new_lease_body():
    holder = {"run_id": "run-b", "host": "ctl-2", "user": "bob", "started": "s", "awx_job_id": "7"}
    body = lease._new_lease("social", "social-run-lock", holder, 900, {}, T0)
    assert body["spec"] == {"holderIdentity": "run-b@ctl-2", "leaseDurationSeconds": 900,
                            "acquireTime": "2025-05-01T10:00:00.000000Z", "renewTime": "2025-05-01T10:00:00.000000Z",
                            "leaseTransitions": 0}
    assert body["metadata"]["annotations"]["mastodon.fediverse/holder-awx-job-id"] == "7"


@pytest.mark.parametrize("missing", [None, "", "None", "null", "  "])
def test_a_templated_none_writes_no_annotation(missing):
    holder = {"run_id": "run-b", "host": missing, "user": "bob", "started": "s", "awx_job_id": missing}
    body = lease._new_lease("social", "social-run-lock", holder, 900, {}, T0)
    assert body["spec"]["holderIdentity"] == "run-b"
    assert "mastodon.fediverse/holder-awx-job-id" not in body["metadata"]["annotations"]
    assert "mastodon.fediverse/holder-host" not in body["metadata"]["annotations"]
