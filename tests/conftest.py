# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules for every test run.

Under CI=true a skipped test is a failed test: the lab is started by `make test`, so a test that
skips "for lack of a lab component" hides a broken lab or a missing install step, and its
assertions would count as passed. Two exceptions, both explicit:

- LAB_KUBECONFIG is set: the run targets a foreign cluster, where some lab-only peers
  (the audit log, the lab's PostgreSQL behind a port-forward) cannot exist;
- the test is marked ``@pytest.mark.optional_peer("why")``: it needs a peer that no lab here can
  provide (for example a real MinIO server, which this project may not build) and is opt-in.
"""

import os

import pytest


def ci_forbids_skips():
    return os.environ.get("CI", "").lower() == "true" and not os.environ.get("LAB_KUBECONFIG")


def pytest_configure(config):
    config.addinivalue_line("markers", "optional_peer(reason): needs a peer no lab here provides; may skip even in CI")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or not ci_forbids_skips() or item.get_closest_marker("optional_peer"):
        return
    if hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = "skipped under CI=true, which counts as a failure: %s" % reason
