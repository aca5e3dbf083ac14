#!/usr/bin/env bash
# Builds the lab's control-plane binaries from the Go module proxy and caches them
# outside the repo, keyed by version: $LAB_CACHE/bin-<k8s>-<etcd>-<kwok>/.
# A warm cache makes this a no-op.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/lab/versions.env
. "$here/versions.env"

LAB_CACHE="${LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fediverse-mastodon-lab}"
bin="$LAB_CACHE/bin-${KUBERNETES_VERSION}-${ETCD_VERSION}-${KWOK_VERSION}"
want=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl)

complete() { for b in "${want[@]}"; do [ -x "$bin/$b" ] || return 1; done; }
if complete; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "build-binaries: Go is required (go 1.26)" >&2; exit 1; }
mkdir -p "$bin.tmp"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

build_kubernetes() {
  local v="$KUBERNETES_VERSION" minor staging gomod
  minor="$(echo "$v" | cut -d. -f2)"
  mkdir -p "$work/k8s" && cd "$work/k8s"
  go mod init lab/k8s >/dev/null 2>&1
  gomod="$(go mod download -json "k8s.io/kubernetes@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  # Upstream replaces its staging modules with ./staging paths; point each at its tagged release.
  staging="$(grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}')"
  for m in $staging; do
    go mod edit -replace "$m=$m@v0.${minor}.$(echo "$v" | cut -d. -f3)"
  done
  go get "k8s.io/kubernetes@$v" >/dev/null
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [ -x "$bin.tmp/$c" ] && continue
    echo "build-binaries: building $c $v" >&2
    go build -trimpath -ldflags "$ld" -o "$bin.tmp/$c" "k8s.io/kubernetes/cmd/$c"
  done
}

build_etcd() {
  [ -x "$bin.tmp/etcd" ] && return 0
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init lab/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
  echo "build-binaries: building etcd $ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$bin.tmp/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  [ -x "$bin.tmp/kwok" ] && [ -x "$bin.tmp/kwokctl" ] && return 0
  echo "build-binaries: building kwok $KWOK_VERSION" >&2
  GOBIN="$bin.tmp" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
}

build_etcd
build_kwok
build_kubernetes
rm -rf "$bin" && mv "$bin.tmp" "$bin"
echo "$bin"
