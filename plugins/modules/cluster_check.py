#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: cluster_check
short_description: Read-only checks of a Kubernetes cluster before a Mastodon deploy, reporting every problem at once
version_added: "1.0.0"
description:
  - Reaches the Kubernetes API with the given credentials and checks, without changing anything,
    that a Mastodon instance can be deployed there. It reports all the problems it found, each
    starting with the name of the variable to fix, instead of stopping at the first.
  - The server version must lie within O(min_version) and O(max_version).
  - The namespace O(namespace) must exist, or (with O(namespace_may_be_created=true)) the
    credentials must be allowed to create namespaces. That permission is asked with a
    C(SelfSubjectAccessReview), which the API server answers without storing anything; it is
    only sent when the namespace is missing.
  - Each StorageClass in O(storage_classes) must exist; an entry without a name needs a default
    StorageClass.
  - The Deployments in O(read_deployments) are read (when the namespace exists), so a caller can
    compare the running image with the one it is about to deploy.
  - The kinds (and named objects) in O(required_resources) must be served by the cluster.
  - Only C(GET) and C(LIST) requests are made, plus the access review described above.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module never changes anything, so it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  min_version:
    description: Lowest supported Kubernetes server version, as C(MAJOR.MINOR). Null accepts any.
    type: str
    default: "1.30"
  max_version:
    description: Highest supported Kubernetes server version, as C(MAJOR.MINOR) (its patch releases included). Null accepts any.
    type: str
  namespace:
    description: Namespace of the instance. Null skips the namespace check.
    type: str
  namespace_may_be_created:
    description:
      - V(true) accepts a missing namespace when the credentials may create namespaces.
        V(false) requires the namespace to exist.
    type: bool
    default: true
  storage_classes:
    description:
      - StorageClasses that must exist. O(storage_classes[].name=null) asks for the cluster's
        default StorageClass.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the StorageClass; null for the default one.
        type: str
      variables:
        description: The variables that select this class, named in the problem.
        type: list
        elements: str
        default: []
  required_resources:
    description:
      - API kinds the deploy will use, and optionally one named object of each, that must exist
        in the cluster (for example the Gateway API's C(HTTPRoute), an C(IngressClass), a
        cert-manager C(ClusterIssuer)). The kind is looked up with API discovery; a named object
        is read (cluster-scoped, or in O(namespace) when the kind is namespaced).
    type: list
    elements: dict
    default: []
    suboptions:
      api_version:
        description: The kind's group and version, like C(gateway.networking.k8s.io/v1).
        type: str
        required: true
      kind:
        description: The kind, like C(HTTPRoute).
        type: str
        required: true
      name:
        description: Name of an object of that kind that must exist; null checks only the kind.
        type: str
      variables:
        description: The variables that ask for it, named in the problem.
        type: list
        elements: str
        default: []
      fix:
        description: What the operator can do, added to the problem.
        type: str
  read_deployments:
    description: Names of Deployments in O(namespace) to read and return in RV(deployments).
    type: list
    elements: str
    default: []
  variables:
    description:
      - Option name -> name of the variable the operator sets, for the messages (keys
        C(kubeconfig), C(namespace), C(min_version), C(max_version)). Options not listed are named
        after the option.
    type: dict
    default: {}
  fail_on_problem:
    description: Fail when a problem is found (all of them in C(msg) and RV(problems)); false returns them.
    type: bool
    default: true
requirements:
  - kubernetes (the Python client)
'''

EXAMPLES = r'''
- name: Check the cluster before deploying
  fediverse.mastodon.cluster_check:
    min_version: "1.30"
    namespace: social
    storage_classes:
      - name: fast-ssd
        variables: [postgresql_storage_class, redis_storage_class]
      - name: null
        variables: [minio_storage_class]
    read_deployments: [social-web]
    variables: {namespace: mastodon_namespace, kubeconfig: mastodon_k8s_kubeconfig}
    fail_on_problem: false
  register: cluster
