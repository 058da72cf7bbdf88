#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read untrusted bytes (Sources/minerva-fuzz): HTTP requests, frames,
# hellos, int32 framing and the whole engine. Builds minerva-fuzz with libFuzzer and AddressSanitizer into
# .build/fuzz, then runs each target for SECONDS with its own corpus (.build/fuzz-corpus/TARGET, kept between runs).
# A crash or a broken invariant stops with the input saved as .build/fuzz-crashes/TARGET-crash-*; replay it with
# `.build/debug/minerva-fuzz TARGET FILE`.
#   scripts/fuzz.sh [TARGET|all] [SECONDS]     (default: all, 60 s each)
# With FUZZ_RUNS=N each target instead runs for N executions (issue 12 asks for 10,000,000 once), and with
# FUZZ_CONFIG=release the fuzz binary is optimized (same sanitizers, several times more executions per second).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-all}"
seconds="${2:-60}"
targets=(http frames hello int32 engine response mode websocket)
[ "$target" = all ] || targets=("$target")

config="${FUZZ_CONFIG:-debug}"
limit=(-max_total_time="$seconds")
[ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
swift build -c "$config" --build-path .build/fuzz --product minerva-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING \
    2>&1 | grep -v "Cannot export local symbol" || true
binary=".build/fuzz/$config/minerva-fuzz"
[ -x "$binary" ] || { echo "fuzz build failed"; exit 1; }
mkdir -p .build/fuzz-crashes
failed=0
for t in "${targets[@]}"; do
    corpus=".build/fuzz-corpus/$t"
    mkdir -p "$corpus"
    echo "== fuzz $t for ${limit[*]}"
    if MINERVA_FUZZ_TARGET="$t" "$binary" "${limit[@]}" -rss_limit_mb=4096 -timeout=10 \
        -artifact_prefix=".build/fuzz-crashes/$t-" "$corpus" >".build/fuzz-crashes/$t.log" 2>&1; then
        echo "fuzz $t: ok ($(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' ".build/fuzz-crashes/$t.log" | tail -1)s, $(grep -Eo 'cov: [0-9]+ ft: [0-9]+' ".build/fuzz-crashes/$t.log" | tail -1))"
    else
        echo "fuzz $t: FAILED (see .build/fuzz-crashes/$t.log)"
        tail -30 ".build/fuzz-crashes/$t.log"
        failed=1
    fi
done
exit $failed
