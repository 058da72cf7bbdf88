#!/usr/bin/env bash
# Builds the shipped client from its readable source: Client/src/minerva-client.js -> Client/minerva-client.js
# (minified by Debian's terser: `apt install terser`; local names are mangled, never properties, class or function names,
# so the global `Minerva` API keeps every name), then rewrites the copy compiled into the server
# (scripts/embed-client.py). Deterministic: the same source and terser version give the same bytes, and
# Client/test/run-node-tests.sh fails when the committed Client/minerva-client.js is not the build of the source.
# `--check` builds into a temporary file and only compares.
set -euo pipefail
cd "$(dirname "$0")"
# Debian's terser lives in /usr/share/nodejs, which a Node.js from elsewhere (nodesource) does not search.
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}
out=minerva-client.js
[ "${1:-}" = --check ] && out=$(mktemp)
{
    echo '/* Minerva client: Client/src/minerva-client.js minified by Client/build.sh (do not edit; see Client/README.md). */'
    terser src/minerva-client.js --ecma 2020 --compress passes=2 --mangle --keep-classnames --keep-fnames
} > "$out"
if [ "${1:-}" = --check ]; then
    status=0
    cmp -s "$out" minerva-client.js || status=1
    rm -f "$out"
    exit $status
fi
python3 ../scripts/embed-client.py
echo "built $out: $(wc -c < $out) bytes, $(gzip -9c $out | wc -c) gzipped (-9); embedded copy rewritten"
