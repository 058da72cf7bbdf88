#!/usr/bin/env bash
# The project's one entry point. On a fresh Debian 12 machine with Swift:
#   ./dev.sh demo [flags]   build and run the demo server (installs libev/http-parser if missing)
#   ./dev.sh test           run every test (installs what the tests need if missing)
#   ./dev.sh bench          run the load comparison and micro-benchmarks (Benchmarks/)
#   ./dev.sh fuzz [TARGET|all] [SECONDS]   coverage-guided fuzzing (libFuzzer + ASan) of the untrusted-input parsers
set -euo pipefail
cd "$(dirname "$0")"

source scripts/lib.sh

BUILD_DEPS=(libev-dev libhttp-parser-dev)

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
demo)
    ensure_apt "${BUILD_DEPS[@]}"
    swift build -c release --product minerva-demo
    exec "$(swift build -c release --show-bin-path)/minerva-demo" "$@"
    ;;
test)
    ensure_apt "${BUILD_DEPS[@]}" redis-server haproxy  # the cluster tests (MinervaClusterTests, cluster-test.sh)
    exec scripts/test-all.sh "$@"
    ;;
bench)
    ensure_apt "${BUILD_DEPS[@]}" nginx-light wrk python3-socketio python3-aiohttp python3-matplotlib
    (cd Benchmarks && swift package --disable-sandbox benchmark --no-progress)
    exec Benchmarks/run-load.sh "$@"
    ;;
fuzz)
    ensure_apt "${BUILD_DEPS[@]}"
    exec scripts/fuzz.sh "$@"
    ;;
*)
    sed -n '2,7p' "$0"
    exit 2
    ;;
esac
