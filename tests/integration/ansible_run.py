"""Run our modules and playbooks through the real ansible-playbook, as an operator would.

Integration tests use these helpers so that what they assert is what ansible prints and
returns, including no_log masking and check/diff mode.
"""

import json
import os
import subprocess
import sys
import tempfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, "collections")


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        # the interpreter running the tests has every library the modules need
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    })
    env.update(extra or {})
    return env


def run_playbook(plays, args=(), env=None, callback="default", timeout=600, cwd=None):
    """Write `plays` (a list of plays, or YAML text) to a temp file and run ansible-playbook.

    Returns the CompletedProcess (stdout and stderr as text).
    """
    text = plays if isinstance(plays, str) else yaml.safe_dump(plays, sort_keys=False)
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False, dir=cwd) as fh:
        fh.write(text)
        path = fh.name
    try:
        run_env = ansible_env(env)
        run_env["ANSIBLE_STDOUT_CALLBACK"] = callback
        cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", path] + list(args)
        return subprocess.run(cmd, env=run_env, capture_output=True, text=True,
                              timeout=timeout, cwd=cwd or REPO, check=False)
    finally:
        os.unlink(path)


def run_module(module, module_args, check=False, diff=False, env=None, verbosity=0):
    """Run one module once on localhost. Returns (result dict, CompletedProcess).

    The result is the module's own return (changed, failed, msg, diff, ...), read from the
    json callback, so a test can assert on every key.
    """
    if "." not in module:
        module = "fediverse.mastodon." + module
    play = [{
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": "under test", module: module_args, "ignore_errors": True}],
    }]
    args = []
    if check:
        args.append("--check")
    if diff:
        args.append("--diff")
    if verbosity:
        args.append("-" + "v" * verbosity)
    proc = run_playbook(play, args, env=env, callback="json")
    start = proc.stdout.find("{")
    if start < 0:
        raise AssertionError("no JSON from ansible-playbook:\n%s\n%s" % (proc.stdout, proc.stderr))
    data = json.loads(proc.stdout[start:])
    task = data["plays"][0]["tasks"][0]
    return task["hosts"]["localhost"], proc
