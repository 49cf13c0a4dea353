#!/usr/bin/env bash
# Installs everything sidetrace's tests, demo and bench need on Debian 12 (as root), idempotently:
# a rerun that finds everything in place only checks, and takes a few seconds.
#   bash scripts/setup.sh [--allow-type-errors]
# --allow-type-errors: keep going when `npm run build` reports type errors (tsc still emits dist/);
# scripts/test.sh passes it because it runs the type check itself and fails on it there.
set -euo pipefail

# ---- what we need, in one place -------------------------------------------------------------
# Debian packages: test peers (curl, nginx, wrk, h2load/nghttp), iptables/iproute2 for the
# redirect rules, procps (ps, /proc tools), python3 (peers in tests), chromium (viewer tests via
# playwright-core; installed without Recommends, so its font comes explicitly), util-linux
# (taskset, flock, mountpoint), openssl (TLS test peers), and the BPF toolchain for the node
# agent (clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool; used by scripts/build-native.sh).
APT_PACKAGES=(curl nginx-light wrk nghttp2-client iptables iproute2 procps python3 chromium fonts-liberation util-linux openssl clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool)
# Go tools: name, module path@version, then optional -ldflags. fortio v1.69+ needs grol.io/grol,
# which the module proxy reachable here refuses (403), so v1.68.2 is the newest that builds.
# h2spec has no usable v2 module path; `go list -m github.com/summerwind/h2spec@latest` gave
# v2.2.1+incompatible.
GO_TOOLS=(
  "fortio fortio.org/fortio@v1.68.2"
  "h2spec github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible"
  # helm for the chart tests; without these ldflags `helm template` assumes Kubernetes 1.20.
  "helm helm.sh/helm/v3/cmd/helm@v3.21.4 -X helm.sh/helm/v3/internal/version.version=v3.21.4 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34"
)
# ------------------------------------------------------------------------------------------------

ALLOW_TYPE_ERRORS=0
for arg in "$@"; do
  case "$arg" in
    --allow-type-errors) ALLOW_TYPE_ERRORS=1 ;;
    *) echo "setup: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${SIDETRACE_CACHE:-$HOME/.cache/sidetrace}
export SIDETRACE_CACHE=$CACHE
mkdir -p "$CACHE/bin"
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup: $*"; }

# Several engineers (or a CI run and a developer) may run setup at once: apt and npm ci must not
# race, so the whole script holds one lock.
exec 9>"$CACHE/setup.lock"
flock 9

# ---- Debian packages ---------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  # No init system runs here, but nginx's postinst still tries to start a service on port 80:
  # policy-rc.d exit 101 forbids it (the bench and tests start their own nginx on their own ports).
  created_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  apt_opts=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold)
  apt-get "${apt_opts[@]}" update >/dev/null
  apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}" >/dev/null
  ((created_policy)) && rm -f /usr/sbin/policy-rc.d
  # If a postinst started nginx anyway, stop the packaged service: it would hold port 80.
  if [[ -f /run/nginx.pid ]] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
    nginx -s quit 2>/dev/null || true
  fi
else
  say "Debian packages present"
fi

# ---- Go toolchain --------------------------------------------------------------------------------
# helm v3.21 needs Go >= 1.26 and Debian 12's golang is 1.19. Without a new enough go in PATH or
# /usr/local/go, the official toolchain comes from the module proxy (the golang.org/toolchain
# module `go` itself fetches to switch versions), checked against a pinned sha256, into the cache.
GO_MIN=1.26
GO_VERSION=1.26.8
declare -A GO_ZIP_SHA256=(
  [amd64]=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
  [arm64]=02b36b6787b3ac767668f630e2998df45a3b1f9ffee08d1bf3ef6487cd658d99
)
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH=/usr/local/go/bin:$PATH
fi
go_new_enough() {
  local v
  v=$(go version 2>/dev/null | sed -n 's/^go version go\([0-9.]*\).*/\1/p')
  [[ -n $v && "$(printf '%s\n' "$GO_MIN" "$v" | sort -V | head -n1)" == "$GO_MIN" ]]
}
if ! go_new_enough; then
  goroot=$CACHE/go-$GO_VERSION
  if [[ ! -x $goroot/bin/go ]]; then
    case $(uname -m) in x86_64) goarch=amd64 ;; aarch64) goarch=arm64 ;; *) goarch=unsupported ;; esac
    [[ -n ${GO_ZIP_SHA256[$goarch]:-} ]] || { echo "setup: ST_SETUP_NO_GO: no pinned Go toolchain for $(uname -m)" >&2; exit 1; }
    module=golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$goarch
    proxy=${GOPROXY:-https://proxy.golang.org}
    proxy=${proxy%%[,|]*}
    [[ $proxy == http* ]] || proxy=https://proxy.golang.org
    say "fetching Go $GO_VERSION ($module) from $proxy"
    tmp=$(mktemp -d "$CACHE/.go-XXXXXX")
    curl -fsSL --retry 3 -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-$goarch.zip"
    echo "${GO_ZIP_SHA256[$goarch]}  $tmp/go.zip" | sha256sum -c --quiet - || { rm -rf "$tmp"; echo "setup: ST_SETUP_GO_CHECKSUM: $module does not match its pinned sha256" >&2; exit 1; }
    # The zip holds the tree under "<module>/" and no file modes: bin/ and pkg/tool/ are made
    # executable, as `go` does when it installs a toolchain this way.
    python3 - "$tmp/go.zip" "$tmp/go" "$module/" <<'PY'
import os, sys, zipfile
zip_path, dest, prefix = sys.argv[1:]
with zipfile.ZipFile(zip_path) as z:
    for info in z.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        rel = info.filename[len(prefix):]
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, 'wb') as dst:
            dst.write(src.read())
        if rel.startswith('bin/') or rel.startswith('pkg/tool/'):
            os.chmod(out, 0o755)
