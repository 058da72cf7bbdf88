"""The cluster checks of issue 10 with the real parts: a redis-server (own temp dir, no persistence), 3 minerva-demo
nodes with --redis, and haproxy in HTTP mode balancing EVERY request round-robin (no stickiness); then, through the
balancer and node by node: echoes, a streaming transport relayed, concurrent creation claims, the chat across nodes,
WebSockets relayed to their stream's owner (Python websockets client), the browser suite of our client (--browser,
every transport), the original client (--original FILE), the figures, a Redis restart and a node kill (also of the
owner of a relayed WebSocket). Every process it starts is stopped at the end; every wait is bounded.

Run: python3 Tests/Cluster/cluster_check.py --binary .build/release/minerva-demo [--browser] [--original FILE]
Prints one line per check ("PASS name" / "FAIL name: why") and "cluster: N passed, M failed".
"""

import argparse
import concurrent.futures
import csv
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)
import wire  # noqa: E402
import wsclient  # noqa: E402

RESULTS = []
FIGURES = {}


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:
            pass
        time.sleep(step)
    return False


def http_ok(url):
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200


def redis_cli(port, *args):
    out = subprocess.run(['redis-cli', '-p', str(port), '--raw', *args], capture_output=True, text=True, timeout=5)
    return out.stdout.strip()


class Cluster:
    def __init__(self, binary, static_dir, nodes=3, threads=1):
        self.threads = threads
        self.tmp = tempfile.mkdtemp(prefix='minerva-cluster.')
        self.binary = binary
        self.static_dir = static_dir
        self.redis_port = free_port()
        self.redis = None
        self.start_redis()
        self.ports = [free_port() for _ in range(nodes)]
        self.socket_ports = [free_port() for _ in range(nodes)]
        self.nodes = [None] * nodes
        for i in range(nodes):
            self.start_node(i)
        self.haproxy_port = free_port()
        self.single_port = free_port()
        self.stats_port = free_port()
        self.haproxy = None
        self.start_haproxy()
        self.base = 'http://127.0.0.1:%d' % self.haproxy_port
        self.single = 'http://127.0.0.1:%d' % self.single_port

    def node_base(self, i):
        return 'http://127.0.0.1:%d' % self.ports[i]

    def node_address(self, i):
        return '127.0.0.1:%d' % self.ports[i]

    def start_redis(self):
        log = open(os.path.join(self.tmp, 'redis.log'), 'a')
        self.redis = subprocess.Popen(
            ['redis-server', '--port', str(self.redis_port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
             '--dir', self.tmp], stdout=log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: redis_cli(self.redis_port, 'PING') == 'PONG', 10):
            raise RuntimeError('redis-server did not start')

    def start_node(self, i):
        log = open(os.path.join(self.tmp, 'node%d.log' % i), 'a')
        self.nodes[i] = subprocess.Popen(
            [self.binary, '--host', '127.0.0.1', '--port', str(self.ports[i]), '--static-dir', self.static_dir,
             '--redis', 'redis://127.0.0.1:%d' % self.redis_port, '--threads', str(self.threads),
             '--socket-port', str(self.socket_ports[i]),
             '--log-level', os.environ.get('MINERVA_CLUSTER_LOG_LEVEL', 'info')], stdout=log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: http_ok(self.node_base(i) + '/healthz'), 20):
            raise RuntimeError('node %d did not start' % i)
        if not wait_until(lambda: redis_cli(self.redis_port, 'EXISTS', 'minerva:node:' + self.node_address(i)) == '1',
                          10):
            raise RuntimeError('node %d did not join' % i)

    def start_haproxy(self):
        config = self.haproxy_config()
        path = os.path.join(self.tmp, 'haproxy.cfg')
        with open(path, 'w') as f:
            f.write(config)
        log = open(os.path.join(self.tmp, 'haproxy.log'), 'a')
        self.haproxy = subprocess.Popen(['haproxy', '-db', '-f', path], stdout=log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: http_ok('http://127.0.0.1:%d/healthz' % self.haproxy_port), 10):
            raise RuntimeError('haproxy did not start')

    def haproxy_config(self):
        servers = ''.join('    server node%d 127.0.0.1:%d check inter 500 fall 1 rise 2\n' % (i + 1, p)
                          for i, p in enumerate(self.ports))
        return f"""# Every request goes to the next node (round-robin, no stickiness): http-server-close ends each
# server-side connection after its response, so no request follows the previous one to the same node.
global
    maxconn 4096

defaults
    mode http
    option http-server-close
    # Streaming answers are many small writes: without this haproxy may hold them back (MSG_MORE) ~200 ms each.
    option http-no-delay
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 10s

frontend minerva
    bind 127.0.0.1:{self.haproxy_port}
    default_backend nodes

backend nodes
    balance roundrobin
{servers}
# The same balancer in front of one node only (the 1-node figure of the same run).
frontend single
    bind 127.0.0.1:{self.single_port}
    default_backend one

backend one
    server node1 127.0.0.1:{self.ports[0]}

listen stats
    bind 127.0.0.1:{self.stats_port}
    stats enable
    stats uri /stats
"""

    def served_counts(self):
        """Requests each node got from the balancer (haproxy's stats)."""
        with urllib.request.urlopen('http://127.0.0.1:%d/stats;csv' % self.stats_port, timeout=2) as r:
            text = r.read().decode().lstrip('# ')
        counts = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row['pxname'] == 'nodes' and row['svname'].startswith('node'):
                counts[row['svname']] = int(row['stot'] or 0)
        return counts

    def owner(self, stream_id):
        return redis_cli(self.redis_port, 'GET', 'minerva:stream:' + stream_id)

    def stop(self):
        for p in [self.haproxy, self.redis] + self.nodes:
            if p and p.poll() is None:
                p.terminate()
        for p in [self.haproxy, self.redis] + self.nodes:
            if p:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.tmp)):
            if name.endswith('.log'):
                with open(os.path.join(self.tmp, name), errors='replace') as f:
                    out.append('--- %s (last lines)\n%s' % (name, ''.join(f.readlines()[-15:])))
        return '\n'.join(out)


