#!/usr/bin/env bash
# The WebSocket transport checked with a client we did not write: the Python `websockets` package (Debian 12's
# python3-websockets) against the real minerva-demo on loopback (PROTOCOL.md 11.1). Installs what it needs from
# Debian if missing, builds minerva-demo in release mode (as the browser tests do), and runs pytest with Debian's
# python3. MINERVA_DEMO_THREADS sets the demo's event loops (default 1). The tests start and stop their own demo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_apt python3-websockets python3-pytest
swift build -c release --product minerva-demo >/tmp/minerva-websocket-build.log 2>&1 || {
    cat /tmp/minerva-websocket-build.log >&2
    exit 1
}
export MINERVA_DEMO_BINARY="$(swift build -c release --show-bin-path)/minerva-demo"
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q Tests/WebSocketPython/test_websockets_client.py "$@"
