// End to end against the model server (fake-server.mjs) over a lossy, delaying network: every string must
// arrive exactly once and in order in both directions, with either transport and with the fallback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSockets, makeStream, flush } from './fakes.mjs';
import { FakeServer, connect, connectWebSockets, seededRandom } from './fake-server.mjs';

/**
 * Sends `count` strings in bursts while the server echoes them; returns what both sides received.
 * Gives up after `maxSeconds` of simulated time.
 */
async function echoRun({ seed, transport, count = 1000, network = {}, maxSeconds = 3600, ws = null, onTick }) {
    const random = seededRandom(seed);
    const sockets = new FakeWebSockets();
    const t = makeStream({ transport, random, ...(ws ? { WebSocket: sockets.WebSocket, wsRetryMs: 2000 } : {}) });
    const states = [];
    t.stream.onconnectionstate = (state, via) => states.push(via ? state + ':' + via : state);
    const server = new FakeServer();
    connect(t.net, server, t.clock, random, network);
    if (ws) connectWebSockets(sockets, server, t.clock, random, ws);
    const sent = [];
    t.stream.start();
    let elapsed = 0;
    while (elapsed < maxSeconds * 1000) {
        if (sent.length < count) {
            const burst = Math.floor(random() * 6);
            for (let i = 0; i < burst && sent.length < count; i++) {
                const s = `m${sent.length} ` + 'x'.repeat(Math.floor(random() * 40));
                sent.push(s);
                t.stream.sendString(s);
            }
        }
        await t.clock.advance(100);
        elapsed += 100;
        if (onTick) onTick(elapsed);
        if (t.strings().length >= count && t.stream._queue.items.size === 0) break;
    }
    await flush();
    const serverStream = server.streams.get(t.stream.streamId);
    return { ...t, sent, server, sockets, states, delivered: serverStream ? serverStream.delivered : [], elapsed };
}

function checkExactlyOnceInOrder(run) {
    assert.deepEqual(run.events.filter((e) => e[0] !== 'string'), [['started']], 'no reset');
    assert.ok(run.strings().length > 0);
    assert.equal(run.delivered.length, run.sent.length, 'server got every string once');
    assert.deepEqual(run.delivered, run.sent, 'server got them in order');
    assert.deepEqual(run.strings(), run.sent, 'every echo arrived once, in order');
}

for (const transport of ['long-poll', 'streaming']) {
    test(`${transport}: perfect network, 1000 strings echoed`, async () => {
        const run = await echoRun({ seed: 1, transport });
        checkExactlyOnceInOrder(run);
    });
    for (const seed of [2, 3, 4, 5]) {
        test(`${transport}: lossy network (seed ${seed}): no loss, duplication or reordering`, async () => {
            const run = await echoRun({
                seed,
                transport,
                network: { dropRequest: 0.1, dropResponse: 0.1, maxDelay: 1500 },
            });
            checkExactlyOnceInOrder(run);
            assert.ok(run.net.requests.some((r) => r.aborted) || run.net.requests.length > 10);
        });
    }
}

test('auto: a buffering proxy makes the client fall back to long-polling, losing nothing', async () => {
    const run = await echoRun({ seed: 9, transport: 'auto', network: { bufferStreaming: true } });
    checkExactlyOnceInOrder(run);
    assert.equal(run.net.requests[0].hello.ming, true);
    assert.ok(run.net.requests[0].aborted);
    const primaries = run.net.requests.filter((r) => r.hello.eeds === null);
    assert.ok(primaries.slice(1).every((r) => r.hello.ming === false));
});

test('auto: without a buffering proxy the client keeps streaming over a lossy network', async () => {
    const run = await echoRun({ seed: 10, transport: 'auto', network: { dropRequest: 0.1, dropResponse: 0.1 } });
    checkExactlyOnceInOrder(run);
    assert.ok(run.net.requests.filter((r) => r.hello.eeds === null).every((r) => r.hello.ming === true));
});

for (const seed of [11, 12, 13, 14]) {
    test(`auto over WebSocket: sockets cut and refused for a while, lossy HTTP (seed ${seed}): nothing lost, doubled or reordered`, async () => {
        const ws = { cut: 0.5, cutWithinMs: 8000, refuse: false };
        const run = await echoRun({
            seed,
            transport: 'auto',
            count: 2000,
            network: { dropRequest: 0.05, dropResponse: 0.05, maxDelay: 300 },
            ws,
            // At 20 s every WebSocket is cut and upgrades are refused until 40 s: the stream lives on HTTP meanwhile
            // (WebSocket retried after 2, 4, 8, 16 s... with jitter, so it is back before the 2000 strings are done).
            onTick: (ms) => {
                ws.refuse = ms >= 20000 && ms < 40000;
                if (ms === 20000) ws.killAll();
            },
        });
        checkExactlyOnceInOrder(run);
        const connected = run.states.filter((s) => s.startsWith('connected:'));
        const firstHttp = connected.indexOf('connected:streaming');
        assert.ok(firstHttp > 0 && connected[0] === 'connected:websocket', connected.join(' '));
        assert.ok(connected.slice(firstHttp).includes('connected:websocket'), 'back on WebSocket: ' + connected.join(' '));
        assert.ok(run.server.webSockets >= 2);
        assert.ok(run.sockets.sockets.length > run.server.webSockets, "some upgrades were refused");
        assert.ok(run.elapsed > 40000, 'the run lasted through the refusal');
    });
}

test('auto over WebSocket, perfect network: one WebSocket carries everything, no HTTP request', async () => {
    const run = await echoRun({ seed: 15, transport: 'auto', ws: {} });
    checkExactlyOnceInOrder(run);
    assert.equal(run.net.requests.length, 0);
    assert.equal(run.sockets.sockets.length, 1);
});

test('websocket forced over sockets that die: nothing lost, doubled or reordered, never HTTP', async () => {
    const run = await echoRun({ seed: 16, transport: 'websocket', ws: { cut: 0.8, cutWithinMs: 3000 } });
    checkExactlyOnceInOrder(run);
    assert.equal(run.net.requests.length, 0);
    assert.ok(run.sockets.sockets.length > 3);
});
