#!/usr/bin/env bash
# The whole suite: unit tests (parallel) then integration tests against the
# real kernel in network namespaces (one at a time: they share 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
# Format and lint first: a violation fails the suite (and CI) in a minute, before the kernel tests.
echo "test: prettier --check" >&2
npx prettier --check . >/dev/null || { npx prettier --check . >&2; echo "test: files not formatted; run npx prettier --write ." >&2; exit 1; }
echo "test: eslint" >&2
npx eslint --max-warnings 0 .
shopt -s nullglob
unit=(dist/test/unit/*.test.js)
integration=(dist/test/integration/*.test.js)
if [ "$(id -u)" != 0 ]; then
  echo "test: integration tests need root (network namespaces, nftables); they will be skipped" >&2
fi
exec node --test --test-concurrency=1 "${unit[@]}" "${integration[@]}"
