#!/usr/bin/env bash
# galaxy-importer on the built tarball: the checks Galaxy runs on upload.
set -euo pipefail
tarball="$1"
cfg="$(mktemp)"; trap 'rm -f "$cfg"' EXIT
cat > "$cfg" <<'CFG'
[galaxy-importer]
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_LINT = True
CHECK_CHANGELOG = True
LOG_LEVEL_MAIN = INFO
CFG
out="$(GALAXY_IMPORTER_CONFIG="$cfg" python -m galaxy_importer.main "$tarball" 2>&1)"; rc=$?
echo "$out" | tail -n 25
[ $rc -eq 0 ] && echo "$out" | grep -q "Processing completed successfully"
