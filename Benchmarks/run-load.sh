#!/usr/bin/env bash
# Load figures for one minerva-demo, all in the same run:
#  1. minerva-demo vs a loopback nginx (one worker), both answering GET /healthz with "ok", measured by wrk
#     with the same connection count, keep-alive (issue 2);
#  2. the server's RSS per open long-poll: (RSS with --hold N long-poll primaries open - RSS idle) / N,
#     from /proc/PID/status, the primaries held by minerva-load (issue 4 item 7);
#  3. Minerva echo round trips/s through the demo protocol over long-poll, the way a browser does it, with
#     32, 256 and 2,000 concurrent streams (minerva-load, Benchmarks/Tools/minerva-load), and the same over one
#     WebSocket per stream (`minerva-load --websocket`), with the ratio WebSocket / long-poll;
#  4. the server's RSS per idle WebSocket stream (the hold of item 2 with `--websocket`, on a fresh demo process);
#  3b. the peer a user would pick instead: python-socketio's WebSocket echo (Benchmarks/peers/socketio_echo.py) at
#     32 and 256 streams, driven by the same generator (`minerva-load --socketio`);
#  6. the server's RSS per idle stream (no transport): --idle-streams N streams created by `minerva-load --idle-streams`
#     (one POST with a hello without `eeds` each, keep-alive, pipelined) on a fresh demo process, and the rate at
#     which they were created (issue 9 item 3; the full size is --idle-streams 1000000, bounded by --idle-seconds);
#  5. fan-out: N streams in the demo's chat, one broadcast every 100 ms, over HTTP streaming and over WebSocket:
#     delivery latency p50/p99/max (and the server's share, up to the generator's socket), strings delivered per
#     second (and per second of server CPU, and the generator's CPU), each on a fresh demo process.
#
#   Benchmarks/run-load.sh [--connections N] [--duration SECONDS] [--threads N]
#                          [--echo-duration SECONDS] [--echo-streams "32 256 2000"] [--echo-repeat R]
#                          [--hold N] [--only-minerva] [--fanout N (10000; 0 skips)] [--fanout-duration S (30)]
#                          [--no-peers] [--idle-streams N (100000; 0 skips)] [--idle-seconds S (300)]
#
# --hold N runs the long-poll hold with `--max-connections` raised to N + 500 when N is above the demo's default
# (19,000 held long-polls under a 20,000 open-files limit: --hold 19000).
#
# Prints requests/s and latency p50/p99 for each server and the ratio ours/nginx, then a table of the
# Minerva figures. Needs nginx-light and wrk (`./dev.sh bench` installs them) unless --only-minerva.
# Every process this script starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=64
DURATION=10
WRK_THREADS=1
ECHO_DURATION=10
ECHO_STREAMS="32 256 2000"
ECHO_REPEAT=1
HOLD=10000
ONLY_MINERVA=0
FANOUT=10000
FANOUT_DURATION=30
PEERS=1
IDLE_STREAMS=100000
IDLE_SECONDS=300
while [ $# -gt 0 ]; do
    case "$1" in
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --threads) WRK_THREADS="$2"; shift 2 ;;
    --echo-duration) ECHO_DURATION="$2"; shift 2 ;;
    --echo-streams) ECHO_STREAMS="$2"; shift 2 ;;
    --echo-repeat) ECHO_REPEAT="$2"; shift 2 ;;
    --hold) HOLD="$2"; shift 2 ;;
    --only-minerva) ONLY_MINERVA=1; shift ;;
    --fanout) FANOUT="$2"; shift 2 ;;
    --no-peers) PEERS=0; shift ;;
    --idle-streams) IDLE_STREAMS="$2"; shift 2 ;;
    --idle-seconds) IDLE_SECONDS="$2"; shift 2 ;;
    --fanout-duration) FANOUT_DURATION="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

