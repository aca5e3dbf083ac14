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
  # The lab's simulated in-cluster servers are the lab's own PostgreSQL and S3 server.
  bash tests/lab/adopt-instance.sh "${DEMO_INSTANCE:-lab}"
  echo "demo: deploying to the local lab with $inventory"
fi
exec ansible-playbook -i "$inventory" site.yml "$@"
