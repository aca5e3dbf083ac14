#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The work is done by the action plugin of the same name (plugins/action/service_connections.py),
# on the controller; this file holds its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: service_connections
short_description: Set the connection facts of the backing services, without touching the cluster
version_added: "0.3.0"
description:
  - Sets C(postgresql_connection), C(redis_connection), C(elasticsearch_connection) and
    C(minio_connection) (docs/conventions.md) from the variables of the backing roles, as each
    role sees them (its defaults, then the inventory, then its derived names).
  - A connection fact names where a service is and which Secret holds its credential, never a
    credential.
  - Fails with one readable line when an external service is selected without its address.
  - Runs on the controller and contacts nothing.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  services:
    description: The services whose facts to set.
    type: list
    elements: str
    choices: [postgresql, redis, elasticsearch, minio]
    default: [postgresql, redis, elasticsearch, minio]
  only_missing:
    description: Leave alone a service whose connection fact is already set (by its role, earlier in the run).
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Learn where the services are when the backing phase is skipped
  fediverse.mastodon.service_connections:
    only_missing: true
'''

RETURN = r'''
ansible_facts:
  description: The connection facts, C(<service>_connection) for each service.
  returned: success
  type: dict
'''
