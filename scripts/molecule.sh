#!/usr/bin/env bash
# Runs every Molecule scenario in extensions/molecule/ (or those named in $SCENARIOS) against
# the lab, each with its full sequence, idempotence step included.
set -uo pipefail
cd "$(dirname "$0")/.."
scenarios="${SCENARIOS:-$(ls -d extensions/molecule/*/ 2>/dev/null | xargs -rn1 basename | grep -vx default || true)}"
[ -n "$scenarios" ] || { echo "molecule: no scenarios found" >&2; exit 1; }
rc=0 ok=0 bad=0
for s in $scenarios; do
  [ -f "extensions/molecule/$s/molecule.yml" ] || continue
  t0=$SECONDS
  if (cd extensions && molecule test -s "$s"); then ok=$((ok+1)); echo "molecule: $s passed in $((SECONDS-t0))s"
  else bad=$((bad+1)); rc=1; echo "molecule: $s FAILED after $((SECONDS-t0))s"; fi
done
echo "molecule: $ok passed, $bad failed"
exit $rc
