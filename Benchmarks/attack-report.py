#!/usr/bin/env python3
"""Issue 12's attacks, replayed against a release minerva-demo, with what /healthz latency and the server's RSS do.

Bounded (about 2 minutes) and self-stopping. Phases, each on a fresh demo process:
  slow-post      ATTACKERS connections each send a POST head with Content-Length: 100000, then one body byte every 5 s
                 (the slow POST of issue 12 item 1), for 45 s, with the demo at --max-connections LIMIT (ATTACKERS is
                 LIMIT + 500, so the attack fills the limit). /healthz is fetched every 200 ms on a new connection.
  amplification  40 POSTs of a ~1 MiB SackFrame that is rejected (acked_unsent_strings), then 20 POSTs of a 2 MiB body
                 of 260,000 `echo:x` strings on new streams; RSS is sampled until the streams have expired
                 (--idle-timeout 10) and the server has been quiet for a while.
Prints one summary block per phase. Usage: Benchmarks/attack-report.py [--demo PATH] [--limit N]
"""
import argparse
import os
import random
import selectors
import socket
import statistics
import string
import subprocess
import sys
import time

HOST = "127.0.0.1"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_demo(binary, port, *flags):
    proc = subprocess.Popen([binary, "--port", str(port), *flags], stdout=subprocess.DEVNULL,
                            stderr=open(f"/tmp/attack-demo-{port}.log", "w"))
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"demo on port {port} did not start")


def healthz(port, timeout=5.0):
    """One GET /healthz on a new connection: seconds taken, or None if it failed or timed out."""
    start = time.monotonic()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                return None
    except OSError:
        return None
    return time.monotonic() - start


def summarize(name, samples):
    ok = sorted(x for x in samples if x is not None)
    failed = sum(1 for x in samples if x is None)
    if not ok:
        return f"{name}: {len(samples)} probes, all failed"
    p99 = ok[min(len(ok) - 1, int(len(ok) * 0.99))]
    return (f"{name}: {len(samples)} probes, {failed} failed; latency p50 {statistics.median(ok) * 1000:.2f} ms, "
            f"p99 {p99 * 1000:.2f} ms, max {ok[-1] * 1000:.2f} ms")


def slow_post(binary, port, limit):
    proc = start_demo(binary, port, "--max-connections", str(limit))
    attackers = limit + 500
    sel = selectors.DefaultSelector()
    socks = []
    head = (b"POST /_minerva/io/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 100000\r\n\r\n")
    baseline = [healthz(port) for _ in range(10)]
    rss_before = rss_kib(proc.pid)
    for _ in range(attackers):
        try:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((HOST, port))
            socks.append(s)
            sel.register(s, selectors.EVENT_WRITE)
        except OSError:
            break
    sent_head = set()
    closed_at = {}
    probes = []
    start = time.monotonic()
    next_byte = start
    next_probe = start
    peak_rss = rss_before
    while time.monotonic() - start < 45:
        now = time.monotonic()
        for key, events in sel.select(timeout=0.05):
            s = key.fileobj
            if events & selectors.EVENT_WRITE and s not in sent_head:
                try:
                    s.send(head)
                    sent_head.add(s)
                except OSError:
                    closed_at[s] = now - start
                    sel.unregister(s)
                    continue
                sel.modify(s, selectors.EVENT_READ)
            elif events & selectors.EVENT_READ:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    closed_at[s] = now - start
                    sel.unregister(s)
        if now >= next_byte:
            next_byte = now + 5
            for s in list(sent_head):
                if s not in closed_at:
                    try:
                        s.send(b"x")
                    except OSError:
                        closed_at[s] = now - start
                        try:
                            sel.unregister(s)
                        except (KeyError, ValueError):
                            pass
        if now >= next_probe:
            next_probe = now + 0.2
            probes.append(healthz(port, timeout=2.0))
            peak_rss = max(peak_rss, rss_kib(proc.pid))
    for s in socks:
        s.close()
    time.sleep(1)
    after = [healthz(port) for _ in range(10)]
    rss_after = rss_kib(proc.pid)
    proc.terminate()
    proc.wait(timeout=15)
    times = sorted(closed_at.values())
    print(f"== slow POST: {attackers} connections against --max-connections {limit}, one body byte per 5 s, 45 s")
    print(summarize("/healthz before", baseline))
    print(summarize("/healthz during", probes))
    print(summarize("/healthz after", after))
    print(f"attack connections closed by the server within 45 s: {len(times)} of {attackers}"
          + (f" (first at {times[0]:.1f} s, median {statistics.median(times):.1f} s)" if times else ""))
    print(f"server RSS: before {rss_before} KiB, peak {peak_rss} KiB, after {rss_after} KiB")
    return sum(1 for p in probes if p is None), len(probes)


