"""Benchmark of site.yml in the lab: cold converge, no-op rerun, upgrade.

For each step: wall time, tasks run, tasks changed, and the API requests that Ansible sent
(by verb, from the kube-apiserver's audit log; server-side dry runs counted apart). Writes
bench/results/<date>.json and prints a table. The target for the no-op rerun is a few
seconds and zero mutating requests.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT_AGENTS = ("fediverse.mastodon", "OpenAPI-Generator", "kubectl")
MUTATING = ("create", "update", "patch", "delete", "deletecollection")


def audit_requests(path, offset):
    verbs = {}
    with open(path) as fh:
        fh.seek(offset)
        for line in fh:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not event.get("userAgent", "").startswith(CLIENT_AGENTS):
                continue
            verb = event.get("verb", "?")
            if "dryRun=All" in event.get("requestURI", ""):
                verb += "(dry-run)"
            verbs[verb] = verbs.get(verb, 0) + 1
    return verbs


def run_step(name, cmd, env, audit_log):
    offset = os.path.getsize(audit_log)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    time.sleep(1)  # the audit backend writes in batches
    recap = re.findall(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", proc.stdout)
    ok = sum(int(r[0]) for r in recap)
    changed = sum(int(r[1]) for r in recap)
    failed = sum(int(r[3]) for r in recap)
    skipped = sum(int(r[4]) for r in recap)
    verbs = audit_requests(audit_log, offset)
    step = dict(step=name, rc=proc.returncode, wall_seconds=round(wall, 1), tasks=ok + failed + skipped,
                tasks_changed=changed, requests=verbs,
                mutating=sum(v for k, v in verbs.items() if k in MUTATING))
    if proc.returncode:
        step["tail"] = proc.stdout[-3000:] + proc.stderr[-2000:]
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventories/local")
    parser.add_argument("--upgrade-to", default=os.environ.get("BENCH_UPGRADE_TO", "v4.6.4"))
    parser.add_argument("--keep", action="store_true", help="do not delete the namespace first")
    args = parser.parse_args()
    env = dict(os.environ)
    audit_log = env.get("LAB_AUDIT_LOG")
    if not audit_log or not os.path.exists(audit_log):
        sys.exit("bench: needs the lab's audit log: eval \"$(make -s lab-env)\"")
    env.setdefault("K8S_AUTH_KUBECONFIG", env.get("KUBECONFIG", ""))
    kubectl = env.get("LAB_KUBECTL", "kubectl")
    # Its own instance, so the bench neither disturbs nor depends on the demo's `lab` instance.
    namespace = env.get("BENCH_INSTANCE", "bench")
    if not args.keep:
        subprocess.run([kubectl, "delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=120s"],
                       check=False, capture_output=True)
    # The lab's simulated in-cluster servers are the lab's own: hand their admin credentials to the
    # instance before the cold converge (tests/lab/adopt-instance.sh says why).
    subprocess.run(["bash", os.path.join(REPO, "tests", "lab", "adopt-instance.sh"), namespace], check=True, capture_output=True)
    playbook = ["ansible-playbook", "-i", args.inventory, "-e", "mastodon_instance=" + namespace]
    steps = [
        run_step("cold converge", playbook + ["site.yml"], env, audit_log),
        run_step("no-op rerun", playbook + ["site.yml"], env, audit_log),
        run_step("upgrade", playbook + ["playbooks/upgrade.yml", "-e", "mastodon_version=" + args.upgrade_to], env, audit_log),
        run_step("no-op after upgrade", playbook + ["site.yml", "-e", "mastodon_version=" + args.upgrade_to], env, audit_log),
    ]
    if not args.keep:
        subprocess.run([kubectl, "delete", "namespace", namespace, "--ignore-not-found", "--wait=false"],
                       check=False, capture_output=True)
    result = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  inventory=args.inventory, steps=steps)
    os.makedirs(os.path.join(REPO, "bench", "results"), exist_ok=True)
    out = os.path.join(REPO, "bench", "results", datetime.date.today().isoformat() + ".json")
    with open(out, "w") as fh:
        json.dump(result, fh, indent=2)
    print("%-22s %4s %8s %6s %8s %9s  %s" % ("step", "rc", "wall(s)", "tasks", "changed", "mutating", "requests by verb"))
    for s in steps:
        verbs = " ".join("%s=%d" % kv for kv in sorted(s["requests"].items()))
        row = (s["step"], s["rc"], s["wall_seconds"], s["tasks"], s["tasks_changed"], s["mutating"], verbs)
        print("%-22s %4d %8.1f %6d %8d %9d  %s" % row)
    print("results: " + os.path.relpath(out, REPO))
    for s in steps:
        if s["rc"]:
            print("\n--- %s failed:\n%s" % (s["step"], s.get("tail", "")))
    return 0 if all(s["rc"] == 0 for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