WORK="$(mktemp -d /tmp/minerva-bench.XXXXXX)"
PIDS=()
HOLD_PID=""
cleanup() {
    if [ -n "$HOLD_PID" ]; then kill "$HOLD_PID" 2>/dev/null || true; wait "$HOLD_PID" 2>/dev/null || true; fi
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$pid" 2>/dev/null || true; done
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
echo "building minerva-load (release)..." >&2
(cd Benchmarks && swift build -c release --product minerva-load) >"$WORK/build-load.log" 2>&1 ||
    { cat "$WORK/build-load.log" >&2; exit 1; }
LOAD="$(cd Benchmarks && swift build -c release --show-bin-path)/minerva-load"

OURS_PORT="$(free_port)"
# Room for the held long-polls (the default is the open-files limit minus a reserve: 19,000 under 20,000).
"$DEMO" --host 127.0.0.1 --port "$OURS_PORT" --log-level warning --max-connections $((HOLD + 500 > 19000 ? HOLD + 500 : 19000)) \
    >"$WORK/demo.log" 2>&1 &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
wait_for "http://127.0.0.1:$OURS_PORT/healthz"

if [ "$ONLY_MINERVA" = 0 ]; then

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
fi

# --- Minerva over long-poll (minerva-load) ---
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$DEMO_PID/status"; }
echo "load average before the Minerva runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# RSS per open long-poll, on the server before any Minerva stream existed.
HOLD_OK=0
if [ "$HOLD" -gt 0 ]; then
    if [ "$(ulimit -n)" -lt $((HOLD + 200)) ]; then
        echo "open-file limit $(ulimit -n) is too low for --hold $HOLD; skipping the RSS figure" >&2
    else
        idle_kib="$(rss_kib)"
        "$LOAD" --host 127.0.0.1 --port "$OURS_PORT" --hold "$HOLD" >"$WORK/hold.out" 2>"$WORK/hold.err" &
        HOLD_PID=$!
        for _ in $(seq 1 1200); do
            grep -q '^open' "$WORK/hold.out" 2>/dev/null && break
            kill -0 "$HOLD_PID" 2>/dev/null || break
            sleep 0.1
        done
        if grep -q '^open' "$WORK/hold.out"; then
            held_kib="$(rss_kib)"
            HOLD_OK=1
        else
            echo "minerva-load --hold did not open $HOLD long-polls within 120 s:" >&2
            cat "$WORK/hold.out" "$WORK/hold.err" >&2
        fi
        kill "$HOLD_PID" 2>/dev/null || true
        wait "$HOLD_PID" 2>/dev/null || true
        HOLD_PID=""
        sleep 1 # let the server see 10,000 disconnects before the next run
    fi
fi

# RSS per idle WebSocket stream, on a demo process of its own (the first hold's memory stays with the first one).
WS_HOLD_OK=0
if [ "$HOLD" -gt 0 ] && [ "$(ulimit -n)" -ge $((HOLD + 200)) ]; then
    WS_PORT="$(free_port)"
    "$DEMO" --host 127.0.0.1 --port "$WS_PORT" --log-level warning >"$WORK/demo-ws.log" 2>&1 &
    WS_DEMO_PID=$!
    PIDS+=("$WS_DEMO_PID")
    wait_for "http://127.0.0.1:$WS_PORT/healthz"
    ws_rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$WS_DEMO_PID/status"; }
    ws_idle_kib="$(ws_rss_kib)"
    "$LOAD" --host 127.0.0.1 --port "$WS_PORT" --hold "$HOLD" --websocket >"$WORK/hold-ws.out" 2>"$WORK/hold-ws.err" &
    HOLD_PID=$!
    for _ in $(seq 1 600); do
        grep -q '^open' "$WORK/hold-ws.out" 2>/dev/null && break
        kill -0 "$HOLD_PID" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q '^open' "$WORK/hold-ws.out"; then
        ws_held_kib="$(ws_rss_kib)"
        WS_HOLD_OK=1
    else
        echo "minerva-load --hold --websocket did not open $HOLD WebSockets within 60 s:" >&2
        cat "$WORK/hold-ws.out" "$WORK/hold-ws.err" >&2
    fi
    kill "$HOLD_PID" 2>/dev/null || true
    wait "$HOLD_PID" 2>/dev/null || true
    HOLD_PID=""
    kill "$WS_DEMO_PID" 2>/dev/null || true
    wait "$WS_DEMO_PID" 2>/dev/null || true
fi

# RSS per idle stream (no transport), on a demo process of its own whose idle timeout outlasts the run.
IDLE_OK=0
if [ "$IDLE_STREAMS" -gt 0 ]; then
    IDLE_PORT="$(free_port)"
    "$DEMO" --host 127.0.0.1 --port "$IDLE_PORT" --log-level warning --idle-timeout $((IDLE_SECONDS + 600)) \
        --max-streams $((IDLE_STREAMS + 1000)) >"$WORK/demo-idle.log" 2>&1 &
    IDLE_DEMO_PID=$!
    PIDS+=("$IDLE_DEMO_PID")
    wait_for "http://127.0.0.1:$IDLE_PORT/healthz"
    idle_rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$IDLE_DEMO_PID/status"; }
    idle_before_kib="$(idle_rss_kib)"
    echo "idle streams: creating $IDLE_STREAMS (at most ${IDLE_SECONDS}s)..." >&2
    if idle_line="$("$LOAD" --host 127.0.0.1 --port "$IDLE_PORT" --idle-streams "$IDLE_STREAMS" \
        --duration "$IDLE_SECONDS" 2>"$WORK/idle.err")"; then
        sleep 1
        idle_after_kib="$(idle_rss_kib)"
        IDLE_OK=1
    else
        echo "minerva-load --idle-streams failed: $idle_line $(head -c 300 "$WORK/idle.err")" >&2
    fi
    kill "$IDLE_DEMO_PID" 2>/dev/null || true
    wait "$IDLE_DEMO_PID" 2>/dev/null || true
fi

# Echo round trips: one line of key=value figures per stream count and transport (with --echo-repeat R, the run
# with the median round trips/s of R runs; the machine is shared, so single runs vary).
ECHO_RESULTS=()
# The peer: python-socketio (Debian's python3-socketio on aiohttp, one process) answering `echo` events, driven by the
# same generator over WebSocket (Engine.IO 4); at 32 and 256 streams.
PEER_PORT=""
if [ "$PEERS" = 1 ] && /usr/bin/python3 -c 'import socketio, aiohttp' 2>/dev/null; then
    PEER_PORT="$(free_port)"
    /usr/bin/python3 Benchmarks/peers/socketio_echo.py "$PEER_PORT" >"$WORK/peer.log" 2>&1 &
    PIDS+=($!)
    wait_for "http://127.0.0.1:$PEER_PORT/healthz"
fi
for n in $ECHO_STREAMS; do
  for transport in long-poll websocket socketio; do
    runs=()
    flag=""
    target="$OURS_PORT"
    [ "$transport" = websocket ] && flag="--websocket"
    if [ "$transport" = socketio ]; then
        [ -n "$PEER_PORT" ] && [ "$n" -le 256 ] || continue
        flag="--socketio"
        target="$PEER_PORT"
    fi
    for r in $(seq 1 "$ECHO_REPEAT"); do
        echo "echo: $n streams over $transport, 1 s warm-up + ${ECHO_DURATION}s (run $r of $ECHO_REPEAT)..." >&2
        load_before="$(cut -d' ' -f1 /proc/loadavg)"
        line="$("$LOAD" --host 127.0.0.1 --port "$target" --streams "$n" --duration "$ECHO_DURATION" $flag \
            2>>"$WORK/echo.err")" || true
        line="$line load_before=$load_before load_after=$(cut -d' ' -f1 /proc/loadavg)"
        echo "$line" >>"$WORK/echo.log"
        runs+=("$line")
    done
    ECHO_RESULTS+=("$(python3 - "${runs[@]}" <<'PY'
import sys
def rate(line):
    fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
    return int(fields.get("round_trips_per_s", -1))
lines = sorted(sys.argv[1:], key=rate)
print(lines[(len(lines) - 1) // 2])
PY
)")
  done
done
if [ -s "$WORK/echo.err" ]; then
    echo "minerva-load errors (first lines):" >&2
    head -n 20 "$WORK/echo.err" >&2
fi

printf '\nMinerva echo over HTTP long-poll and over WebSocket (demo protocol, each stream waits for its echo)\n'
printf '%-10s %-9s %16s %12s %10s %10s %8s %14s\n' transport streams "round trips/s" "requests/s" "p50 ms" "p99 ms" \
    errors "load avg 1 min"
for line in "${ECHO_RESULTS[@]+"${ECHO_RESULTS[@]}"}"; do
    python3 - "$line" <<'PY'
import sys
fields = dict(item.split("=", 1) for item in sys.argv[1].split() if "=" in item)
if "streams" not in fields:
    print(f"{'?':<10} {'?':<9} {'(run failed)':>16}")
else:
    print(f"{fields.get('transport', '?'):<10} {fields['streams']:<9} {fields['round_trips_per_s']:>16} "
          f"{fields['requests_per_s']:>12} "
          f"{fields['p50_ms']:>10} {fields['p99_ms']:>10} {fields['errors']:>8} "
          f"{fields['load_before'] + '->' + fields['load_after']:>14}")
PY
done
python3 - "${ECHO_RESULTS[@]+"${ECHO_RESULTS[@]}"}" <<'PY'
import sys
rates = {}
for line in sys.argv[1:]:
    fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
    if "streams" in fields:
        rates[(fields.get("transport"), fields["streams"])] = int(fields["round_trips_per_s"])
for (transport, streams), rate in sorted(rates.items()):
    if transport == "websocket" and rates.get(("long-poll", streams)):
        print(f"ratio WebSocket / long-poll at {streams} streams: {rate / rates[('long-poll', streams)]:.2f}"
              " (target >= 2)")
    if transport == "socketio-websocket" and rates.get(("websocket", streams)):
        print(f"ratio Minerva WebSocket / python-socketio WebSocket at {streams} streams: "
              f"{rates[('websocket', streams)] / rate:.2f}")
PY
echo "target: >= 25000 round trips/s with 32 streams (2 cores shared by server and load generator; the load" \
    "average includes both, about 2 when nothing else runs)"
if [ "$HOLD_OK" = 1 ]; then
    python3 -c "
import sys
idle, held, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f'\nserver RSS: idle {idle} KiB, with {n} open long-polls {held} KiB: {(held - idle) * 1024 / n:.0f} bytes per open long-poll (target <= 2048 at 19000)')
" "$idle_kib" "$held_kib" "$HOLD"
fi
if [ "$WS_HOLD_OK" = 1 ]; then
    python3 -c "
import sys
idle, held, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f'server RSS: idle {idle} KiB, with {n} idle WebSocket streams {held} KiB: {(held - idle) * 1024 / n:.0f} bytes per idle WebSocket stream (target <= 2048)')
" "$ws_idle_kib" "$ws_held_kib" "$HOLD"
fi

if [ "$IDLE_OK" = 1 ]; then
    python3 - "$idle_before_kib" "$idle_after_kib" "$IDLE_STREAMS" "$idle_line" <<'PY'
import sys
idle, held, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
fields = dict(item.split("=", 1) for item in sys.argv[4].split() if "=" in item)
print(f"server RSS: idle {idle} KiB, with {n} idle streams (no transport) {held} KiB: {(held - idle) * 1024 / n:.0f} bytes "
      f"per idle stream (target <= 512 at 1000000), created at {fields.get('streams_per_s', '?')}/s "
      f"in {fields.get('seconds', '?')} s, errors={fields.get('errors', '?')}")
PY
fi

# --- Fan-out (issue 9 item 4): FANOUT streams in the demo's chat, one broadcast every 100 ms, over HTTP streaming
# responses (what the issue names) and over WebSocket, each on a fresh demo process ---
if [ "$FANOUT" -gt 0 ]; then
    printf '\nFan-out through the demo chat (%s receivers, one broadcast per 100 ms for %s s; the server (%s) and the load generator share the 2 cores)\n' \
        "$FANOUT" "$FANOUT_DURATION" "its default loops"
    echo "p*_ms: broadcaster's clock stamp to the receiver's parse; at_socket_*: to the kernel's receive timestamp on the generator's socket (the server's share)"
    for transport in streaming websocket; do
        FAN_PORT="$(free_port)"
        "$DEMO" --host 127.0.0.1 --port "$FAN_PORT" --log-level warning >"$WORK/fanout-demo.log" 2>&1 &
        FAN_PID=$!
        PIDS+=("$FAN_PID")
        wait_for "http://127.0.0.1:$FAN_PORT/healthz"
        echo "fan-out: $FANOUT $transport streams in one chat, a broadcast every 100 ms for ${FANOUT_DURATION}s..." >&2
        load_before="$(cut -d' ' -f1 /proc/loadavg)"
        if fan_line="$("$LOAD" --fanout "$FANOUT" --fanout-transport "$transport" --interval 0.1 \
            --duration "$FANOUT_DURATION" --port "$FAN_PORT" --server-pid "$FAN_PID" 2>"$WORK/fanout.err")"; then :; fi
        echo "${fan_line:-(run failed: $(head -c 300 "$WORK/fanout.err"))} load_average=$load_before-$(cut -d' ' -f1 /proc/loadavg)"
        kill "$FAN_PID" 2>/dev/null || true
        wait "$FAN_PID" 2>/dev/null || true
    done
    echo "target: delivery p99 <= 50 ms"
fi
