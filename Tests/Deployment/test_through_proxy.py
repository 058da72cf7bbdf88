"""Checks of a reverse proxy started with a documented config (deploy/): scripts/run-nginx-tests.sh runs them
through nginx and through HAProxy, with MINERVA_SERVER_URL naming the proxy, in front of a release minerva-demo.

  * HTTP streaming is not buffered: frames of a streaming response arrive while the response is still open
  * the WebSocket upgrade passes (Python `websockets`, subprotocol minerva.v2, an echo)
  * Host reaches the server unchanged (port included): a POST from the page's own origin is accepted, a foreign
    origin refused with 403
  * /healthz, /metrics (live counters) and /_minerva/minerva-client.js (the same bytes as Client/minerva-client.js)

Without MINERVA_SERVER_URL every test is skipped.
"""

import asyncio
import os
import socket
import time
import urllib.parse
import urllib.request
import zlib

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
SERVER = os.environ.get('MINERVA_SERVER_URL', '').rstrip('/')
pytestmark = pytest.mark.skipif(not SERVER, reason='set MINERVA_SERVER_URL (scripts/run-nginx-tests.sh does)')


def address():
    url = urllib.parse.urlsplit(SERVER)
    return url.hostname, url.port or 80


def hello(stream, ming, maxt=30, maxia=10):
    """A primary's hello that creates `stream` (PROTOCOL.md 2.5), with its final `H`."""
    return ('{"tnum":0,"ver":2,"new":1,"id":"%s","ming":%d,"maxt":%d,"maxia":%d,"eeds":null,"seenack":"|-1"}H'
            % (stream, ming, maxt, maxia))


def unique(prefix):
    """A 26-character stream id of its own per run (streams outlive the tests' connections)."""
    return (prefix + '%x' % time.time_ns() + 'z' * 26)[:26]


class ChunkedReader:
    """Reads one HTTP/1.1 response from a socket, head and chunked body (gunzipped if gzip), as the bytes come."""

    def __init__(self, sock):
        self.sock = sock
        self.raw = b''
        self.head = None
        self.body = b''
        self.ended = False
        self.gunzip = None

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError('closed by the proxy; body so far %r' % self.body)
        self.raw += data

    def read_head(self):
        while b'\r\n\r\n' not in self.raw:
            self._fill()
        self.head, self.raw = self.raw.split(b'\r\n\r\n', 1)
        head = self.head.decode('latin-1')
        if 'content-encoding: gzip' in head.lower():
            self.gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return head

    def read_until(self, needle):
        """Decodes chunks until the body contains `needle`; notes whether the last chunk came."""
        while needle not in self.body:
            while b'\r\n' in self.raw:
                size_line, rest = self.raw.split(b'\r\n', 1)
                size = int(size_line.split(b';')[0], 16)
                if len(rest) < size + 2:
                    break
                if size == 0:
                    self.ended = True
                    return
                self.body += self.gunzip.decompress(rest[:size]) if self.gunzip else rest[:size]
                self.raw = rest[size + 2:]
                if needle in self.body:
                    return
            self._fill()


