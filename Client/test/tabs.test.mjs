// Many tabs of one browser (issue 14): the `%random%` endpoint placeholder, which gives every stream host names of
// its own (so no tab waits for the browser's connections per host that other tabs hold), and the deadlock detector
// (an upload that gets no response within stallMs makes the stream give its connection back and long-poll with a
// short maxt, whatever the transport option).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeWebSockets, Minerva, flush, makeStream } from './fakes.mjs';

const RANDOM_URL = 'http://%random%.chat.example:8080/_minerva/';

/** The host name of a request URL. */
const host = (url) => new URL(url).hostname;

/** A stream whose getRandomValues gives fresh bytes every call (the default fake repeats one byte). */
function randomStream(options = {}) {
    let n = 0;
    return makeStream({
        url: RANDOM_URL,
        getRandomValues: (a) => {
            for (let i = 0; i < a.length; i++) a[i] = (n = (n * 1103515245 + 12345) % 2 ** 31) % 252;
        },
        ...options,
    });
}

test('HttpEndpoint keeps %random% in its URLs, resolves relative ones and still insists on a final /', () => {
    const endpoint = new Minerva.HttpEndpoint(RANDOM_URL);
    assert.equal(endpoint.primaryUrl, RANDOM_URL);
    assert.equal(endpoint.secondaryUrl, RANDOM_URL);
    const both = new Minerva.HttpEndpoint('https://%random%.a.example/m/', 'https://up-%random%.a.example/m/');
    assert.equal(both.secondaryUrl, 'https://up-%random%.a.example/m/');
    globalThis.location = { href: 'https://www.a.example/page?x=1' };
    try {
        assert.equal(new Minerva.HttpEndpoint('//%random%.a.example/_minerva/').primaryUrl,
            'https://%random%.a.example/_minerva/');
        assert.equal(new Minerva.HttpEndpoint('/_minerva/').primaryUrl, 'https://www.a.example/_minerva/');
    } finally {
        delete globalThis.location;
    }
    assert.throws(() => new Minerva.HttpEndpoint('http://%random%.a.example/_minerva'), /must end in/);
    assert.throws(() => new Minerva.HttpEndpoint('http://%random%.a example/_minerva/'));
});

test('%random%: one label for the primary URL, another for uploads, kept for the stream; another stream differs',
    async () => {
        const { stream, net } = randomStream({ transport: 'streaming' });
        stream.sendString('a');
        stream.start();
        await flush();
        const primaryHost = host(net.requests[0].url);
        assert.match(primaryHost, /^ml[0-9a-z]{16}\.chat\.example$/);
        assert.equal(new URL(net.requests[0].url).pathname, '/_minerva/io/');
        assert.equal(new URL(net.requests[0].url).port, '8080');
        net.requests[0].respond();
        net.requests[0].write(';)]}^\nC\n|0A\n|-1T\n');
        await flush();
        stream.sendString('b');
        await flush();
        const uploadHost = host(net.requests[1].url);
        assert.match(uploadHost, /^ml[0-9a-z]{16}\.chat\.example$/);
        assert.notEqual(uploadHost, primaryHost, 'uploads do not share the primary\'s connections');
        net.requests[1].reply(';)]}^\n|1A\n|-1T\n');
        net.requests[0].write('Y\n');
        net.requests[0].end();
        await flush();
        stream.sendString('c');
        await flush();
        assert.equal(host(net.requests[2].url), primaryHost, 'the next primary keeps its host name');
        assert.equal(host(net.requests[3].url), uploadHost, 'the next upload keeps its host name');
        const other = randomStream({ transport: 'streaming', getRandomValues: (a) => a.fill(7) });
        other.stream.start();
        await flush();
        assert.equal(host(other.net.requests[0].url), 'ml' + '7'.repeat(16) + '.chat.example');
        assert.notEqual(other.stream.streamId, stream.streamId);
    });

