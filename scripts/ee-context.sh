#!/usr/bin/env bash
# Generate the execution environment build context with `ansible-builder create` (offline) and
# check that the generated Containerfile really installs our collection and its requirements.
#
# Usage: scripts/ee-context.sh [CONTEXT_DIR]
#   CONTEXT_DIR defaults to a new temporary directory outside the repository. A directory inside
#   the repository is accepted only when git ignores it.
#
# Checks:
#   1. ansible-builder create succeeds and writes Containerfile + _build/.
#   2. The Containerfile installs ansible-core and ansible-runner, runs ansible-galaxy on
#      _build/requirements.yml, and runs the introspect/assemble/install-from-bindep steps on
#      _build/requirements.txt and _build/bindep.txt.
#   3. _build/requirements.txt and _build/bindep.txt are byte-identical to ours.
#   4. _build/requirements.yml installs our collection from the copied checkout, and that copy,
#      installed offline with ansible-galaxy, has exactly the files of `ansible-galaxy collection
#      build` of this checkout (so no file of the collection is left out of the image).
#   5. The context's own introspect.py, run as the builder stage runs it on the installed copy,
#      attributes every package of requirements.txt and bindep.txt to the collection
#      (through meta/execution-environment.yml).
# Building the image needs podman or docker:  ansible-builder build -f execution-environment.yml -t TAG
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

fail() { echo "ee-context: FAIL: $*" >&2; exit 1; }
ok() { echo "ee-context: ok: $*"; }

venv_bin="$repo/.venv/bin"
if [[ -x "$venv_bin/ansible-builder" ]]; then builder="$venv_bin/ansible-builder"
elif command -v ansible-builder >/dev/null 2>&1; then builder="$(command -v ansible-builder)"
else fail "ansible-builder is not installed (pip install ansible-builder)"; fi
if [[ -x "$venv_bin/python" ]]; then python="$venv_bin/python"; else python="$(command -v python3)"; fi
if [[ -x "$venv_bin/ansible-galaxy" ]]; then galaxy="$venv_bin/ansible-galaxy"; else galaxy="$(command -v ansible-galaxy)"; fi

for f in execution-environment.yml galaxy.yml requirements.txt bindep.txt meta/execution-environment.yml; do
  [[ -f "$f" ]] || fail "$f is missing from the repository root"
done

