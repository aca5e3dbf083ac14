# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What AWX and the awx.awx collection would do with awx/configure.yml, without an AWX.

Three pieces, shared by tests/unit/awx and tests/integration/test_awx_injector.py:

- declared_tasks(): loads awx/configure.yml with Ansible's own loader and templar and returns
  the module arguments each awx.awx task would be called with (loops expanded, `when` honoured).
- real_argument_spec(): imports the INSTALLED awx.awx module and captures the argument spec it
  hands to AnsibleModule, then validate_params() checks our arguments with Ansible's own
  ArgumentSpecValidator (unknown keys and wrong types are errors, exactly as at run time).
- validate_survey_spec(), validate_credential_type() and inject_credential(): the server-side rules
  of AWX (survey spec endpoint, CredentialType inputs/injectors fields) and the way a job gets a
  custom credential (Jinja sandbox over the credential inputs, file injectors written to private
  files, env injectors rendered with tower.filename). Written from AWX's documented behaviour;
  they cannot replace a run on a real AWX (see docs/awx.md).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import importlib
import json
import os
import re
import stat
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
AWX_DIR = os.path.join(REPO, "awx")
PLAYBOOK = os.path.join(AWX_DIR, "configure.yml")
MODULES = ("credential_type", "credential", "execution_environment", "project", "inventory",
           "inventory_source", "job_template")


# --------------------------------------------------------------------------------------------
# The real awx.awx argument specs
# --------------------------------------------------------------------------------------------

class _SpecCaptured(Exception):
    def __init__(self, argument_spec, kwargs):
        super(_SpecCaptured, self).__init__("argument spec captured")
        self.argument_spec = argument_spec
        self.kwargs = kwargs


def awx_collection_path():
    """Directory of the installed awx.awx collection that the specs come from."""
    return _in_subprocess("path")


def _collection_path_local():
    _init_plugins()
    pkg = importlib.import_module("ansible_collections.awx.awx")
    return list(pkg.__path__)[0]


def _capture_argument_spec(module_name):
    """Return (argument_spec, validator_kwargs) of the installed awx.awx module `module_name`.

    The module's main() is run with AnsibleModule.__init__ replaced by a catcher, so the spec is
    the one the module really builds, including the controller auth options that
    ControllerModule merges in, and its mutually_exclusive/required_* rules.
    """
    from ansible.module_utils import basic

    _init_plugins()
    mod = importlib.import_module("ansible_collections.awx.awx.plugins.modules." + module_name)
    original = basic.AnsibleModule.__init__

    def catcher(self, argument_spec=None, **kwargs):
        raise _SpecCaptured(argument_spec, kwargs)

    basic.AnsibleModule.__init__ = catcher
    try:
        mod.main()
    except _SpecCaptured as captured:
        rules = dict((k, v) for k, v in captured.kwargs.items()
                     if k in ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by"))
        return captured.argument_spec, rules
    finally:
        basic.AnsibleModule.__init__ = original
    raise AssertionError("awx.awx.%s main() never built an AnsibleModule" % module_name)


def _spec_to_json(spec):
    out = {}
    for name, option in spec.items():
        option = dict(option)
        if "fallback" in option:
            strategy, args = option["fallback"][0], option["fallback"][1:]
            option["fallback"] = {"strategy": getattr(strategy, "__name__", str(strategy)),
                                  "args": [list(a) if isinstance(a, (list, tuple)) else a for a in args]}
        if "options" in option and option["options"]:
            option["options"] = _spec_to_json(option["options"])
        out[name] = option
    return out


def _spec_from_json(spec):
    from ansible.module_utils.basic import env_fallback

    out = {}
    for name, option in spec.items():
        option = dict(option)
        if "fallback" in option:
            fallback = option["fallback"]
            if fallback["strategy"] != "env_fallback":
                raise AssertionError("unexpected fallback %r in awx.awx spec" % fallback)
            option["fallback"] = (env_fallback,) + tuple(fallback["args"])
        if "options" in option and option["options"]:
            option["options"] = _spec_from_json(option["options"])
        out[name] = option
    return out


def _in_subprocess(command, payload=None):
    """Run a command of this file in a fresh interpreter and return its JSON answer.

    Rendering needs Ansible's plugin loader (lookups), which installs a global collection finder;
    a separate process keeps that global state out of the test process.
    """
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), command, json.dumps(payload)],
                          capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    if proc.returncode != 0:
        raise AssertionError("%s failed:\n%s\n%s" % (command, proc.stdout, proc.stderr))
    return json.loads(proc.stdout)


