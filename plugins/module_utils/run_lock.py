# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run lock as the other modules use it: taken right before a run's first write.

Every module of the collection accepts ``run_lock`` (the k8s_auth doc fragment); the playbooks
give it to all of them at once through ``module_defaults`` (action group ``k8s``). A module
whose API client was built with it calls ``hold`` before its first mutating request
(k8s_client.guard_writes). Wait loops call ``keep`` (the lookup plugin run_lock does, on every
poll) so that a lock outlives the longest migration.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.fediverse.mastodon.plugins.module_utils import lease

try:
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - reported by the modules through k8s_client
    ApiException = Exception


def _namespace_missing(exc):
    text = str(exc)
    return "404" in text and "namespaces" in text.lower()


def _create_namespace(api_client, namespace):
    """A first install: the namespace is the run's first write, and the lock lives in it."""
    body = {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"app.kubernetes.io/part-of": "mastodon"}}}
    try:
        api_client.call_api("/api/v1/namespaces", "POST", body=body, auth_settings=["BearerToken"],
                            header_params={"Content-Type": "application/json", "Accept": "application/json"},
                            _preload_content=False, _return_http_data_only=True)
    except ApiException as exc:
        if getattr(exc, "status", None) != 409:  # 409: another run created it in between
            raise lease.LeaseError("mastodon_lock: cannot create the namespace %s for the run lock: HTTP %s %s"
                                   % (namespace, getattr(exc, "status", "?"), _reason(exc)))


def _reason(exc):
    body = getattr(exc, "body", None)
    try:
        return json.loads(body).get("message") or getattr(exc, "reason", "")
    except (TypeError, ValueError, AttributeError):
        return getattr(exc, "reason", "") or str(exc)


def hold(api_client, run_lock):
    """Make sure this run holds the lock: renew it when due, or acquire it.

    Raises ``lease.LockHeld`` (another run's live lock; its message names that run and the
    override) or ``lease.LeaseError``. Returns the warnings to show (a lapsed or broken lock taken
    over).
    """
    namespace, name, holder = run_lock["namespace"], run_lock["name"], run_lock["holder"]
    run_id = holder.get("run_id")
    try:
        lease.renew_if_due(api_client, namespace, name, run_id, run_lock.get("renew_every") or 300)
        return []
    except lease.LockLost:
        pass  # not ours (yet): acquire below, which names the other run if it is alive
    except lease.LeaseError as exc:
        if not _namespace_missing(exc):
            raise
    for attempt in (1, 2):
        try:
            result = lease.lock(api_client, namespace, name, "acquired", holder,
                                duration=run_lock.get("duration") or lease.DEFAULT_DURATION,
                                break_lock=bool(run_lock.get("break_lock")))
            return result.get("warnings") or []
        except lease.LockHeld:
            raise
        except lease.LeaseError as exc:
            if attempt == 1 and _namespace_missing(exc):
                _create_namespace(api_client, namespace)
                continue
            raise
    return []


def keep(api_client, run_lock):
    """For wait loops: renew this run's lock when due.

    A run that never took the lock (it has written nothing yet) has nothing to keep: False. A run
    whose lock another run took over (the Lease names it as the previous holder) must stop:
    raises lease.LockLost.
    """
    if not run_lock:
        return False
    run_id = run_lock["holder"].get("run_id")
    try:
        return lease.renew_if_due(api_client, run_lock["namespace"], run_lock["name"], run_id,
                                  run_lock.get("renew_every") or 300)
    except lease.LockLost:
        raw = lease._Leases(api_client, run_lock["namespace"], run_lock["name"]).read()  # pylint: disable=protected-access
        previous = ((raw or {}).get("metadata") or {}).get("annotations", {}).get(lease.PREVIOUS_HOLDER_ANNOTATION, "")
        if run_id and re.search(r"identity %s(@|$)" % re.escape(run_id), previous):
            raise
        return False
