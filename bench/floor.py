"""The fixed costs under a no-op ``site.yml --tags mastodon``, measured in the lab (issue 14).

What every run pays before the Mastodon phase does any work of its own:
- ``ansible-playbook`` parsing site.yml, the inventory and the roles (``--list-tasks``);
- importing the kubernetes client once in the controller (``python -c 'import kubernetes'``);
- the run start, preflight (under every tag selection, by design: docs/safety.md), the connection
  facts and the summary (``site.yml --tags preflight``, which runs exactly those).

Each is measured RUNS times; the median goes to bench/results/<date>-floor.json, next to the
baseline of the same day's ``make bench``. Run with ``make bench-floor``.
"""

import datetime
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = 3


def timed(cmd, env):
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit("bench/floor: %s failed:\n%s" % (" ".join(cmd), (proc.stdout + proc.stderr)[-2000:]))
    return time.monotonic() - start


def main():
    env = dict(os.environ)
    env.setdefault("K8S_AUTH_KUBECONFIG", env.get("KUBECONFIG", ""))
    instance = env.get("BENCH_INSTANCE", "bench")
    playbook = ["ansible-playbook", "-i", "inventories/local", "-e", "mastodon_instance=" + instance, "site.yml"]
    kubectl = env.get("LAB_KUBECTL", "kubectl")
    if subprocess.run([kubectl, "get", "namespace", instance], env=env, capture_output=True, check=False).returncode:
        # a converged instance first (not timed), as make bench leaves none behind
        subprocess.run(["bash", os.path.join(REPO, "tests", "lab", "adopt-instance.sh"), instance], check=True, capture_output=True)
        timed(playbook, env)
    steps = [
        ("parse site.yml --tags mastodon (--list-tasks)", playbook + ["--tags", "mastodon", "--list-tasks"]),
        ("import the kubernetes client", [sys.executable, "-c", "import kubernetes"]),
        ("start, preflight, connection facts, summary (--tags preflight)", playbook + ["--tags", "preflight"]),
    ]
    rows = []
    for name, cmd in steps:
        times = [timed(cmd, env) for dummy in range(RUNS)]
        rows.append(dict(step=name, median_seconds=round(statistics.median(times), 2), runs=[round(t, 2) for t in times]))
        print("%-66s %6.2f s  (%s)" % (name, rows[-1]["median_seconds"], ", ".join("%.2f" % t for t in times)))
    out = os.path.join(REPO, "bench", "results", datetime.date.today().isoformat() + "-floor.json")
    with open(out, "w") as fh:
        json.dump(dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), steps=rows), fh, indent=2)
    print("results: " + os.path.relpath(out, REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
