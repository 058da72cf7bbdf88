#!/usr/bin/env bash
# Builds the README's two snippets ("Depending on Minerva" and the echo server of "Embedding Minerva") in a fresh
# `swift package init` package (Swift 6 language mode, as a new user gets it), runs it, and sends one echo through it.
# Prints "readme package: ok" or fails.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
WORK="$(mktemp -d /tmp/minerva-readme.XXXXXX)"
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

ln -s "$REPO" "$WORK/minerva"  # the README's `.package(path: "../minerva")`
mkdir "$WORK/MyServer"
cd "$WORK/MyServer"
swift package init --type executable --name MyServer >/dev/null

# The snippets, taken from the README itself so that they cannot drift.
python3 - "$REPO/README.md" <<'PY'
import re, sys
readme = open(sys.argv[1]).read()
def snippet(after):
    start = readme.index(after)
    return re.search(r"```swift\n(.*?)```", readme[start:], re.S).group(1)
deps = snippet("## Depending on Minerva")
manifest = """// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "MyServer",
""" + deps + ")\n"
open("Package.swift", "w").write(manifest)
main = snippet("## Embedding Minerva in your server")
port = __import__("os").environ.get("README_PORT", "8080")
main = main.replace("MinervaHTTPServer(router: router)",
                    "MinervaHTTPServer(configuration: { var c = MinervaHTTPServerConfiguration(); c.port = %s; return c }(), router: router)" % port)
import glob
for f in glob.glob("Sources/**/*.swift", recursive=True):
    __import__("os").remove(f)
__import__("os").makedirs("Sources/MyServer", exist_ok=True)
open("Sources/MyServer/main.swift", "w").write(main)
PY
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
README_PORT="$PORT" python3 - "$REPO/README.md" <<'PY'
import os, re
src = open("Sources/MyServer/main.swift").read()
src = re.sub(r"c\.port = \d+", "c.port = " + os.environ["README_PORT"], src)
open("Sources/MyServer/main.swift", "w").write(src)
PY
swift build 2>&1 | tail -3
"$(swift build --show-bin-path)/MyServer" &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/_minerva/minerva-client.js" -o /dev/null && break
    sleep 0.1
done
ID=readmeechostream0123456
BODY=$'{"tnum":0,"new":1,"ver":2,"id":"'"$ID"$'","ming":0,"maxb":1073741824,"maxia":0,"seenack":"|-1","eeds":null,"format":2}H\n0N\nhello readme \n'
REPLY="$(curl -s --max-time 10 -X POST --data-binary "$BODY" "http://127.0.0.1:$PORT/_minerva/io/")"
# A long-poll answers at once with the SACK of what it carried; the echo comes on the next poll.
POLL=$'{"tnum":1,"ver":2,"id":"'"$ID"$'","ming":0,"maxb":1073741824,"maxia":0,"seenack":"|0","eeds":null,"format":2}H\n'
REPLY="$REPLY
$(curl -s --max-time 10 -X POST --data-binary "$POLL" "http://127.0.0.1:$PORT/_minerva/io/")"
echo "$REPLY"
if printf '%s' "$REPLY" | grep -q '^hello readme $'; then
    echo "readme package: ok"
else
    echo "readme package: FAILED (no echo)"
    exit 1
fi
