#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: instance_record
short_description: Read, check and update the durable record of a Mastodon instance
version_added: "1.0.0"
description:
  - Keeps the history of a Mastodon instance in a ConfigMap C(<instance>-record) in the instance's
    namespace, so that the version guard and the identity checks still know what the instance ran
    and where its data lives after a teardown deleted the workloads.
  - The ConfigMap carries the labels C(app.kubernetes.io/instance=<instance>),
    C(app.kubernetes.io/part-of=mastodon) and C(mastodon.fediverse/record=true), and never
    C(app.kubernetes.io/managed-by=fediverse.mastodon), which teardown selects on. A default
    teardown therefore keeps it; only deleting the data (or the namespace) removes it.
  - "Its data keys: C(deployed_version), C(migrated_version) (the last version whose post-deployment
    migrations completed), C(local_domain), C(db_host), C(db_name), C(db_user), C(s3_bucket),
    C(s3_endpoint), C(created), C(updated) (ISO-8601 UTC) and C(history), a JSON list of the last
    20 changes, each C({time, version, event})."
  - The record never holds a secret. An O(s3_endpoint) with C(user:password@) or a O(db_host)
    with C(@) is refused.
  - O(state=read) returns the record. O(state=check) compares the record with what this run would
    deploy and returns the problems, without writing (for preflight). O(state=update) sets fields.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
  - fediverse.mastodon.run_lock
  - ansible.builtin.action_common_attributes
options:
  namespace:
    description:
      - Namespace of the instance, where the record lives. Must exist for O(state=update).
    type: str
    required: true
  instance:
    description:
      - Name of the Mastodon instance (a DNS label of at most 56 characters). The record is the
        ConfigMap C(<instance>-record).
    type: str
    required: true
  state:
    description:
      - V(read) returns the record (null when there is none) and writes nothing.
      - V(check) compares the record with O(desired) and returns RV(problems); it writes nothing.
        It fails when there are problems unless O(fail_on_problem=false).
      - V(update) sets the given fields; creates the record when absent. A run that changes
        nothing sends no write to the API server.
    type: str
    choices: [read, check, update]
    default: read
  desired:
    description:
      - For O(state=check), what this run would deploy. Keys not given (or empty) are not checked.
      - "Keys: C(version) (the image tag to deploy), C(local_domain), C(db_host), C(db_name),
        C(db_user), C(s3_bucket), C(s3_endpoint)."
      - "A C(local_domain) that differs from the record is a problem: Mastodon's LOCAL_DOMAIN can
        never change. C(db_host), C(db_name), C(db_user), C(s3_bucket) and C(s3_endpoint) that
        differ are problems unless named in O(overrides)."
      - "C(version) is a problem when it is below the recorded C(deployed_version) or
        C(migrated_version) (unless O(allow_downgrade)); when it skips a minor series compared
        with C(deployed_version), for example 4.4.x to 4.6.x (unless O(version_guard=false)); when it is
        not a release version such as C(v4.6.3) or C(v4.6.3-rc.1) (unless O(version_guard=false));
        and always when it carries build metadata (C(v4.6.3+build)) or is not a valid image tag.
        Going to the next minor (4.4.x to 4.5.y) or to the next major's .0 series (3.5.x to 4.0.y)
        is allowed."
    type: dict
    default: {}
  overrides:
    description:
      - For O(state=check), fields of the record that this run may change (from
        C(-e mastodon_record_override=[...])). Elements among C(local_domain), C(db_host),
        C(db_name), C(db_user), C(s3_bucket), C(s3_endpoint).
    type: list
    elements: str
    default: []
  allow_downgrade:
    description:
      - For O(state=check), allow a C(version) below the recorded ones. Migrations are not
        reverted, so the older code runs on a newer schema.
    type: bool
    default: false
  version_guard:
    description:
      - For O(state=check), refuse a skipped minor series and versions that are not release
        versions. V(false) allows custom tags such as C(edge); a downgrade is still governed by
        O(allow_downgrade).
    type: bool
    default: true
  variables:
    description:
      - For O(state=check), the inventory variable to name in each problem, by field. Keys among
        C(version), C(local_domain), C(db_host), C(db_name), C(db_user), C(s3_bucket),
        C(s3_endpoint) (default to the field names), C(allow_downgrade) (default
        C(mastodon_allow_downgrade)), C(version_guard) (default C(mastodon_version_guard)) and
        C(overrides) (default C(mastodon_record_override)).
    type: dict
    default: {}
  fail_on_problem:
    description:
      - For O(state=check), fail when there are problems, with the problems joined by C(; ).
        V(false) returns them in RV(problems) and succeeds.
    type: bool
    default: true
  deployed_version:
    description:
      - For O(state=update), the version now deployed. Null or empty leaves the field unchanged;
        the same for every field below.
    type: str
  migrated_version:
    description:
      - For O(state=update), the last version whose post-deployment migrations completed.
    type: str
  local_domain:
    description:
      - For O(state=update), the instance's LOCAL_DOMAIN.
    type: str
  db_host:
    description:
      - For O(state=update), the PostgreSQL host (no user or password).
    type: str
  db_name:
    description:
      - For O(state=update), the database name.
    type: str
  db_user:
    description:
      - For O(state=update), the database user name (never its password).
    type: str
  s3_bucket:
    description:
      - For O(state=update), the media bucket.
    type: str
  s3_endpoint:
    description:
      - For O(state=update), the S3 endpoint URL, without credentials.
    type: str
  event:
    description:
      - For O(state=update), what happened, stored in the history entry that a change adds
        (for example C(install), C(upgrade), C(migrated)). Defaults to C(created) for a new record
        and C(updated <fields>) otherwise.
    type: str
  labels:
    description:
      - For O(state=update), more labels for the ConfigMap, merged into its labels.
      - May not set C(app.kubernetes.io/managed-by=fediverse.mastodon) (teardown would delete the
        record). The three labels the module sets itself may be given only with the same values.
    type: dict
    default: {}
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: O(state=update) reports what would change and writes nothing.
  diff_mode:
    support: full
    details: O(state=update) returns the record's data before and after.