def check(name):
    def wrap(fn):
        def run(*args):
            started = time.monotonic()
            try:
                fn(*args)
                RESULTS.append((name, True, ''))
                print('PASS %s (%.1f s)' % (name, time.monotonic() - started), flush=True)
            except Exception as e:  # a failed check never stops the others
                RESULTS.append((name, False, str(e)))
                print('FAIL %s: %s' % (name, e), flush=True)
        return run
    return wrap


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


@check('echo through the balancer, every request round-robin')
def check_echo(c):
    before = c.served_counts()
    streams = [wire.WireStream() for _ in range(3)]
    for i in range(30):
        for n, s in enumerate(streams):
            s.echo(c.base, 's%d-%d' % (n, i))
    for n, s in enumerate(streams):
        expect(s.received == ['s%d-%d' % (n, i) for i in range(30)], 'stream %d got %r' % (n, s.received[:5]))
    after = c.served_counts()
    served = {k: after[k] - before.get(k, 0) for k in after}
    expect(len(served) == 3 and all(v > 20 for v in served.values()), 'balancer spread %r' % served)
    owners = {c.owner(s.id) for s in streams}
    expect(all(owners), 'every stream has an owner in redis: %r' % owners)


@check('a streaming transport relayed from a non-owner node')
def check_streaming(c):
    s = wire.WireStream()
    s.request(c.node_base(0), ['echo:first'])
    expect(c.owner(s.id) == c.node_address(0), 'owner %r' % c.owner(s.id))
    # A streaming primary on node 2 (relayed to node 1), strings sent through node 3.
    hello = s.hello(False).replace('"ming":0', '"ming":1')
    body = hello.encode()
    sock = socket.create_connection(('127.0.0.1', c.ports[1]), timeout=10)
    sock.sendall(b'POST /_minerva/io/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n' % len(body) + body)
    got = b''
    for i in range(5):
        s.request(c.node_base(2), ['echo:streamed%d' % i], primary=False)
    deadline = time.monotonic() + 10
    while b'streamed4 ' not in got and time.monotonic() < deadline:
        got += sock.recv(65536)
    sock.close()
    for i in range(5):
        expect(b'streamed%d ' % i in got, 'streamed%d missing from %r' % (i, got[-300:]))
    expect(b'Transfer-Encoding: chunked' in got, 'a streaming answer is chunked')


