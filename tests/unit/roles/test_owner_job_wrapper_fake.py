"""The owner Job's `sh -c` wrapper, run by a real shell with a fake `bin/tootctl` (Mastodon cannot
run here): an existing account is not an error, it gets the Owner role instead."""

import os
import subprocess

import yaml

VARS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "mastodon", "vars", "main.yml")


def wrapper():
    with open(VARS) as f:
        command = yaml.safe_load(f)["mastodon__job_specs"]["owner"]["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    return command


def run(tmp_path, create_exit):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    (bin_dir / "tootctl").write_text('#!/bin/sh\necho "$*" >> "%s"\n[ "$2" = create ] && exit %d\nexit 0\n' % (log, create_exit))
    os.chmod(str(bin_dir / "tootctl"), 0o755)
    proc = subprocess.run(wrapper(), cwd=str(tmp_path), env=dict(os.environ, OWNER_USERNAME="admin", OWNER_EMAIL="a@b.test"),
                          capture_output=True, text=True, timeout=30, check=False)
    return proc.returncode, log.read_text().splitlines()


def test_a_new_owner_is_created_confirmed_with_the_owner_role(tmp_path):
    code, calls = run(tmp_path, 0)
    assert code == 0 and calls == ["accounts create admin --email a@b.test --confirmed --role Owner"]


def test_an_existing_account_is_given_the_owner_role(tmp_path):
    code, calls = run(tmp_path, 1)
    assert code == 0 and calls == ["accounts create admin --email a@b.test --confirmed --role Owner",
                                   "accounts modify admin --role Owner --confirm --approve"]
