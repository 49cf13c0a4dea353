#!/usr/bin/env bash
# Sets up the machine, then runs the demo: `bash scripts/demo.sh [demo flags]`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
export SIDETRACE_CACHE=${SIDETRACE_CACHE:-$HOME/.cache/sidetrace}
export PATH=$SIDETRACE_CACHE/bin:$PATH
exec node bin/sidetrace.js demo "$@"