@check('concurrent first hellos of one stream on all 3 nodes: one owner, one stream')
def check_claims(c):
    for round_ in range(20):
        s = wire.WireStream()
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = []
            for i in range(3):
                twin = wire.WireStream(s.id)
                futures.append(pool.submit(twin.request, c.node_base(i), [], True, True))
            for f in futures:
                f.result(timeout=20)
        owner = c.owner(s.id)
        expect(owner in [c.node_address(i) for i in range(3)], 'round %d: owner %r' % (round_, owner))
        s.created = True
        for i in range(3):
            s.echo(c.node_base(i), 'r%d-%d' % (round_, i))
        expect(s.received == ['r%d-%d' % (round_, i) for i in range(3)], 'round %d: %r' % (round_, s.received))


@check('unknown stream without new: stream_attach_failure through the balancer')
def check_unknown(c):
    for _ in range(3):
        s = wire.WireStream()
        s.request(c.base, [], new=False)
        expect(s.killed == 'stream_attach_failure', 'got %r' % s.killed)


@check('chat across nodes (begin_chat, broadcast:), each sender in order')
def check_chat(c):
    a, b = wire.WireStream(), wire.WireStream()
    a.request(c.node_base(0), ['begin_chat'])
    b.request(c.node_base(1), ['begin_chat'])
    expect(c.owner(a.id) != c.owner(b.id), 'the two members live on two nodes')
    for i in range(50):
        a.request(c.base, ['broadcast:a%d' % i], primary=False)
    b.request(c.base, ['broadcast:from-b'], primary=False)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (any('from-b' in x for x in a.received)
                                               and any('a49' in x for x in b.received)):
        if not any('a49' in x for x in b.received):
            b.request(c.base, timeout=3)
        if not any('from-b' in x for x in a.received):
            a.request(c.base, timeout=3)
    texts_b = [x.rsplit('|', 1)[-1] for x in b.received if x.startswith('TEXT|')]
    expect([t for t in texts_b if t.startswith('a')] == ['a%d' % i for i in range(50)],
           'b got a\'s lines in order: %r' % texts_b[:8])
    expect(any(x.endswith('|from-b') for x in a.received), 'a got b\'s line: %r' % a.received[-3:])


def ws_url(port):
    return 'ws://127.0.0.1:%d/_minerva/ws' % port


@check('WebSockets relayed to the owner node: a stream created on node 1 echoes over WebSockets on nodes 2 and 3')
def check_ws_relay(c):
    s = wire.WireStream()
    s.echo(c.node_base(0), 'first')
    expect(c.owner(s.id) == c.node_address(0), 'owner %r' % c.owner(s.id))

    async def body():
        for node in (1, 2, 0):
            t = await wsclient.WSTransport.open(ws_url(c.ports[node]), s)
            for i in range(20):
                await t.echo('n%d-%d' % (node, i))
            await t.close()
        # One more over HTTP through the balancer: the stream is the same one throughout.
        s.echo(c.base, 'last')
        # A stream whose first transport is a WebSocket is claimed by the node it reached; a WebSocket through
        # another node reaches it too.
        u = wire.WireStream()
        t = await wsclient.WSTransport.open(ws_url(c.ports[1]), u, new=True)
        await t.echo('u1')
        owner = c.owner(u.id)
        t2 = await wsclient.WSTransport.open(ws_url(c.ports[2]), u)
        await t2.echo('u2')
        await t2.close()
        await t.close()
        return u, owner
    u, owner = wsclient.run(body())
    expect(s.received == ['first'] + ['n%d-%d' % (n, i) for n in (1, 2, 0) for i in range(20)] + ['last'],
           'strings in order once each: %r' % s.received[:8])
    expect(s.killed is None and s.reset is None, 'no kill or reset')
    expect(owner == c.node_address(1), 'a WebSocket-created stream is claimed by its node: %r' % owner)
    expect(u.received == ['u1', 'u2'], 'the WebSocket-created stream: %r' % u.received)


