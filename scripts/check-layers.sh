#!/usr/bin/env bash
# The layer check: lists which of our modules each target imports (a grep of `import X` in its folder) and fails if
# an arrow points up or sideways, or if Package.swift declares a dependency the rules below do not allow.
# Arrows point down only: Server -> HTTP -> IO -> CShims, Server -> Core, Client -> HTTP/IO/Core (never Server).
# Only IO and HTTP see CShims. Test targets depend on the layer they test (+ MinervaTestSupport); see Tests/README.md.
# A new target needs a line in ALLOWED below, or the check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# target -> the targets of this package it may import / depend on (space-separated).
declare -A ALLOWED=(
    [CShims]=""
    [MinervaCore]=""
    [MinervaIO]="CShims"
    [MinervaHTTP]="MinervaIO CShims"
    [MinervaServer]="MinervaHTTP MinervaIO MinervaCore"
    [MinervaClient]="MinervaCore MinervaIO MinervaHTTP"
    [MinervaCluster]="MinervaServer MinervaHTTP MinervaIO MinervaCore"
    [minerva-demo]="MinervaCluster MinervaServer MinervaHTTP MinervaIO MinervaCore MinervaClient"
    [minerva-fuzz]="MinervaHTTP MinervaCore"
    [MinervaJSON]="MinervaCore"
    [MinervaJSONTests]="MinervaJSON MinervaCore"
    [MinervaTestSupport]="MinervaServer MinervaHTTP MinervaIO MinervaCore"
    [MinervaCoreTests]="MinervaCore MinervaTestSupport"
    [MinervaIOTests]="MinervaIO CShims MinervaTestSupport"
    [MinervaHTTPTests]="MinervaHTTP MinervaIO MinervaTestSupport"
    [MinervaServerTests]="MinervaServer MinervaHTTP MinervaIO MinervaCore minerva-demo MinervaTestSupport"
    [MinervaClusterTests]="MinervaCluster MinervaServer MinervaHTTP MinervaIO MinervaCore MinervaTestSupport"
    [MinervaClientTests]="MinervaClient MinervaCore MinervaIO MinervaHTTP MinervaServer minerva-demo MinervaTestSupport"
)

# name|kind|path|dependency,dependency,... for every target of Package.swift (by-name and target dependencies only;
# products of other packages are not ours).
TARGETS="$(swift package dump-package | python3 -c '
import json, sys
package = json.load(sys.stdin)
for target in package["targets"]:
    deps = []
    for dep in target.get("dependencies", []):
        for kind in ("byName", "target"):
            if kind in dep:
                deps.append(dep[kind][0])
    path = target.get("path") or ("Tests/" if target["type"] == "test" else "Sources/") + target["name"]
    print("%s|%s|%s|%s" % (target["name"], target["type"], path, ",".join(deps)))
')"

ours=()
while IFS='|' read -r name _ _ _; do ours+=("$name"); done <<<"$TARGETS"

# The module name a target is imported by (minerva-demo -> minerva_demo).
module_of() { echo "${1//-/_}"; }
target_of_module() {
    local t
    for t in "${ours[@]}"; do
        if [ "$(module_of "$t")" = "$1" ]; then
            echo "$t"
            return 0
        fi
    done
    return 0
}
allows() { [[ " ${ALLOWED[$1]} " == *" $2 "* ]]; }

IMPORT_RE='^[[:space:]]*(@[A-Za-z_]+(\([^)]*\))?[[:space:]]+)*((public|package|internal|fileprivate|private)[[:space:]]+)?import[[:space:]]+((struct|class|enum|protocol|func|var|let|typealias)[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*'

failures=0
while IFS='|' read -r name kind path deps; do
    if [ -z "${ALLOWED[$name]+set}" ]; then
        echo "FAIL $name: no layer rule (add it to ALLOWED in scripts/check-layers.sh)"
        failures=$((failures + 1))
        continue
    fi
    imported=()
    if [ -d "$path" ]; then
        while IFS=: read -r file line text; do
            module="$(sed -E 's/.*import[[:space:]]+((struct|class|enum|protocol|func|var|let|typealias)[[:space:]]+)?//; s/[^A-Za-z0-9_].*//' <<<"$text")"
            dep="$(target_of_module "$module")"
            if [ -z "$dep" ] || [ "$dep" = "$name" ]; then continue; fi
            [[ " ${imported[*]} " == *" $dep "* ]] || imported+=("$dep")
            if ! allows "$name" "$dep"; then
                echo "FAIL $file:$line: $name imports $dep (allowed: ${ALLOWED[$name]:-nothing of ours})"
                failures=$((failures + 1))
            fi
        done < <(grep -rnE --include='*.swift' "$IMPORT_RE" "$path" || true)
    fi
    IFS=',' read -r -a declared <<<"$deps"
    for dep in "${declared[@]}"; do
        [ -n "$dep" ] || continue
        if [ -n "$(target_of_module "$(module_of "$dep")")" ] && ! allows "$name" "$dep"; then
            echo "FAIL Package.swift: $name depends on $dep (allowed: ${ALLOWED[$name]:-nothing of ours})"
            failures=$((failures + 1))
        fi
    done
    printf '%-20s %-6s imports: %-50s Package.swift: %s\n' "$name" "$kind" "${imported[*]:--}" "${deps//,/ }"
done <<<"$TARGETS"

# Every target of both packages compiles in Swift 6 language mode (the concurrency contract is checked there).
for manifest in Package.swift Benchmarks/Package.swift; do
    if grep -n 'swiftLanguageMode(\.v[345])' "$manifest"; then
        echo "FAIL $manifest: a target is not in Swift 6 language mode"
        failures=$((failures + 1))
    fi
done

if [ "$failures" -gt 0 ]; then
    echo "layer check: $failures arrow(s) pointing up or sideways, or targets outside Swift 6 mode"
    exit 1
fi
echo "layer check: ok (arrows point down only)"