_SPECS = {}


def real_argument_spec(module_name):
    """(argument_spec, validator_kwargs) the installed awx.awx.<module_name> really builds."""
    if not _SPECS:
        for name, data in _in_subprocess("specs", list(MODULES)).items():
            _SPECS[name] = (_spec_from_json(data["argument_spec"]), data["rules"])
    if module_name not in _SPECS:
        data = _in_subprocess("specs", [module_name])[module_name]
        _SPECS[module_name] = (_spec_from_json(data["argument_spec"]), data["rules"])
    return _SPECS[module_name]


def validate_params(module_name, params):
    """Validate `params` against the real spec of awx.awx.<module_name>.

    Uses Ansible's own ArgumentSpecValidator, the code AnsibleModule runs on its arguments.
    Returns (errors as a list of strings, validated parameters).
    """
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec, rules = real_argument_spec(module_name)
    result = ArgumentSpecValidator(copy.deepcopy(spec), **copy.deepcopy(rules)).validate(copy.deepcopy(params))
    return list(result.error_messages), result.validated_parameters


# --------------------------------------------------------------------------------------------
# Our declarations, as Ansible would render them
# --------------------------------------------------------------------------------------------

_PLUGINS_READY = []


def _init_plugins():
    """Lookups (ansible.builtin.file, env) need Ansible's plugin loader, as in ansible-playbook."""
    if not _PLUGINS_READY:
        from ansible.plugins.loader import init_plugin_loader

        init_plugin_loader()
        _PLUGINS_READY.append(True)


def _templar(variables):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    _init_plugins()

    loader = DataLoader()
    loader.set_basedir(AWX_DIR)
    return loader, Templar(loader=loader, variables=variables)


def load_playbook(path=PLAYBOOK):
    """The playbook as Ansible's loader reads it (trusted templates, !unsafe kept unsafe)."""
    from ansible.parsing.dataloader import DataLoader

    loader = DataLoader()
    loader.set_basedir(os.path.dirname(path))
    return loader.load_from_file(path, trusted_as_template=True)


def play_variables(play, extra_vars=None, path=PLAYBOOK):
    """play vars + vars_files (+ extra vars, highest precedence), like ansible-playbook -e."""
    from ansible.parsing.dataloader import DataLoader

    loader = DataLoader()
    loader.set_basedir(os.path.dirname(path))
    variables = {}
    for vars_file in play.get("vars_files", []):
        variables.update(loader.load_from_file(os.path.join(os.path.dirname(path), vars_file), trusted_as_template=True))
    variables.update(play.get("vars", {}) or {})
    variables.update(extra_vars or {})
    return variables


def _module_of(task):
    for key in task:
        if key.startswith("awx.awx."):
            return key
    return None


def _render(templar, value):
    """Render like a task argument: the omit placeholder drops the key."""
    return templar.template(value)


def declared_tasks(extra_vars=None, path=PLAYBOOK):
    """The awx.awx calls of the playbook, rendered by Ansible in a fresh interpreter."""
    return _in_subprocess("render", {"extra_vars": extra_vars or {}, "path": path})


def _declared_tasks_local(extra_vars=None, path=PLAYBOOK):
    """Return dicts {name, module, params} for every awx.awx call the playbook would make.

    `params` are the rendered module arguments, one entry per loop item. Tasks whose `when` is
    false with these variables are left out, as ansible-playbook would skip them.
    """
    plays = load_playbook(path)
    out = []
    for play in plays:
        variables = play_variables(play, extra_vars, path)
        for task in play.get("tasks", []):
            module = _module_of(task)
            if module is None:
                continue
            loop = task.get("loop")
            items = [None]
            if loop is not None:
                dummy, templar = _templar(variables)
                items = _render(templar, loop)
            for item in items:
                task_vars = dict(variables)
                if item is not None:
                    task_vars["item"] = item
                dummy, templar = _templar(task_vars)
                if "when" in task:
                    conditions = task["when"] if isinstance(task["when"], list) else [task["when"]]
                    if not all(templar.evaluate_conditional(c) for c in conditions):
                        continue
                params = _render(templar, task[module])
                out.append({"name": task.get("name"), "module": module.split(".", 2)[2],
                            "params": _plain(params), "no_log": bool(task.get("no_log"))})
    return out