'''

RETURN = r'''
problems:
  description: One message per problem, each starting with the variable to fix.
  returned: always
  type: list
  elements: str
  sample: ["postgresql_storage_class: the StorageClass fast-ssd does not exist (the cluster has: standard)"]
server_version:
  description: The server's version (C(major), C(minor), C(gitVersion)); null when the API was not reached.
  returned: always
  type: dict
  sample: {major: "1", minor: "34", gitVersion: "v1.34.2"}
namespace_exists:
  description: Whether O(namespace) exists; null when not checked.
  returned: always
  type: bool
namespace_create_allowed:
  description: The access review's answer when the namespace is missing; null when not asked.
  returned: always
  type: bool
storage_classes:
  description: Every StorageClass name of the cluster -> whether it is the default one.
  returned: always
  type: dict
  sample: {standard: true, fast-ssd: false}
deployments:
  description: Name -> C(exists), C(annotations), C(images) (container name -> image) for each of O(read_deployments).
  returned: always
  type: dict
  sample: {social-web: {exists: true, annotations: {"mastodon.fediverse/version": v4.5.2}, images: {web: "ghcr.io/mastodon/mastodon:v4.5.2"}}}
'''

import json
import re

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client

try:
    from kubernetes import client as kube
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - reported through missing_required_lib
    kube = None

    class ApiException(Exception):  # pylint: disable=missing-class-docstring
        status = None

DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")


def minor_version(text):
    """'1.30' / 'v1.30.2' / {'major': '1', 'minor': '30+'} -> (1, 30); None when unparsable."""
    if isinstance(text, dict):
        text = "%s.%s" % (text.get("major", ""), text.get("minor", ""))
    match = re.match(r"^v?(\d+)\.(\d+)", to_native(text or "").strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def version_problems(version, minimum, maximum, name):
    """Problems for a server version outside [minimum, maximum] (MAJOR.MINOR)."""
    have = minor_version(version)
    shown = version.get("gitVersion") or "%s.%s" % (version.get("major"), version.get("minor"))
    if have is None:
        return ["%s: the API server reports a version that cannot be read (%s)" % (name("min_version"), shown)]
    out = []
    low = minor_version(minimum) if minimum else None
    high = minor_version(maximum) if maximum else None
    if low and have < low:
        out.append("%s: the cluster runs Kubernetes %s, older than the lowest supported %d.%d; upgrade the cluster"
                   % (name("min_version"), shown, low[0], low[1]))
    if high and have > high:
        out.append("%s: the cluster runs Kubernetes %s, newer than the highest supported %d.%d; raise it if you "
                   "have checked that version" % (name("max_version"), shown, high[0], high[1]))
    return out


def api_problem(exc, name, what):
    status = getattr(exc, "status", None)
    if status in (401,):
        return "%s: the API server refused the credentials while reading %s (401 Unauthorized)" % (name("kubeconfig"), what)
    if status in (403,):
        return "%s: the credentials may not read %s (403 Forbidden: %s)" % (name("kubeconfig"), what, _reason(exc))
    return "%s: reading %s failed (%s)" % (name("kubeconfig"), what, _reason(exc))


def _reason(exc):
    text = getattr(exc, "reason", None) or to_native(exc)
    text = re.sub(r"\s+", " ", to_native(text)).strip()
    return text if len(text) < 300 else text[:297] + "..."


def is_default_class(storage_class):
    annotations = (storage_class.metadata.annotations or {}) if storage_class.metadata else {}
    return any(annotations.get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)


def storage_class_problems(wanted, classes):
    """Problems for the wanted StorageClasses, given {name: is_default} of the cluster."""
    problems = []
    have = ", ".join(sorted(classes)) or "none"
    defaults = sorted(n for n, d in classes.items() if d)
    for entry in wanted:
        variables = ", ".join(entry.get("variables") or []) or "storage_classes"
        if entry.get("name"):
            if entry["name"] not in classes:
                problems.append("%s: the StorageClass %s does not exist (the cluster has: %s)" % (variables, entry["name"], have))
        elif not defaults:
            problems.append("%s: null asks for the cluster's default StorageClass, and the cluster has none (it has: %s); "
                            "name one" % (variables, have))
        elif len(defaults) > 1:
            problems.append("%s: null asks for the cluster's default StorageClass, and %d are marked default (%s); name one"
                            % (variables, len(defaults), ", ".join(defaults)))
    return problems


def _get_json(api_client, path):
    response = api_client.call_api(path, "GET", header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
                                   _preload_content=False, _return_http_data_only=True)
    raw = response.data
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw) if raw else {}


def _discover(api_client, api_version):
    """{kind: (plural, namespaced)} served under api_version; None when the group/version is not served."""
    path = "/api/v1" if api_version == "v1" else "/apis/%s" % api_version
    try:
        data = _get_json(api_client, path)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict((r["kind"], (r["name"], r.get("namespaced", False))) for r in (data or {}).get("resources", [])
                if "/" not in r.get("name", ""))


def resource_problems(api_client, wanted, namespace, name):
    """Problems for each required kind (and named object) that the cluster lacks."""
    problems, served = [], {}
    for entry in wanted:
        variables = ", ".join(entry.get("variables") or []) or "required_resources"
        fix = ("; " + entry["fix"]) if entry.get("fix") else ""
        api_version, kind = entry["api_version"], entry["kind"]
        try:
            if api_version not in served:
                served[api_version] = _discover(api_client, api_version)
        except ApiException as exc:
            problems.append(api_problem(exc, name, "the API %s" % api_version))
            continue
        kinds = served[api_version]
        if kinds is None or kind not in kinds:
            problems.append("%s: the cluster does not serve %s %s (its CRD is not installed)%s" % (variables, api_version, kind, fix))
            continue
        if not entry.get("name"):
            continue
        plural, namespaced = kinds[kind]
        base = "/api/v1" if api_version == "v1" else "/apis/%s" % api_version
        path = "%s/namespaces/%s/%s/%s" % (base, namespace, plural, entry["name"]) if namespaced else "%s/%s/%s" % (base, plural, entry["name"])
        try:
            _get_json(api_client, path)
        except ApiException as exc:
            if exc.status == 404:
                problems.append("%s: the %s %s does not exist in the cluster%s" % (variables, kind, entry["name"], fix))
            else:
                problems.append(api_problem(exc, name, "the %s %s" % (kind, entry["name"])))
    return problems


def run(module, api_client):
    params = module.params
    given = params["variables"] or {}

    def name(option):
        return given.get(option) or option

    out = dict(changed=False, problems=[], server_version=None, namespace_exists=None, namespace_create_allowed=None,
               storage_classes={}, deployments={})
    problems = out["problems"]
    try:
        info = kube.VersionApi(api_client).get_code()
    except ApiException as exc:
        problems.append(api_problem(exc, name, "the server version"))
        return out
    except Exception as exc:  # pylint: disable=broad-except
        problems.append("%s: the Kubernetes API cannot be reached (%s); check the kubeconfig, its context and the "
                        "cluster's address" % (name("kubeconfig"), _reason(exc)))
        return out
    out["server_version"] = dict(major=info.major, minor=info.minor, gitVersion=info.git_version)
    problems.extend(version_problems(out["server_version"], params["min_version"], params["max_version"], name))

    core = kube.CoreV1Api(api_client)
    namespace = params["namespace"]
    if namespace:
        try:
            core.read_namespace(namespace)
            out["namespace_exists"] = True
        except ApiException as exc:
            if exc.status != 404:
                problems.append(api_problem(exc, name, "the namespace %s" % namespace))
            else:
                out["namespace_exists"] = False
        if out["namespace_exists"] is False:
            if not params["namespace_may_be_created"]:
                problems.append("%s: the namespace %s does not exist; create it first" % (name("namespace"), namespace))
            else:
                review = kube.V1SelfSubjectAccessReview(spec=kube.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=kube.V1ResourceAttributes(verb="create", resource="namespaces")))
                try:
                    answer = kube.AuthorizationV1Api(api_client).create_self_subject_access_review(review)
                    out["namespace_create_allowed"] = bool(answer.status.allowed)
                except ApiException as exc:
                    problems.append(api_problem(exc, name, "whether namespaces may be created"))
                if out["namespace_create_allowed"] is False:
                    problems.append("%s: the namespace %s does not exist and these credentials may not create namespaces; "
                                    "create it (with a RoleBinding for them) or use other credentials (%s)" % (
                                        name("namespace"), namespace, name("kubeconfig")))

    if params["storage_classes"]:
        try:
            listing = kube.StorageV1Api(api_client).list_storage_class()
            out["storage_classes"] = dict((sc.metadata.name, is_default_class(sc)) for sc in listing.items)
            problems.extend(storage_class_problems(params["storage_classes"], out["storage_classes"]))
        except ApiException as exc:
            problems.append(api_problem(exc, name, "the StorageClasses"))

    if params["required_resources"]:
        problems.extend(resource_problems(api_client, params["required_resources"], namespace, name))

    if params["read_deployments"] and namespace:
        apps = kube.AppsV1Api(api_client)
        for deployment in params["read_deployments"]:
            entry = dict(exists=False, annotations={}, images={})
            out["deployments"][deployment] = entry
            if out["namespace_exists"] is False:
                continue
            try:
                live = apps.read_namespaced_deployment(deployment, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    problems.append(api_problem(exc, name, "the Deployment %s/%s" % (namespace, deployment)))
                continue
            entry["exists"] = True
            entry["annotations"] = dict(live.metadata.annotations or {})
            entry["images"] = dict((c.name, c.image) for c in live.spec.template.spec.containers)
    return out


def main(module_class=AnsibleModule):
    argument_spec = dict(
        min_version=dict(type="str", default="1.30"),
        max_version=dict(type="str"),
        namespace=dict(type="str"),
        namespace_may_be_created=dict(type="bool", default=True),
        storage_classes=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str"),
            variables=dict(type="list", elements="str", default=[]),
        )),
        read_deployments=dict(type="list", elements="str", default=[]),
        required_resources=dict(type="list", elements="dict", default=[], options=dict(
            api_version=dict(type="str", required=True),
            kind=dict(type="str", required=True),
            name=dict(type="str"),
            variables=dict(type="list", elements="str", default=[]),
            fix=dict(type="str"),
        )),
        variables=dict(type="dict", default={}),
        fail_on_problem=dict(type="bool", default=True),
    )
    argument_spec.update(k8s_client.K8S_AUTH_ARG_SPEC)
    module = module_class(argument_spec=argument_spec, supports_check_mode=True)
    if not k8s_client.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=to_native(k8s_client.KUBERNETES_IMPORT_ERROR))
    for option in ("min_version", "max_version"):
        if module.params[option] and minor_version(module.params[option]) is None:
            module.fail_json(msg="%s must look like MAJOR.MINOR (for example 1.30), not %r" % (option, module.params[option]))
    given = module.params["variables"] or {}
    try:
        api_client = k8s_client.build_api_client(module.params)
    except Exception as exc:  # pylint: disable=broad-except
        out = dict(changed=False, server_version=None, namespace_exists=None, namespace_create_allowed=None,
                   storage_classes={}, deployments={},
                   problems=["%s: the Kubernetes client configuration cannot be loaded (%s)" % (
                       given.get("kubeconfig") or "kubeconfig", _reason(exc))])
    else:
        try:
            out = run(module, api_client)
        finally:
            api_client.close()
    if out["problems"] and module.params["fail_on_problem"]:
        module.fail_json(msg="%d problem(s) found:\n- %s" % (len(out["problems"]), "\n- ".join(out["problems"])), **out)
    out["msg"] = "Problems found" if out["problems"] else "All cluster checks passed"
    module.exit_json(**out)


if __name__ == "__main__":
    main()
