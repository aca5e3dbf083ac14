#!/usr/bin/env bash
# Builds the project virtualenv from the pinned requirements. Safe to rerun.
set -euo pipefail
venv="${1:-.venv}"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)'; then
  echo "bootstrap: Python 3.11 or newer is required (found $("$py" --version 2>&1))" >&2
  exit 1
fi
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip wheel
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
echo "bootstrap: $venv ready (ansible-core $("$venv/bin/python" -c "import ansible.release as r; print(r.__version__)"))"
