#!/usr/bin/env bash
# Runs every Molecule scenario in extensions/molecule/ (or those named in $SCENARIOS) against
# the lab, each with its full sequence, idempotence step included. MOLECULE_JOBS scenarios
# (default 2) run at a time: each has its own instance and namespace, and a run is mostly
# waiting on the API server, so two share the machine's cores well. Each scenario's output is
# printed whole when it ends, so the logs do not interleave.
set -uo pipefail
cd "$(dirname "$0")/.."
# The longest first, so that the last to start is a short one.
order="site-prod mastodon site elasticsearch postgresql redis minio preflight"
available="$(ls -d extensions/molecule/*/ 2>/dev/null | xargs -rn1 basename | grep -vx default || true)"
if [ -n "${SCENARIOS:-}" ]; then
  scenarios="$SCENARIOS"
else
  scenarios="$(for s in $order; do grep -qx "$s" <<<"$available" && echo "$s"; done; grep -vxF -f <(tr ' ' '\n' <<<"$order") <<<"$available" || true)"
fi
[ -n "$scenarios" ] || { echo "molecule: no scenarios found" >&2; exit 1; }
jobs_max="${MOLECULE_JOBS:-2}"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
declare -A started=()
ok=0 bad=0

finish() {  # print one finished scenario's log and its verdict
  local s="$1" rc="$2"
  cat "$logs/$s.log"
  if [ "$rc" -eq 0 ]; then ok=$((ok+1)); echo "molecule: $s passed in $((SECONDS - started[$s]))s"
  else bad=$((bad+1)); echo "molecule: $s FAILED after $((SECONDS - started[$s]))s"; fi
}

declare -A pids=()
for s in $scenarios; do
  [ -f "extensions/molecule/$s/molecule.yml" ] || continue
  while [ "${#pids[@]}" -ge "$jobs_max" ]; do
    wait -n -p done_pid; rc=$?
    for n in "${!pids[@]}"; do [ "${pids[$n]}" = "$done_pid" ] && { unset "pids[$n]"; finish "$n" "$rc"; }; done
  done
  started[$s]=$SECONDS
  (cd extensions && exec molecule test -s "$s") >"$logs/$s.log" 2>&1 &
  pids[$s]=$!
done
while [ "${#pids[@]}" -gt 0 ]; do
  wait -n -p done_pid; rc=$?
  for n in "${!pids[@]}"; do [ "${pids[$n]}" = "$done_pid" ] && { unset "pids[$n]"; finish "$n" "$rc"; }; done
done
echo "molecule: $ok passed, $bad failed"
[ "$bad" -eq 0 ]
