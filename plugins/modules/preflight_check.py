#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The work is done by the action plugin of the same name (plugins/action/preflight_check.py),
# on the controller; this file holds its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: preflight_check
short_description: The whole Mastodon preflight in one step, returning every problem at once
version_added: "0.3.0"
description:
  - Runs every check of the P(fediverse.mastodon.preflight#role) role, in order, and collects
    every problem. Each problem line names the variable to fix and the fix; none holds a value.
  - It does not fail on a problem itself; RV(msg) lists them all and the role's next task stops
    the run with it, so the facts it sets are there for a rescue block too.
  - "1. The complete merged input of every role: the work of M(fediverse.mastodon.preflight_inputs)."
  - "2. The cluster, read-only: the work of M(fediverse.mastodon.cluster_check) (API and version,
    namespace or the right to create it, StorageClasses of the in-cluster services, the kinds the
    input needs, the running web Deployment)."
  - "3. The run lock (M(fediverse.mastodon.instance_lock) O(fediverse.mastodon.instance_lock#module:state=checked))
    and the durable instance record (M(fediverse.mastodon.instance_record) O(fediverse.mastodon.instance_record#module:state=check))."
  - "4. The version guard against the running web Deployment: no downgrade, no skipped minor series."
  - "5. Real logins to the external services with the credentials the deployment will use
    (M(fediverse.mastodon.endpoint_check)): the vaulted C(preflight_*) values, else references to
    the Secrets, which are read without their values passing through a fact."
  - It takes no options. It reads the preflight role's settings (C(preflight_*), see the role's
    README) and the other roles' variables, and sets the facts C(preflight_problems),
    C(preflight_report) and C(preflight_identity).
  - Runs on the controller; the modules it uses run in the controller process.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only in check mode. Otherwise the only write is creating a missing external media bucket
      (C(preflight_s3_create_bucket)), and only when no other problem was found.
  diff_mode:
    support: none
  platform:
    platforms: posix
options: {}
'''

EXAMPLES = r'''
- name: Check everything before any change
  fediverse.mastodon.preflight_check:
'''

RETURN = r'''
problems:
  description: "One line per problem: the variable, what is wrong, and the fix."
  returned: always
  type: list
  elements: str
msg:
  description: The message that lists every problem (the one the role stops with), or C(no problem found).
  returned: always
  type: str
report:
  description: A short report (Kubernetes version, namespace, running and wanted Mastodon version, the external services reached, the number
    of problems, the seconds spent).
  returned: always
  type: dict
'''
