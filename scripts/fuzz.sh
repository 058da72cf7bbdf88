#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read untrusted bytes (Sources/minerva-fuzz): HTTP requests, frames,
# hellos, int32 framing and the whole engine. Builds minerva-fuzz with libFuzzer and AddressSanitizer into
# .build/fuzz, then runs each target for SECONDS with its own corpus (.build/fuzz-corpus/TARGET, kept between runs).
# A crash or a broken invariant stops with the input saved as .build/fuzz-crashes/TARGET-crash-*; replay it with
# `.build/debug/minerva-fuzz TARGET FILE`.
#   scripts/fuzz.sh [TARGET|all] [SECONDS]     (default: all, 60 s each)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-all}"
seconds="${2:-60}"
targets=(http frames hello int32 engine response mode websocket)
[ "$target" = all ] || targets=("$target")

swift build --build-path .build/fuzz --product minerva-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING \
    2>&1 | grep -v "Cannot export local symbol" || true
binary=.build/fuzz/debug/minerva-fuzz
[ -x "$binary" ] || { echo "fuzz build failed"; exit 1; }
mkdir -p .build/fuzz-crashes
failed=0
for t in "${targets[@]}"; do
    corpus=".build/fuzz-corpus/$t"
    mkdir -p "$corpus"
    echo "== fuzz $t for ${seconds}s"
    if MINERVA_FUZZ_TARGET="$t" "$binary" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 \
        -artifact_prefix=".build/fuzz-crashes/$t-" "$corpus" >".build/fuzz-crashes/$t.log" 2>&1; then
        echo "fuzz $t: ok ($(grep -Eo 'Done [0-9]+ runs' ".build/fuzz-crashes/$t.log" | tail -1))"
    else
        echo "fuzz $t: FAILED (see .build/fuzz-crashes/$t.log)"
        tail -30 ".build/fuzz-crashes/$t.log"
        failed=1
    fi
done
exit $failed
