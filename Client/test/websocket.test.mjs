// The WebSocket transport and the switching between WebSocket and HTTP (PROTOCOL.md 11.1), against a fake
// WebSocket and the scripted fake fetch: every frame sent and received is checked exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSockets, ID, flush, makeStream } from './fakes.mjs';

/** A stream with fake WebSockets; `transport` defaults to 'auto'. */
function wsStream(options = {}) {
    const sockets = new FakeWebSockets();
    const states = [];
    const t = makeStream({ WebSocket: sockets.WebSocket, wsRetryMs: 10000, ...options });
    t.stream.onconnectionstate = (state, transport) => states.push(transport ? state + ':' + transport : state);
    return { ...t, sockets, states };
}

test('auto tries WebSocket first: <prefix>ws, subprotocol minerva.v2, hello then one frame per message', async () => {
    const { stream, sockets, net, strings, states } = wsStream();
    stream.sendString('s0');
    stream.sendString('s1');
    stream.start();
    await flush();
    assert.equal(net.requests.length, 0);
    const ws = sockets.last;
    assert.equal(ws.url, 'ws://127.0.0.1:8080/_minerva/ws');
    assert.equal(ws.protocol, 'minerva.v2');
    ws.accept();
    await flush();
    assert.equal(
        ws.sent[0],
        `{"tnum":0,"ver":2,"format":2,"new":true,"id":"${ID}","ming":true,"pad":4096,"maxb":300000,"maxt":3580,` +
            '"maxia":10,"tcpack":false,"eeds":null,"sack":"|-1","seenack":"|-1"}H',
    );
    assert.deepEqual(ws.frames, ['0N', 's0 ', 's1 ']);
    assert.deepEqual(states, ['connecting']);
    ws.receive('C', '|1A', '0N', 'hi ', 'there ');
    await flush();
    assert.deepEqual(strings(), ['hi', 'there']);
    assert.deepEqual(ws.frames, ['0N', 's0 ', 's1 ', '|1A'], 'our SACK goes on the WebSocket');
    assert.equal(stream._queue.items.size, 0);
    stream.sendString('s2');
    await flush();
    assert.deepEqual(ws.frames.slice(4), ['s2 '], 'no SeqNum frame when the number follows');
    assert.equal(net.requests.length, 0, 'no HTTP request at all');
    assert.deepEqual(states, ['connecting', 'connected:websocket']);
    assert.equal(stream.connectionTransport, 'websocket');
    stream.dispose();
    assert.equal(ws.closedByClient, 1000);
    assert.equal(stream.connectionTransport, null);
});

test('wss:// for an https endpoint', async () => {
    const { stream, sockets } = wsStream({ url: 'https://example.com/x/' });
    stream.start();
    assert.equal(sockets.last.url, 'wss://example.com/x/ws');
});

test('upgrade refused: HTTP streaming at once, WebSocket retried later as a probe that takes over', async () => {
    const { stream, sockets, net, clock, strings, states } = wsStream();
    stream.sendString('s0');
    stream.start();
    await flush();
    sockets.last.drop(); // e.g. 400 to the upgrade, or a proxy that refuses it
    await flush();
    assert.equal(net.requests.length, 1, 'replaced at once, no backoff');
    const http = net.requests[0];
    assert.equal(http.hello.ming, true);
    assert.equal(http.hello.new, true);
    assert.equal(http.hello.tnum, 1);
    assert.deepEqual(http.frames, ['0N', 's0 ']);
    http.respond();
    http.write(';)]}^\nC\n|0A\n0N\nfrom http \n');
    await flush();
    assert.deepEqual(strings(), ['from http']);
    assert.equal(stream.connectionTransport, 'streaming');
    assert.equal(net.requests[1].hello.sack, '|0', 'the SACK goes up in an upload request');
    net.requests[1].reply(';)]}^\n|0A\n|0T\n'); // at once: an upload left waiting would look stalled (stallMs)
    // After wsRetryMs (random() = 0.5: no jitter) a WebSocket probe opens while the HTTP primary stays open.
    await clock.advance(9999);
    assert.equal(sockets.sockets.length, 1);
    await clock.advance(1);
    assert.equal(sockets.sockets.length, 2);
    const ws = sockets.last;
    ws.accept();
    await flush();
    assert.equal(ws.hello.new, undefined);
    assert.equal(ws.hello.eeds, null);
    assert.equal(ws.hello.sack, '|0', 'what the HTTP primary delivered');
    assert.ok(http.open, 'the HTTP primary stays until the WebSocket works');
    assert.equal(net.requests.length, 2, 'uploads go over HTTP, not on a probe');
    stream.sendString('s1'); // in flight somewhere: must arrive exactly once
    await flush();
    assert.equal(net.requests.length, 3);
    assert.deepEqual(net.requests[2].frames, ['1N', 's1 ']);
    // The server moved the stream: it writes on the WebSocket and would close the HTTP response gently.
    ws.receive('beat^', '0N', 'from http ', 'from ws ');
    await flush();
    assert.ok(http.aborted, 'the old primary is closed');
    assert.deepEqual(strings(), ['from http', 'from ws'], 'the retransmitted string is not delivered twice');
    assert.deepEqual(ws.frames, ['|1A'], 'the SACK goes on the WebSocket');
    net.requests[2].reply(';)]}^\n|1A\n|0T\n');
    await flush();
    assert.equal(stream._queue.items.size, 0);
    assert.deepEqual(states, ['connecting', 'connected:streaming', 'connected:websocket']);
});

