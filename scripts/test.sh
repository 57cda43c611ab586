#!/usr/bin/env bash
# The whole suite: unit tests (parallel) then integration tests against the
# real kernel in network namespaces (one at a time: they share 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
unit=(dist/test/unit/*.test.js)
integration=(dist/test/integration/*.test.js)
if [ "$(id -u)" != 0 ]; then
  echo "test: integration tests need root (network namespaces, nftables); they will be skipped" >&2
fi
exec node --test --test-concurrency=1 "${unit[@]}" "${integration[@]}"
