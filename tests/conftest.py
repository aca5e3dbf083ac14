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


# The longest test files first (measured, --durations): with `pytest -n 2 --dist loadfile` a worker
# takes a whole file at a time, so starting with the long ones keeps both workers busy to the end.
LONGEST_FIRST = ("test_site_upgrade_cuts.py", "test_backup_playbooks.py", "test_site_interrupt.py", "test_site_safety.py",
                 "test_bad_inputs.py", "test_instance_lock.py", "test_minio_bucket.py", "test_search_server.py",
                 "test_rendered_servers.py", "test_backup_script.py", "test_minio_user.py", "test_seaweedfs.py",
                 "test_postgresql_app_db.py")


def pytest_collection_modifyitems(session, config, items):
    rank = dict((name, i) for i, name in enumerate(LONGEST_FIRST))
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))
