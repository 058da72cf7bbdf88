// ReconnectingStream (issue 13): a lost stream (a non-application reset) is replaced by a new ClientStream after a
// backoff with jitter, and onstart(stream, true) lets the application join again; an application-level reset ends it
// (no loop); strings sent between streams go on the next stream after onstart's; close() stops everything.
// Fake network and clock as in stream.test.mjs; long-poll, so every request is answered by the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Minerva, FakeNet, FakeClock, flush } from './fakes.mjs';

const CREATED = ';)]}^\nC\n|-1A\n|-1T\n';
const ATTACH_FAILURE = ';)]}^\nstream_attach_failureK\n'; // what a restarted server answers a hello of an old stream

/** A ReconnectingStream over a fake network and clock; every stream gets a new id; events are recorded. */
function makeHelper(options = {}) {
    const net = new FakeNet();
    const clock = new FakeClock();
    const errors = [];
    let ids = 0;
    const helper = new Minerva.ReconnectingStream(new Minerva.HttpEndpoint('http://127.0.0.1:8080/_minerva/'), {
        transport: 'long-poll',
        fetch: net.fetch,
        clock,
        random: () => 0.5, // jitter x0.75
        getRandomValues: (a) => a.fill(10 + (ids++ % 26)),
        reportError: (e) => errors.push(e),
        WebSocket: undefined,
        BroadcastChannel: null,
        ...options,
    });
    const events = [];
    const streams = [];
    helper.onstart = (stream, isRestart) => {
        streams.push(stream);
        events.push(['start', isRestart, clock.now()]);
        stream.sendString('begin_chat');
    };
    helper.onstring = (s) => events.push(['string', s]);
    helper.onreset = (reason, applicationLevel, restarting) =>
        events.push(['reset', reason, applicationLevel, restarting, clock.now()]);
    const states = [];
    helper.onconnectionstate = (state, transport) => states.push(transport ? state + ':' + transport : state);
    return { helper, net, clock, events, errors, streams, states };
}

/** Answers the newest request as the creating long-poll of a new stream; returns the waiting poll. */
async function created(net) {
    await flush();
    const first = net.last;
    assert.equal(first.hello.new, true, 'a new stream');
    first.reply(CREATED);
    await flush();
    return net.last;
}

test('a lost stream (server restart: stream_attach_failure) is replaced and onstart(stream, true) re-joins', async () => {
    const { helper, net, clock, events, streams, states } = makeHelper();
    helper.start();
    assert.equal(events.length, 1);
    assert.deepEqual(events[0].slice(0, 2), ['start', false]);
    const poll = await created(net);
    assert.deepEqual(net.requests[0].frames, ['0N', 'begin_chat ']);
    poll.reply(';)]}^\n0N\nTEXT|1|hello \n');
    await flush();
    assert.deepEqual(events[1], ['string', 'TEXT|1|hello']);
    const old = streams[0];
    const oldId = old.streamId;

    // The server restarted: the next poll of the old stream is refused.
    const refused = net.last;
    assert.equal(refused.hello.id, oldId);
    const resetAt = clock.now();
    refused.reply(ATTACH_FAILURE);
    await flush();
    assert.deepEqual(events[2], ['reset', 'stream penalty reached limit', false, true, resetAt]);
    assert.equal(helper.stream, null);
    assert.equal(helper.connectionState, 'reconnecting');
    const before = net.requests.length;
    await clock.advance(749);
    assert.equal(net.requests.length, before, 'waits out the backoff (1000 ms x 0.75)');
    await clock.advance(1);
    assert.deepEqual(events[3], ['start', true, resetAt + 750]);
    assert.equal(streams.length, 2);
    assert.notEqual(streams[1], old);
    assert.equal(helper.stream, streams[1]);
    assert.notEqual(streams[1].streamId, oldId);
    assert.equal(helper.restarts, 1);
    const rejoin = net.last;
    assert.equal(rejoin.hello.new, true);
    assert.equal(rejoin.hello.id, streams[1].streamId);
    assert.deepEqual(rejoin.frames, ['0N', 'begin_chat '], 'the hook joined again on the new stream');
    const poll2 = await created(net);
    poll2.reply(';)]}^\n0N\nTEXT|2|after the restart \n');
    await flush();
    assert.deepEqual(events[4], ['string', 'TEXT|2|after the restart']);
    // The old stream's own 'disconnected' never reached the application: it saw 'reconnecting' in between.
    assert.deepEqual(states, ['connecting', 'connected:long-poll', 'reconnecting', 'connecting', 'connected:long-poll']);
});

