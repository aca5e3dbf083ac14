# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The complete merged input of every role, checked at once (controller side).

For each role it loads ``defaults/main.yml`` and ``meta/argument_specs.yml`` from this
collection, lays the host's variables (inventory, vars files, extra vars, facts) over those
defaults exactly as Ansible's precedence would when the role runs, templates every option, and
validates the result against the argument specs. Then the semantic checks of ``inputs.py`` run
on the same merged values.

Used by the action plugins ``preflight_inputs`` (the inputs alone) and ``preflight_check`` (the
whole preflight in one step). An option whose default refers to a fact that a later phase sets
(the connection facts) cannot be computed yet; it is left out and validated when its role runs.
"""

from __future__ import annotations

import os
import re

from ansible.errors import AnsibleError, AnsibleUndefinedVariable
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import inputs

ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
DEFAULT_ROLES = ("postgresql", "redis", "elasticsearch", "minio", "provision", "mastodon", "backup")
# Variables the semantic checks read that no role declares (or that the preflight role owns).
EXTRA_NAMES = ("mastodon_domain", "preflight_kubeconfig", "postgresql_external_direct_host",
               "preflight_postgresql_min_version", "preflight_redis_min_version")
# "'name' is undefined": the variable an expression needed.
UNDEFINED_RE = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined")
# Facts a later phase sets (docs/conventions.md): a default that refers to one is checked when its role runs.
LATER_FACT_SUFFIXES = ("_connection",)
# Argument-spec keys that describe an option but do not validate it.
DOC_KEYS = ("description", "default", "version_added")


def validate_option(name, spec, value):
    """(ok, converted value, error messages) for one option against its argument spec.

    Options are checked one by one: ansible's validator raises TypeError for suboptions of a value
    that is not a dict, so the type alone is checked first and the suboptions only after it passed.
    """
    shallow = dict((k, v) for k, v in spec.items() if k != "options")
    first = ArgumentSpecValidator({name: shallow}).validate({name: value})
    if first.error_messages:
        return False, None, list(first.error_messages)
    if "options" not in spec:
        return True, first.validated_parameters.get(name), []
    try:
        full = ArgumentSpecValidator({name: spec}).validate({name: value})
    except (TypeError, AttributeError, ValueError):
        return False, None, ["%s has the wrong shape for its suboptions %s" % (name, ", ".join(sorted(spec["options"])))]
    if full.error_messages:
        return False, None, list(full.error_messages)
    return True, full.validated_parameters.get(name), []


class RoleInputs:
    """The merged input of the roles for one host: ``check(task_vars, roles)``."""

    def __init__(self, loader, templar):
        self._loader = loader
        self._templar = templar
        self._problems = []
        self._undefined = set()

    def _load(self, role, name):
        path = os.path.join(ROLES_DIR, role, *name.split("/"))
        if not os.path.isfile(path):
            return {}
        return self._loader.load_from_file(path, trusted_as_template=True) or {}

    def _specs(self, roles):
        specs, role_of, defaults = {}, {}, {}
        for role in roles:
            options = ((self._load(role, "meta/argument_specs.yml").get("argument_specs") or {})
                       .get("main", {}).get("options") or {})
            for name, spec in options.items():
                specs[name] = dict((k, v) for k, v in spec.items() if k not in DOC_KEYS)
                role_of[name] = role
            defaults.update(self._load(role, "defaults/main.yml"))
        return specs, role_of, defaults

    def _merged(self, names, defaults, host_vars):
        """name -> templated value (host's variables over role defaults); the second dict names
        the options that depend on facts set by a later phase."""
        available = dict(defaults)
        available.update(host_vars)
        templar = self._templar.copy_with_new_env(available_variables=available)
        values, deferred = {}, set()
        for name in names:
            if name not in available:
                continue
            try:
                values[name] = templar.template(available[name])
            except AnsibleUndefinedVariable as exc:
                deferred.add(name)
                missing = UNDEFINED_RE.search(str(exc))
                # a default may wait for a connection fact of a later phase; anything else that is
                # undefined is an inventory mistake (a vault variable not loaded, a typo)
                # (an option that refers to another option left unset is reported once, by that option)
                if missing and not missing.group(1).endswith(LATER_FACT_SUFFIXES) and missing.group(1) not in names:
                    values[name] = None
                    self._undefined.add(name)
                    self._problems.append("%s: refers to %s, which is not defined; define it (in the inventory or "
                                          "the vault) or remove the reference" % (name, missing.group(1)))
            except AnsibleError as exc:
                values[name] = None
                deferred.add(name)
                self._problems.append("%s: cannot be computed (%s); fix the expression in the inventory"
                                      % (name, str(exc).splitlines()[0][:200]))
        return values, deferred

    def check(self, task_vars, roles=None):
        """dict(problems, deferred, required_resources, identity, postgresql_min_version,
        redis_min_version, merged): ``merged`` holds every option's value (never returned to
        Ansible as such: it may hold secrets)."""
        roles = list(DEFAULT_ROLES) if roles is None else list(roles)
        self._problems = []
        self._undefined = set()
        # every role's defaults take part in the merge; only the named roles' specs are enforced
        all_specs, role_of, defaults = self._specs(roles + [r for r in DEFAULT_ROLES if r not in roles])
        specs = dict((n, s) for n, s in all_specs.items() if role_of[n] in roles)
        names = list(all_specs) + [n for n in EXTRA_NAMES if n not in all_specs]
        values, deferred = self._merged(names, defaults, task_vars)

        # 1. the argument specs, on every value the run will use (defaults included)
        check_spec = dict((n, dict((k, v) for k, v in s.items() if k != "required" or n not in deferred))
                          for n, s in specs.items())
        merged, failed = dict(values), {}
        for name in specs:
            if name not in values or name in deferred:
                continue
            ok, converted, messages = validate_option(name, check_spec[name], values[name])
            if ok:
                merged[name] = converted
                continue
            merged[name] = None  # the semantic checks below must not trip over a value of the wrong type
            failed[name] = messages

        # an error of a default that only copies another failed variable says the same thing twice
        for name, messages in failed.items():
            source = defaults.get(name) if name not in task_vars else None
            if isinstance(source, str) and any(re.search(r"\b%s\b" % re.escape(o), source) for o in failed if o != name):
                continue
            for message in messages:
                line = inputs.spec_error_line(message, list(specs), specs, role_of)
                if line not in self._problems:
                    self._problems.append(line)

        # 2. the semantic checks, on the validated (type-converted) values; a variable whose spec
        # check failed is reported once, by the spec check
        self._problems.extend(line for line in inputs.semantic_problems(merged)
                              if line.split(":", 1)[0] not in failed and line.split(":", 1)[0] not in self._undefined)
        self._problems.extend(self._shared_database_problems(merged, specs, defaults, task_vars))

        pg_min, redis_min = inputs.min_server_versions(merged.get("mastodon_version"))
        return dict(
            merged=merged,
            problems=self._problems,
            deferred=sorted(deferred),
            # what the cluster must offer (cluster_check's required_resources)
            required_resources=inputs.check_routing(merged),
            # the instance record's identity fields (instance_record), computed once for every phase
            identity=inputs.record_identity(merged),
            postgresql_min_version=merged.get("preflight_postgresql_min_version") or pg_min,
            redis_min_version=merged.get("preflight_redis_min_version") or redis_min,
        )

    def _shared_database_problems(self, merged, specs, defaults, task_vars):
        """Other instances of this play on the same external database server (same role or database)."""
        hostvars = task_vars.get("hostvars") or {}
        me = task_vars.get("inventory_hostname")
        hosts = [h for h in (task_vars.get("ansible_play_hosts_all") or []) if h != me]
        if merged.get("postgresql_mode") != "external" or not hosts:
            return []
        keys = ("mastodon_instance", "postgresql_mode", "postgresql_external_host", "postgresql_external_port",
                "provision_db_user", "provision_db_name")

        def summary(values):
            return dict(instance=values.get("mastodon_instance"), mode=values.get("postgresql_mode"),
                        host=values.get("postgresql_external_host"), port=values.get("postgresql_external_port"),
                        db_user=values.get("provision_db_user"), db_name=values.get("provision_db_name"))

        others = []
        for host in hosts:
            raw = hostvars.raw_get(host) if hasattr(hostvars, "raw_get") else None
            if not isinstance(raw, dict):
                continue
            host_vars = dict(raw)
            host_vars.setdefault("inventory_hostname", host)
            values, dummy = self._merged(keys, defaults, host_vars)
            others.append(summary(values))
        return inputs.check_shared_database(summary(merged), others)


def role_values(loader, templar, task_vars, role, names):
    """name -> templated value for one role as it sees its variables when it runs: its defaults,
    then the host's variables, then its ``vars/main.yml`` (the derived names). Only ``names``
    are templated."""
    reader = RoleInputs(loader, templar)
    available = dict(reader._load(role, "defaults/main.yml"))  # pylint: disable=protected-access
    available.update(task_vars)
    available.update(reader._load(role, "vars/main.yml"))  # pylint: disable=protected-access
    scoped = templar.copy_with_new_env(available_variables=available)
    return dict((name, scoped.template(available[name])) for name in names if name in available)
