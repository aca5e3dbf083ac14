"""Benchmark of site.yml in the lab: cold converge, no-op rerun, upgrade, against a baseline.

For each step: wall time, tasks run, tasks changed, and the API requests that Ansible sent
(by verb, from the kube-apiserver's audit log; server-side dry runs counted apart).

The baseline is what any no-op tool must do at least, measured in the same run on the same API
server: one ``kubectl apply --server-side --dry-run=server`` of every object that site.yml
applied or wrote (the objects whose managedFields name one of our field managers), plus one
``kubectl get`` of each of those objects.

Targets (issue 14), checked at the end; the bench exits 1 when one is missed:
- the cold converge takes at most COLD_LIMIT seconds;
- a no-op site.yml takes at most NOOP_RATIO x the baseline, with zero mutating requests;
- a no-op ``site.yml --tags mastodon`` takes at most TAGS_RATIO x the baseline, zero mutating.

Writes bench/results/<date>.json and prints a table with each ratio.
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
COLD_LIMIT = 60.0
NOOP_RATIO = 2.0
TAGS_RATIO = 1.0
FIELD_MANAGER = "fediverse-mastodon"
# server-side apply, and the generate-once Secrets and the instance record (written with update)
OUR_MANAGERS = (FIELD_MANAGER, "fediverse.mastodon")
# kinds site.yml applies in the instance's namespace (the baseline keeps those we applied)
KINDS = ("deployments.apps", "statefulsets.apps", "services", "configmaps", "secrets", "serviceaccounts",
         "networkpolicies.networking.k8s.io", "ingresses.networking.k8s.io", "jobs.batch", "cronjobs.batch",
         "poddisruptionbudgets.policy", "horizontalpodautoscalers.autoscaling", "roles.rbac.authorization.k8s.io",
         "rolebindings.rbac.authorization.k8s.io", "persistentvolumeclaims", "leases.coordination.k8s.io")
SERVER_FIELDS = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")


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


def applied_objects(kubectl, namespace, env):
    """The objects of ``namespace`` that our field manager applied, as apply-ready manifests
    (server-set fields removed; a Secret's data is dropped, so the bench holds no secret)."""
    out = subprocess.run([kubectl, "get", ",".join(KINDS), "-n", namespace, "-o", "json", "--show-managed-fields"], env=env,
                         capture_output=True, text=True, check=True).stdout
    objects = []
    for item in json.loads(out).get("items", []):
        meta = item.get("metadata", {})
        if not any(m.get("manager") in OUR_MANAGERS for m in meta.get("managedFields") or []):
            continue
        for field in SERVER_FIELDS:
            meta.pop(field, None)
        (meta.get("annotations") or {}).pop("deployment.kubernetes.io/revision", None)
        item.pop("status", None)
        if item.get("kind") == "Secret":
            item.pop("data", None)
        if item.get("kind") == "Job":
            # the controller's labels and selector are not ours to apply
            item.get("spec", {}).pop("selector", None)
            for labels in (meta.get("labels") or {}, item.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}):
                for key in [k for k in labels if k.startswith(("batch.kubernetes.io/", "controller-uid", "job-name"))]:
                    labels.pop(key)
        objects.append(item)
    return objects


def baseline(kubectl, namespace, env):
    """Seconds for one server-side dry-run apply of every applied object plus one get of each."""
    objects = applied_objects(kubectl, namespace, env)
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    start = time.monotonic()
    apply = subprocess.run([kubectl, "apply", "--server-side", "--dry-run=server", "--force-conflicts",
                            "--field-manager=" + FIELD_MANAGER, "-f", "-"], input=manifest, env=env,
                           capture_output=True, text=True, check=False)
    for obj in objects:
        subprocess.run([kubectl, "get", obj["kind"].lower() + "/" + obj["metadata"]["name"], "-n", namespace, "-o", "json"],
                       env=env, capture_output=True, check=True)
    wall = time.monotonic() - start
    return dict(step="baseline (kubectl)", rc=apply.returncode, wall_seconds=round(wall, 1), objects=len(objects),
                tail=apply.stderr[-2000:] if apply.returncode else "")


def check_targets(steps, base):
    """(target, measured, limit, ok) rows for the targets of issue 14."""
    by_name = dict((s["step"], s) for s in steps)
    rows = []
    cold = by_name["cold converge"]
    rows.append(("cold converge seconds", cold["wall_seconds"], COLD_LIMIT, cold["rc"] == 0 and cold["wall_seconds"] <= COLD_LIMIT))
    for name, ratio in (("no-op rerun", NOOP_RATIO), ("no-op --tags mastodon", TAGS_RATIO)):
        step = by_name[name]
        measured = step["wall_seconds"] / base["wall_seconds"]
        rows.append((name + " / baseline", round(measured, 2), ratio, step["rc"] == 0 and measured <= ratio))
        rows.append((name + " mutating requests", step["mutating"], 0, step["mutating"] == 0))
    for name in ("no-op after upgrade",):
        step = by_name[name]
        rows.append((name + " mutating requests", step["mutating"], 0, step["mutating"] == 0))
    return rows


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
        run_step("no-op --tags mastodon", playbook + ["site.yml", "--tags", "mastodon"], env, audit_log),
        run_step("upgrade", playbook + ["playbooks/upgrade.yml", "-e", "mastodon_version=" + args.upgrade_to], env, audit_log),
        run_step("no-op after upgrade", playbook + ["site.yml", "-e", "mastodon_version=" + args.upgrade_to], env, audit_log),
    ]
    base = baseline(kubectl, namespace, env)
    targets = check_targets(steps, base) if base["rc"] == 0 else []
    if not args.keep:
        subprocess.run([kubectl, "delete", "namespace", namespace, "--ignore-not-found", "--wait=false"],
                       check=False, capture_output=True)
    result = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  inventory=args.inventory, steps=steps, baseline=base,
                  targets=[dict(target=t, measured=m, limit=lim, ok=ok) for t, m, lim, ok in targets])
    os.makedirs(os.path.join(REPO, "bench", "results"), exist_ok=True)
    out = os.path.join(REPO, "bench", "results", datetime.date.today().isoformat() + ".json")
    with open(out, "w") as fh:
        json.dump(result, fh, indent=2)
    print("%-22s %4s %8s %6s %8s %9s  %s" % ("step", "rc", "wall(s)", "tasks", "changed", "mutating", "requests by verb"))
    for s in steps:
        verbs = " ".join("%s=%d" % kv for kv in sorted(s["requests"].items()))
        row = (s["step"], s["rc"], s["wall_seconds"], s["tasks"], s["tasks_changed"], s["mutating"], verbs)
        print("%-22s %4d %8.1f %6d %8d %9d  %s" % row)
    print("%-22s %4d %8.1f  %d objects: one server-side dry-run apply, one get each"
          % (base["step"], base["rc"], base["wall_seconds"], base["objects"]))
    print("\n%-40s %9s %7s  %s" % ("target", "measured", "limit", "ok"))
    for target, measured, limit, ok in targets:
        print("%-40s %9s %7s  %s" % (target, measured, limit, "yes" if ok else "MISSED"))
    print("results: " + os.path.relpath(out, REPO))
    for s in steps + [base]:
        if s["rc"]:
            print("\n--- %s failed:\n%s" % (s["step"], s.get("tail", "")))
    ok = all(s["rc"] == 0 for s in steps) and base["rc"] == 0 and all(t[3] for t in targets)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
