#!/usr/bin/env bash
# galaxy-importer on the built tarball: the checks Galaxy runs on upload.
set -uo pipefail
tarball="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cat > "$work/importer.cfg" <<'CFG'
[galaxy-importer]
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_LINT = True
CHECK_CHANGELOG = True
LOG_LEVEL_MAIN = INFO
CFG
# It writes importer_result.json into the current directory: keep that out of the repo.
cd "$work"
out="$(GALAXY_IMPORTER_CONFIG="$work/importer.cfg" python -m galaxy_importer.main "$tarball" 2>&1)"; rc=$?
echo "$out" | tail -n 8
echo "$out" | grep -E "WARNING|ERROR" | head -20
[ $rc -eq 0 ] && echo "$out" | grep -qi "processing completed successfully"
