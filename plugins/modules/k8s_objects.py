#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: k8s_objects
short_description: Apply a list of Kubernetes objects, writing only those that differ
version_added: "0.1.0"
description:
  - Converges a list of Kubernetes objects in one task, in list order.
  - Each object is read first. It is written, with server-side apply, only when one of its desired
    fields differs from the live object. A rerun that changes nothing sends only read requests,
    so the API server's audit log shows no mutation.
  - When the quick comparison sees a difference, a server-side dry-run apply decides whether the
    difference is real or only a server default, so no write is sent for a false difference.
  - Existing Jobs are never modified, because a Job's pod template is immutable; name Jobs after
    what they run for.
  - Secret values are never shown in the diff, in the returned objects or in the task's
    invocation, at any verbosity.
author:
  - Fediverse Mastodon maintainers (@fediverse)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
  - fediverse.mastodon.run_lock
options:
  definitions:
    description:
      - The objects, as a list of dictionaries, each with C(apiVersion), C(kind) and C(metadata.name).
    type: list
    elements: dict
    default: []
  selector:
    description:
      - With O(state=absent), also every object of the listed kinds in O(namespace) that matches
        O(selector.labels). The objects are listed as metadata only (a Secret's data is never
        read), so deleting an instance's Secrets this way handles no secret value.
    type: dict
    suboptions:
      kinds:
        description: The kinds to list, each with C(api_version) and C(kind).
        type: list
        elements: dict
        required: true
      labels:
        description: A label selector, like C(app.kubernetes.io/instance=social).
        type: str
        required: true
  namespace:
    description:
      - Namespace for namespaced objects whose C(metadata.namespace) is not set.
    type: str
  state:
    description:
      - V(present) creates or updates the objects. V(absent) deletes them (missing ones are fine).
    type: str
    choices: [present, absent]
    default: present
  field_manager:
    description:
      - The server-side apply field manager.
    type: str
    default: fediverse-mastodon
  force_apply:
    description:
      - Send the apply even when the live objects already hold the desired values, so that
        O(field_manager) takes those fields over. The mastodon role uses it to hand a Deployment's
        replicas over before an HPA manages them.
      - Reported as changed only when the field ownership or the object really changed.
    type: bool
    default: false
  generated_secrets:
    description:
      - Secrets whose values are generated once, in the cluster, and kept on every later run
        (the same rules as M(fediverse.mastodon.generated_secret)). They are converged after
        O(definitions), in list order, so that one call deploys a whole component.
      - Only key names are ever returned; the values never leave the API server.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The Secret's name, in O(namespace).
        type: str
        required: true
      keys:
        description:
          - Each key to generate, with C(format) and C(length) as in M(fediverse.mastodon.generated_secret).
        type: dict
        default: {}
      tls:
        description:
          - Also generate a private CA and one certificate it signed, as the keys C(ca.crt),
            C(tls.crt) and C(tls.key) (PEM; RSA 2048, the key in PKCS#8). The three are made
            together, once; when one of them is missing, all three are made anew. The CA's key
            is not kept.
          - "C(common_name) (required) and C(organization) make the certificate's subject;
            C(names) (list) its subjectAltName (IP literals as IP addresses, the rest as DNS names);
            C(days) (default 3650) its validity."
        type: dict
      labels:
        description: Labels of the Secret.
        type: dict
        default: {}
  wait:
    description:
      - After everything is applied, wait until every Deployment, StatefulSet and DaemonSet in
        O(definitions) is available and up to date and every Job has completed.
      - On a timeout, or when a Job fails, the task fails with one line per object that is not
        ready, the state of its pods and the namespace's recent events.
      - Skipped in check mode, where nothing rolls out.
      - With O(run_lock), every poll renews the run's lock when it is due, so that it outlives a
        long rollout; the wait fails when another run took the lock over.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait) before failing.
    type: int
    default: 300
  wait_timeout_variable:
    description: The name of the variable that sets O(wait_timeout), named in the timeout message.
    type: str
attributes:
  check_mode:
    support: full
    description: Check mode sends server-side dry-run requests only.
  diff_mode:
    support: full
    description: The diff shows, for each changed object, the live fields it sets and their new values.
'''

EXAMPLES = r'''
- name: Apply every object of the component in one request loop
  fediverse.mastodon.k8s_objects:
    namespace: social
    definitions: "{{ lookup('ansible.builtin.template', 'objects.yml.j2') | ansible.builtin.from_yaml_all | list }}"

- name: Remove the workloads, keep everything else
  fediverse.mastodon.k8s_objects:
    namespace: social
    state: absent
    definitions:
      - apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: social-web