test('%random% in the WebSocket URL too', async () => {
    const sockets = new FakeWebSockets();
    const { stream } = randomStream({ WebSocket: sockets.WebSocket });
    stream.start();
    await flush();
    assert.match(sockets.last.url, /^ws:\/\/ml[0-9a-z]{16}\.chat\.example:8080\/_minerva\/ws$/);
});

test('without %random% nothing changes (the URLs are used as given)', async () => {
    const { stream, net } = makeStream({ transport: 'long-poll' });
    stream.start();
    await flush();
    assert.equal(net.requests[0].url, 'http://127.0.0.1:8080/_minerva/io/');
});

/** A streaming stream created at the server, with an upload of 'up' open and unanswered. */
async function streamingWithUpload(options = {}) {
    const t = makeStream({ transport: 'streaming', ...options });
    const states = [];
    t.stream.onconnectionstate = (state, transport) => states.push(transport ? state + ':' + transport : state);
    t.stream.start();
    await flush();
    const primary = t.net.requests[0];
    primary.respond();
    primary.write(';)]}^\nC\nbeat^\n');
    await flush();
    t.stream.sendString('up');
    await flush();
    assert.equal(t.net.requests.length, 2);
    return { ...t, primary, upload: t.net.requests[1], states };
}

test('deadlock detector: an upload without a response for stallMs ends streaming; short long-polls follow',
    async () => {
        const { stream, net, clock, primary, upload, states, strings } = await streamingWithUpload();
        assert.deepEqual(upload.frames, ['0N', 'up ']);
        // 4000 ms plus the body at 3072 bytes/s.
        const allowed = 4000 + (upload.body.length / 3072) * 1000;
        await clock.advance(Math.ceil(allowed) - 1);
        assert.ok(primary.open, 'not yet');
        assert.equal(stream.connectionState, 'connected');
        await clock.advance(1);
        assert.ok(primary.aborted, 'the streaming primary gives its connection back');
        assert.ok(upload.open, 'the upload stays queued');
        assert.equal(stream.connectionState, 'stalled');
        assert.equal(stream.connectionTransport, null);
        assert.equal(net.requests.length, 3, 'a new primary at once, no backoff');
        const poll = net.requests[2];
        assert.equal(poll.hello.ming, false);
        assert.equal(poll.hello.maxt, 3, 'a short long-poll');
        assert.equal(poll.hello.eeds, null);
        assert.deepEqual(poll.frames, [], 'the string is on the upload still in flight');
        upload.reply(';)]}^\n|0A\n|-1T\n');
        poll.reply(';)]}^\n0N\nback \n');
        await flush();
        assert.deepEqual(strings(), ['back']);
        assert.equal(stream._queue.items.size, 0);
        assert.equal(states.at(-1), 'connected:long-poll');
        assert.deepEqual(states.slice(0, 3), ['connecting', 'connected:streaming', 'stalled']);
        // For the rest of the stream: short long-polls, and no more stall reports.
        const next = net.requests.find((r, i) => i > 2 && r.hello.eeds === null);
        assert.equal(next.hello.maxt, 3);
        assert.equal(next.hello.ming, false);
        stream.sendString('more');
        await flush();
        await clock.advance(10000);
        assert.ok(!states.slice(3).includes('stalled'));
    });

test('deadlock detector: an upload answered in time changes nothing', async () => {
    const { stream, net, clock, primary, upload } = await streamingWithUpload();
    await clock.advance(3900);
    upload.reply(';)]}^\n|0A\n|-1T\n');
    await clock.advance(9000); // less than the 13.5 s a streaming response may stay silent
    assert.ok(primary.open);
    assert.equal(net.requests.length, 2);
    assert.equal(stream.connectionTransport, 'streaming');
});

