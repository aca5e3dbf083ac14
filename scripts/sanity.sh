#!/usr/bin/env bash
# ansible-test sanity on a copy of the tree at .../ansible_collections/fediverse/mastodon,
# offline-safe: the get-pip bootstrap ansible-test would download is replaced by a stand-in.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${CACHE:-$HOME/.cache/fediverse-mastodon}"
# One copy per checkout, so two checkouts on one machine never share it.
dest="$cache/sanity/$(printf %s "$repo" | md5sum | cut -c1-8)/ansible_collections/fediverse/mastodon"

pip_version="$(python - <<'PY'
import os, re, ansible_test
src = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
m = re.search(r"pip='([0-9.]+)'", src)
print(m.group(1) if m else "")
PY
)"
pip_version="${pip_version:-24.2}"
standin="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$standin")"
cmp -s "$repo/scripts/get_pip_standin.py" "$standin" || cp "$repo/scripts/get_pip_standin.py" "$standin"

rm -rf "$dest" && mkdir -p "$dest"
cd "$repo"
git ls-files -z --cached --others --exclude-standard | grep -zv '^collections/ansible_collections' \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -xf - -C "$dest"
cd "$dest"
# ansible-test wants a git repo to tell tracked files from generated ones.
git init -q . && git add -A >/dev/null && git -c user.email=ci@local -c user.name=ci commit -qm sanity >/dev/null
ansible-test sanity --venv --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --color no "$@"