@check('WebSockets through the balancer: new streams on any node, later WebSockets reach them')
def check_ws_balancer(c):
    url = 'ws://127.0.0.1:%d/_minerva/ws' % c.haproxy_port

    async def body():
        streams = [wire.WireStream() for _ in range(6)]
        for n, st in enumerate(streams):
            t = await wsclient.WSTransport.open(url, st, new=True)
            await t.echo('a%d' % n)
            await t.close()
        for round_ in range(3):
            for n, st in enumerate(streams):
                t = await wsclient.WSTransport.open(url, st)
                await t.echo('b%d-%d' % (n, round_))
                await t.close()
        return streams
    streams = wsclient.run(body())
    owners = {c.owner(st.id) for st in streams}
    expect(len(owners) == 3, 'streams created on all 3 nodes: %r' % owners)
    for n, st in enumerate(streams):
        expect(st.received == ['a%d' % n] + ['b%d-%d' % (n, r) for r in range(3)], 'stream %d: %r' % (n, st.received))


class Int32Socket:
    """A socket-mode transport (PROTOCOL.md 3.2, int32 framing) carrying a wire.WireStream."""

    def __init__(self, port, stream, new=False):
        self.stream = stream
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.buffer = b''
        self.transport = wsclient.WSTransport(None, stream)  # its frame bookkeeping
        self.sock.sendall(b'<int32/>\n' + self.frame(wsclient.socket_hello(stream, new)))

    @staticmethod
    def frame(text):
        data = text.encode()
        return len(data).to_bytes(4, 'big') + data

    def send(self, *strings):
        s = self.stream
        first = s.next_send
        for text in strings:
            s.unacked.append((s.next_send, text))
            s.next_send += 1
        self.sock.sendall(self.frame('%dN' % first) + b''.join(self.frame(t + ' ') for t in strings))

    def read_frame(self):
        """The next frame, or None when the connection ends."""
        while True:
            if len(self.buffer) >= 4:
                n = int.from_bytes(self.buffer[:4], 'big')
                if len(self.buffer) >= 4 + n:
                    frame, self.buffer = self.buffer[4:4 + n].decode(), self.buffer[4 + n:]
                    return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk

    def until(self, text):
        while True:
            frame = self.read_frame()
            if frame is None:
                raise RuntimeError('socket ended before %r (kill=%r)' % (text, self.stream.killed))
            if not frame.endswith('^') and self.transport.take(frame) == text:
                return

    def frames_until_y(self):
        """Every frame until `Y` (the server then leaves the closing to the client) or the end."""
        out = []
        while True:
            frame = self.read_frame()
            if frame is None:
                return out
            if not frame.endswith('^'):
                out.append(frame)
                self.transport.take(frame)
            if frame == 'Y':
                return out

    def close(self):
        self.sock.close()


