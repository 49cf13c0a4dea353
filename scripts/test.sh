#!/usr/bin/env bash
# The whole check, as CI runs it: setup, type check, the full vitest suite, then one plain closing
# line `tests: N passed, N failed[, N skipped]` computed from vitest's JSON report.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# The closing line is promised even when setup fails.
bash scripts/setup.sh --allow-type-errors || { echo "test: setup FAILED"; echo "tests: 0 passed, 0 failed"; exit 1; }

export SIDETRACE_CACHE=${SIDETRACE_CACHE:-$HOME/.cache/sidetrace}
export PATH=$SIDETRACE_CACHE/bin:$PATH

# The eBPF agent's tests attach to tracepoints; a container may start without tracefs mounted.
if ! mountpoint -q /sys/kernel/tracing 2>/dev/null; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || echo "test: could not mount tracefs (the eBPF tests will fail)"
fi

status=0
echo "test: type check"
# tsconfig.test.json covers the product and the tests (the build config leaves tests out).
if ! npx --no-install tsc -p tsconfig.test.json; then
  echo "test: type check FAILED"
  status=1
fi

reports=$(mktemp -d)
# The kernel tests (eBPF capture, node agent) see every process's traffic on the machine: run
# alone, after the rest, so another test file's load cannot overflow their ring buffer and turn
# an exact span count into a race.
KERNEL_TESTS=('test/e2e/bpf-*.test.ts' 'test/e2e/agent-*.test.ts')
exclude=()
for g in "${KERNEL_TESTS[@]}"; do exclude+=(--exclude "$g"); done
echo "test: vitest (all but the kernel tests)"
# The suite's own exit code is not trusted alone: the closing line and the zero-test check come
# from the JSON reports.
npx --no-install vitest run "${exclude[@]}" --reporter=default --reporter=json --outputFile="$reports/main.json" </dev/null || status=1
echo "test: vitest (kernel tests, one file at a time)"
kernel_files=()
for g in "${KERNEL_TESTS[@]}"; do while IFS= read -r f; do kernel_files+=("$f"); done < <(compgen -G "$g" || true); done
# No file list would make vitest run the whole suite again.
if ((${#kernel_files[@]} == 0)); then
  echo "test: no kernel test files match ${KERNEL_TESTS[*]}"
  echo "tests: 0 passed, 0 failed"
  exit 1
fi
npx --no-install vitest run --no-file-parallelism --reporter=default --reporter=json --outputFile="$reports/kernel.json" \
  "${kernel_files[@]}" </dev/null || status=1

for f in main kernel; do
  if [[ ! -s "$reports/$f.json" ]]; then
    echo "test: vitest wrote no report for the $f run"
    echo "tests: 0 passed, 0 failed"
    exit 1
  fi
done
# Counts are summed from the per-test results so that a file that failed to load (no tests
# collected) still shows up as a failure.
summary=$(node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, skipped = 0, brokenFiles = 0;
  for (const file of process.argv.slice(1)) for (const f of JSON.parse(fs.readFileSync(file, "utf8")).testResults ?? []) {
    if (f.status === "failed" && (f.assertionResults ?? []).length === 0) brokenFiles++;
    for (const t of f.assertionResults ?? []) {
      if (t.status === "passed") passed++;
      else if (t.status === "failed") failed++;
      else skipped++;
    }
  }
  failed += brokenFiles;
  console.log(`${passed} ${failed} ${skipped} ${brokenFiles}`);
' "$reports/main.json" "$reports/kernel.json")
read -r passed failed skipped broken <<<"$summary"
((broken > 0)) && echo "test: $broken test file(s) failed to load (counted as failures)"
line="tests: $passed passed, $failed failed"
((skipped > 0)) && line+=", $skipped skipped"
# A skipped test is a check CI did not make: it fails the run like a failed one.
((failed > 0 || skipped > 0 || passed == 0)) && status=1
((skipped > 0)) && echo "test: $skipped test(s) skipped (counted against the run)"
((passed == 0)) && echo "test: no test passed"
echo "$line"
exit "$status"
