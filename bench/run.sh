#!/usr/bin/env bash
# make bench: site.yml in the lab, cold / no-op / upgrade, side by side in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$PWD/collections" ANSIBLE_CONFIG="$PWD/ansible.cfg"
bash tests/lab/lab.sh up >/dev/null
eval "$(bash tests/lab/lab.sh env)"
if [ "${1:-}" = "--backup" ]; then
  shift
  exec python bench/backup_memory.py "$@"
fi
if [ "${1:-}" = "--floor" ]; then
  shift
  exec python bench/floor.py "$@"
fi
exec python bench/bench.py "$@"