@check('socket-mode (int32) transports relayed to the owner node, as WebSockets between the nodes')
def check_socket_relay(c):
    s = wire.WireStream()
    s.echo(c.node_base(0), 'first')
    expect(c.owner(s.id) == c.node_address(0), 'owner %r' % c.owner(s.id))
    for node in (1, 2, 0):
        t = Int32Socket(c.socket_ports[node], s)
        t.send(*['echo:i%d-%d' % (node, i) for i in range(20)])
        t.until('i%d-19' % node)
        t.close()
    expect(s.received == ['first'] + ['i%d-%d' % (n, i) for n in (1, 2, 0) for i in range(20)],
           'strings in order once each: %r' % s.received[:8])
    # A stream created over a socket is claimed by its node and reached through another one.
    u = wire.WireStream()
    t = Int32Socket(c.socket_ports[1], u, new=True)
    t.send('echo:u1')
    t.until('u1')
    expect(c.owner(u.id) == c.node_address(1), 'claimed by its node: %r' % c.owner(u.id))
    t2 = Int32Socket(c.socket_ports[2], u)
    t2.send('echo:u2')
    t2.until('u2')
    t2.close()
    t.close()
    # A stream no node knows: the protocol's own answer.
    t3 = Int32Socket(c.socket_ports[2], wire.WireStream())
    frames = t3.frames_until_y()
    t3.close()
    expect(frames == ['stream_attach_failureK', 'Y'], 'unknown stream over a socket: %r' % frames)
    # The owner's ending crosses the relay: a reset asked over a relayed socket.
    t4 = Int32Socket(c.socket_ports[1], s)
    t4.send('reset_me:bye')
    frames = t4.frames_until_y()
    t4.close()
    expect(frames[-2:] == ['bye|1!', 'Y'], 'a reset over a relayed socket: %r' % frames)


def ws_round_trips(port, stream, count):
    """`count` sequential echo round trips over one WebSocket to `port`; the latencies in ms."""
    async def body():
        t = await wsclient.WSTransport.open(ws_url(port), stream)
        await t.echo('warm')
        times = []
        for i in range(count):
            t0 = time.perf_counter()
            await t.echo('w%d' % i)
            times.append((time.perf_counter() - t0) * 1000)
        await t.close()
        return times
    return wsclient.run(body())


def round_trips(base, count, s=None, conn_target=None):
    """`count` sequential echo round trips (each one long-poll request); returns the latencies in ms."""
    import http.client
    s = s or wire.WireStream()
    conn = None
    if conn_target:
        conn = http.client.HTTPConnection('127.0.0.1', conn_target, timeout=10)
    s.echo(base, 'warm', conn=conn)
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        s.echo(base, 'x%d' % i, conn=conn)
        times.append((time.perf_counter() - t0) * 1000)
    if conn:
        conn.close()
    return times


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


@check('figures: relay added latency (p50/p99), echo rt/s through 3 nodes vs 1 node')
def check_figures(c):
    s = wire.WireStream()
    s.request(c.node_base(0), ['echo:own'])
    expect(c.owner(s.id) == c.node_address(0), 'owner')
    direct, relayed = [], []
    for _ in range(4):  # interleaved, so both see the same machine load
        direct += round_trips(c.node_base(0), 250, s, c.ports[0])
        relayed += round_trips(c.node_base(1), 250, s, c.ports[1])
    FIGURES['echo round trip at the owner p50/p99 ms'] = (round(pct(direct, 50), 3), round(pct(direct, 99), 3))
    FIGURES['echo round trip via another node p50/p99 ms'] = (round(pct(relayed, 50), 3), round(pct(relayed, 99), 3))
    FIGURES['relay added p50/p99 ms'] = (round(pct(relayed, 50) - pct(direct, 50), 3),
                                         round(pct(relayed, 99) - pct(direct, 99), 3))
    w = wire.WireStream()
    w.echo(c.node_base(0), 'own')
    ws_direct, ws_relayed = [], []
    for _ in range(4):
        ws_direct += ws_round_trips(c.ports[0], w, 500)
        ws_relayed += ws_round_trips(c.ports[1], w, 500)
    FIGURES['WebSocket echo round trip at the owner p50/p99 ms'] = (round(pct(ws_direct, 50), 3),
                                                                    round(pct(ws_direct, 99), 3))
    FIGURES['WebSocket echo round trip via another node p50/p99 ms'] = (round(pct(ws_relayed, 50), 3),
                                                                        round(pct(ws_relayed, 99), 3))
    FIGURES['WebSocket relay added p50/p99 ms'] = (round(pct(ws_relayed, 50) - pct(ws_direct, 50), 3),
                                                   round(pct(ws_relayed, 99) - pct(ws_direct, 99), 3))

    def rate(base, seconds=4.0, clients=8):
        stop = time.monotonic() + seconds
        counts = [0] * clients

        def worker(k):
            st = wire.WireStream()
            st.echo(base, 'w')
            while time.monotonic() < stop:
                st.echo(base, 'e')
                counts[k] += 1
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            list(pool.map(worker, range(clients)))
        return sum(counts) / seconds
    FIGURES['echo rt/s through haproxy, 3 nodes (8 python clients)'] = round(rate(c.base))
    FIGURES['echo rt/s through haproxy, 1 node (8 python clients)'] = round(rate(c.single))


