#!/usr/bin/env bash
# `make test`: every quality gate, in order, each timed. All gates run even when one fails,
# and the run fails if any did. The lab is brought up for the gates that need it and
# brought down at the end (LAB_KEEP=1 leaves it running).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$PWD/collections" ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_PYTHON_INTERPRETER="$PWD/.venv/bin/python"
export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:--p no:cacheprovider}"

passed=() failed=()
started_lab=0
gate() {
  local name="$1"; shift
  local t0=$SECONDS
  echo "=== gate: $name"
  if "$@"; then passed+=("$name ($((SECONDS - t0))s)"); else failed+=("$name ($((SECONDS - t0))s)"); fi
}
lab_down() { [ "$started_lab" = 1 ] && [ "${LAB_KEEP:-0}" != 1 ] && bash tests/lab/lab.sh down; true; }
trap lab_down EXIT

with_lab() { ( eval "$(bash tests/lab/lab.sh env)" && "$@" ); }

# The lab comes up in the background while the gates that do not need it run: on a new machine
# that is the Kubernetes build and the OpenSearch download, on a warm one OpenSearch's start.
if bash tests/lab/lab.sh status >/dev/null 2>&1; then :; else started_lab=1; fi
lab_log="$(mktemp)"
bash tests/lab/lab.sh up >"$lab_log" 2>&1 &
lab_pid=$!
# Its errors are kept for the summary too, so that the end of a CI log says why it failed.
lab_errors=""
lab_up() {
  local rc=0
  wait "$lab_pid" || rc=$?
  cat "$lab_log"
  [ "$rc" = 0 ] || lab_errors="$(grep -E 'ERROR|FAILED' "$lab_log" || tail -n 5 "$lab_log")"
  rm -f "$lab_log"
  return "$rc"
}

gate yamllint yamllint -s .
gate ansible-lint ansible-lint --offline -q
gate syntax-check ansible-playbook -i inventories/prod site.yml --syntax-check
gate units pytest -q -n 2 tests/unit
gate sanity bash scripts/sanity.sh
gate build make -s build
gate galaxy-importer make -s importer
[ -x scripts/ee-context.sh ] && gate ee-context bash scripts/ee-context.sh .cache/ee-context

gate lab-up lab_up
# Two workers, a test file each at a time (--dist loadfile keeps a file's module fixtures in one
# worker): the tests mostly wait on the API server and the lab's servers, and every file uses its
# own instances and namespaces. INTEGRATION_WORKERS=0 runs them one by one.
gate integration with_lab pytest -q -n "${INTEGRATION_WORKERS:-2}" --dist loadfile tests/lab tests/integration
gate molecule with_lab bash scripts/molecule.sh

echo
echo "=== summary"
for g in "${passed[@]}"; do echo "PASS $g"; done
for g in "${failed[@]}"; do echo "FAIL $g"; done
[ -z "$lab_errors" ] || printf 'lab-up said:\n%s\n' "$lab_errors"
echo "gates: ${#passed[@]} passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
