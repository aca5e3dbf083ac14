#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: instance_lock
short_description: Make two runs against the same Mastodon instance mutually exclusive with a Kubernetes Lease
version_added: "1.1.0"
description:
  - Keeps a per-instance run lock in a C(coordination.k8s.io/v1) Lease, for example
    C(social/social-run-lock). A run takes it at the start, renews it while it works and
    releases it at the end; a second run against the same instance fails at once, naming the
    run that holds the lock, and writes nothing.
  - The Lease's C(spec.holderIdentity) is C(<run_id>@<host>); the run is identified by
    O(holder.run_id). The readable holder fields are annotations of the Lease
    (C(mastodon.fediverse/holder-run-id), C(holder-host), C(holder-user), C(holder-started),
    C(holder-awx-job-id)), so C(kubectl get lease -o yaml) names the run. After a take-over,
    C(mastodon.fediverse/previous-holder) names the run it was taken from.
  - A lock is live until C(renewTime + leaseDurationSeconds). That is judged with the API
    server's clock (the C(Date) header of its responses, plus the time elapsed since), never
    with the controller's wall clock, so clock skew between hosts does not matter; the
    precision is about one second. The C(renewTime) written comes from the same clock.
  - Writes use optimistic concurrency. A Lease is created with POST, taken over or renewed
    with a PUT carrying the C(resourceVersion) that was read, and deleted with preconditions on
    its C(uid) and C(resourceVersion). When another run wrote in between (HTTP 409), the
    Lease is read again and the decision is made again, so a lock another run holds is never
    overwritten or deleted. Of two runs that acquire at the same moment, exactly one wins.
  - Modules with long waits can renew the lock from their loops with
    C(renew_if_due()) of the C(lease) module_utils.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
  - ansible.builtin.action_common_attributes