def load_figures(c, binary):
    """minerva-load (32 long-poll streams, 4 s) through haproxy: 3 nodes and 1 node alternately, twice each."""
    for run in range(2):
        for name, port in (('3 nodes', c.haproxy_port), ('1 node', c.single_port)):
            out = subprocess.run([binary, '--streams', '32', '--duration', '4', '--port', str(port)],
                                 capture_output=True, text=True, timeout=60).stdout.strip().splitlines()
            fields = dict(kv.split('=', 1) for kv in (out[-1].split() if out else []) if '=' in kv)
            FIGURES['minerva-load 32 streams via haproxy, %s, run %d: rt/s, p50/p99 ms, errors' % (name, run + 1)] = (
                fields.get('round_trips_per_s'), fields.get('p50_ms'), fields.get('p99_ms'), fields.get('errors'))


@check('redis restart: nodes survive, reconnect, streams go on')
def check_redis_restart(c):
    s = wire.WireStream()
    s.echo(c.base, 'before')
    c.redis.terminate()
    c.redis.wait(timeout=10)
    down_at = time.monotonic()
    ok = errors = 0
    while time.monotonic() - down_at < 2:
        try:
            s.echo(c.base, 'down%d' % ok, timeout=5)
            ok += 1
        except Exception:
            errors += 1
    fresh_errors = 0
    try:
        wire.WireStream().request(c.node_base(1), [])
    except RuntimeError as e:
        fresh_errors += '503' in str(e)
    c.start_redis()
    up_at = time.monotonic()
    back = wait_until(lambda: all(redis_cli(c.redis_port, 'EXISTS', 'minerva:node:' + c.node_address(i)) == '1'
                                  for i in range(3)), 10)
    rejoined = time.monotonic() - up_at

    def new_streams_work():
        for i in range(3):
            t = wire.WireStream()
            t.echo(c.node_base(i), 'after')
            t.echo(c.base, 'after2')
        return True
    works = wait_until(new_streams_work, 10, step=0.2)
    working = time.monotonic() - up_at
    s.echo(c.base, 'after-restart')
    FIGURES['redis down 2 s: echoes ok / failed on a live stream'] = (ok, errors)
    FIGURES['redis back: all nodes re-advertised after s'] = round(rejoined, 2)
    FIGURES['redis back: new streams on every node after s'] = round(working, 2)
    expect(all(p.poll() is None for p in c.nodes), 'every node still runs')
    expect(fresh_errors == 1, 'a new stream without redis gets 503')
    expect(back and works, 'nodes came back')
    expect(c.owner(s.id), 'the owner re-claimed its stream')


