#!/usr/bin/env bash
# Runs every test suite. Called by `./dev.sh test` (which installs the build dependencies first).
# Ends with one summary line, "total: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

LOGS="$(mktemp -d /tmp/minerva-tests.XXXXXX)"
trap 'rm -rf "$LOGS"' EXIT

echo "== swift format lint"
swift format lint -r --strict Package.swift Sources Tests Benchmarks/Package.swift Benchmarks/Benchmarks Benchmarks/Tools

echo "== layer check"
scripts/check-layers.sh

echo "== swift test"
swift build --build-tests
swift test --skip-build 2>&1 | tee "$LOGS/swift.log"

echo "== swift test, Minerva server and client suites again on 2 event loops (MINERVA_TEST_THREADS=2)"
MINERVA_TEST_THREADS=2 swift test --skip-build --filter 'MinervaServerTests|MinervaClientTests' 2>&1 \
    | tee "$LOGS/swift-2-loops.log"

echo "== DocC: swift package generate-documentation, warnings are errors (links and articles checked against the API)"
for target in MinervaServer MinervaClient; do
    if swift package generate-documentation --target "$target" --warnings-as-errors >"$LOGS/docc-$target.log" 2>&1; then
        echo "docs $target: ok"
    else
        cat "$LOGS/docc-$target.log"
        echo "docs $target: FAILED"
        exit 1
    fi
done 2>&1 | tee "$LOGS/docs.log"

echo "== the README's snippets in a fresh swift package init (Swift 6) package: build, run, one echo"
scripts/check-readme-package.sh 2>&1 | tee -a "$LOGS/docs.log"

echo "== fuzz targets: 20,000 seeded inputs each, then libFuzzer (coverage-guided, ASan) for 8 s each"
{ .build/debug/minerva-fuzz 20000 && scripts/fuzz.sh all 8; } 2>&1 | tee "$LOGS/fuzz.log"

echo "== JavaScript client (node --test)"
ensure_node
Client/test/run-node-tests.sh 2>&1 | tee "$LOGS/node.log"

echo "== JavaScript client in headless Chromium (Selenium, pytest)"
Client/test/browser/run-browser-tests.sh 2>&1 | tee "$LOGS/browser.log"

echo "== the same browser suite against minerva-demo --threads 2"
MINERVA_DEMO_THREADS=2 Client/test/browser/run-browser-tests.sh 2>&1 | tee "$LOGS/browser-2-loops.log"

echo "== WebSocket transport with a client we did not write (Python websockets, pytest)"
scripts/run-websocket-python-tests.sh 2>&1 | tee "$LOGS/websocket.log"

echo "== the same WebSocket checks against minerva-demo --threads 2"
MINERVA_DEMO_THREADS=2 scripts/run-websocket-python-tests.sh 2>&1 | tee "$LOGS/websocket-2-loops.log"

echo "== deployment recipes: the browser suite and proxy checks through nginx (deploy/nginx-minerva.conf), proxy checks through HAProxy"
scripts/run-nginx-tests.sh 2>&1 | tee "$LOGS/nginx.log"

echo "== cluster: redis-server, 3 nodes with --redis, haproxy round-robin per request (scripts/cluster-test.sh)"
scripts/cluster-test.sh 2>&1 | tee "$LOGS/cluster.log"

echo "== sanitizers: ASan + UBSan (C) over the core, IO, HTTP and server suites; TSan on 2 loops over IO, HTTP, server, client"
# The suites that exercise the event loops, the parsers and the engine (README, "Hardening"). Each sanitizer has its
# own build (.build-asan, .build-tsan), most of the stage's time from a fresh clone. MINERVA_SANITIZERS chooses
# (default "address thread"; "thread", "address" or "none").
: > "$LOGS/sanitize.log"
for sanitizer in ${MINERVA_SANITIZERS-address thread}; do
    case "$sanitizer" in
    address) scripts/sanitize.sh address 'MinervaCoreTests|MinervaIOTests|MinervaHTTPTests|MinervaServerTests' ;;
    thread) scripts/sanitize.sh thread ;;
    none) ;;
    *) echo "MINERVA_SANITIZERS: unknown sanitizer $sanitizer"; exit 2 ;;
    esac 2>&1 | tee -a "$LOGS/sanitize.log"
done

python3 - "$LOGS/swift.log" "$LOGS/node.log" "$LOGS/browser.log" "$LOGS/swift-2-loops.log" \
    "$LOGS/browser-2-loops.log" "$LOGS/websocket.log" "$LOGS/websocket-2-loops.log" "$LOGS/fuzz.log" \
    "$LOGS/docs.log" "$LOGS/nginx.log" "$LOGS/cluster.log" "$LOGS/sanitize.log" <<'PY'
import re, sys
node = open(sys.argv[2], errors="replace").read()
passed = failed = 0
for log in (sys.argv[1], sys.argv[4]):
    swift = open(log, errors="replace").read()
    m = re.search(r"Test run with (\d+) tests? in \d+ suites? (passed|failed)", swift)
    if m:
        total = int(m.group(1))
        bad = len(set(re.findall(r"^✘ Test (.*?) (?:failed|recorded an issue)", swift, re.M)))
        passed += total - bad
        failed += bad
    xc = re.search(r"Executed (\d+) tests?, with (\d+) failures?", swift)
    if xc:
        passed += int(xc.group(1)) - int(xc.group(2))
        failed += int(xc.group(2))
# Two node runs (the shipped client, then its source), each with its summary; a stale build or the size budget
# fails the script with one of these lines.
passed += sum(int(n) for n in re.findall(r"^ℹ pass (\d+)", node, re.M))
failed += sum(int(n) for n in re.findall(r"^ℹ fail (\d+)", node, re.M))
failed += len(re.findall(r"^(?:size budget exceeded|Client/minerva-client\.js is not the build)", node, re.M))
for log in (sys.argv[3], sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[10]):
    browser = open(log, errors="replace").read()
    # Every pytest summary of the log (run-nginx-tests.sh runs pytest twice: nginx, then HAProxy).
    for m in re.finditer(r"^(?:(\d+) failed, )?(\d+) passed", browser, re.M):
        passed += int(m.group(2))
        failed += int(m.group(1) or 0)
fuzz = "".join(open(sys.argv[i], errors="replace").read() for i in (8, 9, 12))
passed += len(re.findall(r"no invariant broken$|^(?:fuzz|docs|readme|sanitize) \w+: ok", fuzz, re.M))
failed += len(re.findall(r"^(?:fuzz|docs|readme|sanitize) \w+: FAILED", fuzz, re.M))
cluster = re.search(r"^cluster: (\d+) passed, (\d+) failed", open(sys.argv[11], errors="replace").read(), re.M)
if cluster:
    passed += int(cluster.group(1))
    failed += int(cluster.group(2))
    print(f"cluster: {cluster.group(1)} passed, {cluster.group(2)} failed")
else:
    failed += 1
    print("cluster: no summary line (the script failed)")
print(f"total: {passed} passed, {failed} failed")
PY
