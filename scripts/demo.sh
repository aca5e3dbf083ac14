#!/usr/bin/env bash
# `make demo`: the main job. Against the local lab (brought up if needed), or against the
# cluster of DEMO_KUBECONFIG (and DEMO_CONTEXT) when the user sets it: then nothing is built.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$PWD/collections" ANSIBLE_CONFIG="$PWD/ansible.cfg"
inventory="${DEMO_INVENTORY:-inventories/local}"
if [ -n "${DEMO_KUBECONFIG:-}" ]; then
  export KUBECONFIG="$DEMO_KUBECONFIG" K8S_AUTH_KUBECONFIG="$DEMO_KUBECONFIG"
  [ -n "${DEMO_CONTEXT:-}" ] && export K8S_AUTH_CONTEXT="$DEMO_CONTEXT"
  echo "demo: deploying to $(kubectl config current-context 2>/dev/null || echo "$DEMO_KUBECONFIG") with $inventory"
else
  bash tests/lab/lab.sh up
  eval "$(bash tests/lab/lab.sh env)"
  export K8S_AUTH_KUBECONFIG="$KUBECONFIG"
  # The lab's simulated in-cluster servers are the lab's own PostgreSQL, S3 and OpenSearch: give
  # every instance of the inventory their admin credentials.
  instances="${DEMO_INSTANCE:-$(ansible-inventory -i "$inventory" --list 2>/dev/null | python3 -c \
    'import json, sys; print(" ".join(json.load(sys.stdin).get("mastodon_instances", {}).get("hosts", [])))')}"
  [ -n "$instances" ] || { echo "demo: $inventory has no host in the group mastodon_instances" >&2; exit 1; }
  for instance in $instances; do bash tests/lab/adopt-instance.sh "$instance"; done
  # Another inventory (inventories/prod) gets the lab overlay: only what the lab itself needs.
  if [ "$inventory" != inventories/local ]; then
    set -- -e @inventories/lab-overlay/lab.yml "$@"
    echo "demo: deploying to the local lab with $inventory and inventories/lab-overlay/lab.yml"
  else
    echo "demo: deploying to the local lab with $inventory"
  fi
fi
exec ansible-playbook -i "$inventory" site.yml "$@"