@check('kill -9 of a node: its streams fail over, the others do not notice')
def check_node_kill(c):
    victim, other = wire.WireStream(), wire.WireStream()
    victim.echo(c.node_base(2), 'v')
    other.echo(c.node_base(0), 'o')
    expect(c.owner(victim.id) == c.node_address(2), 'victim on node 3')
    # A second stream of node 3 carried over a WebSocket relayed by node 1 (watched in a thread).
    watched = wire.WireStream()
    watched.echo(c.node_base(2), 'w')
    watcher = WSKillWatcher(c.ports[0], watched)
    expect(watcher.ready.wait(10) and not watcher.error, 'relayed WebSocket up: %r' % watcher.error)
    kill_sent = time.monotonic()
    c.nodes[2].send_signal(signal.SIGKILL)
    c.nodes[2].wait(timeout=5)
    killed_at = time.monotonic()
    c.ws_kill = (watcher, kill_sent, watched)
    learned = None
    while time.monotonic() - killed_at < 15:
        try:
            victim.request(c.base, ['echo:after'], timeout=3)
        except Exception:
            time.sleep(0.05)
            continue
        if victim.killed == 'stream_attach_failure':
            learned = time.monotonic() - killed_at
            break
    FIGURES['node kill: its stream got stream_attach_failure after s'] = learned and round(learned, 2)
    expect(learned is not None and learned < 10, 'victim learned within 10 s: %r' % learned)
    for i in range(20):
        other.echo(c.base, 'still%d' % i)
    fresh = wire.WireStream()
    fresh.echo(c.base, 'new-after-kill')
    gone = wait_until(lambda: redis_cli(c.redis_port, 'EXISTS', 'minerva:node:' + c.node_address(2)) == '0', 10)
    FIGURES['node kill: its membership key gone after s'] = round(time.monotonic() - killed_at, 2)
    expect(gone, 'the dead node left the membership')


class WSKillWatcher(threading.Thread):
    """A WebSocket for `stream` through the node at `port` (relayed to the stream's owner): one echo, then it
    reads until the socket ends and notes when."""

    def __init__(self, port, stream):
        super().__init__(daemon=True)
        self.port, self.stream = port, stream
        self.ready = threading.Event()
        self.ended_at = self.code = self.error = None
        self.start()

    def run(self):
        async def body():
            t = await wsclient.WSTransport.open(ws_url(self.port), self.stream)
            await t.echo('before-kill')
            self.ready.set()
            await t.frames_until_end(30)
            self.ended_at = time.monotonic()
            self.code = t.ws.close_code
        try:
            wsclient.run(body(), timeout=60)
        except Exception as e:  # noqa: BLE001 (reported by the check)
            self.error = repr(e)
            self.ready.set()


@check('kill -9 of the owner of a relayed WebSocket: the client\'s WebSocket ends promptly, '
       'its next one gets stream_attach_failure')
def check_ws_kill(c):
    expect(getattr(c, 'ws_kill', None), 'the node kill check ran')
    watcher, kill_sent, stream = c.ws_kill
    watcher.join(15)
    expect(watcher.ended_at is not None, 'the relayed WebSocket ended: %r' % watcher.error)
    ended = watcher.ended_at - kill_sent
    FIGURES['node kill: a WebSocket relayed to it ended after s (close code)'] = (round(ended, 3), watcher.code)
    expect(ended < 10, 'ended within 10 s: %.2f' % ended)

    async def again():
        t = await wsclient.WSTransport.open(ws_url(c.ports[1]), stream)
        frames, code, _ = await t.frames_until_end(10)
        return frames, code
    started = time.monotonic()
    frames, code = wsclient.run(again())
    FIGURES['node kill: the next WebSocket of its stream, answer after s'] = round(time.monotonic() - started, 3)
    expect(stream.killed == 'stream_attach_failure', 'the next WebSocket got %r (close %r)' % (frames, code))


