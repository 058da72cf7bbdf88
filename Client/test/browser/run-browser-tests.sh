#!/usr/bin/env bash
# Runs the JavaScript client's browser tests: headless Chromium driven by Selenium against the real
# minerva-demo on loopback. Installs what it needs from Debian (chromium, chromium-driver, python3-selenium,
# python3-pytest) if missing, builds minerva-demo in release mode, and runs pytest with Debian's python3.
# The tests start and stop their own minerva-demo and lossy proxy processes.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/lib.sh

ensure_apt chromium chromium-driver python3-selenium python3-pytest
ensure_node
swift build -c release --product minerva-demo >/tmp/minerva-browser-build.log 2>&1 || {
    cat /tmp/minerva-browser-build.log >&2
    exit 1
}
export MINERVA_DEMO_BINARY="$(swift build -c release --show-bin-path)/minerva-demo"
export MINERVA_BROWSER_TESTS=1
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q -s Client/test/browser/test_browser.py Client/test/browser/test_tabs.py Client/test/browser/test_auth.py Client/test/browser/test_reconnect.py "$@"
