#!/usr/bin/env bash
# The whole check, as CI runs it: setup, type check, the full vitest suite, then one plain closing
# line `tests: N passed, N failed[, N skipped]` computed from vitest's JSON report.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh --allow-type-errors

export SIDETRACE_CACHE=${SIDETRACE_CACHE:-$HOME/.cache/sidetrace}
export PATH=$SIDETRACE_CACHE/bin:$PATH

# The eBPF agent's tests attach to tracepoints; a container may start without tracefs mounted.
if ! mountpoint -q /sys/kernel/tracing 2>/dev/null; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || echo "test: could not mount tracefs (eBPF tests may skip)"
fi

status=0
echo "test: type check"
if ! npx --no-install tsc -p . --noEmit; then
  echo "test: type check FAILED"
  status=1
fi

report=$(mktemp -d)/vitest.json
echo "test: vitest"
# The suite's own exit code is not trusted alone: the closing line and the zero-test check come
# from the JSON report.
npx --no-install vitest run --reporter=default --reporter=json --outputFile="$report" </dev/null || status=1

if [[ ! -s "$report" ]]; then
  echo "test: vitest wrote no report ($report)"
  echo "tests: 0 passed, 0 failed"
  exit 1
fi
# Counts are summed from the per-test results so that a file that failed to load (no tests
# collected) still shows up as a failure.
summary=$(node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  let passed = 0, failed = 0, skipped = 0, brokenFiles = 0;
  for (const f of r.testResults ?? []) {
    if (f.status === "failed" && (f.assertionResults ?? []).length === 0) brokenFiles++;
    for (const t of f.assertionResults ?? []) {
      if (t.status === "passed") passed++;
      else if (t.status === "failed") failed++;
      else skipped++;
    }
  }
  failed += brokenFiles;
  console.log(`${passed} ${failed} ${skipped} ${brokenFiles}`);
' "$report")
read -r passed failed skipped broken <<<"$summary"
((broken > 0)) && echo "test: $broken test file(s) failed to load (counted as failures)"
line="tests: $passed passed, $failed failed"
((skipped > 0)) && line+=", $skipped skipped"
((failed > 0 || passed == 0)) && status=1
((passed == 0)) && echo "test: no test passed"
echo "$line"
exit "$status"
