#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The work is done by the action plugin of the same name (plugins/action/preflight_inputs.py),
# on the controller; this file holds its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: preflight_inputs
short_description: Check the complete merged input of every role before anything changes
version_added: "0.2.0"
description:
  - Loads the defaults and the argument specs of the collection's roles, lays the host's
    variables (inventory, vars files, extra vars, facts) over the defaults as Ansible's precedence
    does when each role runs, templates every option, and validates the result against the
    argument specs. Then runs the semantic checks the specs cannot express (domains, names, the
    version tag, Job name lengths, S3 endpoints, server versions Mastodon needs, the sidekiq
    scheduler rule, instances sharing a database role, an inline kubeconfig).
  - Returns one line per problem, each starting with the variable to fix and ending with the fix.
    A line never holds the value of a variable that may be secret.
  - An option whose default depends on a fact that a later phase sets is left out (see RV(deferred)).
  - Runs on the controller only and contacts nothing.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Nothing is changed in any mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  roles:
    description:
      - Roles whose argument specs are enforced. Every role's defaults take part in the merge
        whatever this says; V([]) enforces no spec (the semantic checks still run).
    type: list
    elements: str
'''

EXAMPLES = r'''
- name: Check the complete input of every role
  fediverse.mastodon.preflight_inputs:
    roles: [postgresql, redis, elasticsearch, minio, provision, mastodon]
  register: inputs

- name: Stop on a problem
  ansible.builtin.fail:
    msg: "{{ inputs.problems | join('\n') }}"
  when: inputs.problems | length > 0
'''

RETURN = r'''
problems:
  description: "One line per problem: the variable, what is wrong, and the fix."
  returned: always
  type: list
  elements: str
  sample: ["provision_s3_api: is 's3', not one of auto, minio, ceph (provision role); set it to one of auto, minio, ceph, or remove it to use the default"]
deferred:
  description: Options not checked now because their value depends on a fact a later phase sets.
  returned: always
  type: list
  elements: str
  sample: [provision_postgresql_connection]
required_resources:
  description: API kinds (and named objects) the cluster must offer for this input, for cluster_check.
  returned: always
  type: list
  elements: dict
identity:
  description: Where the instance lives (local_domain, db_host, db_name, db_user, s3_bucket, s3_endpoint), for the instance record.
  returned: always
  type: dict
postgresql_min_version:
  description: The lowest PostgreSQL version to accept.
  returned: always
  type: str
  sample: "14"
redis_min_version:
  description: The lowest Redis version to accept.
  returned: always
  type: str
  sample: "7.0"
'''