test('deadlock detector: a bigger upload is given more time; stallMs sets the base, 0 turns it off', async () => {
    const big = await streamingWithUpload({ stallMs: 1000 });
    big.stream.sendString('x'.repeat(30720)); // waits for the upload in flight
    big.upload.reply(';)]}^\n|0A\n|-1T\n');
    await flush();
    const second = big.net.requests[2];
    assert.equal(second.frames[1].length, 30721);
    const allowed = 1000 + (second.body.length / 3072) * 1000; // about 30 KiB at 3072 bytes/s: 10 s more
    assert.ok(allowed > 11000);
    await big.clock.advance(Math.ceil(allowed) - 1);
    assert.ok(big.primary.open);
    await big.clock.advance(1);
    assert.ok(big.primary.aborted);
    assert.equal(big.stream.connectionState, 'stalled');

    const off = await streamingWithUpload({ stallMs: 0 });
    await off.clock.advance(11000); // until the upload's own timeout, which retries it
    assert.ok(off.primary.open);
    assert.notEqual(off.stream.connectionState, 'stalled');
});

test('deadlock detector: a long-poll primary (maxt 25) also gives way; a WebSocket has no uploads', async () => {
    const t = makeStream({ transport: 'long-poll' });
    t.stream.start();
    await flush();
    t.net.requests[0].reply(';)]}^\nC\n|-1A\n|-1T\n');
    await flush();
    const poll = t.net.requests[1];
    assert.equal(poll.hello.maxt, 25);
    t.stream.sendString('up');
    await flush();
    await t.clock.advance(4100);
    assert.ok(poll.aborted);
    assert.equal(t.stream.connectionState, 'stalled');
    assert.equal(t.net.requests[3].hello.maxt, 3);

    const sockets = new FakeWebSockets();
    const w = makeStream({ transport: 'websocket', WebSocket: sockets.WebSocket });
    w.stream.start();
    await flush();
    sockets.last.accept();
    sockets.last.receive('beat^', 'C');
    w.stream.sendString('up');
    await w.clock.advance(8000);
    assert.equal(w.net.requests.length, 0);
    assert.deepEqual(sockets.last.frames, ['0N', 'up ']);
    assert.equal(w.stream.connectionTransport, 'websocket');
});

test('a stall is told to the other streams of the origin (BroadcastChannel) that use the same host: all give way',
    async () => {
        const Channel = globalThis.BroadcastChannel;
        const a = await streamingWithUpload({ BroadcastChannel: Channel });
        const b = await streamingWithUpload({ BroadcastChannel: Channel });
        b.upload.reply(';)]}^\n|0A\n|-1T\n'); // b has no upload waiting: only a's stalls
        const other = await streamingWithUpload({ BroadcastChannel: Channel, url: 'http://elsewhere:8080/_minerva/' });
        other.upload.reply(';)]}^\n|0A\n|-1T\n');
        const none = await streamingWithUpload({ BroadcastChannel: null });
        none.upload.reply(';)]}^\n|0A\n|-1T\n');
        await a.clock.advance(4100);
        assert.equal(a.stream.connectionState, 'stalled');
        for (let i = 0; i < 50 && !b.primary.aborted; i++) await new Promise((resolve) => setTimeout(resolve, 5));
        assert.ok(b.primary.aborted, 'the stream on the same host gave its connection back too');
        assert.equal(b.stream.connectionState, 'stalled');
        assert.equal(b.net.requests.at(-1).hello.maxt, 3);
        assert.ok(other.primary.open, 'another host: another pool of connections, nothing to do');
        assert.equal(other.stream.connectionTransport, 'streaming');
        assert.ok(none.primary.open);
        for (const t of [a, b, other, none]) t.stream.dispose();
        // A disposed stream's channel is closed: a later stall reaches nobody (and nothing throws).
        const late = await streamingWithUpload({ BroadcastChannel: Channel });
        await late.clock.advance(4100);
        assert.equal(late.stream.connectionState, 'stalled');
        late.stream.dispose();
    });