def _plain(value):
    """Strip Ansible's tagged/lazy containers down to plain Python types."""
    if isinstance(value, dict):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------
# AWX server-side rules: survey specs
# --------------------------------------------------------------------------------------------

SURVEY_TYPES = {
    "text": (str,),
    "textarea": (str,),
    "password": (str,),
    "multiplechoice": (str,),
    "multiselect": (str,),
    "integer": (int,),
    "float": (float, int),
}
SURVEY_QUESTION_KEYS = ("question_name", "question_description", "variable", "type", "required",
                        "min", "max", "default", "choices", "new_question")
_VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _choices(question):
    choices = question.get("choices")
    if isinstance(choices, str):
        return [c for c in choices.split("\n") if c]
    return choices


def validate_survey_spec(spec):
    """Errors AWX (or our stricter reading of it) would raise for a survey spec. [] = valid."""
    errors = []
    if not isinstance(spec, dict):
        return ["survey spec must be a dict, got %s" % type(spec).__name__]
    for key in spec:
        if key not in ("name", "description", "spec"):
            errors.append("unknown survey key %r" % key)
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if field not in spec:
            errors.append("field %r is missing from the survey spec" % field)
        elif not isinstance(spec[field], kind):
            errors.append("field %r must be a %s" % (field, kind.__name__))
    questions = spec.get("spec")
    if not isinstance(questions, list):
        return errors
    if not questions:
        errors.append("'spec' does not contain any question")
    seen = set()
    for idx, q in enumerate(questions):
        where = "question %d" % idx
        if not isinstance(q, dict):
            errors.append("%s is not a dict" % where)
            continue
        for key in q:
            if key not in SURVEY_QUESTION_KEYS:
                errors.append("%s: unknown key %r" % (where, key))
        for field in ("type", "question_name", "variable", "required"):
            if field not in q:
                errors.append("%s: %r is missing" % (where, field))
        for field in ("type", "question_name", "variable", "question_description"):
            if field in q and not isinstance(q[field], str):
                errors.append("%s: %r must be a string" % (where, field))
        if "required" in q and not isinstance(q["required"], bool):
            errors.append("%s: 'required' must be a boolean" % where)
        variable = q.get("variable")
        if isinstance(variable, str):
            if not _VARIABLE_RE.match(variable):
                errors.append("%s: %r is not a valid variable name" % (where, variable))
            if variable in seen:
                errors.append("%s: variable %r is duplicated" % (where, variable))
            seen.add(variable)
        qtype = q.get("type")
        if isinstance(qtype, str) and qtype not in SURVEY_TYPES:
            errors.append("%s: type %r is not one of %s" % (where, qtype, ", ".join(sorted(SURVEY_TYPES))))
            continue
        for key in ("min", "max"):
            if q.get(key) is not None and (isinstance(q[key], bool) or not isinstance(q[key], int)):
                errors.append("%s: %r must be an integer" % (where, key))
        if isinstance(q.get("min"), int) and isinstance(q.get("max"), int) and q["min"] > q["max"]:
            errors.append("%s: min is greater than max" % where)
        if qtype in ("multiplechoice", "multiselect"):
            choices = _choices(q)
            if not choices:
                errors.append("%s: type %s must specify choices" % (where, qtype))
            elif not all(isinstance(c, str) for c in choices):
                errors.append("%s: choices must be strings" % where)
        if "default" in q and qtype in SURVEY_TYPES:
            default = q["default"]
            if isinstance(default, bool) or not isinstance(default, SURVEY_TYPES[qtype]):
                errors.append("%s: default %r must be of type %s" % (where, default, qtype))
            elif qtype == "multiplechoice" and _choices(q) and default not in _choices(q):
                errors.append("%s: default %r is not one of the choices" % (where, default))
            elif qtype in ("text", "textarea", "password") and default != "":
                # AWX applies a default only when it passes the same min/max length check as an answer.
                if isinstance(q.get("min"), int) and len(default) < q["min"]:
                    errors.append("%s: default is shorter than min" % where)
                if isinstance(q.get("max"), int) and len(default) > q["max"]:
                    errors.append("%s: default is longer than max" % where)
    return errors