PY
    rm -rf "$goroot"
    mv "$tmp/go" "$goroot"
    rm -rf "$tmp"
  fi
  export PATH=$goroot/bin:$PATH
  go_new_enough || { echo "setup: ST_SETUP_NO_GO: $goroot/bin/go does not run" >&2; exit 1; }
fi
say "$(go version)"

# ---- Go tools, cached outside the clone, keyed by version ---------------------------------------
for entry in "${GO_TOOLS[@]}"; do
  read -r name spec ldflags <<<"$entry"
  version=${spec##*@}
  target="$CACHE/bin/$name-$version"
  if [[ ! -x "$target" ]]; then
    say "building $name $version"
    tmp=$(mktemp -d "$CACHE/bin/.build-XXXXXX")
    go_env=(GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod)
    if ! env "${go_env[@]}" go install -ldflags "${ldflags:-}" "$spec" 2>"$tmp/err"; then
      # The checksum database may be unreachable from here while the module proxy is not.
      say "retrying $name with GOSUMDB=off ($(tail -n1 "$tmp/err"))"
      if ! env "${go_env[@]}" GOSUMDB=off go install -ldflags "${ldflags:-}" "$spec"; then
        rm -rf "$tmp"
        echo "setup: ST_SETUP_GO_INSTALL_FAILED: go install $spec failed" >&2
        exit 1
      fi
    fi
    mv "$tmp/$name" "$target"
    rm -rf "$tmp"
  fi
  ln -sfn "$name-$version" "$CACHE/bin/$name"
done
say "Go tools ready in $CACHE/bin"

# ---- npm dependencies ---------------------------------------------------------------------------
cd "$ROOT"
# Node.js 20.6+ and npm come with the machine (Debian 12's own nodejs is 18): name what is
# missing rather than fail later inside npm or tsc.
node_ok() { command -v node >/dev/null && command -v npm >/dev/null && node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 6) ? 0 : 1)'; }
node_ok || { echo "setup: ST_SETUP_NO_NODE: needs node >= 20.6 and npm in PATH (found: $(node -v 2>/dev/null || echo 'no node'))" >&2; exit 1; }

lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.sidetrace-lock-sha256
if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_hash" ]]; then
  say "node_modules up to date"
elif [[ -d node_modules && ! -f "$stamp" ]] && npm ls --depth=0 >/dev/null 2>&1; then
  # node_modules installed by hand from this lock file (e.g. a shared dev tree): trust `npm ls`
  # rather than wipe it under others' feet.
  echo "$lock_hash" >"$stamp"
  say "node_modules present and consistent"
else
  say "npm ci"
  if ! npm ci --no-audit --no-fund --loglevel=error 2>"$CACHE/npm-ci.err"; then
    # The registry reachable here 404s other platforms' optional packages (@rollup/rollup-android-*,
    # @esbuild/*), so the lock cannot list them and npm 11's `npm ci` rejects it as out of sync.
    # `npm install --no-save` installs the same locked versions without rewriting the lock.
    say "npm ci refused the lock ($(grep -m1 -o 'Missing: [^ ]*' "$CACHE/npm-ci.err" || tail -n1 "$CACHE/npm-ci.err")); npm install --no-save"
    npm install --no-save --no-audit --no-fund --loglevel=error
  fi
  echo "$lock_hash" >"$stamp"
fi

# ---- native agent addon (BPF object + N-API addon -> native/build/, idempotent) ----------------
bash "$ROOT/scripts/build-native.sh"
bash "$ROOT/scripts/build-kube.sh"

# ---- build (tsc -> dist/) ------------------------------------------------------------------------
build_stamp=dist/.sidetrace-build-stamp
if [[ -f "$build_stamp" ]] && [[ -z "$(find src tsconfig.json package-lock.json -newer "$build_stamp" -print -quit)" ]]; then
  say "dist/ up to date"
else
  say "npm run build"
  if npm run --silent build; then
    touch "$build_stamp"
  elif ((ALLOW_TYPE_ERRORS)) && [[ -f dist/cli.js ]]; then
    say "build reported type errors; dist/ emitted anyway (the type check will fail later)"
  else
    echo "setup: ST_SETUP_BUILD_FAILED: npm run build failed" >&2
    exit 1
  fi
fi
say "done"