options:
  namespace:
    description:
      - Namespace of the Lease (the instance's namespace). Must exist.
    type: str
    required: true
  name:
    description:
      - Name of the Lease, for example C(<instance>-run-lock).
    type: str
    required: true
  state:
    description:
      - V(acquired) takes the lock. An absent Lease is created; a Lease nobody holds, or whose
        holder let it lapse, is taken over (with a warning naming the previous holder); a live
        lock of another run makes the task fail, unless O(break_lock) is true. A lock this run
        already holds is renewed.
      - V(renewed) moves C(renewTime) to now (and sets C(leaseDurationSeconds) to
        O(duration)), only if this run holds the lock. When another run holds it (this run's
        lock was broken, or lapsed and was taken) or the Lease is gone, the task fails, and the
        run must stop. A lock of this run that lapsed but that nobody took is renewed, with a warning.
      - V(released) deletes the Lease if this run holds it. An absent Lease, or one that another
        run holds, is left alone (C(changed=false); a warning names the holder).
      - V(checked) only reads (no write at all), and fails like V(acquired) would when another
        run holds a live lock. A lapsed lock, or a live one with O(break_lock), gives a warning
        saying it will be taken over.
    type: str
    choices: [acquired, renewed, released, checked]
    default: acquired
  holder:
    description:
      - Who runs. Only O(holder.run_id) identifies the holder; the other fields are written as
        annotations when this run takes the lock. No secret belongs here.
    type: dict
    required: true
    suboptions:
      run_id:
        description:
          - A unique id of this run (1 to 128 characters, no C(@) and no spaces), the same for
            every task of the run, for example a UUID generated at the start of the playbook.
        type: str
        required: true
      host:
        description:
          - The host the run is started from. Defaults to the host name of the machine the
            module runs on.
        type: str
      user:
        description:
          - Who started the run. Defaults to the user the module runs as.
        type: str
      started:
        description:
          - When the run started (any text; RFC 3339 recommended). Defaults to the time the
            lock is taken (UTC).
        type: str
      awx_job_id:
        description:
          - The AWX (or Automation Controller) job id, when the run is an AWX job.
        type: raw
  duration:
    description:
      - Seconds the lock stays live after it was taken or last renewed (C(leaseDurationSeconds)).
      - A run that dies without releasing blocks the instance this long; a run that works longer
        must renew before it ends.
    type: int
    default: 900
  break_lock:
    description:
      - Take (or, with V(checked), report that it would take) another run's live lock. The other
        run, if it still works, fails at its next renewal. Use only when that run is dead.
    type: bool
    default: false
  labels:
    description:
      - Labels set on the Lease when it is written (added to the labels it has).
    type: dict
    default: {}
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Nothing is written; the result says what would be done (RV(operation)), and the task fails
      when the run would fail.
  diff_mode:
    support: full
    details: The holder identity and expiry time before and after.
notes:
  - Needs C(get), C(create), C(update) and C(delete) on C(leases.coordination.k8s.io) in
    O(namespace).
  - The result never holds a secret; the holder fields are what O(holder) gave, as stored in the Lease.
seealso:
  - name: Kubernetes Lease
    description: The coordination.k8s.io/v1 Lease object.
    link: https://kubernetes.io/docs/concepts/architecture/leases/
'''

EXAMPLES = r'''
- name: Take the run lock of the instance
  fediverse.mastodon.instance_lock:
    namespace: social
    name: social-run-lock
    state: acquired
    holder:
      run_id: "{{ mastodon_run_id }}"
      host: "{{ lookup('ansible.builtin.pipe', 'hostname') }}"
      user: "{{ lookup('ansible.builtin.env', 'USER') | default('awx', true) }}"
      started: "{{ mastodon_run_started }}"
      awx_job_id: "{{ awx_job_id | default(omit) }}"
    duration: 900
    break_lock: "{{ mastodon_lock_break | default(false) | bool }}"
    labels:
      app.kubernetes.io/instance: social
      app.kubernetes.io/managed-by: fediverse.mastodon

- name: Still ours? Push the expiry out
  fediverse.mastodon.instance_lock:
    namespace: social
    name: social-run-lock
    state: renewed
    holder:
      run_id: "{{ mastodon_run_id }}"

- name: Would this run be allowed to start? (reads only)
  fediverse.mastodon.instance_lock:
    namespace: social
    name: social-run-lock
    state: checked
    holder:
      run_id: "{{ mastodon_run_id }}"

- name: Release the lock at the end of the run
  fediverse.mastodon.instance_lock:
    namespace: social
    name: social-run-lock
    state: released
    holder:
      run_id: "{{ mastodon_run_id }}"
'''

RETURN = r'''
operation:
  description:
    - What was done, or would be done in check mode. V(create) (new Lease), V(take_over)
      (a Lease nobody or another run held became this run's), V(renew), V(delete) or V(none).
  returned: success
  type: str
  sample: create
holder:
  description:
    - The holder of the lock after the task; null when nobody holds it. With O(state=checked),
      the current holder, which may be another run.
  returned: success
  type: dict
  sample: {run_id: 3f6c1a9e, host: ctl-1, user: alice, started: "2025-05-01T10:00:00Z",
           awx_job_id: "42", identity: 3f6c1a9e@ctl-1}
  contains:
    run_id:
      description: The holder's run id.
      type: str
    host:
      description: The holder's host.
      type: str
    user:
      description: Who started the holding run; null if unknown.
      type: str
    started:
      description: When the holding run started; null if unknown.
      type: str
    awx_job_id:
      description: The AWX job id of the holding run; null outside AWX.
      type: str
    identity:
      description: The Lease's C(holderIdentity).
      type: str
expires:
  description: When the lock lapses unless renewed (RFC 3339, UTC, the API server's clock); null when nobody holds it.
  returned: success
  type: str
  sample: "2025-05-01T10:15:00Z"
expires_in:
  description: Seconds until RV(expires) (negative when it lapsed); null when nobody holds it.
  returned: success
  type: int
  sample: 900
taken_over:
  description: True when the lock was (or would be, in check mode) taken from another run, whose lock had lapsed or was broken.
  returned: success
  type: bool
  sample: false
previous_holder:
  description: The run the lock was taken from (same keys as RV(holder)); null unless RV(taken_over).
  returned: success
  type: dict
  sample: null
resource_version:
  description: The Lease's C(resourceVersion) after the task; null when there is no Lease, or in check mode before a create.
  returned: success
  type: str
  sample: "4711"
namespace:
  description: Namespace of the Lease.
  returned: always
  type: str
  sample: social
name:
  description: Name of the Lease.
  returned: always
  type: str
  sample: social-run-lock
'''

import datetime
import getpass
import os
import socket

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils import lease


def _default_user():
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry for the uid (random uid in an execution environment)
        return "uid-%d" % os.getuid()


def holder_with_defaults(holder, state):
    """The holder dict to write: empty fields get the local defaults (only when taking the lock)."""
    result = dict((k, holder.get(k)) for k in lease.HOLDER_FIELDS)
    for key in lease.HOLDER_FIELDS:
        result[key] = ("%s" % result[key]).strip() if lease.has_value(result[key]) else None
    if state == "acquired":
        if not result["host"]:
            result["host"] = socket.gethostname()
        if not result["user"]:
            result["user"] = _default_user()
        if not result["started"]:
            result["started"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return result


def main(module_class=AnsibleModule):
    argument_spec = dict(
        namespace=dict(type="str", required=True),
        name=dict(type="str", required=True),
        state=dict(type="str", default="acquired", choices=list(lease.STATES)),
        holder=dict(type="dict", required=True, options=dict(
            run_id=dict(type="str", required=True),
            host=dict(type="str"),
            user=dict(type="str"),
            started=dict(type="str"),
            awx_job_id=dict(type="raw"),
        )),
        duration=dict(type="int", default=lease.DEFAULT_DURATION),
        break_lock=dict(type="bool", default=False),
        labels=dict(type="dict", default={}),
    )
    argument_spec.update(k8s_client.K8S_AUTH_ARG_SPEC)
    module = module_class(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    namespace, name, state = params["namespace"], params["name"], params["state"]
    base = dict(namespace=namespace, name=name)
    problems = []
    problem = lease.check_run_id(params["holder"]["run_id"])
    if problem:
        problems.append(problem)
    if not 1 <= params["duration"] <= lease.MAX_DURATION:
        problems.append("duration: %s is out of range: give 1 to %d seconds (900 is the default)"
                        % (params["duration"], lease.MAX_DURATION))
    if problems:
        module.fail_json(msg="; ".join(problems), **base)
    if not k8s_client.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(k8s_client.KUBERNETES_IMPORT_ERROR), **base)
    holder = holder_with_defaults(params["holder"], state)
    try:
        api = k8s_client.build_api_client(params)
        result = lease.lock(api, namespace, name, state, holder, duration=params["duration"],
                            break_lock=params["break_lock"], labels=params["labels"], check_mode=module.check_mode)
    except lease.LeaseError as exc:
        module.fail_json(msg=str(exc), holder=exc.holder, **base)
    except Exception as exc:  # connection and configuration errors of the kubernetes client
        module.fail_json(msg="mastodon_lock: cannot reach the Kubernetes API for Lease %s/%s: %s: %s. Check kubeconfig, "
                         "context, host and the K8S_AUTH_* variables." % (namespace, name, type(exc).__name__, exc), **base)
    for warning in result["warnings"]:
        module.warn(warning)
    out = dict(changed=result["changed"], operation=result["action"], holder=result["holder"], expires=result["expires"],
               expires_in=result["expires_in"], taken_over=result["taken_over"],
               previous_holder=result["previous_holder"], resource_version=result["resource_version"], **base)
    if module._diff:
        out["diff"] = dict(before=result["before"], after=result["after"])
    module.exit_json(**out)


if __name__ == "__main__":
    main()
