"""A small Minerva wire client for the cluster checks (HTTP long-poll, one new connection per request, so a
round-robin balancer sends every request to the next node)."""

import http.client
import json
import random
import string
import time
import urllib.parse


def new_stream_id(rng=random):
    return ''.join(rng.choice(string.ascii_letters + string.digits) for _ in range(26))


def post(base, body, timeout=15.0, conn=None):
    """POSTs `body` to <base>/_minerva/io/ and returns (status, text)."""
    url = urllib.parse.urlsplit(base)
    c = conn or http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        c.request('POST', '/_minerva/io/', body=body.encode(), headers={'Content-Type': 'text/plain'})
        r = c.getresponse()
        return r.status, r.read().decode('ascii', 'replace')
    finally:
        if conn is None:
            c.close()


class WireStream:
    """One Minerva stream driven by hand: each `request` is a long-poll primary transport carrying strings."""

    def __init__(self, stream_id=None):
        self.id = stream_id or new_stream_id()
        self.tnum = 0
        self.next_send = 0
        self.ack = -1  # highest S2C sequence number received in order
        self.seen_ack = -1  # the last SACK of C2S strings seen from the server
        self.unacked = []  # (seq, string) sent but not yet acknowledged by the server: sent again on the next transport
        self.received = []
        self.created = False
        self.killed = None
        self.reset = None

    def hello(self, new, primary=True):
        h = {'tnum': self.tnum, 'ver': 2, 'format': 2}
        if new:
            h['new'] = 1
        h.update({'id': self.id, 'ming': 0, 'maxia': 0, 'seenack': '|%d' % self.seen_ack,
                  'sack': '|%d' % self.ack})
        if primary:
            h['eeds'] = None
        self.tnum += 1
        return json.dumps(h, separators=(',', ':')) + 'H\n'

    def request(self, base, strings=(), new=None, primary=True, timeout=15.0, conn=None):
        """Sends one transport; returns the list of S2C strings it brought."""
        if new is None:
            new = not self.created
        body = self.hello(new, primary)
        for s in strings:
            self.unacked.append((self.next_send, s))
            self.next_send += 1
        if self.unacked:
            body += '%dN\n' % self.unacked[0][0]
            for _, s in self.unacked:
                body += s + ' \n'
        status, text = post(base, body, timeout=timeout, conn=conn)
        if status != 200:
            raise RuntimeError('HTTP %d: %r' % (status, text[:200]))
        return self.parse(text)

    def parse(self, text):
        got = []
        seq = None
        for frame in text.split('\n'):
            if not frame or frame == ';)]}^':
                continue
            kind, payload = frame[-1], frame[:-1]
            if kind == 'C':
                self.created = True
            elif kind == 'N':
                seq = int(payload)
            elif kind == ' ':
                if seq is not None and seq == self.ack + 1:
                    self.ack = seq
                    self.received.append(payload)
                    got.append(payload)
                seq = None if seq is None else seq + 1
            elif kind == 'A':
                acked = int(payload.rsplit('|', 1)[1])
                self.unacked = [(n, s) for n, s in self.unacked if n > acked]
                self.seen_ack = acked
            elif kind == 'K':
                self.killed = payload
            elif kind == '!':
                self.reset = payload
        return got

    def echo(self, base, text, timeout=15.0, conn=None):
        """Sends echo:<text> and polls until the echo arrives; returns the number of requests it took."""
        got = self.request(base, ['echo:' + text], timeout=timeout, conn=conn)
        n = 1
        deadline = time.monotonic() + timeout
        while text not in got:
            if self.killed or self.reset:
                raise RuntimeError('stream ended: kill=%r reset=%r' % (self.killed, self.reset))
            if time.monotonic() > deadline:
                raise RuntimeError('no echo of %r' % text)
            got = self.request(base, timeout=timeout, conn=conn)
            n += 1
        return n