def hello(stream_id, maxt=0):
    return ('{"tnum":0,"new":1,"ver":2,"id":"%s","ming":1,"maxb":1073741824,"maxt":%d,"maxia":0,"seenack":"|-1",'
            '"format":2}H\n' % (stream_id, maxt)).encode()


def post(port, body):
    with socket.create_connection((HOST, port), timeout=30) as s:
        s.sendall(b"POST /_minerva/io/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def new_id():
    return "".join(random.choice(string.ascii_letters) for _ in range(26))


def amplification(binary, port):
    proc = start_demo(binary, port, "--idle-timeout", "10", "--max-new-streams-per-second", "0")
    for _ in range(5):
        healthz(port)
    rss_start = rss_kib(proc.pid)
    sack = ",".join(str(n) for n in range(1, 130000)).encode()[:1_040_000]
    sack = sack[:sack.rfind(b",")]
    kills = 0
    t0 = time.monotonic()
    for _ in range(40):
        answer = post(port, hello(new_id()) + sack + b"|-1A\n")
        kills += b"acked_unsent_strings" in answer
    sack_rss = rss_kib(proc.pid)
    echo_body = hello(new_id()) + b"echo:x \n" * 260_000
    resets = 0
    for _ in range(20):
        answer = post(port, hello(new_id()) + b"echo:x \n" * 260_000)
        resets += b"limit exceeded" in answer or b"|0!" in answer
    attack_seconds = time.monotonic() - t0
    peak = rss_kib(proc.pid)
    samples = [(0.0, peak)]
    probes = []
    start = time.monotonic()
    while time.monotonic() - start < 30:
        time.sleep(1)
        probes.append(healthz(port))
        samples.append((time.monotonic() - start, rss_kib(proc.pid)))
    rss_end = samples[-1][1]
    proc.terminate()
    proc.wait(timeout=15)
    print(f"== memory amplification: 40 rejected ~1 MiB SACKs, then 20 bodies of 260,000 echo:x "
          f"({len(echo_body) // 1024} KiB each), streams expire after 10 s")
    print(f"rejected SACK answers with acked_unsent_strings: {kills} of 40; echo bodies answered with a reset: "
          f"{resets} of 20; attack took {attack_seconds:.1f} s")
    print(f"server RSS: start {rss_start} KiB, after the SACKs {sack_rss} KiB, after the echo bodies {peak} KiB, "
          f"30 s later {rss_end} KiB (+{rss_end - rss_start} KiB over start)")
    print("RSS over time (s: KiB): " + ", ".join(f"{t:.0f}: {k}" for t, k in samples[::5]))
    print(summarize("/healthz after the attack", probes))
    return peak - rss_start, rss_end - rss_start


def main():
    parser = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--demo", default=os.path.join(root, ".build/release/minerva-demo"))
    parser.add_argument("--limit", type=int, default=2000, help="--max-connections for the slow-POST phase")
    parser.add_argument("--port", type=int, default=18751)
    args = parser.parse_args()
    failed, probes = slow_post(args.demo, args.port, args.limit)
    amplification(args.demo, args.port + 1)
    if failed > probes // 10:
        sys.exit(f"/healthz failed {failed} of {probes} times during the slow POST")


if __name__ == "__main__":
    main()
