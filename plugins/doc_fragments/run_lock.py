# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The run_lock option of the modules that write to the cluster."""

    DOCUMENTATION = r'''
options:
  run_lock:
    description:
      - The instance's run lock, a C(coordination.k8s.io/v1) Lease that keeps two runs against the
        same instance apart. When given, the module takes the lock right before its first request
        that would store something (never for reads or dry runs), or renews it when this run
        already holds it. Another run's live lock fails the write (HTTP 423) with a message naming
        that run. The playbooks pass it to every module through C(module_defaults).
    type: dict
    suboptions:
      namespace:
        description: Namespace of the Lease (the instance's; created when missing, as a first install's first write).
        type: str
        required: true
      name:
        description: Name of the Lease, C(<instance>-run-lock).
        type: str
        required: true
      holder:
        description: This run, with C(run_id) (unique per run), C(host), C(user), C(started) and C(awx_job_id).
        type: dict
        required: true
      duration:
        description: Seconds the lock lives without a renewal.
        type: int
        default: 900
      renew_every:
        description: Renew the lock when it is older than this many seconds.
        type: int
        default: 300
      break_lock:
        description: Take another run's live lock (C(-e mastodon_lock_break=true)).
        type: bool
        default: false
'''