test('an HTTP primary that ends while the probe connects hands over to the probe, no new request', async () => {
    const { stream, sockets, net, clock } = wsStream({ transport: 'auto' });
    stream.start();
    await flush();
    sockets.last.drop();
    await flush();
    net.requests[0].respond();
    net.requests[0].write(';)]}^\nC\n');
    await clock.advance(10000);
    const ws = sockets.last;
    assert.equal(sockets.sockets.length, 2);
    net.requests[0].write('|-1A\n|-1T\n');
    net.requests[0].end(); // the server saw the probe's hello and closed the HTTP primary
    await flush();
    assert.equal(net.requests.length, 1);
    stream.sendString('x');
    await flush();
    ws.accept();
    await flush();
    assert.deepEqual(ws.frames, ['0N', 'x ']);
    ws.receive('|0A');
    await flush();
    assert.equal(stream.connectionTransport, 'websocket');
});

test('a probe that fails leaves the HTTP primary alone; the next try waits twice as long', async () => {
    const { stream, sockets, net, clock } = wsStream();
    stream.start();
    await flush();
    sockets.last.drop();
    await flush();
    net.requests[0].respond();
    net.requests[0].write(';)]}^\nC\n');
    await clock.advance(10000);
    sockets.last.drop();
    await flush();
    assert.ok(net.requests[0].open);
    assert.equal(net.requests.length, 1);
    await clock.advance(19999);
    assert.equal(sockets.sockets.length, 2);
    net.requests[0].write('beat^\n');
    await clock.advance(1);
    assert.equal(sockets.sockets.length, 3);
});

test('a silent WebSocket (open, but no frame within fallbackMs) falls back to HTTP', async () => {
    const { stream, sockets, net, clock } = wsStream();
    stream.sendString('a');
    stream.start();
    await flush();
    sockets.last.accept();
    await flush();
    await clock.advance(4999);
    assert.equal(net.requests.length, 0);
    await clock.advance(1);
    assert.equal(sockets.last.closedByClient, 1000);
    assert.equal(net.requests.length, 1);
    assert.equal(net.requests[0].hello.new, true, 'C never arrived');
    assert.deepEqual(net.requests[0].frames, ['0N', 'a '], 'strings sent on the silent socket are resent');
});

test('a working WebSocket that dies mid-stream is replaced by a WebSocket at once; nothing lost or doubled', async () => {
    const { stream, sockets, net, strings } = wsStream();
    stream.start();
    await flush();
    const ws1 = sockets.last;
    ws1.accept();
    ws1.receive('C');
    stream.sendString('a');
    stream.sendString('b');
    await flush();
    ws1.receive('|0A', '0N', 'x ', 'y ');
    ws1.drop();
    await flush();
    assert.equal(sockets.sockets.length, 2, 'no backoff: it worked');
    assert.equal(net.requests.length, 0);
    const ws2 = sockets.last;
    ws2.accept();
    await flush();
    assert.equal(ws2.hello.new, undefined);
    assert.equal(ws2.hello.sack, '|1');
    assert.equal(ws2.hello.seenack, '|0');
    assert.deepEqual(ws2.frames, ['1N', 'b ']);
    ws2.receive('|1A', '1N', 'y ', 'z ');
    await flush();
    assert.deepEqual(strings(), ['x', 'y', 'z']);
    assert.equal(stream._queue.items.size, 0);
});

test('transport websocket: refused upgrades back off and retry WebSocket, never HTTP', async () => {
    const { stream, sockets, net, clock, states } = wsStream({ transport: 'websocket' });
    stream.start();
    await flush();
    sockets.last.drop();
    await flush();
    assert.equal(stream.connectionState, 'reconnecting');
    await clock.advance(2000);
    assert.equal(sockets.sockets.length, 2);
    const ws = sockets.last;
    ws.accept();
    await clock.advance(11499);
    assert.equal(ws.closedByClient, null);
    await clock.advance(1);
    assert.equal(ws.closedByClient, 1000, 'silent for 11.5 s');
    await clock.advance(60000);
    assert.equal(net.requests.length, 0);
    assert.ok(sockets.sockets.length >= 4);
    assert.deepEqual(states.slice(0, 2), ['connecting', 'reconnecting']);
    assert.throws(() => wsStream({ transport: 'websocket', WebSocket: undefined }), /no WebSocket/);
});

test('without WebSocket, auto is HTTP streaming', async () => {
    const { stream, net } = makeStream();
    stream.start();
    await flush();
    assert.equal(net.requests[0].hello.ming, true);
});

test('Y, a kill frame or a binary message ends the WebSocket; the server heartbeat keeps it open', async () => {
    const { stream, sockets, clock } = wsStream();
    stream.start();
    await flush();
    let ws = sockets.last;
    ws.accept();
    ws.receive('C', 'beat^');
    await clock.advance(13000);
    ws.receive('beat^');
    await clock.advance(13000);
    assert.equal(ws.closedByClient, null);
    ws.receive('|-1A', '|-1T', 'Y');
    await flush();
    assert.equal(ws.closedByClient, 1000);
    assert.equal(sockets.sockets.length, 2);
    ws = sockets.last;
    ws.accept();
    ws.receive(new ArrayBuffer(1));
    await flush();
    assert.equal(ws.closedByClient, 1000);
    await clock.advance(10000);
    ws = sockets.last;
    assert.equal(sockets.sockets.length, 3, 'after a backoff');
    ws.accept();
    ws.receive('|-1A', '|-1T', 'frame_corruptionK', 'Y');
    await flush();
    assert.equal(ws.closedByClient, 1000);
});

test('a server reset on the WebSocket reaches onreset', async () => {
    const { stream, sockets, events } = wsStream();
    stream.start();
    await flush();
    sockets.last.accept();
    sockets.last.receive('C', 'bye|1!');
    await flush();
    assert.deepEqual(events.slice(1), [['reset', 'bye', true], ['disconnect']]);
    assert.equal(sockets.last.closedByClient, 1000);
});
