#!/usr/bin/env bash
# Load comparison: minerva-demo vs a loopback nginx (one worker), both answering GET /healthz with "ok",
# measured by wrk in the same run with the same connection count, keep-alive.
#
#   Benchmarks/run-load.sh [--connections N] [--duration SECONDS] [--threads N]
#
# Prints requests/s and latency p50/p99 for each server and the ratio ours/nginx. Needs nginx-light and
# wrk (`./dev.sh bench` installs them). Every process this script starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=64
DURATION=10
WRK_THREADS=1
while [ $# -gt 0 ]; do
    case "$1" in
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --threads) WRK_THREADS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

WORK="$(mktemp -d /tmp/minerva-bench.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# A free TCP port on 127.0.0.1 (asked of the kernel, then released).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_for() { # url
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1).read()" "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "server at $1 did not answer" >&2
    return 1
}

echo "building minerva-demo (release)..." >&2
swift build -c release --product minerva-demo >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
DEMO="$(swift build -c release --show-bin-path)/minerva-demo"

OURS_PORT="$(free_port)"
"$DEMO" --host 127.0.0.1 --port "$OURS_PORT" --log-level warning >"$WORK/demo.log" 2>&1 &
PIDS+=($!)

NGINX_PORT="$(free_port)"
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
master_process on;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /healthz { default_type text/plain; return 200 "ok"; }
    }
}
NGINX
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" >"$WORK/nginx/stdout.log" 2>&1 &
PIDS+=($!)

wait_for "http://127.0.0.1:$OURS_PORT/healthz"
wait_for "http://127.0.0.1:$NGINX_PORT/healthz"

# Runs wrk and prints "requests_per_second p50_ms p99_ms".
measure() { # url
    local out
    out="$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$1")"
    echo "$out" >>"$WORK/wrk.log"
    python3 - "$out" <<'PY'
import re, sys
text = sys.argv[1]
def ms(token):
    m = re.match(r"([\d.]+)(us|ms|s)", token)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", text).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
socket_errors = re.search(r"Socket errors: (.*)", text)
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {errors.group(1) if errors else 0} {'yes' if socket_errors else 'no'}")
PY
}

echo "wrk: $WRK_THREADS thread(s), $CONNECTIONS connections, ${DURATION}s each, keep-alive, GET /healthz" >&2
# Warm both up briefly, then measure.
wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:$OURS_PORT/healthz" >/dev/null
wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:$NGINX_PORT/healthz" >/dev/null
read -r ours_rps ours_p50 ours_p99 ours_bad ours_sockerr < <(measure "http://127.0.0.1:$OURS_PORT/healthz")
read -r nginx_rps nginx_p50 nginx_p99 nginx_bad nginx_sockerr < <(measure "http://127.0.0.1:$NGINX_PORT/healthz")

printf '\n%-14s %12s %10s %10s %9s %13s\n' server "requests/s" "p50 ms" "p99 ms" "non-2xx" "socket errors"
printf '%-14s %12s %10s %10s %9s %13s\n' minerva-demo "$ours_rps" "$ours_p50" "$ours_p99" "$ours_bad" "$ours_sockerr"
printf '%-14s %12s %10s %10s %9s %13s\n' nginx "$nginx_rps" "$nginx_p50" "$nginx_p99" "$nginx_bad" "$nginx_sockerr"
python3 -c "import sys; print(f'\nratio ours/nginx (requests/s): {float(sys.argv[1])/float(sys.argv[2]):.2f}  (target >= 0.80)')" "$ours_rps" "$nginx_rps"