work="$(mktemp -d "${TMPDIR:-/tmp}/mastodon-ee-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [[ $# -ge 1 ]]; then
  ctx="$1"
  mkdir -p "$ctx"
  ctx="$(cd "$ctx" && pwd)"
  case "$ctx/" in
    "$repo"/*)
      git -C "$repo" check-ignore -q "$ctx" || fail "$ctx is inside the repository but not ignored by git; use a path outside it"
      ;;
  esac
  rm -rf "${ctx:?}/Containerfile" "${ctx:?}/_build"
else
  ctx="$(mktemp -d "${TMPDIR:-/tmp}/mastodon-ee.XXXXXX")"
fi

# 1. ansible-builder create (no network, no container engine)
"$builder" create -f execution-environment.yml -c "$ctx" --output-filename Containerfile -v1 >"$work/create.log" 2>&1 \
  || { cat "$work/create.log" >&2; fail "ansible-builder create failed"; }
cf="$ctx/Containerfile"
[[ -f "$cf" && -d "$ctx/_build" ]] || fail "no Containerfile/_build in $ctx"
ok "ansible-builder $("$builder" --version) created $cf"

# 2. what the Containerfile runs
need() { grep -Eq -- "$1" "$cf" || fail "Containerfile does not $2 (no line matching: $1)"; }
need '^ARG ANSIBLE_INSTALL_REFS=".*ansible-core.*"' "install ansible-core"
need '^ARG ANSIBLE_INSTALL_REFS=".*ansible-runner.*"' "install ansible-runner"
need 'pip install .*\$ANSIBLE_INSTALL_REFS' "pip-install ansible-core and ansible-runner"
need '^COPY _build /build' "copy the build files (our collection) into the galaxy stage"
need 'ansible-galaxy collection install .*-r requirements.yml' "install the collections of requirements.yml"
need '^COPY _build/requirements.txt requirements.txt' "copy our Python requirements"
need '^COPY _build/bindep.txt bindep.txt' "copy our system requirements"
need 'introspect\.py introspect --user-pip=requirements.txt --user-bindep=bindep.txt' "introspect our requirements"
need '^RUN /output/scripts/assemble' "build the Python wheels"
need 'install-from-bindep' "install the system packages and wheels"
ok "Containerfile installs ansible-core, ansible-runner, the galaxy requirements, requirements.txt and bindep.txt"

# 3. our requirement files, unchanged
cmp -s requirements.txt "$ctx/_build/requirements.txt" || fail "_build/requirements.txt differs from requirements.txt"
cmp -s bindep.txt "$ctx/_build/bindep.txt" || fail "_build/bindep.txt differs from bindep.txt"
ok "_build/requirements.txt and _build/bindep.txt are ours"

# 4. our collection: requirements.yml names the copied checkout; installing it gives the built collection
"$python" - "$ctx/_build/requirements.yml" <<'EOF' || fail "_build/requirements.yml does not install fediverse.mastodon from /build/fediverse_mastodon"
import sys, yaml
data = yaml.safe_load(open(sys.argv[1]))
entries = [c for c in data.get("collections", []) if isinstance(c, dict)]
assert {"name": "/build/fediverse_mastodon", "type": "dir"} in entries, entries
EOF
copy="$ctx/_build/fediverse_mastodon"
"$python" - "$copy/galaxy.yml" <<'EOF' || fail "the copy in _build/fediverse_mastodon is not the collection fediverse.mastodon"
import sys, yaml
g = yaml.safe_load(open(sys.argv[1]))
assert (g["namespace"], g["name"]) == ("fediverse", "mastodon"), (g["namespace"], g["name"])
EOF

"$galaxy" collection build --force --output-path "$work/built" "$repo" >"$work/build.log" 2>&1 \
  || { cat "$work/build.log" >&2; fail "ansible-galaxy collection build of the checkout failed"; }
tarball="$(ls "$work"/built/fediverse-mastodon-*.tar.gz)"
# the galaxy stage's requirements.yml, with /build pointing at the context's _build
sed "s#/build/fediverse_mastodon#$copy#" "$ctx/_build/requirements.yml" >"$work/requirements.yml"
"$galaxy" collection install --offline --no-deps --force -p "$work/installed" -r "$work/requirements.yml" >"$work/install.log" 2>&1 \
  || { cat "$work/install.log" >&2; fail "ansible-galaxy could not install the copied collection (as the galaxy stage would)"; }
installed="$work/installed/ansible_collections/fediverse/mastodon"
"$python" - "$tarball" "$installed/FILES.json" "$repo" <<'EOF' || fail "the image would not get the whole collection: add the missing paths to additional_build_files in execution-environment.yml"
import json, subprocess, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    built = {f["name"] for f in json.load(tar.extractfile("FILES.json"))["files"] if f["ftype"] == "file"}
with open(sys.argv[2]) as fh:
    got = {f["name"] for f in json.load(fh)["files"] if f["ftype"] == "file"}
missing, extra = sorted(built - got), sorted(got - built)
# Files git ignores (caches, build output) end up in a tarball built from a used work tree only;
# they are build_ignore's business, not the image's.
# (Caches written while this runs, e.g. by a linter, can also differ between the two sides.)
def git_ignored(paths):
    if not paths:
        return set()
    proc = subprocess.run(["git", "-C", sys.argv[3], "check-ignore", "--stdin"], input="\n".join(paths),
                          capture_output=True, text=True, check=False)
    return set(proc.stdout.split())


ignored = git_ignored(missing)
if ignored:
    print("ee-context: warning: git-ignored files in the collection tarball (add them to build_ignore): %s"
          % ", ".join(sorted(ignored)[:10]), file=sys.stderr)
missing = [m for m in missing if m not in ignored]
extra = [e for e in extra if e not in git_ignored(extra)]
if missing:
    print("ee-context: in the collection tarball but not in the image: %s" % ", ".join(missing[:20]), file=sys.stderr)
if extra:
    print("ee-context: in the image but not in the collection tarball: %s" % ", ".join(extra[:20]), file=sys.stderr)
sys.exit(1 if (missing or extra) else 0)
EOF
count="$("$python" -c 'import json,sys; print(sum(1 for f in json.load(open(sys.argv[1]))["files"] if f["ftype"] == "file"))' "$installed/FILES.json")"
ok "the galaxy stage installs fediverse.mastodon: $count files, the same as ansible-galaxy collection build"

# 5. the builder stage's own introspect.py (from the context), with the Containerfile's arguments,
#    on the installed copy: every requirement must come from the collection itself (its
#    meta/execution-environment.yml), and the files it writes are what assemble/bindep install.
"$python" "$ctx/_build/scripts/introspect.py" introspect "$work/installed" \
  --user-pip="$ctx/_build/requirements.txt" --user-bindep="$ctx/_build/bindep.txt" \
  --write-pip="$work/pip.txt" --write-bindep="$work/bindep.txt" >"$work/introspect.log" 2>&1 \
  || { cat "$work/introspect.log" >&2; fail "_build/scripts/introspect.py failed"; }
"$python" - "$work/pip.txt" "$work/bindep.txt" requirements.txt bindep.txt <<'EOF' || fail "introspection of the installed collection misses requirements (check meta/execution-environment.yml)"
import re, sys
try:  # packages ansible-builder drops on purpose (ansible-core and what it brings: PyYAML, ...)
    from ansible_builder._target_scripts.introspect import EXCLUDE_REQUIREMENTS
except ImportError:
    EXCLUDE_REQUIREMENTS = frozenset(("ansible", "ansible-base", "ansible-core", "yaml", "pyyaml", "json"))
MARK = "# from collection fediverse.mastodon"


def from_collection(path):
    return [line.split("#", 1)[0].strip().lower() for line in open(path) if line.rstrip().endswith(MARK)]


python = [re.split(r"[<>=!~;\[ ]", x, 1)[0].replace("_", "-") for x in from_collection(sys.argv[1])]
system = [x.split()[0] for x in from_collection(sys.argv[2]) if x]
missing = []
for line in open(sys.argv[3]):
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        continue
    name = re.split(r"[<>=!~;\[ ]", line, 1)[0].lower().replace("_", "-")
    if name not in EXCLUDE_REQUIREMENTS and name not in python:
        missing.append("python:" + name)
for line in open(sys.argv[4]):
    line = line.split("#", 1)[0].strip()
    if line and line.split()[0].lower() not in system:
        missing.append("system:" + line.split()[0])
if missing:
    print("ee-context: not found by introspection: %s" % ", ".join(missing), file=sys.stderr)
    sys.exit(1)
EOF
ok "introspection of the installed collection finds every entry of requirements.txt and bindep.txt"

echo "ee-context: build context ready in $ctx"
echo "ee-context: build the image with a container engine:"
echo "  ansible-builder build -f execution-environment.yml -t <registry>/<name>:<tag>"
echo "  (or: podman build -f $ctx/Containerfile -t <registry>/<name>:<tag> $ctx)"
