#!/usr/bin/env bash
# The cluster checks of issue 10 with the real parts: installs redis-server, haproxy and the browser test tools
# (Debian) if missing, builds minerva-demo in release mode, then Tests/Cluster/cluster_check.py starts a redis-server
# (temp dir, no persistence), 3 nodes with --redis and haproxy balancing every request round-robin, and runs the
# wire checks, our client's browser suite through the balancer, the figures, a Redis restart and a node kill.
# Set MINERVA_ORIGINAL_CLIENT=/path/to/original/minerva-client.js to also run the original compiled client (never
# committed). Ends with "cluster: N passed, M failed"; everything it starts is stopped; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_apt redis-server haproxy chromium chromium-driver python3-selenium python3-pytest python3-websockets
ensure_node
swift build -c release --product minerva-demo >/tmp/minerva-cluster-build.log 2>&1 || {
    cat /tmp/minerva-cluster-build.log >&2
    exit 1
}
args=(--binary "$(swift build -c release --show-bin-path)/minerva-demo" --browser)
if [ -n "${MINERVA_ORIGINAL_CLIENT:-}" ]; then args+=(--original "$MINERVA_ORIGINAL_CLIENT"); fi
exec timeout 1800 /usr/bin/python3 Tests/Cluster/cluster_check.py "${args[@]}" "$@"
