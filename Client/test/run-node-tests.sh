#!/usr/bin/env bash
# Runs the JavaScript client's pure-logic tests with Node's built-in test runner (Node 20+, no packages).
# Prints node's summary and exits non-zero if any test fails. Also checks the client's size budget
# (source under 40 KB, under 12 KB with gzip -9).
set -euo pipefail
cd "$(dirname "$0")/.."

node --test --test-reporter=spec test/*.test.mjs

size=$(wc -c < minerva-client.js)
gz=$(gzip -9c minerva-client.js | wc -c)
echo "minerva-client.js: $size bytes, $gz bytes gzipped (-9)"
if [ "$size" -ge 40000 ] || [ "$gz" -ge 12000 ]; then
    echo "size budget exceeded (limits: 40000 bytes, 12000 bytes gzipped)" >&2
    exit 1
fi
