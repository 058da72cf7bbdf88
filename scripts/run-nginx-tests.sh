#!/usr/bin/env bash
# The deployment recipes of deploy/, tested with the real proxies: starts a release minerva-demo
# (--static-dir Client/test/browser --trusted-proxy 127.0.0.1) and, in front of it, a private nginx (Debian's
# nginx-light) started with deploy/nginx-minerva.conf itself (only its `listen 80;` and upstream `127.0.0.1:8080`
# replaced), then runs Tests/Deployment/test_through_proxy.py and the browser suite
# (Client/test/browser/test_browser.py and test_tabs.py) through it (MINERVA_SERVER_URL). Then the same proxy checks (not the
# browser suite) through HAProxy started with deploy/haproxy-minerva.cfg, and `systemd-analyze verify` of
# deploy/minerva-demo.service when systemd is there.
#
# Everything runs as the calling user under one mktemp directory (nginx prefix, temp dirs, pid file, logs) on
# free loopback ports, and is stopped on exit. Installs what it needs from Debian if missing.
# Arguments go to the nginx pytest run (e.g. -k echo). MINERVA_DEMO_THREADS sets the demo's loops (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_apt nginx-light haproxy chromium chromium-driver python3-selenium python3-pytest python3-websockets
ensure_node
swift build -c release --product minerva-demo >/tmp/minerva-nginx-build.log 2>&1 || {
    cat /tmp/minerva-nginx-build.log >&2
    exit 1
}
DEMO="$(swift build -c release --show-bin-path)/minerva-demo"
NGINX=/usr/sbin/nginx
HAPROXY=/usr/sbin/haproxy

WORK="$(mktemp -d /tmp/minerva-nginx.XXXXXX)"
chmod 755 "$WORK" # nginx's workers may run as another user when started by root
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        for log in "$WORK"/*.log; do
            [ -s "$log" ] && { echo "--- $log (last lines)" >&2; tail -n 20 "$log" >&2; }
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # URL
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "no answer from $1" >&2
    return 1
}

# Copies a documented config to $WORK, replacing the one occurrence of each FROM outside comments by its TO (fails when a
# pattern is missing or ambiguous, so the test cannot silently drift from the documented file).
render() { # SOURCE DEST FROM TO [FROM TO]...
    local source="$1" dest="$2"
    shift 2
    python3 - "$source" "$dest" "$@" <<'PY'
import sys
source, dest, args = sys.argv[1], sys.argv[2], sys.argv[3:]
lines = open(source).read().split('\n')
for old, new in zip(args[::2], args[1::2]):
    # Only lines in effect count (comments may show other examples).
    hits = [i for i, line in enumerate(lines) if old in line and not line.lstrip().startswith('#')]
    if len(hits) != 1 or lines[hits[0]].count(old) != 1:
        sys.exit(f'{source}: expected exactly one {old!r} outside comments, found {len(hits)} lines')
    lines[hits[0]] = lines[hits[0]].replace(old, new)
open(dest, 'w').write('\n'.join(lines))
PY
}

if command -v systemd-analyze >/dev/null 2>&1; then
    echo "== systemd-analyze verify deploy/minerva-demo.service"
    render deploy/minerva-demo.service "$WORK/minerva-demo.service" \
        "ExecStart=/usr/local/bin/minerva-demo " "ExecStart=$DEMO "
    systemd-analyze verify "$WORK/minerva-demo.service"
fi

DEMO_PORT="$(free_port)"
# --allowed-origin/--allow-credentials: test_tabs.py's %random% runs (pages of http://localhost:PORT, streams to
# random names under .localhost, all of them caught by the config's `server_name _;`).
"$DEMO" --host 127.0.0.1 --port "$DEMO_PORT" --static-dir Client/test/browser --trusted-proxy 127.0.0.1 \
    --allowed-origin 'http://*.localhost' --allow-credentials --threads "${MINERVA_DEMO_THREADS:-1}" --log-level warning 2>"$WORK/demo.log" &
PIDS+=($!)
wait_for "http://127.0.0.1:$DEMO_PORT/healthz"

echo "== nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') with deploy/nginx-minerva.conf"
NGINX_PORT="$(free_port)"
mkdir -p "$WORK/nginx"
render deploy/nginx-minerva.conf "$WORK/nginx/minerva.conf" \
    "listen 80;" "listen 127.0.0.1:$NGINX_PORT;" "server 127.0.0.1:8080;" "server 127.0.0.1:$DEMO_PORT;"
# The main context a distribution's /etc/nginx/nginx.conf would give, with every path inside $WORK.
cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx-error.log info;
events {
    worker_connections 1024;
}
http {
    access_log $WORK/nginx-access.log;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    include /etc/nginx/mime.types;
    # Debian's nginx.conf turns gzip on; compressing text/plain too is common. With proxy_buffering on, nginx
    # would then hold streaming writes back until a 32 KiB block fills; the documented config must stream anyway.
    gzip on;
    gzip_types text/plain;
    include $WORK/nginx/minerva.conf;
}
CONF
"$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx-error.log" -c "$WORK/nginx/nginx.conf"
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx-error.log" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
wait_for "http://127.0.0.1:$NGINX_PORT/healthz"

STATUS=0 # a failure through nginx still lets the HAProxy checks run; the script fails at the end
MINERVA_SERVER_URL="http://127.0.0.1:$NGINX_PORT" MINERVA_BROWSER_TESTS=1 /usr/bin/python3 -m pytest \
    -p no:cacheprovider -q -s Tests/Deployment/test_through_proxy.py Client/test/browser/test_browser.py \
    Client/test/browser/test_tabs.py "$@" \
    || STATUS=$?
# The suite really went through nginx: its access log shows upgraded WebSockets and HTTP transports.
WS=$(grep -c '"GET /_minerva/ws HTTP/1.1" 101 ' "$WORK/nginx-access.log" || true)
IO=$(grep -c '"POST /_minerva/io/ HTTP/1.1" 200 ' "$WORK/nginx-access.log" || true)
echo "nginx access log: $WS WebSocket upgrades (101), $IO HTTP transport requests (200)"
if [ "$WS" -eq 0 ] || [ "$IO" -eq 0 ]; then
    echo "the browser suite did not go through nginx" >&2
    STATUS=1
fi

echo "== HAProxy $("$HAPROXY" -v | head -n 1 | awk '{print $3}') with deploy/haproxy-minerva.cfg (proxy checks only)"
HAPROXY_PORT="$(free_port)"
render deploy/haproxy-minerva.cfg "$WORK/haproxy.cfg" \
    "bind :80" "bind 127.0.0.1:$HAPROXY_PORT" "server demo1 127.0.0.1:8080" "server demo1 127.0.0.1:$DEMO_PORT"
"$HAPROXY" -c -q -f "$WORK/haproxy.cfg"
"$HAPROXY" -W -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$HAPROXY_PORT/healthz"
MINERVA_SERVER_URL="http://127.0.0.1:$HAPROXY_PORT" /usr/bin/python3 -m pytest -p no:cacheprovider -q \
    Tests/Deployment/test_through_proxy.py || STATUS=$?
exit "$STATUS"