test('the server idle reset (no activity from peer|0!) restarts too; strings of the old stream are not resent', async () => {
    const { helper, net, clock, events, streams } = makeHelper();
    helper.start();
    const poll = await created(net);
    helper.sendString('unacknowledged');
    await flush();
    const upload = net.last;
    assert.deepEqual(upload.frames, ['1N', 'unacknowledged ']);
    poll.reply(';)]}^\nno activity from peer|0!\n');
    await flush();
    upload.fail();
    assert.deepEqual(events.at(-1).slice(0, 4), ['reset', 'no activity from peer', false, true]);
    await clock.advance(750);
    assert.equal(streams.length, 2);
    assert.deepEqual(net.last.frames, ['0N', 'begin_chat '], 'only what the new stream was given');
});

test('an application-level reset (authorizer: sign in first) is reported once and never retried', async () => {
    const { helper, net, clock, events, states } = makeHelper();
    helper.start();
    await flush();
    net.requests[0].reply(';)]}^\nsign in first|1!\n');
    await flush();
    assert.deepEqual(events.slice(1).map((e) => e.slice(0, 4)), [['reset', 'sign in first', true, false]]);
    assert.equal(helper.connectionState, 'disconnected');
    assert.equal(helper.stream, null);
    await clock.advance(10 * 60 * 1000);
    assert.equal(net.requests.length, 1, 'no new stream, ever');
    assert.equal(events.length, 2);
    assert.deepEqual(states, ['connecting', 'connected:long-poll', 'disconnected']);
    assert.throws(() => helper.sendString('x'), /closed/);
    assert.throws(() => helper.start(), /already started/);
});

test('shouldRestart decides: an application-level reset can restart, a non-application one can end it', async () => {
    const seen = [];
    const a = makeHelper({ shouldRestart: (reason, applicationLevel) => (seen.push([reason, applicationLevel]), true) });
    a.helper.start();
    const poll = await created(a.net);
    poll.reply(';)]}^\nbecause|1!\n');
    await flush();
    assert.deepEqual(seen, [['because', true]]);
    await a.clock.advance(750);
    assert.equal(a.streams.length, 2);

    const b = makeHelper({ shouldRestart: () => false });
    b.helper.start();
    const poll2 = await created(b.net);
    poll2.reply(ATTACH_FAILURE);
    await flush();
    assert.deepEqual(b.events.at(-1).slice(0, 4), ['reset', 'stream penalty reached limit', false, false]);
    await b.clock.advance(60000);
    assert.equal(b.streams.length, 1);
});

test('backoff: min(maxDelayMs, minDelayMs x 2^(n-1)) x (0.5 + random/2); a stream that lived maxDelayMs starts over', async () => {
    const { helper, net, clock, events } = makeHelper({ minDelayMs: 1000, maxDelayMs: 8000 });
    helper.start();
    const starts = () => events.filter((e) => e[0] === 'start');
    /** Moves the clock in 50 ms steps until the next stream starts; returns the time it took. */
    async function untilRestart() {
        const n = starts().length;
        const from = clock.now();
        while (starts().length === n) await clock.advance(50);
        return starts().at(-1)[2] - from;
    }
    const delays = [];
    for (let i = 0; i < 6; i++) {
        const poll = await created(net);
        poll.reply(ATTACH_FAILURE); // at once: a short-lived stream
        await flush();
        delays.push(await untilRestart());
    }
    // random() = 0.5: x0.75.
    assert.deepEqual(delays, [750, 1500, 3000, 6000, 6000, 6000]);
    // A stream that lived maxDelayMs (8 s) or longer counts as healthy: the next restart waits the minimum again.
    const poll = await created(net);
    await clock.advance(8000);
    poll.reply(ATTACH_FAILURE);
    await flush();
    assert.equal(await untilRestart(), 750);
    assert.equal(helper.restarts, 7);
});