def survey_answer_errors(spec, answers):
    """Validate launch answers the way AWX validates survey answers (required, length, choices)."""
    errors = []
    for q in spec.get("spec", []):
        var = q["variable"]
        if var not in answers:
            if q.get("required") and "default" not in q:
                errors.append("%s is required" % var)
            continue
        value = answers[var]
        if q["type"] in ("text", "textarea", "password"):
            if not isinstance(value, str):
                errors.append("%s must be a string" % var)
                continue
            if q.get("min") is not None and len(value) < q["min"]:
                errors.append("%s: %r is shorter than %d characters" % (var, value, q["min"]))
            if q.get("max") is not None and len(value) > q["max"]:
                errors.append("%s: %r is longer than %d characters" % (var, value, q["max"]))
        elif q["type"] == "multiplechoice" and value not in _choices(q):
            errors.append("%s: %r is not one of %s" % (var, value, _choices(q)))
    return errors


# --------------------------------------------------------------------------------------------
# AWX server-side rules and runtime behaviour: custom credential types
# --------------------------------------------------------------------------------------------

# Environment variables AWX refuses in credential injectors (besides every ANSIBLE_* one).
# Subset of awx.main.constants.ENV_BLOCKLIST: the ones AWX itself sets for a job.
ENV_BLOCKLIST = frozenset((
    "VIRTUAL_ENV", "PATH", "PYTHONPATH", "JOB_ID", "INVENTORY_ID", "INVENTORY_SOURCE_ID",
    "INVENTORY_UPDATE_ID", "AD_HOC_COMMAND_ID", "REST_API_URL", "REST_API_TOKEN", "MAX_EVENT_RES",
    "CALLBACK_QUEUE", "CALLBACK_CONNECTION", "CACHE", "JOB_CALLBACK_DEBUG", "INVENTORY_HOSTVARS",
    "AWX_HOST", "PROJECT_REVISION", "SUPERVISOR_CONFIG_PATH",
))
CUSTOM_KINDS = ("cloud", "net")  # AWX only accepts these kinds for custom credential types
_FIELD_KEYS = ("id", "label", "type", "format", "choices", "help_text", "multiline", "secret", "ask_at_runtime", "default")
_FIELD_ID_RE = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")
_FILE_KEY_RE = re.compile(r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$")


def validate_credential_type(kind, inputs, injectors):
    """Errors AWX would raise when creating this custom credential type. [] = valid."""
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    errors = []
    if kind not in CUSTOM_KINDS:
        errors.append("kind must be one of %s for a custom credential type, not %r" % (CUSTOM_KINDS, kind))
    if not isinstance(inputs, dict):
        return errors + ["inputs must be a dict"]
    for key in inputs:
        if key not in ("fields", "required"):
            errors.append("inputs: unknown key %r" % key)
    fields = inputs.get("fields", [])
    ids = []
    for field in fields:
        for key in field:
            if key not in _FIELD_KEYS:
                errors.append("inputs field %r: unknown key %r" % (field.get("id"), key))
        for key in ("id", "label"):
            if key not in field:
                errors.append("inputs field %r: %r is required" % (field.get("id"), key))
        fid = field.get("id")
        if not isinstance(fid, str) or not _FIELD_ID_RE.match(fid):
            errors.append("%r is an invalid variable name" % (fid,))
        if fid == "tower":
            errors.append('"tower" is a reserved field name')
        if fid in ids:
            errors.append("field IDs must be unique (%s)" % fid)
        ids.append(fid)
        ftype = field.get("type", "string")
        if ftype not in ("string", "boolean"):
            errors.append("inputs field %r: type must be string or boolean" % fid)
        for key in ("multiline", "secret", "ask_at_runtime"):
            if key in field and not isinstance(field[key], bool):
                errors.append("inputs field %r: %r must be a boolean" % (fid, key))
        if "format" in field and field["format"] not in ("ssh_private_key", "url"):
            errors.append("inputs field %r: unknown format %r" % (fid, field["format"]))
        for key in ("choices", "multiline", "format", "secret"):
            if key in field and ftype != "string":
                errors.append("%s not allowed for %s type (%s)" % (key, ftype, fid))
    for req in inputs.get("required", []):
        if req not in ids:
            errors.append("inputs.required names %r, which is not a field" % req)

    if not isinstance(injectors, dict):
        return errors + ["injectors must be a dict"]
    for key in injectors:
        if key not in ("file", "env", "extra_vars"):
            errors.append("injectors: unknown key %r" % key)
    files = injectors.get("file", {})
    for key in files:
        if not _FILE_KEY_RE.match(key):
            errors.append("file injector %r must be 'template' or 'template.<name>'" % key)
    for var in injectors.get("env", {}):
        if not _FIELD_ID_RE.match(var):
            errors.append("env injector %r is not a valid variable name" % var)
        if var.startswith("ANSIBLE_"):
            errors.append("env injector %r may affect Ansible configuration" % var)
        if var in ENV_BLOCKLIST:
            errors.append("env injector %r is not allowed in credentials" % var)
    for var, value in injectors.get("env", {}).items():
        if not isinstance(value, str) or any(ord(ch) > 127 for ch in value):
            errors.append("env injector %r must be an ASCII string" % var)
    if "template" in files and len(files) > 1:
        errors.append("Must use multi-file syntax when injecting multiple files")

    # Every template must render with only the declared fields and tower.filename(s) defined.
    class _Filenames(object):
        def __str__(self):
            raise UndefinedError("Must define unnamed file injector in order to reference `tower.filename`.")

    class _Tower(object):
        def __str__(self):
            raise UndefinedError("Cannot directly reference reserved `tower` namespace container.")

    namespace = dict((fid, "EXAMPLE") for fid in ids if isinstance(fid, str))
    tower = _Tower()
    if "template" in files:
        tower.filename = "EXAMPLE_FILENAME"
    else:
        tower.filename = _Filenames()
        for key in files:
            if "." in key:
                setattr(tower.filename, key.split(".", 1)[1], "EXAMPLE_FILENAME")
    namespace["tower"] = tower
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    for section, entries in injectors.items():
        if not isinstance(entries, dict):
            errors.append("injectors.%s must be a dict" % section)
            continue
        for key, tmpl in entries.items():
            try:
                env.from_string(tmpl).render(namespace)
            except UndefinedError as exc:
                errors.append("%s uses an undefined field (%s)" % (key, exc))
                continue
            except (SecurityError, TemplateSyntaxError) as exc:
                errors.append("%s.%s: %s" % (section, key, exc))
    return errors


def inject_credential(inputs, injectors, credential_inputs, private_data_dir):
    """Do what AWX does for a job that uses a credential of this type.

    Returns (env, files): the environment variables the job gets and {label: path} of the
    files written under private_data_dir/env (mode 0600, as in AWX). Unset fields are left
    undefined, booleans default to False, exactly like AWX's namespace.
    """
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Namespace(object):
        pass

    tower = _Namespace()
    namespace = {"tower": tower}
    for name, value in credential_inputs.items():
        if isinstance(value, bool) or len(value):
            namespace[name] = value
    for field in inputs.get("fields", []):
        if field.get("type") == "boolean" and field["id"] not in credential_inputs:
            namespace[field["id"]] = False

    sandbox = ImmutableSandboxedEnvironment()
    env_dir = os.path.join(private_data_dir, "env")
    if not os.path.isdir(env_dir):
        os.makedirs(env_dir)
    files = {}
    for label, tmpl in injectors.get("file", {}).items():
        data = sandbox.from_string(tmpl).render(**namespace)
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as fh:
            fh.write(data)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        files[label] = path
        if "." not in label:
            tower.filename = path
        else:
            if not isinstance(getattr(tower, "filename", None), _Namespace):
                tower.filename = _Namespace()
            setattr(tower.filename, label.split(".", 1)[1], path)

    env = {}
    for var, tmpl in injectors.get("env", {}).items():
        if var.startswith("ANSIBLE_") or var in ENV_BLOCKLIST:
            continue  # AWX logs and ignores prohibited variables at run time
        env[var] = sandbox.from_string(tmpl).render(**namespace)
    return env, files


def _main(argv):
    command = argv[1]
    payload = json.loads(argv[2]) if len(argv) > 2 else None
    if command == "render":
        answer = _declared_tasks_local(payload["extra_vars"], payload["path"])
    elif command == "specs":
        answer = {}
        for name in payload:
            spec, rules = _capture_argument_spec(name)
            answer[name] = {"argument_spec": _spec_to_json(spec), "rules": rules}
    elif command == "path":
        answer = _collection_path_local()
    else:
        raise SystemExit("unknown command %r" % command)
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    _main(sys.argv)
