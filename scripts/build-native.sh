#!/usr/bin/env bash
# Builds the node agent's kernel programs and N-API addon into native/build/ (git-ignored):
#   vmlinux.h from the running kernel's BTF, the CO-RE object, its libbpf skeleton, and
#   native/build/sidetrace_bpf.node. Idempotent: each step reruns only when its inputs changed.
# Needs (Debian): clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool, and node's headers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/native
OUT=$SRC/build
mkdir -p "$OUT"
say() { echo "build-native: $*"; }
fail() { echo "build-native: $*" >&2; exit 1; }

for tool in clang bpftool; do
  command -v "$tool" >/dev/null 2>&1 || fail "ST_BUILD_MISSING_TOOL: $tool not found (bash scripts/setup.sh installs it)"
done
# The addon is plain C: the system cc when there is one, else the clang installed for BPF.
CC=${CC:-$(command -v cc || command -v clang)}
NODE_INCLUDE=${NODE_INCLUDE:-/usr/include/node}
[[ -f $NODE_INCLUDE/node_api.h ]] || NODE_INCLUDE=$(dirname "$(command -v node)")/../include/node
[[ -f $NODE_INCLUDE/node_api.h ]] || fail "ST_BUILD_NO_NODE_HEADERS: node_api.h not found (set NODE_INCLUDE)"
[[ -r /sys/kernel/btf/vmlinux ]] || fail "ST_BUILD_NO_BTF: /sys/kernel/btf/vmlinux is not readable"

# newer TARGET INPUT...: true when TARGET is missing or older than any input.
stale() {
  local target=$1; shift
  [[ -f $target ]] || return 0
  [[ -n $(find "$@" -newer "$target" -print -quit 2>/dev/null) ]]
}

# vmlinux.h depends on the running kernel only.
kernel_id="$(uname -r) $(stat -c %s /sys/kernel/btf/vmlinux)"
if [[ ! -f $OUT/vmlinux.h || "$(cat "$OUT/vmlinux.id" 2>/dev/null)" != "$kernel_id" ]]; then
  say "vmlinux.h for $(uname -r)"
  bpftool btf dump file /sys/kernel/btf/vmlinux format c >"$OUT/vmlinux.h.tmp"
  mv "$OUT/vmlinux.h.tmp" "$OUT/vmlinux.h"
  echo "$kernel_id" >"$OUT/vmlinux.id"
fi

arch=$(uname -m)
case $arch in
  x86_64) target_arch=x86 ;;
  aarch64) target_arch=arm64 ;;
  *) fail "ST_BUILD_ARCH: unsupported architecture $arch" ;;
esac

bpf_inputs=("$OUT/vmlinux.h" "$SRC/bpf")
if stale "$OUT/sidetrace.bpf.o" "${bpf_inputs[@]}"; then
  say "sidetrace.bpf.o"
  clang -g -O2 -Wall -target bpf -D__TARGET_ARCH_$target_arch -I"$OUT" -I"$SRC/bpf" \
    -c "$SRC/bpf/sidetrace.bpf.c" -o "$OUT/sidetrace.bpf.o.tmp"
  mv "$OUT/sidetrace.bpf.o.tmp" "$OUT/sidetrace.bpf.o"
fi
if stale "$OUT/sidetrace.skel.h" "$OUT/sidetrace.bpf.o"; then
  say "sidetrace.skel.h"
  bpftool gen skeleton "$OUT/sidetrace.bpf.o" name sidetrace_bpf >"$OUT/sidetrace.skel.h.tmp"
  mv "$OUT/sidetrace.skel.h.tmp" "$OUT/sidetrace.skel.h"
fi
if stale "$OUT/sidetrace_bpf.node" "$OUT/sidetrace.skel.h" "$SRC/addon" "$SRC/bpf/abi.h"; then
  say "sidetrace_bpf.node"
  "$CC" -O2 -g -Wall -Wextra -Wno-unused-parameter -std=gnu11 -shared -fPIC \
    -DNODE_GYP_MODULE_NAME=sidetrace_bpf -I"$NODE_INCLUDE" -I"$OUT" -I"$SRC/bpf" \
    "$SRC"/addon/*.c -o "$OUT/sidetrace_bpf.node.tmp" -lbpf -lelf -lz -lpthread
  mv "$OUT/sidetrace_bpf.node.tmp" "$OUT/sidetrace_bpf.node"
fi
say "native/build/sidetrace_bpf.node ready"