def post(path, body, headers):
    request = urllib.request.Request(SERVER + path, data=body.encode(), headers=headers, method='POST')
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_streaming_response_is_not_buffered():
    """A streaming primary (ming 1, maxt 30 s) echoes a string, then a second request uploads another: both echoes
    must arrive on the streaming response while it stays open. The request accepts gzip, as browsers do:
    run-nginx-tests.sh turns gzip on for text/plain, and nginx then compresses a buffered response in 32 KiB blocks,
    holding small writes back until the response ends (30 s later); unbuffered, it flushes each write."""
    host, port = address()
    stream = unique('nginxstream')
    body = hello(stream, ming=1) + '\n0N\necho:hi \n'
    sock = socket.create_connection((host, port), timeout=10)  # recv gives up after 10 s: buffered
    try:
        sock.sendall((f'POST /_minerva/io/ HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/plain\r\n'
                      f'Accept-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n{body}').encode())
        reader = ChunkedReader(sock)
        head = reader.read_head()
        assert head.startswith('HTTP/1.1 200'), head
        assert 'transfer-encoding: chunked' in head.lower(), head
        reader.read_until(b'\nhi \n')
        assert not reader.ended, 'the response ended: this was not streaming (%r)' % reader.body
        assert reader.body.startswith(b';)]}^\n'), reader.body
        assert b'\nC\n' in reader.body, reader.body
        # A secondary transport (no eeds) uploads the next string; its echo is written on the streaming primary.
        upload = ('{"tnum":1,"ver":2,"id":"%s","ming":0,"maxia":0,"seenack":"|-1"}H\n1N\necho:later \n' % stream)
        status, text = post('/_minerva/io/', upload, {'Content-Type': 'text/plain'})
        assert status == 200, (status, text)
        reader.read_until(b'\nlater \n')
        assert not reader.ended, 'the response ended: this was not streaming (%r)' % reader.body
    finally:
        sock.close()


def test_websocket_upgrade_passes():
    websockets = pytest.importorskip('websockets')
    host, port = address()

    async def body():
        ws = await websockets.connect(f'ws://{host}:{port}/_minerva/ws', subprotocols=['minerva.v2'])
        assert ws.subprotocol == 'minerva.v2'
        for message in (hello(unique('nginxws'), ming=1, maxia=0).replace('"maxt":30,', ''), '0N', 'echo:hi '):
            await ws.send(message)
        frames = []
        while len(frames) < 4:
            message = await ws.recv()
            if not message.endswith('^'):
                frames.append(message)
        assert frames == ['C', '|0A', '0N', 'hi ']
        await ws.close()
        assert ws.close_code == 1000

    asyncio.run(asyncio.wait_for(body(), 30))


def test_host_reaches_the_server_for_the_origin_check():
    host, port = address()
    own = f'http://{host}:{port}'
    status, text = post('/_minerva/io/', hello(unique('nginxorigin'), ming=0, maxia=0) + '\n',
                        {'Origin': own, 'Content-Type': 'text/plain'})
    assert status == 200 and text.startswith(';)]}^\n'), (status, text)
    status, _ = post('/_minerva/io/', hello(unique('nginxforeign'), ming=0, maxia=0) + '\n',
                     {'Origin': 'http://elsewhere.example', 'Content-Type': 'text/plain'})
    assert status == 403


def test_upload_near_the_body_limit_passes():
    """client_max_body_size must not be below the server's 2 MiB: a 1.5 MiB upload reaches the server."""
    big = 'y' * (1536 * 1024 - 100)
    status, text = post('/_minerva/io/', hello(unique('nginxbig'), ming=0, maxia=0) + '\n0N\n' + big + ' \n',
                        {'Content-Type': 'text/plain'})
    # A frame over the protocol's 1 MiB maximum: the server's own answer, so the body did reach it.
    assert status == 200 and 'frame_corruption' in text, (status, text[:200])


def test_health_metrics_and_client_script():
    with urllib.request.urlopen(SERVER + '/healthz', timeout=10) as response:
        assert response.read() == b'ok'
    with urllib.request.urlopen(SERVER + '/_minerva/minerva-client.js', timeout=10) as response:
        assert response.status == 200
        assert 'javascript' in response.headers['Content-Type']
        served = response.read()
    with open(os.path.join(REPO, 'Client', 'minerva-client.js'), 'rb') as f:
        assert served == f.read()
    # The tests above created streams; the counters are published every second.
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(SERVER + '/metrics', timeout=10) as response:
            assert response.headers['Content-Type'].startswith('text/plain')
            metrics = response.read().decode()
        created = [line for line in metrics.splitlines() if line.startswith('minerva_streams_created_total')]
        if created and float(created[0].split()[-1]) >= 1:
            break
        assert time.monotonic() < deadline, metrics[:2000]
        time.sleep(0.2)
