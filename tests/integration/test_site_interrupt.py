# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml interrupted, against the lab (issue 9, "Interruption" and "No secret leaks").

For each of three cut points, chosen at random with a fixed seed (SITE_CUT_SEED), one in each
third of a first converge: a fresh instance (molsite-cut1..3), `ansible-playbook site.yml`
killed when it prints its N-th "TASK [" line (plus a random fraction of a second, so the kill
lands inside the task), by SIGTERM, SIGKILL and SIGINT to its whole process group (what a
cancelled CI job, a lost machine and Ctrl-C send); then a rerun to convergence. After each
rerun:
  - every Secret key of the instance that existed after the kill still has the same value;
  - every PVC that existed after the kill still exists with the same UID, and the apiserver's
    audit log shows no delete of a PVC in the namespace by anyone, from the first run on.
The first rerun runs at -vvv: its whole output, and that of every other run, must contain
none of the values of the instance's Secrets (nor their base64 forms), S3 access key IDs
excepted (IDENTIFIER_KEYS: identifiers, not secrets; their secret keys are checked).

The instances use the site scenario's inventory (extensions/molecule/site/inventory/hosts.yml
with inventories/local/group_vars),
so they do not collide with the lab instance, the bench or the Molecule scenario. Needs the
lab (`eval "$(make -s lab-env)"`); skips without it.
"""

import base64
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

from ansible_run import REPO, ansible_env

SCENARIO = os.path.join(REPO, "extensions", "molecule", "site")
sys.path.insert(0, SCENARIO)

import audit_window  # noqa: E402  pylint: disable=wrong-import-position
import site_snapshot  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = [pytest.mark.lab, pytest.mark.skipif(
    not (os.environ.get("KUBECONFIG") and os.environ.get("LAB_PG_PASSWORD") and os.environ.get("LAB_S3_ACCESS_KEY")),
    reason="needs the lab: eval \"$(make -s lab-env)\"")]

SEED = int(os.environ.get("SITE_CUT_SEED", "20261126"))
# "TASK [" lines of a first converge of site.yml in the lab (48 measured since preflight and the
# connection facts became one step each; kept below that so a cut always falls inside the run).
# The test fails, and says so, when the run ends first.
FIRST_CONVERGE_TASKS = int(os.environ.get("SITE_FIRST_CONVERGE_TASKS", "45"))
SIGNALS = [signal.SIGTERM, signal.SIGKILL, signal.SIGINT]
INSTANCES = ["molsite-cut%d" % (i + 1) for i in range(len(SIGNALS))]
RUN_TIMEOUT = 900
# Secret values shorter than this are not looked for in the output (a key such as "5432" or a
# user name would match unrelated text); none of the generated ones is that short.
MIN_SECRET_LEN = 8
# Secret keys whose values are identifiers, not secrets: the access key ID of an S3 key pair
# (the "user name" half; minio_user makes it the user's name, and the modules log it as they
# log a database user name). Their secret halves (AWS_SECRET_ACCESS_KEY, root-password) are
# looked for like every other value.
IDENTIFIER_KEYS = {"AWS_ACCESS_KEY_ID", "root-user"}
# Set to a directory to keep every run's output there (mode 0600: -vvv output is sensitive).
OUTPUT_DIR = os.environ.get("SITE_TEST_OUTPUT_DIR")


def cut_points(seed=SEED, total=FIRST_CONVERGE_TASKS, count=len(SIGNALS)):
    """One cut in each `count`-th of the run: (task number, extra delay in seconds)."""
    rng = random.Random(seed)
    cuts = []
    for i in range(count):
        low, high = 1 + i * total // count, (i + 1) * total // count
        cuts.append((rng.randint(low, high), round(rng.uniform(0.0, 1.5), 2)))
    return cuts


def run_env():
    env = ansible_env({"ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    if os.environ.get("KUBECONFIG") and not os.environ.get("K8S_AUTH_KUBECONFIG"):
        env["K8S_AUTH_KUBECONFIG"] = os.environ["KUBECONFIG"]
    return env


def ansible_playbook(inventory, playbook, *args):
    return [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory, playbook] + list(args)


def write_inventory(directory, hosts):
    """The scenario's inventory/hosts.yml with these hosts, and inventories/local's group_vars."""
    with open(os.path.join(SCENARIO, "inventory", "hosts.yml")) as handle:
        data = yaml.safe_load(handle)
    data["mastodon_instances"]["children"]["molsite_instances"]["hosts"] = dict.fromkeys(hosts)
    with open(os.path.join(directory, "hosts.yml"), "w") as handle:
        yaml.safe_dump(data, handle)
    os.symlink(os.path.join(REPO, "inventories", "local", "group_vars"), os.path.join(directory, "group_vars"))
    return directory


def forget(inventory, hosts, wait=True):
    """The scenario's cleanup.yml: namespace, database, role, bucket and S3 user of the hosts."""
    cmd = ansible_playbook(inventory, os.path.join(SCENARIO, "cleanup.yml"), "--limit", ",".join(hosts))
    proc = subprocess.Popen(cmd, env=run_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out = proc.communicate(timeout=RUN_TIMEOUT)[0]
    assert proc.returncode == 0, "cleanup.yml failed:\n" + out[-4000:]
    return proc


def adopt(instance):
    proc = subprocess.run(["bash", os.path.join(REPO, "tests", "lab", "adopt-instance.sh"), instance],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def gone(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def descendants(pid):
    """The pids of every process below ``pid``. ansible-core's workers call setsid(), so they and
    their module processes are not in the run's process group: a signal to the group misses them."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_run(proc):
    """SIGKILL a run as a crash of the controller would: its process group and every process
    below it (the workers, in sessions of their own, and their module processes), then wait
    until all of them are gone."""
    pids = descendants(proc.pid)
    sessions = set()
    for pid in pids:
        try:
            sessions.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    for group in sessions | {proc.pid}:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    for _attempt in range(300):
        if gone(proc.pid) and not any(os.path.exists("/proc/%d" % pid) and not _zombie(pid) for pid in pids):
            return
        time.sleep(0.2)


def _zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def run_and_cut(cmd, task_number, delay, sig):
    """Start cmd in its own process group; signal the group once the task_number-th task has
    started (and `delay` seconds more); wait until every process of the group is gone.
    Returns (output, tasks seen, whether the cut happened, the task it cut)."""
    proc = subprocess.Popen(cmd, env=run_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, start_new_session=True)
    lines, tasks, cut, task = [], 0, False, None
    deadline = time.time() + RUN_TIMEOUT
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("TASK ["):
                tasks += 1
                if tasks == task_number:
                    task = line.strip().rstrip("*").strip()
                    time.sleep(delay)
                    if sig == signal.SIGKILL:
                        kill_run(proc)
                    else:
                        os.killpg(proc.pid, sig)
                    cut = True
                    break
            if time.time() > deadline:
                break
        # read what is left, so a process that handles the signal can finish writing
        rest = proc.communicate(timeout=120)[0] if cut else proc.communicate(timeout=RUN_TIMEOUT)[0]
        lines.append(rest or "")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # after a signal the run handles, wait for its group (it stops its workers itself)
        for _attempt in range(300):
            if gone(proc.pid):
                break
            time.sleep(0.2)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    return "".join(lines), tasks, cut, task


def run_to_end(cmd):
    proc = subprocess.run(cmd, env=run_env(), cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def keep(name, text):
    if OUTPUT_DIR:
        os.makedirs(OUTPUT_DIR, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(OUTPUT_DIR, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)


def secret_values(snapshot):
    """{(secret, key): decoded value} of every Secret in a snapshot."""
    values = {}
    for name, data in snapshot["secrets"].items():
        for key, encoded in data.items():
            values[(name, key)] = base64.b64decode(encoded).decode("utf-8", "replace")
    return values


def leaks(text, snapshot):
    """The (secret, key) whose value, or its base64 form, appears in text, each with where it
    appears (the line, value masked)."""
    found = []
    for (name, key), value in sorted(secret_values(snapshot).items()):
        if len(value) < MIN_SECRET_LEN or key in IDENTIFIER_KEYS:
            continue
        encoded = snapshot["secrets"][name][key]
        for needle in (value, encoded):
            at = text.find(needle)
            if at >= 0:
                line_start = text.rfind("\n", 0, at) + 1
                line_end = text.find("\n", at)
                line = text[max(line_start, at - 200):(line_end if line_end >= 0 else len(text))][:400]
                found.append("%s/%s in: %s" % (name, key, line.replace(needle, "<" + key + ">")))
                break
    return found


@pytest.fixture(scope="module")
def inventory():
    with tempfile.TemporaryDirectory(prefix="site-cut-") as directory:
        write_inventory(directory, INSTANCES)
        forget(directory, INSTANCES)  # leftovers of an earlier, aborted run
        cleanups = []
        yield directory, cleanups
        for proc in cleanups:
            proc.communicate(timeout=RUN_TIMEOUT)
        forget(directory, INSTANCES)


def test_cut_points_are_spread_and_fixed():
    cuts = cut_points()
    assert cuts == cut_points(), "the cut points must not change from run to run"
    assert len({task for task, _delay in cuts}) == 3
    third = FIRST_CONVERGE_TASKS // 3
    assert [(task - 1) // third for task, _delay in cuts] == [0, 1, 2]


@pytest.mark.parametrize("index", range(len(SIGNALS)), ids=["SIGTERM", "SIGKILL", "SIGINT"])
def test_interrupted_first_converge_reruns_to_convergence(inventory, index):
    directory, cleanups = inventory
    instance, sig = INSTANCES[index], SIGNALS[index]
    task_number, delay = cut_points()[index]
    audit_log = os.environ.get("LAB_AUDIT_LOG")
    start = os.path.getsize(audit_log) if audit_log else None
    adopt(instance)
    site = os.path.join(REPO, "site.yml")

    t0 = time.time()
    out_cut, tasks, cut, task = run_and_cut(ansible_playbook(directory, site, "--limit", instance), task_number, delay, sig)
    t_cut = time.time() - t0
    assert cut, ("the first converge ended after %d tasks, before the cut at task %d: lower SITE_FIRST_CONVERGE_TASKS "
                 "if it converged; its output ends with:\n%s" % (tasks, task_number, out_cut[-3000:]))
    before = site_snapshot.snapshot(instance)

    verbose = index == 0
    t0 = time.time()
    # The killed run may have taken the instance's run lock and can no longer release it; the
    # operator who knows it is dead breaks it (docs/safety.md), as the rerun here does.
    rc, out_rerun = run_to_end(ansible_playbook(directory, site, "--limit", instance, "-e", "mastodon_lock_break=true",
                                                *(["-vvv"] if verbose else [])))
    t_rerun = time.time() - t0
    after = site_snapshot.snapshot(instance)
    keep(instance + "-cut.out", out_cut)
    keep(instance + "-rerun.out", out_rerun)
    print("%s: cut by %s at task %d (+%.2fs) %s after %.0fs; rerun%s %.0fs, %d bytes of output; %d Secrets, %d PVCs before the rerun"
          % (instance, sig.name, task_number, delay, task, t_cut, " -vvv" if verbose else "", t_rerun, len(out_rerun),
             len(before["secrets"]), len(before["pvcs"])))
    assert rc == 0 and "failed=0" in out_rerun, "the rerun did not converge (rc %d):\n%s" % (rc, out_rerun[-6000:])

    # every secret value that existed at the kill is unchanged
    old, new = secret_values(before), secret_values(after)
    changed = sorted("%s/%s" % key for key in old if new.get(key) != old[key])
    assert not changed, "the rerun changed (or lost) these secret values: %s" % changed
    assert len(new) >= len(old)

    # no PVC deleted: the same UIDs, and not a single delete in the audit log
    assert {name: uid for name, uid in after["pvcs"].items() if name in before["pvcs"]} == before["pvcs"], \
        "PVCs replaced: before %s, after %s" % (before["pvcs"], after["pvcs"])
    assert len(after["pvcs"]) >= 3
    if audit_log:
        window = audit_window.writes(audit_log, start, None, [instance])
        deleted = [d for d in window["deleted_by_anyone"] if d["resource"] == "persistentvolumeclaims"]
        assert deleted == [], "PVCs deleted: %s" % deleted

    # no secret value in any output (the -vvv rerun included)
    assert after["secrets"], "no Secret to look for"
    for label, text in (("the interrupted run", out_cut), ("the rerun" + (" at -vvv" if verbose else ""), out_rerun)):
        found = leaks(text, after)
        assert not found, "%s printed the values of %s" % (label, found)
    if verbose:
        # only -vvv prints how the inventory was parsed (the modules run in the controller process,
        # so no connection lines are printed at all)
        assert "inventory source with" in out_rerun, "the rerun was not at -vvv"
        looked_for = [key for key, value in secret_values(after).items() if len(value) >= MIN_SECRET_LEN and key[1] not in IDENTIFIER_KEYS]
        assert len(looked_for) >= 5 and ("%s-mastodon-s3" % instance, "AWS_SECRET_ACCESS_KEY") in looked_for

    cleanups.append(forget(directory, [instance], wait=False))
