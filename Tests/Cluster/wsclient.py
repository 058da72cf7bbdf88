"""A Minerva WebSocket transport driven by hand for the cluster checks, on a client we did not write (Debian's
python3-websockets): one stream of wire.WireStream continued over a WebSocket (socket-flavoured hello, one frame per
text message, PROTOCOL.md 11.1)."""

import asyncio
import json
import time

import websockets


def socket_hello(stream, new=False):
    """A WebSocket hello continuing `stream` (its tnum, SACK and seen SACK), a primary transport."""
    h = {'tnum': stream.tnum, 'ver': 2}
    if new:
        h['new'] = 1
    h.update({'id': stream.id, 'ming': 1, 'maxb': 1073741824, 'maxt': 1073741824, 'maxia': 0,
              'seenack': '|%d' % stream.seen_ack, 'sack': '|%d' % stream.ack, 'eeds': None})
    stream.tnum += 1
    return json.dumps(h, separators=(',', ':')) + 'H'


class WSTransport:
    """A WebSocket carrying `stream` (a wire.WireStream): send strings, read what arrives in order."""

    def __init__(self, ws, stream):
        self.ws = ws
        self.stream = stream
        self.seq = None

    @classmethod
    async def open(cls, url, stream, new=False, **kwargs):
        ws = await websockets.connect(url, subprotocols=['minerva.v2'], max_size=2 ** 21, **kwargs)
        t = cls(ws, stream)
        await ws.send(socket_hello(stream, new))
        return t

    async def send(self, *strings):
        s = self.stream
        first = s.next_send
        for text in strings:
            s.unacked.append((s.next_send, text))
            s.next_send += 1
        await self.ws.send('%dN' % first)
        for text in strings:
            await self.ws.send(text + ' ')

    def take(self, frame):
        """Applies one S2C frame to the stream; returns the string it carried, if any."""
        s = self.stream
        kind, payload = frame[-1], frame[:-1]
        if kind == 'N':
            self.seq = int(payload)
        elif kind == ' ':
            got = None
            if self.seq is not None and self.seq == s.ack + 1:
                s.ack = self.seq
                s.received.append(payload)
                got = payload
            self.seq = None if self.seq is None else self.seq + 1
            return got
        elif kind == 'A':
            acked = int(payload.rsplit('|', 1)[1])
            s.unacked = [(n, x) for n, x in s.unacked if n > acked]
            s.seen_ack = acked
        elif kind == 'K':
            s.killed = payload
        elif kind == '!':
            s.reset = payload
        return None

    async def until(self, text, timeout=10.0):
        """Reads frames until the string `text` arrives; raises on a kill, a reset or the end of the socket."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError('no %r in time' % text)
            frame = await asyncio.wait_for(self.ws.recv(), left)
            if self.take(frame) == text:
                return
            if self.stream.killed or self.stream.reset:
                raise RuntimeError('stream ended: kill=%r reset=%r' % (self.stream.killed, self.stream.reset))

    async def echo(self, text, timeout=10.0):
        await self.send('echo:' + text)
        await self.until(text, timeout)

    async def frames_until_end(self, timeout):
        """Every frame until the socket ends (close frame or TCP end); returns (frames, close code, seconds)."""
        started = time.monotonic()
        out = []
        try:
            while True:
                left = started + timeout - time.monotonic()
                if left <= 0:
                    return out, None, None
                frame = await asyncio.wait_for(self.ws.recv(), left)
                if not frame.endswith('^'):
                    out.append(frame)
                    self.take(frame)
        except websockets.ConnectionClosed:
            pass
        return out, self.ws.close_code, time.monotonic() - started

    async def close(self):
        await self.ws.close()


def run(coroutine, timeout=60):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))