test('the jitter spreads restarts over x0.5..x1 of the delay', async () => {
    for (const [r, expected] of [[0, 500], [0.999, 999.5]]) {
        const { helper, net, clock, events } = makeHelper({ random: () => r });
        helper.start();
        const poll = await created(net);
        poll.reply(ATTACH_FAILURE);
        await flush();
        const resetAt = events.at(-1)[4];
        await clock.advance(5000);
        assert.equal(events.at(-1)[0], 'start');
        assert.equal(events.at(-1)[2] - resetAt, expected);
        helper.close();
    }
});

test('strings sent between streams wait and go on the next stream after the hook\'s; bad ones throw at once', async () => {
    const { helper, net, clock } = makeHelper();
    helper.sendString('before start'); // queued before the first stream too
    helper.start();
    await flush();
    assert.deepEqual(net.requests[0].frames, ['0N', 'begin_chat ', 'before start ']);
    net.requests[0].reply(CREATED);
    await flush();
    net.last.reply(ATTACH_FAILURE);
    await flush();
    helper.sendString('during the break 1');
    helper.sendString('during the break 2');
    assert.throws(() => helper.sendString('caf\u00e9'), /restricted/);
    assert.throws(() => helper.sendString(42), /restricted/);
    await clock.advance(750);
    assert.deepEqual(net.last.frames, ['0N', 'begin_chat ', 'during the break 1 ', 'during the break 2 ']);
});

test('close() resets the stream at the server and restarts nothing; during a backoff it cancels the restart', async () => {
    const { helper, net, clock, events, states } = makeHelper();
    helper.start();
    await created(net);
    const count = net.requests.length;
    helper.close('bye');
    await flush();
    const resetter = net.requests[count];
    assert.equal(resetter.frames.at(-1), 'bye|1!');
    assert.deepEqual(events.at(-1).slice(0, 4), ['reset', 'bye', true, false]);
    assert.equal(helper.connectionState, 'disconnected');
    resetter.reply(';)]}^\n');
    await clock.advance(60000);
    assert.equal(net.requests.length, count + 1);
    assert.throws(() => helper.sendString('x'), /closed/);
    assert.equal(states.at(-1), 'disconnected');

    const b = makeHelper();
    b.helper.start();
    const poll = await created(b.net);
    poll.reply(ATTACH_FAILURE);
    await flush();
    b.helper.sendString('never sent');
    b.helper.close();
    assert.deepEqual(b.events.at(-1).slice(0, 4), ['reset', '', true, false]);
    const n = b.net.requests.length;
    await b.clock.advance(60000);
    assert.equal(b.net.requests.length, n, 'the pending restart was cancelled');
    assert.equal(b.streams.length, 1);
    assert.throws(() => b.helper.close('\u00e9'), /restricted/);
});

test('the hook may throw (reported) and strings still flow; a hook that resets the stream ends the helper', async () => {
    const { helper, net, errors } = makeHelper();
    helper.onstart = () => {
        throw new Error('hook failed');
    };
    helper.sendString('queued');
    helper.start();
    await flush();
    assert.equal(errors.length, 1);
    assert.deepEqual(net.requests[0].frames, ['0N', 'queued ']);

    const b = makeHelper();
    b.helper.onstart = (stream) => stream.reset('not today');
    b.helper.start();
    assert.deepEqual(b.events.map((e) => e.slice(0, 4)), [['reset', 'not today', true, false]]);
    assert.equal(b.helper.connectionState, 'disconnected');
});

test('the constructor checks the endpoint; the global API keeps its names', () => {
    assert.throws(() => new Minerva.ReconnectingStream('/_minerva/'), /HttpEndpoint/);
    for (const name of ['ClientStream', 'HttpEndpoint', 'QANHelper', 'QANProtocolWrapper', 'JSON', 'isRestricted']) {
        assert.ok(name in Minerva, name);
    }
});