def run_browser(c):
    # Every transport: WebSockets are relayed to their stream's owner like HTTP requests.
    env = dict(os.environ, MINERVA_SERVER_URL=c.base, MINERVA_BROWSER_TESTS='1')
    proc = subprocess.run(['/usr/bin/python3', '-m', 'pytest', '-p', 'no:cacheprovider', '-q', '-s',
                           os.path.join(REPO, 'Client', 'test', 'browser', 'test_browser.py')],
                          env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout
    failures = out.find('= FAILURES =')
    print(out[failures:failures + 4000] if failures >= 0 else '', out[-1500:], sep='\n')
    import re
    m = re.search(r'^(?:(\d+) failed, )?(\d+) passed', proc.stdout, re.M)
    passed = int(m.group(2)) if m else 0
    failed = int(m.group(1) or 0) if m else 1
    RESULTS.append(('browser suite of our client through the balancer, every transport (%d passed, %d failed)' % (
                        passed, failed),
                    failed == 0 and passed > 0, proc.stdout[-500:]))
    print('%s browser suite through the balancer: %d passed, %d failed' % ('PASS' if failed == 0 and passed else 'FAIL',
                                                                            passed, failed), flush=True)


def run_original(c, client):
    shutil.copy(client, os.path.join(c.static_dir, 'minerva-client.js'))
    shutil.copy(os.path.join(REPO, 'Tests', 'OriginalClient', 'check.html'), os.path.join(c.static_dir, 'orig.html'))
    env = dict(os.environ, MINERVA_SERVER_URL=c.base)
    proc = subprocess.run(['/usr/bin/python3', os.path.join(REPO, 'Tests', 'OriginalClient', 'check_original_client.py'),
                           client], env=env, capture_output=True, text=True, timeout=300)
    print(proc.stdout[-2000:], proc.stderr[-2000:])
    RESULTS.append(('original compiled client through the balancer', proc.returncode == 0, proc.stdout[-300:]))
    print('%s original compiled client through the balancer' % ('PASS' if proc.returncode == 0 else 'FAIL'), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--binary', default=os.path.join(REPO, '.build', 'release', 'minerva-demo'))
    parser.add_argument('--browser', action='store_true', help='run the browser suite through the balancer')
    parser.add_argument('--original', help='the original compiled minerva-client.js (never committed)')
    parser.add_argument('--load', metavar='MINERVA_LOAD',
                        help='Benchmarks/Tools/minerva-load binary: echo rt/s through the balancer, 3 nodes vs 1 node')
    parser.add_argument('--threads', type=int, default=1, help='event-loop threads of each node')
    parser.add_argument('--serve', type=float, metavar='SECONDS',
                        help='only start the cluster and keep it up this long (for trying it by hand)')
    args = parser.parse_args()
    static = tempfile.mkdtemp(prefix='minerva-cluster-static.')
    for name in os.listdir(os.path.join(REPO, 'Client', 'test', 'browser')):
        path = os.path.join(REPO, 'Client', 'test', 'browser', name)
        if os.path.isfile(path):
            shutil.copy(path, static)
    c = Cluster(args.binary, static, threads=args.threads)
    try:
        print('cluster: redis :%d, nodes %s, haproxy :%d (1-node frontend :%d)' % (
            c.redis_port, ' '.join(':%d' % p for p in c.ports), c.haproxy_port, c.single_port), flush=True)
        if args.serve:
            print('serving http://127.0.0.1:%d/ for %.0f s' % (c.haproxy_port, args.serve), flush=True)
            time.sleep(args.serve)
            return
        check_echo(c)
        check_streaming(c)
        check_claims(c)
        check_unknown(c)
        check_chat(c)
        check_ws_relay(c)
        check_ws_balancer(c)
        check_socket_relay(c)
        if args.browser:
            run_browser(c)
        if args.original:
            run_original(c, args.original)
        check_figures(c)
        if args.load:
            load_figures(c, args.load)
        check_redis_restart(c)
        check_node_kill(c)
        check_ws_kill(c)
    finally:
        c.stop()
        failed = [r for r in RESULTS if not r[1]]
        if failed:
            print(c.logs())
        shutil.rmtree(c.tmp, ignore_errors=True)
        shutil.rmtree(static, ignore_errors=True)
    for key, value in FIGURES.items():
        print('figure: %s: %s' % (key, value))
    passed = sum(1 for r in RESULTS if r[1])
    print('cluster: %d passed, %d failed' % (passed, len(RESULTS) - passed))
    sys.exit(0 if passed == len(RESULTS) else 1)


if __name__ == '__main__':
    main()
