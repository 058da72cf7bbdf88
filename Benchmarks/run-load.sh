#!/usr/bin/env bash
# Load figures for one minerva-demo, all in the same run:
#  1. minerva-demo vs a loopback nginx (one worker), both answering GET /healthz with "ok", measured by wrk
#     with the same connection count, keep-alive (issue 2);
#  2. the server's RSS per open long-poll: (RSS with --hold N long-poll primaries open - RSS idle) / N,
#     from /proc/PID/status, the primaries held by minerva-load (issue 4 item 7);
#  2b. paced echo at that size (issue 9 item 3): once the N long-polls are open and the RSS is read, 1 % of them
#     (N/100 streams) each send one `echo:` every 1/--paced-rate s (10/s) for --paced-duration s (20) after a 1 s
#     warm-up, open loop (`minerva-load --hold N --echo-streams N/100 --echo-rate R`): echo p50/p99/max while the
#     other 99 % stay held;
#  3. Minerva echo round trips/s through the demo protocol over long-poll, the way a browser does it, with
#     32, 256 and 2,000 concurrent streams (minerva-load, Benchmarks/Tools/minerva-load), and the same over one
#     WebSocket per stream (`minerva-load --websocket`), with the ratio WebSocket / long-poll; once per loop count of
#     --demo-threads ("1 2": a fresh `minerva-demo --threads T` each), each stream waiting for its echo (closed loop);
#  4. the server's RSS per idle WebSocket stream (the hold of item 2 with `--websocket`, on a fresh demo process);
#  3b. the peer a user would pick instead: python-socketio (Benchmarks/peers/socketio_echo.py, on aiohttp) at 32 and
#     256 clients over Engine.IO long-polling (`minerva-load --socketio-polling`) and over WebSocket
#     (`minerva-load --socketio`), driven by the same generator, a fresh peer process per run; the peer's RSS per
#     client is read in the middle of the 256-client runs;
#  6. the server's RSS per idle stream (no transport): --idle-streams N streams created by `minerva-load --idle-streams`
#     (one POST with a hello without `eeds` each, keep-alive, pipelined) on a fresh demo process, and the rate at
#     which they were created (issue 9 item 3; the full size is --idle-streams 1000000, bounded by --idle-seconds);
#  5. fan-out: N streams in the demo's chat, one broadcast every 100 ms, over HTTP streaming and over WebSocket:
#     delivery latency p50/p99/max (and the server's share, up to the generator's socket), strings delivered per
#     second (and per second of server CPU, and the generator's CPU), each on a fresh demo process.
#  7. plots (Benchmarks/plot-results.py, matplotlib): Benchmarks/results/echo-rate.png and echo-p99.png (round trips/s
#     and p99 vs concurrency: Minerva long-poll and WebSocket with each loop count, python-socketio polling and
#     WebSocket) and rss-per-connection.png, from Benchmarks/results/run-<UTC time>.txt (every figure of the run, one
#     key=value line each; copied to latest.txt).
#
#   Benchmarks/run-load.sh [--connections N] [--duration SECONDS] [--threads N]
#                          [--echo-duration SECONDS] [--echo-streams "32 256 2000"] [--echo-repeat R]
#                          [--demo-threads "1 2"] [--pin]
#                          [--hold N] [--paced-rate R (10; 0 skips)] [--paced-duration S (20)]
#                          [--only-minerva] [--fanout N (10000; 0 skips)] [--fanout-duration S (30)]
#                          [--no-peers] [--idle-streams N (100000; 0 skips)] [--idle-seconds S (300)]
#
# The echo runs (item 3) leave the sharing of the 2 cores to the kernel by default (the machine is shared with other
# work, and a pinned process cannot move off a core that something else is using); --pin runs the demo on CPU 0
# (`taskset -c 0`, or CPUs 0-1 with 2 loops) and the generator on CPU 1.
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
DEMO_THREADS="1 2"
PIN=0
HOLD=10000
PACED_RATE=10
PACED_DURATION=20
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
    --demo-threads) DEMO_THREADS="$2"; shift 2 ;;
    --pin) PIN=1; shift ;;
    --paced-rate) PACED_RATE="$2"; shift 2 ;;
    --paced-duration) PACED_DURATION="$2"; shift 2 ;;
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
# Every figure of the run, one line of key=value pairs each (the plots are drawn from it).
RESULTS_DIR="Benchmarks/results"
mkdir -p "$RESULTS_DIR"
RESULTS="$RESULTS_DIR/run-$(date -u +%Y%m%dT%H%M%SZ).txt"
echo "run date=$(date -u +%Y-%m-%dT%H:%M:%SZ) load_avg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /) cores=$(nproc)" >"$RESULTS"
record() { echo "$*" >>"$RESULTS"; }
PIDS=()
HOLD_PID=""
cleanup() {
    if [ -n "$HOLD_PID" ]; then kill "$HOLD_PID" 2>/dev/null || true; wait "$HOLD_PID" 2>/dev/null || true; fi
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
# Stops a process started here and forgets it (so that cleanup never signals a reused PID).
stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local kept=() pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
    PIDS=("${kept[@]+"${kept[@]}"}")
}

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
        paced_flags=()
        PACED_STREAMS=$((HOLD / 100))
        if [ "$PACED_RATE" != 0 ] && [ "$PACED_STREAMS" -gt 0 ]; then
            # 2b: after the announcement, 3 quiet seconds (the RSS is read then), then the paced echo.
            paced_flags=(--echo-streams "$PACED_STREAMS" --echo-rate "$PACED_RATE" --echo-delay 3
                --duration "$PACED_DURATION")
            echo "hold: $HOLD long-polls, then $PACED_STREAMS of them echoing ${PACED_RATE}/s each for ${PACED_DURATION}s..." >&2
        fi
        load_before_paced="$(cut -d' ' -f1 /proc/loadavg)"
        "$LOAD" --host 127.0.0.1 --port "$OURS_PORT" --hold "$HOLD" "${paced_flags[@]+"${paced_flags[@]}"}" \
            >"$WORK/hold.out" 2>"$WORK/hold.err" &
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
        if [ "$HOLD_OK" = 1 ] && [ ${#paced_flags[@]} -gt 0 ]; then
            # The paced run ends by itself (3 + 1 + PACED_DURATION s after the announcement); bounded here too.
            for _ in $(seq 1 $(((PACED_DURATION + 30) * 10))); do
                kill -0 "$HOLD_PID" 2>/dev/null || break
                sleep 0.1
            done
            paced_line="$(grep '^transport=long-poll-paced' "$WORK/hold.out" || true)"
            if [ -n "$paced_line" ]; then
                paced_line="$paced_line load_before=$load_before_paced load_after=$(cut -d' ' -f1 /proc/loadavg)"
                record "paced $paced_line"
                grep '^paced timeline' "$WORK/hold.err" >&2 || true
            else
                echo "the paced echo printed no figures: $(tail -c 300 "$WORK/hold.err")" >&2
            fi
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
    "$DEMO" --host 127.0.0.1 --port "$WS_PORT" --log-level warning \
        --max-connections $((HOLD + 500 > 19000 ? HOLD + 500 : 19000)) >"$WORK/demo-ws.log" 2>&1 &
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

# Echo round trips: one line of key=value figures per loop count, stream count and transport (with --echo-repeat R,
# the run with the median round trips/s of R runs; the machine is shared, so single runs vary).
ECHO_RESULTS=()
LOAD_PIN=()
[ "$PIN" = 1 ] && LOAD_PIN=(taskset -c 1)
# Runs the generator REPEAT times against a port and appends the median line to ECHO_RESULTS.
#   echo_runs LOOPS PORT STREAMS [minerva-load flags...]; with SAMPLE_PID set, the RSS of that process is read in the
#   middle of each run (peer_rss_mid_kib=) after its RSS before (peer_rss_before_kib=).
echo_runs() {
    local loops="$1" target="$2" n="$3"
    shift 3
    local runs=() line load_before before mid
    for r in $(seq 1 "$ECHO_REPEAT"); do
        echo "echo: $n streams $*, $loops loop(s), 1 s warm-up + ${ECHO_DURATION}s (run $r of $ECHO_REPEAT)..." >&2
        load_before="$(cut -d' ' -f1 /proc/loadavg)"
        before=""
        [ -n "${SAMPLE_PID:-}" ] && before="$(awk '/^VmRSS:/ { print $2 }' "/proc/$SAMPLE_PID/status")"
        "${LOAD_PIN[@]+"${LOAD_PIN[@]}"}" "$LOAD" --host 127.0.0.1 --port "$target" --streams "$n" \
            --duration "$ECHO_DURATION" "$@" >"$WORK/echo-run.out" 2>>"$WORK/echo.err" &
        local gen=$!
        mid=""
        if [ -n "${SAMPLE_PID:-}" ]; then
            sleep "$(python3 -c "print(1 + $ECHO_DURATION / 2)")"
            mid="$(awk '/^VmRSS:/ { print $2 }' "/proc/$SAMPLE_PID/status")"
        fi
        wait "$gen" || true
        line="$(cat "$WORK/echo-run.out") loops=$loops load_before=$load_before load_after=$(cut -d' ' -f1 /proc/loadavg)"
        [ -n "$mid" ] && line="$line peer_rss_before_kib=$before peer_rss_mid_kib=$mid"
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
}
for loops in $DEMO_THREADS; do
    ECHO_PORT="$(free_port)"
    demo_pin=()
    if [ "$PIN" = 1 ]; then
        if [ "$loops" = 1 ]; then demo_pin=(taskset -c 0); else demo_pin=(taskset -c 0-1); fi
    fi
    "${demo_pin[@]+"${demo_pin[@]}"}" "$DEMO" --host 127.0.0.1 --port "$ECHO_PORT" --log-level warning \
        --threads "$loops" >"$WORK/demo-echo-$loops.log" 2>&1 &
    ECHO_DEMO_PID=$!
    PIDS+=("$ECHO_DEMO_PID")
    wait_for "http://127.0.0.1:$ECHO_PORT/healthz"
    for n in $ECHO_STREAMS; do
        echo_runs "$loops" "$ECHO_PORT" "$n"
        echo_runs "$loops" "$ECHO_PORT" "$n" --websocket
    done
    stop_pid "$ECHO_DEMO_PID"
done
# The peer: python-socketio (Debian's python3-socketio on aiohttp, one process) answering `echo` events, driven by the
# same generator over Engine.IO 4 long-polling and over WebSocket, at 32 and 256 clients; a fresh peer per run so that
# its RSS per client (read mid-run) starts from an idle process.
if [ "$PEERS" = 1 ] && /usr/bin/python3 -c 'import socketio, aiohttp' 2>/dev/null; then
    for n in $ECHO_STREAMS; do
        [ "$n" -le 256 ] || continue
        for flag in --socketio-polling --socketio; do
            PEER_PORT="$(free_port)"
            peer_pin=()
            [ "$PIN" = 1 ] && peer_pin=(taskset -c 0)
            "${peer_pin[@]+"${peer_pin[@]}"}" /usr/bin/python3 Benchmarks/peers/socketio_echo.py "$PEER_PORT" \
                >"$WORK/peer.log" 2>&1 &
            PEER_PID=$!
            PIDS+=("$PEER_PID")
            wait_for "http://127.0.0.1:$PEER_PORT/healthz"
            SAMPLE_PID="$PEER_PID" echo_runs 1 "$PEER_PORT" "$n" "$flag"
            stop_pid "$PEER_PID"
        done
    done
elif [ "$PEERS" = 1 ]; then
    echo "python3-socketio / python3-aiohttp missing: no peer rows" >&2
fi
if [ -s "$WORK/echo.err" ]; then
    echo "minerva-load errors (first lines):" >&2
    head -n 20 "$WORK/echo.err" >&2
fi
for line in "${ECHO_RESULTS[@]+"${ECHO_RESULTS[@]}"}"; do record "echo $line"; done

printf '\nEcho round trips (each stream waits for its echo): Minerva over HTTP long-poll and WebSocket (demo protocol)\n'
printf 'with 1 and 2 loops; python-socketio (one process) over Engine.IO polling and WebSocket%s\n' \
    "$([ "$PIN" = 1 ] && echo '; server on CPU 0 (0-1 with 2 loops), generator on CPU 1' || echo '; no pinning')"
printf '%-19s %5s %-7s %14s %11s %9s %9s %9s %7s %12s\n' transport loops streams "round trips/s" "requests/s" \
    "p50 ms" "p99 ms" "max ms" errors "load avg"
for line in "${ECHO_RESULTS[@]+"${ECHO_RESULTS[@]}"}"; do
    python3 - "$line" <<'PY'
import sys
fields = dict(item.split("=", 1) for item in sys.argv[1].split() if "=" in item)
if "streams" not in fields:
    print(f"{'?':<19} {fields.get('loops', '?'):>5} {'(run failed)':>16}")
else:
    print(f"{fields.get('transport', '?'):<19} {fields['loops']:>5} {fields['streams']:<7} "
          f"{fields['round_trips_per_s']:>14} {fields['requests_per_s']:>11} "
          f"{fields['p50_ms']:>9} {fields['p99_ms']:>9} {fields.get('max_ms', '?'):>9} {fields['errors']:>7} "
          f"{fields['load_before'] + '->' + fields['load_after']:>12}")
PY
done
python3 - "${ECHO_RESULTS[@]+"${ECHO_RESULTS[@]}"}" <<'PY'
import sys
rates = {}
for line in sys.argv[1:]:
    fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
    if "streams" in fields:
        rates[(fields.get("transport"), fields["loops"], fields["streams"])] = int(fields["round_trips_per_s"])
for (transport, loops, streams), rate in sorted(rates.items()):
    if transport == "websocket" and rates.get(("long-poll", loops, streams)):
        print(f"ratio WebSocket / long-poll at {streams} streams, {loops} loop(s): "
              f"{rate / rates[('long-poll', loops, streams)]:.2f} (target >= 2)")
    if transport == "websocket" and loops == "1" and rates.get(("websocket", "2", streams)):
        print(f"ratio 2 loops / 1 loop at {streams} streams: WebSocket {rates[('websocket', '2', streams)] / rate:.2f}"
              + (f", long-poll {rates[('long-poll', '2', streams)] / rates[('long-poll', '1', streams)]:.2f}"
                 if rates.get(("long-poll", "2", streams)) and rates.get(("long-poll", "1", streams)) else ""))
    if transport.startswith("socketio") and loops == "1":
        best = max((rates.get((t, l, streams), 0) for t in ("websocket", "long-poll") for l in ("1", "2")), default=0)
        if best:
            print(f"ratio best Minerva / python-socketio {transport[9:]} at {streams} streams: {best / rate:.1f}")
for line in sys.argv[1:]:
    fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
    if "peer_rss_mid_kib" in fields and "streams" in fields:
        per = (int(fields["peer_rss_mid_kib"]) - int(fields["peer_rss_before_kib"])) * 1024 / int(fields["streams"])
        print(f"python-socketio RSS over {fields['transport'][9:]} with {fields['streams']} clients echoing: "
              f"{fields['peer_rss_before_kib']} KiB idle, {fields['peer_rss_mid_kib']} KiB mid-run: {per:.0f} bytes per client")
PY
echo "target: >= 25000 round trips/s with 32 streams (2 cores shared by server and load generator; the load" \
    "average includes both, about 2 when nothing else runs)"
if [ "${paced_line:-}" != "" ]; then
    python3 - "$paced_line" <<'PY'
import sys
f = dict(item.split("=", 1) for item in sys.argv[1].split() if "=" in item)
print(f"\nPaced echo with {f['held']} long-polls held: {f['streams']} of them each sending one echo every "
      f"{1000 / float(f['rate_per_stream']):.0f} ms (open loop, latency from when each send was due), {f['seconds']} s: "
      f"{f['round_trips_per_s']} round trips/s, p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, p99.9 {f['p999_ms']} ms, "
      f"max {f['max_ms']} ms, errors {f['errors']}, load average {f['load_before']}->{f['load_after']} (target p99 <= 10 ms)")
PY
fi
if [ "$HOLD_OK" = 1 ]; then
    python3 -c "
import sys
idle, held, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f'\nserver RSS: idle {idle} KiB, with {n} open long-polls {held} KiB: {(held - idle) * 1024 / n:.0f} bytes per open long-poll (target <= 2048 at 19000)')
" "$idle_kib" "$held_kib" "$HOLD"
    record "rss kind=long-poll n=$HOLD idle_kib=$idle_kib held_kib=$held_kib"
fi
if [ "$WS_HOLD_OK" = 1 ]; then
    python3 -c "
import sys
idle, held, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f'server RSS: idle {idle} KiB, with {n} idle WebSocket streams {held} KiB: {(held - idle) * 1024 / n:.0f} bytes per idle WebSocket stream (target <= 2048)')
" "$ws_idle_kib" "$ws_held_kib" "$HOLD"
    record "rss kind=websocket n=$HOLD idle_kib=$ws_idle_kib held_kib=$ws_held_kib"
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
    record "rss kind=idle-stream n=$IDLE_STREAMS idle_kib=$idle_before_kib held_kib=$idle_after_kib"
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
        [ -n "${fan_line:-}" ] && record "fanout transport=$transport $fan_line"
        kill "$FAN_PID" 2>/dev/null || true
        wait "$FAN_PID" 2>/dev/null || true
    done
    echo "target: delivery p99 <= 50 ms"
fi

# --- Plots (item 7) from the figures recorded above ---
record "end date=$(date -u +%Y-%m-%dT%H:%M:%SZ) load_avg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
# Debian's python3-matplotlib is under /usr/bin/python3 (the python3 on PATH may be another interpreter).
PLOT_PYTHON=""
for candidate in /usr/bin/python3 python3; do
    if "$candidate" -c 'import matplotlib' 2>/dev/null; then PLOT_PYTHON="$candidate"; break; fi
done
cp "$RESULTS" "$RESULTS_DIR/latest.txt"
if [ -n "$PLOT_PYTHON" ]; then
    "$PLOT_PYTHON" Benchmarks/plot-results.py "$RESULTS" "$RESULTS_DIR" || echo "plotting failed" >&2
else
    echo "matplotlib missing (python3-matplotlib, installed by ./dev.sh bench): no plots" >&2
fi
echo "figures: $RESULTS (also latest.txt); plots: $RESULTS_DIR/*.png"
