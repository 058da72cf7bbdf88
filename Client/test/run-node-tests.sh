#!/usr/bin/env bash
# Runs the JavaScript client's pure-logic tests with Node's built-in test runner (Node 20+, no packages), twice:
# against the shipped, minified Client/minerva-client.js (what is served, embedded and published) and against its
# readable source Client/src/minerva-client.js (MINERVA_CLIENT_FILE). Checks that the shipped file is the build of
# the source (Client/build.sh with Debian's terser, installed here if missing) and the shipped file's size budget
# (under 40 KB, under 12 KB with gzip -9). Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source ../scripts/lib.sh
ensure_apt terser

if ! ./build.sh --check; then
    echo "Client/minerva-client.js is not the build of Client/src/minerva-client.js: run Client/build.sh and commit both" >&2
    exit 1
fi
echo "Client/minerva-client.js is the build of Client/src/minerva-client.js"

echo "--- tests against the shipped Client/minerva-client.js"
node --test --test-reporter=spec test/*.test.mjs
echo "--- tests against the source Client/src/minerva-client.js"
MINERVA_CLIENT_FILE=src/minerva-client.js node --test --test-reporter=spec test/*.test.mjs

size=$(wc -c < minerva-client.js)
gz=$(gzip -9c minerva-client.js | wc -c)
echo "minerva-client.js: $size bytes, $gz bytes gzipped (-9)"
if [ "$size" -ge 40000 ] || [ "$gz" -ge 12000 ]; then
    echo "size budget exceeded (limits: 40000 bytes, 12000 bytes gzipped)" >&2
    exit 1
fi