notes:
  - Writes are safe against concurrent runs. The record is created only if absent, and updates
    carry the C(resourceVersion) that was read and are planned again after a conflict, so no
    history entry is lost.
  - With O(run_lock), only O(state=update) with something to change takes the lock; O(state=read),
    O(state=check), check mode and a no-op update only read.
seealso:
  - module: fediverse.mastodon.k8s_objects
'''

EXAMPLES = r'''
- name: Read the record (null before the first install)
  fediverse.mastodon.instance_record:
    namespace: social
    instance: social
  register: record

- name: Preflight, refuse what the record says is unsafe
  fediverse.mastodon.instance_record:
    namespace: social
    instance: social
    state: check
    desired:
      version: "{{ mastodon_version }}"
      local_domain: "{{ mastodon_local_domain }}"
      db_name: "{{ mastodon_db_name }}"
      db_user: "{{ mastodon_db_user }}"
      s3_bucket: "{{ mastodon_s3_bucket }}"
      s3_endpoint: "{{ minio_external_endpoint }}"
    overrides: "{{ mastodon_record_override | default([]) }}"
    allow_downgrade: "{{ mastodon_allow_downgrade }}"
    version_guard: "{{ mastodon_version_guard }}"
    variables:
      version: mastodon_version
      local_domain: mastodon_local_domain
      db_name: mastodon_db_name
      db_user: mastodon_db_user
      s3_bucket: mastodon_s3_bucket
      s3_endpoint: minio_external_endpoint
    fail_on_problem: false
  register: record_check

- name: Note the deployment
  fediverse.mastodon.instance_record:
    namespace: social
    instance: social
    state: update
    deployed_version: "{{ mastodon_version }}"
    local_domain: "{{ mastodon_local_domain }}"
    s3_bucket: "{{ mastodon_s3_bucket }}"
    event: upgrade

- name: Note that the post-deployment migrations completed
  fediverse.mastodon.instance_record:
    namespace: social
    instance: social
    state: update
    migrated_version: "{{ mastodon_version }}"
    event: post-deployment migrations
'''

RETURN = r'''
record:
  description:
    - The record's data (after the update for O(state=update), what it would be in check mode),
      with C(history) as a list of C({time, version, event}); null when there is no record.
  returned: success
  type: dict
  sample:
    deployed_version: v4.6.3
    migrated_version: v4.6.3
    local_domain: social.example
    db_host: postgres.example
    db_name: mastodon
    db_user: mastodon
    s3_bucket: mastodon-media
    s3_endpoint: https://s3.example
    created: "2025-06-01T10:00:00Z"
    updated: "2025-06-02T09:30:00Z"
    history:
      - {time: "2025-06-01T10:00:00Z", version: v4.5.2, event: install}
      - {time: "2025-06-02T09:30:00Z", version: v4.6.3, event: upgrade}
exists:
  description: Whether the record existed when the module read it.
  returned: success
  type: bool
  sample: true
name:
  description: Name of the ConfigMap.
  returned: success
  type: str
  sample: social-record