'''

RETURN = r'''
objects:
  description: One entry per definition, in order.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: The object's kind.
      type: str
    name:
      description: The object's name.
      type: str
    namespace:
      description: The object's namespace, or null for cluster-scoped objects.
      type: str
    action:
      description: What happened, one of created, updated, unchanged, deleted, absent.
      type: str
  sample: [{"kind": "ConfigMap", "name": "social-env", "namespace": "social", "action": "unchanged"}]
changed_objects:
  description: C(Kind/namespace/name) of every object created, updated or deleted.
  returned: always
  type: list
  elements: str
  sample: ["Deployment/social/social-web"]
generated_secrets:
  description: For each entry of O(generated_secrets), the key names generated by this run and those kept.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "social-redis", "generated": [], "kept": ["redis-password"]}]
api_requests:
  description: How many API requests the module sent, by HTTP method.
  returned: always
  type: dict
  sample: {"GET": 12}
'''

import copy
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_secret, k8s_wait, run_lock
from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_client import (
    HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR, K8S_AUTH_ARG_SPEC, RUN_LOCK_ARG_SPEC, build_api_client)
from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_objects import (
    KubeRest, ensure_object, project, redact, secret_values)


def _normalise(definitions, namespace, module):
    result = []
    for index, definition in enumerate(definitions):
        if not definition:
            continue
        missing = [k for k in ("apiVersion", "kind") if not definition.get(k)]
        if not (definition.get("metadata") or {}).get("name"):
            missing.append("metadata.name")
        if missing:
            module.fail_json(msg="definitions[%d] lacks %s; every object needs apiVersion, kind and metadata.name"
                             % (index, ", ".join(missing)))
        definition = copy.deepcopy(definition)
        if namespace and not definition["metadata"].get("namespace") and definition["kind"] != "Namespace":
            definition["metadata"]["namespace"] = namespace
        result.append(definition)
    return result


def wait_for(module, rest, definitions, objects):
    """Wait (k8s_wait) for the workloads among ``definitions``; fail with the reason on a timeout."""
    targets = []
    for definition in definitions:
        if definition["kind"] in k8s_wait.WAITABLE_KINDS:
            meta = definition["metadata"]
            path = rest.path(definition["apiVersion"], definition["kind"], meta["name"], meta.get("namespace"))
            targets.append(dict(label="%s %s/%s" % (definition["kind"], meta.get("namespace"), meta["name"]), path=path,
                                namespace=meta.get("namespace")))

    def explain(not_ready):
        lines = []
        namespaces = sorted(set(t["namespace"] for t, o, why in not_ready if t["namespace"]))
        for target, obj, why in not_ready:
            selector = k8s_wait.selector_string(obj or {})
            pods = rest.call("GET", "/api/v1/namespaces/%s/pods" % target["namespace"],
                             query=[("labelSelector", selector)]).get("items", []) if selector else []
            lines.append("%s: %s. Pods:" % (target["label"], why))
            lines.extend(k8s_wait.describe_pods(pods))
        for namespace in namespaces:
            events = rest.call("GET", "/api/v1/namespaces/%s/events" % namespace).get("items", [])
            lines.append("Recent events in %s:" % namespace)
            lines.extend(k8s_wait.describe_events(events))
        return lines

    def keep_lock():
        try:
            run_lock.keep(rest.api, module.params["run_lock"])
        except run_lock.lease.LeaseError as exc:
            module.fail_json(msg="stopped waiting: %s" % exc, objects=objects)

    timeout = module.params["wait_timeout"]
    try:
        k8s_wait.wait_until_ready(lambda t: rest.get(t["path"]), targets, timeout, explain, tick=keep_lock)
    except k8s_wait.WaitTimeout as exc:
        first, rest_lines = (str(exc).split("\n", 1) + [""])[:2]
        variable = module.params["wait_timeout_variable"]
        module.fail_json(msg="%s%s\n%s" % (first, " (%s)" % variable if variable else "", rest_lines), objects=objects)
    except k8s_wait.WaitFailed as exc:
        module.fail_json(msg=str(exc), objects=objects)


def main(module_class=AnsibleModule):
    argument_spec = dict(
        definitions=dict(type="list", elements="dict", default=[]),
        selector=dict(type="dict", options=dict(
            kinds=dict(type="list", elements="dict", required=True),
            labels=dict(type="str", required=True),
        )),
        namespace=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        field_manager=dict(type="str", default="fediverse-mastodon"),
        force_apply=dict(type="bool", default=False),
        generated_secrets=dict(type="list", elements="dict", default=[], no_log=False, options=dict(
            name=dict(type="str", required=True),
            keys=dict(type="dict", default={}, no_log=False),
            tls=dict(type="dict"),
            labels=dict(type="dict", default={}),
        )),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=300),
        wait_timeout_variable=dict(type="str"),
    )
    argument_spec.update(K8S_AUTH_ARG_SPEC)
    argument_spec.update(RUN_LOCK_ARG_SPEC)
    module = module_class(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))

    if module.params["selector"] and module.params["state"] != "absent":
        module.fail_json(msg="selector works only with state=absent; list the objects to apply in definitions")
    if module.params["selector"] and not module.params["namespace"]:
        module.fail_json(msg="selector needs namespace: the objects are listed in one namespace")
    definitions = _normalise(module.params["definitions"], module.params["namespace"], module)
    # Secret values given in definitions are masked like no_log options, wherever they would show.
    module.no_log_values.update(secret_values(definitions))
    try:
        rest = KubeRest(build_api_client(module.params))
    except Exception as exc:  # kubeconfig problems come in many exception types
        module.fail_json(msg="cannot configure the Kubernetes client: %s. Check kubeconfig/context or K8S_AUTH_* variables"
                         % exc)
    selector = module.params["selector"]
    if selector:
        for index, entry in enumerate(selector["kinds"]):
            if not entry.get("api_version") or not entry.get("kind"):
                module.fail_json(msg="selector.kinds[%d] needs api_version and kind" % index)
            try:
                definitions.extend(rest.list_metadata(entry["api_version"], entry["kind"], module.params["namespace"],
                                                      selector["labels"]))
            except LookupError:
                continue  # a kind the cluster does not serve has no objects to delete
            except Exception as exc:  # ApiException, or a connection error
                reason = getattr(exc, "reason", None) or exc
                module.fail_json(msg="listing %s in %s failed: %s" % (entry["kind"], module.params["namespace"], reason))
    if module.params["state"] == "absent":
        definitions = list(reversed(definitions))
    else:
        # Every kind must be served before the first write: a missing CRD stops the group whole.
        for definition in definitions:
            try:
                rest.resource(definition["apiVersion"], definition["kind"])
            except LookupError as exc:
                module.fail_json(msg="%s/%s: %s. Nothing was applied" % (definition["kind"], definition["metadata"]["name"], exc))
            except Exception:  # pylint: disable=broad-except
                break  # a connection or API error: the apply below reports it with its object

    objects, changed_objects, before, after = [], [], [], []
    for definition in definitions:
        meta = definition["metadata"]
        ident = "%s/%s%s" % (definition["kind"], meta.get("namespace") + "/" if meta.get("namespace") else "", meta["name"])
        try:
            action, live, result = ensure_object(rest, definition, module.params["state"], module.params["field_manager"],
                                                 module.check_mode, force_apply=module.params["force_apply"])
        except LookupError as exc:
            module.fail_json(msg="%s: %s" % (ident, exc), objects=objects)
        except Exception as exc:  # ApiException, or a connection error of urllib3
            status = getattr(exc, "status", None)
            if status:
                reason = getattr(exc, "body", None) or str(exc)
                module.fail_json(msg="%s: the API server refused it (HTTP %s): %s" % (ident, status, reason), objects=objects)
            module.fail_json(msg="%s: %s" % (ident, exc), objects=objects, exception=traceback.format_exc())
        objects.append(dict(kind=definition["kind"], name=meta["name"], namespace=meta.get("namespace"), action=action))
        if action in ("created", "updated", "deleted"):
            changed_objects.append(ident)
            if module._diff:
                before.append(redact(project(live, definition)) if live else None)
                after.append(redact(project(result, definition)) if result else None)

    generated = []
    for entry in module.params["generated_secrets"]:
        generators, problems = k8s_secret.build_generators(entry["keys"])
        groups = ()
        if entry.get("tls") is not None:
            tls_generators, group, tls_problems = k8s_secret.build_tls_generators(entry["tls"])
            generators.update(tls_generators)
            problems.extend(tls_problems)
            groups = (group,) if group else ()
        if problems or not generators:
            module.fail_json(msg="generated_secrets %s: %s" % (entry["name"], "; ".join(problems) or "name at least one key"),
                             objects=objects)
        try:
            report = k8s_secret.ensure_secret_keys(rest.api, module.params["namespace"], entry["name"], generators,
                                                   labels=entry["labels"], check_mode=module.check_mode, groups=groups)
        except k8s_secret.SecretStoreError as exc:
            module.fail_json(msg=str(exc), objects=objects)
        generated.append(dict(name=entry["name"], generated=report["generated"], kept=report["kept"]))
        if report["changed"]:
            changed_objects.append("Secret/%s/%s" % (module.params["namespace"], entry["name"]))

    if module.params["wait"] and module.params["state"] == "present" and not module.check_mode:
        wait_for(module, rest, definitions, objects)

    response = dict(changed=bool(changed_objects), objects=objects, changed_objects=changed_objects,
                    generated_secrets=generated, api_requests=rest.request_counts())
    if module._diff:
        response["diff"] = dict(before={"objects": before}, after={"objects": after})
    module.exit_json(**response)


if __name__ == "__main__":
    main()
