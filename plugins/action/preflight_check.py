# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fediverse.mastodon.preflight_check: the whole preflight in one step.

In order, on the controller:

1. the complete merged input of every role (``plugin_utils/role_inputs.py``, as preflight_inputs);
2. the cluster: API and version, namespace, StorageClasses, required kinds, the running web
   Deployment (the module ``cluster_check``, run in this process);
3. the run lock (``instance_lock`` state=checked) and the durable instance record
   (``instance_record`` state=check), when the API answered;
4. the version guard against the running web Deployment (``plugin_utils/mastodon_plan.py``, the
   same rule the mastodon role applies);
5. real logins to the external services (``endpoint_check``), with the credentials the deployment
   will use: the vaulted ``preflight_*`` values, else references to the Secrets.

Every problem is collected; the step never fails itself: it sets the facts
``preflight_problems``, ``preflight_report`` and ``preflight_identity`` and returns the one
message listing every problem (``msg``), and the role's next task stops the run with it (facts
of a failed task would be lost to a rescue). The result holds problem lines and a report, never
a credential: the modules' invocations are not returned.
"""

from __future__ import annotations

import time

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.fediverse.mastodon.plugins.modules import cluster_check
from ansible_collections.fediverse.mastodon.plugins.modules import endpoint_check
from ansible_collections.fediverse.mastodon.plugins.modules import instance_lock
from ansible_collections.fediverse.mastodon.plugins.modules import instance_record
from ansible_collections.fediverse.mastodon.plugins.plugin_utils import backup_plan
from ansible_collections.fediverse.mastodon.plugins.plugin_utils import preflight_plan
from ansible_collections.fediverse.mastodon.plugins.plugin_utils.controller_module import run_main
from ansible_collections.fediverse.mastodon.plugins.plugin_utils.in_process import task_environment
from ansible_collections.fediverse.mastodon.plugins.plugin_utils.role_inputs import RoleInputs

# The preflight role's settings this step reads (roles/preflight/defaults/main.yml).
OPTIONS = ("preflight_instance", "preflight_namespace", "preflight_kubeconfig", "preflight_kube_context",
           "preflight_run_lock", "preflight_kubernetes_min_version", "preflight_kubernetes_max_version",
           "preflight_namespace_may_be_created", "preflight_validate_roles", "preflight_check_endpoints",
           "preflight_endpoint_timeout", "preflight_fail_on_problem", "preflight_postgresql_admin_password",
           "preflight_redis_username", "preflight_redis_password", "preflight_s3_access_key", "preflight_s3_secret_key",
           "preflight_s3_bucket", "preflight_s3_create_bucket", "preflight_smtp_ca_cert",
           "preflight_search_ca_cert")
RECORD_VARIABLES = dict(version="mastodon_version", local_domain="mastodon_local_domain",
                        db_host="postgresql_mode / postgresql_external_host", db_name="mastodon_db_name",
                        db_user="mastodon_db_user", s3_bucket="mastodon_s3_bucket",
                        s3_endpoint="minio_mode / minio_s3_server / minio_external_endpoint")


def _without_none(options):
    return dict((k, v) for k, v in options.items() if v not in (None, ""))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset()
    _requires_connection = False
    _SUPPORTS_CHECK_MODE = True

    def _options(self, task_vars):
        return dict((name, self._templar.template(task_vars[name]) if name in task_vars else None) for name in OPTIONS)

    def _module(self, module, params, name):
        result = run_main(module.main, params, check_mode=bool(self._task.check_mode), name="fediverse.mastodon." + name)
        # what the module warns about (a lock that will be broken or taken over) reaches the
        # operator as it did when the module was a task of its own
        self._warnings.extend(result.get("warnings") or [])
        return result

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        started = time.monotonic()
        self._warnings = []
        opts = self._options(task_vars)
        instance, namespace = opts["preflight_instance"], opts["preflight_namespace"]
        auth = _without_none(dict(kubeconfig=opts["preflight_kubeconfig"], context=opts["preflight_kube_context"]))

        # 1. the settings (no cluster, no network)
        checked = RoleInputs(self._loader, self._templar).check(task_vars, opts["preflight_validate_roles"])
        v = checked.pop("merged")
        problems = list(checked["problems"]) + backup_plan.problems(v)
        self._warnings.extend(backup_plan.warnings(v))
        changed = False
        with task_environment(self):
            # 2. the cluster (read-only; a SelfSubjectAccessReview only when the namespace is missing)
            web = instance + "-web"
            cluster = self._module(cluster_check, dict(auth, **_without_none(dict(
                min_version=opts["preflight_kubernetes_min_version"], max_version=opts["preflight_kubernetes_max_version"],
                namespace=namespace, namespace_may_be_created=opts["preflight_namespace_may_be_created"],
                storage_classes=preflight_plan.storage_classes(v), required_resources=checked["required_resources"],
                read_deployments=[web], fail_on_problem=False,
                variables=dict(kubeconfig="preflight_kubeconfig (or K8S_AUTH_KUBECONFIG / KUBECONFIG)", namespace="mastodon_namespace",
                               min_version="preflight_kubernetes_min_version", max_version="preflight_kubernetes_max_version")))),
                "cluster_check")
            if cluster.get("failed") and not cluster.get("problems"):
                problems.append(cluster.get("msg"))
            problems.extend(cluster.get("problems") or [])
            reached = bool(cluster.get("server_version"))

            # 3. the run lock and the instance record (read-only)
            lock = opts["preflight_run_lock"]
            if lock and reached:
                held = self._module(instance_lock, dict(namespace=lock["namespace"], name=lock["name"], holder=lock["holder"],
                                                        break_lock=boolean(lock.get("break_lock") or False, strict=False),
                                                        state="checked"), "instance_lock")
                if held.get("failed"):
                    problems.append(held.get("msg"))
            if reached:
                guard = boolean(v.get("mastodon_version_guard", True), strict=False)
                record = self._module(instance_record, dict(
                    namespace=namespace, instance=instance, state="check",
                    desired=dict(checked["identity"], version=v.get("mastodon_version")),
                    overrides=self._templar.template(task_vars.get("mastodon_record_override")) or [],
                    allow_downgrade=boolean(v.get("mastodon_allow_downgrade") or False, strict=False) or not guard,
                    version_guard=guard, variables=RECORD_VARIABLES, fail_on_problem=False), "instance_record")
                problems.extend(record.get("problems") or [])
                if record.get("failed") and not record.get("problems"):
                    problems.append(record.get("msg"))

            # 4. the version guard against the running web Deployment
            running = preflight_plan.running_version((cluster.get("deployments") or {}).get(web))
            problems.extend(preflight_plan.version_problems(dict(v, mastodon_instance=instance), running))

            # 5. real logins to the external services
            endpoints = {}
            checks = preflight_plan.endpoint_checks(v, opts, (checked["postgresql_min_version"], checked["redis_min_version"]))
            if boolean(opts["preflight_check_endpoints"], strict=False) and any(checks.values()):
                endpoints = self._module(endpoint_check, dict(
                    auth, namespace=namespace, checks=checks, fail_on_problem=False,
                    # the bucket is only created when nothing else is wrong
                    allow_changes=not problems), "endpoint_check")
                problems.extend(endpoints.get("problems") or [])
                if endpoints.get("failed") and not endpoints.get("problems"):
                    problems.append(endpoints.get("msg"))
                changed = bool(endpoints.get("changed"))

        report = dict(
            kubernetes=(cluster.get("server_version") or {}).get("gitVersion"),
            namespace=namespace, namespace_exists=cluster.get("namespace_exists"),
            running_version=running or None, mastodon_version=v.get("mastodon_version"),
            endpoints=endpoints.get("services") or {}, problems=len(problems),
            seconds=round(time.monotonic() - started, 1))
        if self._warnings:
            result["warnings"] = list(result.get("warnings") or []) + self._warnings
        result.update(changed=changed, problems=problems, report=report, ansible_facts=dict(
            preflight_problems=problems, preflight_report=report,
            # where the instance lives (domain, database, bucket; no secret): the mastodon role records it
            preflight_identity=checked["identity"]))
        # the role's next task stops the run with this message (facts of a failed task would be lost)
        result["msg"] = preflight_plan.failure_message(problems) if problems else "no problem found"
        return result