resource_version:
  description: The ConfigMap's resourceVersion after the run; null when it does not exist (or would only be created in check mode).
  returned: success
  type: str
  sample: "4711"
problems:
  description: For O(state=check), one line per problem, each naming the inventory variable to fix and how.
  returned: when state is check
  type: list
  elements: str
  sample:
    - "mastodon_local_domain: social was installed with the local domain 'social.example' and this run asks for 'new.example'; ..."
changed_fields:
  description: For O(state=update), the fields that changed (or would change in check mode).
  returned: when state is update
  type: list
  elements: str
  sample: [deployed_version]
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fediverse.mastodon.plugins.module_utils import instance_record as ir
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client

VARIABLE_KEYS = ir.DESIRED_KEYS + ("allow_downgrade", "version_guard", "overrides")


def option_problems(params):
    """Problems with the options themselves (before any API call)."""
    problems = []
    problem = ir.instance_problem(params["instance"])
    if problem:
        problems.append(problem)
    unknown = sorted(set(params["desired"]) - set(ir.DESIRED_KEYS))
    if unknown:
        problems.append("desired: unknown key(s) %s; use %s" % (", ".join(unknown), ", ".join(ir.DESIRED_KEYS)))
    unknown = sorted(set(params["variables"]) - set(VARIABLE_KEYS))
    if unknown:
        problems.append("variables: unknown key(s) %s; use %s" % (", ".join(unknown), ", ".join(VARIABLE_KEYS)))
    if params["state"] == "update":
        for field in ir.UPDATE_FIELDS:
            value = params[field]
            if value:
                problem = ir.field_value_problem(field, field, value)
                if problem:
                    problems.append(problem)
        problem = ir.labels_problem(params["labels"], params["instance"])
        if problem:
            problems.append(problem)
    return problems


def data_diff(before, after):
    return dict(before=dict(before or {}), after=dict(after or {}))


def main(module_class=AnsibleModule):
    argument_spec = dict(
        namespace=dict(type="str", required=True),
        instance=dict(type="str", required=True),
        state=dict(type="str", choices=["read", "check", "update"], default="read"),
        desired=dict(type="dict", default={}),
        overrides=dict(type="list", elements="str", default=[]),
        allow_downgrade=dict(type="bool", default=False),
        version_guard=dict(type="bool", default=True),
        variables=dict(type="dict", default={}),
        fail_on_problem=dict(type="bool", default=True),
        event=dict(type="str"),
        labels=dict(type="dict", default={}),
    )
    for field in ir.UPDATE_FIELDS:
        argument_spec[field] = dict(type="str")
    argument_spec.update(k8s_client.K8S_AUTH_ARG_SPEC)
    argument_spec.update(k8s_client.RUN_LOCK_ARG_SPEC)
    module = module_class(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    problems = option_problems(params)
    if problems:
        module.fail_json(msg="; ".join(problems))
    if not k8s_client.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(k8s_client.KUBERNETES_IMPORT_ERROR))
    namespace, instance, state = params["namespace"], params["instance"], params["state"]
    name = ir.record_name(instance)
    out = dict(changed=False, name=name)
    try:
        api = k8s_client.build_api_client(params)
        if state == "update":
            fields = dict((field, params[field]) for field in ir.UPDATE_FIELDS if params[field])
            result = ir.update_record(api, namespace, instance, fields, event=params["event"], labels=params["labels"],
                                      check_mode=module.check_mode)
            out.update(changed=result["changed"], exists=result["before"] is not None,
                       record=ir.decode_record(result["after"]), resource_version=result["resource_version"],
                       changed_fields=result["changed_fields"])
            if module._diff:
                out["diff"] = data_diff(result["before"], result["after"])
        else:
            record, resource_version = ir.read_record(api, namespace, instance)
            out.update(exists=record is not None, record=record, resource_version=resource_version)
            if state == "check":
                out["problems"] = ir.check_problems(record, params["desired"], instance, overrides=params["overrides"],
                                                    allow_downgrade=params["allow_downgrade"],
                                                    version_guard=params["version_guard"],
                                                    variables=params["variables"])
    except ir.RecordError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # connection and configuration errors of the kubernetes client
        module.fail_json(msg="Cannot reach the Kubernetes API for ConfigMap %s/%s: %s: %s. Check kubeconfig, "
                         "context, host and the K8S_AUTH_* variables." % (namespace, name, type(exc).__name__, exc))
    if state == "check" and out["problems"] and params["fail_on_problem"]:
        module.fail_json(msg="; ".join(out["problems"]), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
