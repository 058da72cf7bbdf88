"""The WebSocket transport checked with a client we did not write: the `websockets` package (Debian 12's
python3-websockets 10.4) against a real minerva-demo on loopback (PROTOCOL.md 11.1, cases W1-W4, W7, W11, W13,
W14, and a 500-string echo). `websockets` checks the handshake itself (the Sec-WebSocket-Accept value, the
subprotocol), masks its frames, answers the close handshake and rejects malformed server frames.

Run with scripts/run-websocket-python-tests.sh (installs what it needs, builds the demo); MINERVA_DEMO_BINARY names
the binary, MINERVA_DEMO_THREADS the event loops (1 by default).
"""

import asyncio
import os
import socket
import subprocess
import time
import urllib.request

import pytest
import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
STREAM = 'x' * 26


def hello(*edits):
    """`HS{edits}` of PROTOCOL.md 9 (the socket flavour) with its final `H`."""
    pairs = [('tnum', '0'), ('new', '1'), ('ver', '2'), ('id', f'"{STREAM}"'), ('ming', '1'),
             ('maxb', '1073741824'), ('maxt', '1073741824'), ('maxia', '0'), ('seenack', '"|-1"')]
    for edit in edits:
        if edit.startswith('-'):
            pairs = [p for p in pairs if p[0] != edit[1:]]
            continue
        key, value = edit.split(':', 1)
        for i, (k, _) in enumerate(pairs):
            if k == key:
                pairs[i] = (key, value)
                break
        else:
            pairs.append((key, value))
    return '{' + ','.join(f'"{k}":{v}' for k, v in pairs) + '}H'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def demo():
    port = free_port()
    binary = os.environ.get('MINERVA_DEMO_BINARY') or os.path.join(REPO, '.build', 'release', 'minerva-demo')
    threads = os.environ.get('MINERVA_DEMO_THREADS', '1')
    process = subprocess.Popen(
        [binary, '--host', '127.0.0.1', '--port', str(port), '--threads', threads, '--log-level', 'error'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + '/healthz', timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.1)
    yield f'ws://127.0.0.1:{port}/_minerva/ws'
    process.terminate()
    process.wait(timeout=10)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


async def frames(ws, count):
    """The next `count` Minerva frames (text messages); heartbeat comment frames are skipped."""
    out = []
    while len(out) < count:
        message = await ws.recv()
        assert isinstance(message, str), message
        if message.endswith('^'):
            continue
        out.append(message)
    return out


async def frames_until_close(ws):
    """Every Minerva frame until the server's close frame; returns them and the close code."""
    out = []
    try:
        while True:
            message = await ws.recv()
            if not message.endswith('^'):
                out.append(message)
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    return out, ws.close_code


async def connect(url, **kwargs):
    return await websockets.connect(url, subprotocols=['minerva.v2'], max_size=2 ** 21, **kwargs)


def unique(prefix):
    """A 26-character stream id of its own per test (streams outlive the tests' connections)."""
    return (prefix + 'z' * 26)[:26]


def test_w1_handshake(demo):
    async def body():
        ws = await connect(demo)
        assert ws.subprotocol == 'minerva.v2'  # websockets has checked Sec-WebSocket-Accept too
        await ws.close()
    run(body())


def test_w2_hello(demo):
    async def body():
        ws = await connect(demo)
        await ws.send(hello('eeds:null', f'id:"{unique("wtwo")}"'))
        assert await frames(ws, 1) == ['C']
        await ws.close()
        assert ws.close_code == 1000
    run(body())


def test_w3_echo(demo):
    async def body():
        ws = await connect(demo)
        for message in (hello('eeds:null', f'id:"{unique("wthree")}"'), '0N', 'echo:hi '):
            await ws.send(message)
        assert await frames(ws, 4) == ['C', '|0A', '0N', 'hi ']
        await ws.close()
    run(body())


def test_w4_500_echoes_back_to_back(demo):
    async def body():
        ws = await connect(demo)
        await ws.send(hello('eeds:null', f'id:"{unique("wfour")}"'))
        assert await frames(ws, 1) == ['C']
        await ws.send('0N')
        for i in range(500):
            await ws.send(f'echo:{i} ')
        strings, expected_seq = [], None
        while len(strings) < 500:
            (frame,) = await frames(ws, 1)
            if frame.endswith('A'):
                continue
            if frame.endswith('N'):
                expected_seq = int(frame[:-1])
                assert expected_seq == len(strings)
                continue
            assert frame.endswith(' '), frame
            assert expected_seq is not None
            strings.append(frame)
        assert strings == [f'{i} ' for i in range(500)]
        await ws.close()
    run(body())


def test_500_string_echo_with_acknowledgements(demo):
    """A client that acknowledges what it receives, as a real one does: 500 strings of growing size, each echo
    checked, and the stream's SACKs advancing."""
    async def body():
        ws = await connect(demo)
        await ws.send(hello('eeds:null', f'id:"{unique("echo500")}"'))
        assert await frames(ws, 1) == ['C']
        await ws.send('0N')
        received = []
        for i in range(500):
            text = f'{i}:' + '~' * (i * 7)
            await ws.send(f'echo:{text} ')
            while True:
                (frame,) = await frames(ws, 1)
                if frame.endswith(' '):
                    received.append(frame[:-1])
                    break
                assert frame.endswith('A') or frame.endswith('N'), frame
            await ws.send(f'|{i}A')
        assert received == [f'{i}:' + '~' * (i * 7) for i in range(500)]
        await ws.close()
        assert ws.close_code == 1000
    run(body())


def test_w7_binary_message(demo):
    async def body():
        ws = await connect(demo)
        await ws.send(b'\x00\x01binary')
        received, code = await frames_until_close(ws)
        assert received == []
        assert code == 1003
    run(body())


def test_w11_message_over_the_limit(demo):
    async def body():
        ws = await connect(demo)
        await ws.send(hello('eeds:null', f'id:"{unique("weleven")}"'))
        assert await frames(ws, 1) == ['C']
        await ws.send('a' * 1048577)
        received, code = await frames_until_close(ws)
        assert received == ['|-1A', '|-1T', 'frame_corruptionK', 'Y']
        assert code == 1009
    run(body())


def test_w13_foreign_origin_refused(demo):
    async def body():
        with pytest.raises(websockets.InvalidStatusCode) as refused:
            await connect(demo, origin='http://evil.example')
        assert refused.value.status_code == 403
    run(body())


def test_same_origin_accepted(demo):
    async def body():
        host = demo.split('/')[2]
        ws = await connect(demo, origin=f'http://{host}')
        assert ws.subprotocol == 'minerva.v2'
        await ws.close()
    run(body())


def test_w14_reset_me(demo):
    async def body():
        ws = await connect(demo)
        await ws.send(hello('eeds:null', f'id:"{unique("wfourteen")}"'))
        assert await frames(ws, 1) == ['C']
        await ws.send('0N')
        await ws.send('reset_me:bye ')
        received, code = await frames_until_close(ws)
        assert received == ['|0A', 'bye|1!', 'Y']
        assert code == 1000
    run(body())


def test_ping_is_answered(demo):
    async def body():
        ws = await connect(demo)
        pong = await ws.ping(b'p')
        await asyncio.wait_for(pong, 5)
        await ws.close()
    run(body())
