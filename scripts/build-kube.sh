#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd (no kubelet, envtest-style) for the cluster tests, cached
# in $SIDETRACE_CACHE/bin keyed by version; a rerun that finds both binaries only relinks them.
#   bash scripts/build-kube.sh
# Neither can be `go install`ed: k8s.io/kubernetes replaces its staging modules with local paths,
# and etcd's server needs its sibling modules at one version, so each is built from a small
# wrapper module kept in the cache (never in the clone).
set -euo pipefail

KUBE_VERSION=v1.34.10
# The etcd line k8s.io/kubernetes v1.34.10 itself pins (go.etcd.io/etcd/server/v3 v3.6.4) and
# kubeadm 1.34 deploys; Debian's etcd 3.4 is below what Kubernetes 1.31+ accepts.
ETCD_VERSION=v3.6.4

CACHE=${SIDETRACE_CACHE:-$HOME/.cache/sidetrace}
BIN=$CACHE/bin
SRC=$CACHE/src
mkdir -p "$BIN" "$SRC"

say() { echo "build-kube: $*"; }

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH=/usr/local/go/bin:$PATH
fi

# Two setups at once must not build into the same wrapper directory.
exec 8>"$CACHE/build-kube.lock"
flock 8

export CGO_ENABLED=0 GOFLAGS=-mod=mod

# go_build DIR OUT LDFLAGS PKG: builds PKG inside wrapper module DIR, printing progress once a
# minute (the first kube-apiserver build is silent for many minutes otherwise). The checksum
# database may be unreachable from here while the module proxy is not, so a failure is retried
# with GOSUMDB=off.
go_build() {
  local dir=$1 out=$2 ldflags=$3 pkg=$4 attempt
  for attempt in default off; do
    (
      cd "$dir"
      [[ $attempt == off ]] && export GOSUMDB=off
      exec go build -v -ldflags "$ldflags" -o "$out" "$pkg"
    ) >"$dir/build.log" 2>&1 &
    local pid=$! waited=0
    while kill -0 "$pid" 2>/dev/null; do
      sleep 5
      waited=$((waited + 5))
      ((waited % 60 == 0)) && say "  ... ${waited} s, $(grep -vc '^go: downloading' "$dir/build.log") packages compiled, $(grep -c '^go: downloading' "$dir/build.log") modules downloaded"
    done
    if wait "$pid"; then return 0; fi
    if [[ $attempt == default ]]; then
      say "retrying with GOSUMDB=off ($(tail -n1 "$dir/build.log"))"
    fi
  done
  tail -n 20 "$dir/build.log" >&2
  echo "build-kube: ST_SETUP_GO_BUILD_FAILED: go build $pkg failed (log: $dir/build.log)" >&2
  exit 1
}

need_go() {
  command -v go >/dev/null 2>&1 || { echo "build-kube: ST_SETUP_NO_GO: go toolchain not found, needed for $1" >&2; exit 1; }
}

# ---- etcd ---------------------------------------------------------------------------------------
etcd_target=$BIN/etcd-$ETCD_VERSION
if [[ ! -x "$etcd_target" ]]; then
  need_go etcd
  start=$SECONDS
  say "building etcd $ETCD_VERSION (wrapper module in $SRC/etcd-$ETCD_VERSION)"
  dir=$SRC/etcd-$ETCD_VERSION
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<EOF
module sidetrace.local/build/etcd

go 1.24

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/etcdctl/v3 $ETCD_VERSION
)
EOF
  go_build "$dir" "$etcd_target.tmp" "-s -w" go.etcd.io/etcd/server/v3
  mv "$etcd_target.tmp" "$etcd_target"
  say "etcd $ETCD_VERSION built in $((SECONDS - start)) s"
fi
ln -sfn "etcd-$ETCD_VERSION" "$BIN/etcd"

# ---- kube-apiserver -----------------------------------------------------------------------------
kube_target=$BIN/kube-apiserver-$KUBE_VERSION
if [[ ! -x "$kube_target" ]]; then
  need_go kube-apiserver
  start=$SECONDS
  say "building kube-apiserver $KUBE_VERSION (wrapper module in $SRC/kube-apiserver-$KUBE_VERSION; about 1 GB of modules, 10-20 min on 2 cores)"
  dir=$SRC/kube-apiserver-$KUBE_VERSION
  mkdir -p "$dir"
  # The staging modules come from k8s.io/kubernetes's own go.mod at this tag, so the list follows
  # the version instead of being copied here by hand.
  gomod_path() { sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p'; }
  kube_mod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" 2>/dev/null | gomod_path) || true
  if [[ -z "$kube_mod" || ! -f "$kube_mod" ]]; then
    kube_mod=$(GOSUMDB=off go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | gomod_path) || true
  fi
  [[ -f "$kube_mod" ]] || { echo "build-kube: ST_SETUP_KUBE_GOMOD: cannot download k8s.io/kubernetes@$KUBE_VERSION's go.mod" >&2; exit 1; }
  staging=$(sed -n '/^replace (/,/^)/s#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$kube_mod")
  count=$(wc -l <<<"$staging")
  if [[ -z "$staging" || "$count" -lt 20 ]]; then
    echo "build-kube: ST_SETUP_KUBE_REPLACES: found $count staging replaces in $kube_mod, expected about 31" >&2
    exit 1
  fi
  minor=${KUBE_VERSION#v1.}
  minor=${minor%%.*}
  {
    echo "module sidetrace.local/build/kube-apiserver"
    echo
    echo "go 1.24.0"
    echo
    # k8s.io/kubernetes sets this itself; without it the newer toolchain's defaults change behaviour
    # (e.g. x509 and HTTP/2 settings) from what this release was tested with.
    echo "godebug default=go1.24"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    while read -r m; do echo "	$m => $m v0.$minor.${KUBE_VERSION##*.}"; done <<<"$staging"
    echo ")"
  } >"$dir/go.mod"
  say "wrapper go.mod has $count staging replaces"
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  go_build "$dir" "$kube_target.tmp" "$ldflags" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$kube_target.tmp" "$kube_target"
  say "kube-apiserver $KUBE_VERSION built in $((SECONDS - start)) s"
fi
ln -sfn "kube-apiserver-$KUBE_VERSION" "$BIN/kube-apiserver"

say "etcd $ETCD_VERSION and kube-apiserver $KUBE_VERSION ready in $BIN"
