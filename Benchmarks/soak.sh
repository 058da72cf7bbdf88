#!/usr/bin/env bash
# Soak (issue 12 item 8): one release minerva-demo holding CONNECTIONS connections for MINUTES minutes, 1% of them
# echoing without pause, the rest held long-polls (re-polled every 25 s, as a browser's maxt does). Every 30 s it
# samples the server's RSS, open descriptors and the echo figures; at the end it reports the RSS drift from the first
# sample after warm-up to the last one (goal: under 2%), and the descriptor count once the clients are gone (must be
# back at the idle count within 40 s, a held long-poll's maxt and a margin: no leaked sockets). Bounded: stops by itself after MINUTES (+ about 1 minute).
#
#   Benchmarks/soak.sh [--connections N (19000)] [--minutes M (10)] [--threads T (2)] [--demo PATH --load PATH]
# (--demo and --load: use these builds of minerva-demo and minerva-load instead of building them here)
#
# The open-files cap of 20,000 per process on the development machine is why the default is 19,000: the server
# needs its listening sockets, the event loops' descriptors and a few spare. The two clients (minerva-load --hold and
# minerva-load --streams) are separate processes, each with its own cap.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

CONNECTIONS=19000
MINUTES=10
THREADS=2
DEMO=""
LOAD=""
while [ $# -gt 0 ]; do
    case "$1" in
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --minutes) MINUTES="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --demo) DEMO="$2"; shift 2 ;;
    --load) LOAD="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
ACTIVE=$((CONNECTIONS / 100))
HOLD=$((CONNECTIONS - ACTIVE))
SECONDS_TOTAL=$((MINUTES * 60))

ensure_apt libev-dev libhttp-parser-dev
WORK="$(mktemp -d /tmp/minerva-soak.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "$DEMO" ]; then
    swift build -c release --product minerva-demo >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
    DEMO="$(swift build -c release --show-bin-path)/minerva-demo"
fi
if [ -z "$LOAD" ]; then
    (cd Benchmarks && swift build -c release --product minerva-load) >"$WORK/build-load.log" 2>&1 ||
        { cat "$WORK/build-load.log" >&2; exit 1; }
    LOAD="$(cd Benchmarks && swift build -c release --show-bin-path)/minerva-load"
fi
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"

"$DEMO" --port "$PORT" --threads "$THREADS" --max-connections $((CONNECTIONS + 400)) >"$WORK/demo.log" 2>&1 &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$DEMO_PID/status"; }
fds() { ls "/proc/$DEMO_PID/fd" | wc -l; }
# The demo's gauges, summed over loops: what the engine holds (streams, transports, timers, queued bytes) and what the
# heap holds (in use by the program vs free in the allocator), so RSS growth can be told from live-data growth.
gauges() {
    curl -s "http://127.0.0.1:$PORT/metrics" | awk '
        /^minerva_(streams|transports|timer_entries|queued_bytes|http_connections)[{ ]/ {
            name = $1; sub(/[{].*/, "", name); sum[name] += $NF }
        /^minerva_heap_bytes[{]state="in_use"/ { inuse = $NF }
        /^minerva_heap_bytes[{]state="free"/ { free = $NF }
        END {
            printf "heap in use %.1f MB, free %.1f MB;", inuse / 1e6, free / 1e6
            for (n in sum) printf " %s %d", substr(n, 9), sum[n]
        }'
}
idle_rss="$(rss)"
idle_fds="$(fds)"
echo "soak: $CONNECTIONS connections ($HOLD held long-polls, $ACTIVE echoing) for $MINUTES min, demo --threads $THREADS"
echo "idle server: RSS $idle_rss KiB, $idle_fds descriptors"

"$LOAD" --host 127.0.0.1 --port "$PORT" --hold "$HOLD" >"$WORK/hold.out" 2>"$WORK/hold.err" &
HOLD_PID=$!
PIDS+=("$HOLD_PID")
for _ in $(seq 1 1200); do
    grep -q '^open' "$WORK/hold.out" 2>/dev/null && break
    kill -0 "$HOLD_PID" 2>/dev/null || { cat "$WORK/hold.err" >&2; exit 1; }
    sleep 0.1
done
grep -q '^open' "$WORK/hold.out" || { echo "the $HOLD long-polls did not open within 120 s" >&2; exit 1; }
echo "held: $(head -1 "$WORK/hold.out"); server RSS $(rss) KiB, $(fds) descriptors"

"$LOAD" --host 127.0.0.1 --port "$PORT" --streams "$ACTIVE" --duration "$SECONDS_TOTAL" --warmup 5 \
    >"$WORK/echo.out" 2>"$WORK/echo.err" &
ECHO_PID=$!
PIDS+=("$ECHO_PID")

samples="$WORK/samples"
start=$(date +%s)
first_rss=""
while kill -0 "$ECHO_PID" 2>/dev/null; do
    sleep 30
    kill -0 "$ECHO_PID" 2>/dev/null || break
    now=$(($(date +%s) - start))
    r="$(rss)"
    [ -z "$first_rss" ] && [ "$now" -ge 60 ] && first_rss="$r"
    echo "$now $r $(fds)" | tee -a "$samples" | awk '{ printf "t=%ss RSS %s KiB, %s descriptors", $1, $2, $3 }'
    echo "; $(gauges)"
    if [ "$now" -gt $((SECONDS_TOTAL + 120)) ]; then echo "echo load overran; stopping" >&2; break; fi
done
wait "$ECHO_PID" 2>/dev/null || true
last_rss="$(rss)"
loaded_fds="$(fds)"
echo "echo load ($ACTIVE streams, $MINUTES min):"
cat "$WORK/echo.out"
kill "$HOLD_PID" 2>/dev/null || true
wait "$HOLD_PID" 2>/dev/null || true
# A client's FIN is taken as a half-close (RFC 9112 9.6): a held long-poll is still answered, at its maxt (25 s) at the
# latest, before its socket closes. So descriptors get up to 40 s to come back to the idle count.
left=$(date +%s)
end_fds="$(fds)"
while [ "$end_fds" -gt "$idle_fds" ] && [ $(($(date +%s) - left)) -lt 40 ]; do sleep 1; end_fds="$(fds)"; done
echo "descriptors back to $end_fds, $(($(date +%s) - left)) s after the clients left"
end_rss="$(rss)"
healthz="$(curl -s -o /dev/null -w '%{http_code} in %{time_total}s' "http://127.0.0.1:$PORT/healthz")"
python3 - "$first_rss" "$last_rss" "$idle_fds" "$end_fds" "$loaded_fds" "$end_rss" "$idle_rss" "$healthz" <<'PY'
import sys
first, last, idle_fds, end_fds, loaded_fds, end_rss, idle_rss, healthz = sys.argv[1:]
first, last = int(first or last), int(last)
drift = (last - first) * 100 / first
print(f"RSS drift from the first minute to the end, under load: {first} -> {last} KiB ({drift:+.2f}%; goal within 2%)")
print(f"descriptors: {idle_fds} idle, {loaded_fds} under load, {end_fds} once the clients had left "
      f"({'no leak' if int(end_fds) <= int(idle_fds) else 'LEAK?'}); RSS then {end_rss} KiB (idle {idle_rss} KiB)")
print(f"/healthz after the soak: {healthz}")
sys.exit(0 if abs(drift) < 2 and int(end_fds) <= int(idle_fds) else 1)
PY
