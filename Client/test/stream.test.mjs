// ClientStream behaviour against a scripted fake network: every response is the exact byte string a Minerva
// server sends (PROTOCOL.md 9 groups F and H), and every request body is checked byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Minerva, ID, flush, makeStream } from './fakes.mjs';

const URL_IO = 'http://127.0.0.1:8080/_minerva/io/';
const LP_HELLO0 =
    `{"tnum":0,"ver":2,"format":2,"new":true,"id":"${ID}","ming":false,"maxb":300000,"maxt":25,"maxia":0,` +
    '"tcpack":false,"eeds":null,"sack":"|-1","seenack":"|-1"}H';
const CREATED = ';)]}^\nC\n|-1A\n|-1T\n'; // case 80: response to the creating long-poll

/** A long-poll stream whose stream was created at the server; the waiting long-poll (tnum 1) is returned. */
async function createdLongPoll(options = {}) {
    const t = makeStream({ transport: 'long-poll', ...options });
    t.stream.start();
    await flush();
    t.net.requests[0].reply(CREATED);
    await flush();
    assert.equal(t.net.requests.length, 2);
    return { ...t, poll: t.net.requests[1] };
}

/** A streaming stream created at the server: the primary got the preamble, C and a heartbeat. */
async function createdStreaming(options = {}) {
    const t = makeStream({ transport: 'streaming', ...options });
    t.stream.start();
    await flush();
    const primary = t.net.requests[0];
    primary.respond();
    primary.write(';)]}^\nC\nbeat^\n');
    await flush();
    return { ...t, primary };
}

test('first request: onstarted, then one POST with the hello and queued strings (case 102, 7.3)', async () => {
    const { stream, net, events } = makeStream({ transport: 'long-poll' });
    stream.sendString('c2s_0');
    stream.sendString('c2s_1');
    stream.start();
    assert.deepEqual(events, [['started']]);
    await flush();
    assert.equal(net.requests.length, 1);
    const r = net.requests[0];
    assert.equal(r.url, URL_IO);
    assert.equal(r.init.method, 'POST');
    assert.equal(r.body, LP_HELLO0 + '\n0N\nc2s_0 \nc2s_1 \n');
    assert.throws(() => stream.start(), /already started/);
});

test('streaming hello: ming true, pad, maxt 3580, maxia 10', async () => {
    const { stream, net } = makeStream({ transport: 'streaming' });
    stream.start();
    await flush();
    assert.equal(
        net.requests[0].helloText,
        `{"tnum":0,"ver":2,"format":2,"new":true,"id":"${ID}","ming":true,"pad":4096,"maxb":300000,"maxt":3580,` +
            '"maxia":10,"tcpack":false,"eeds":null,"sack":"|-1","seenack":"|-1"}H',
    );
});

test('C drops "new" from later hellos; the next long-poll follows at once (case 108)', async () => {
    const { net, stream } = await createdLongPoll();
    assert.equal(
        net.requests[1].helloText,
        `{"tnum":1,"ver":2,"format":2,"id":"${ID}","ming":false,"maxb":300000,"maxt":25,"maxia":0,` +
            '"tcpack":false,"eeds":null,"sack":"|-1","seenack":"|-1"}H',
    );
    assert.equal(net.requests[1].frames.length, 0);
    assert.ok(!net.requests[0].aborted);
    assert.equal(stream.streamId, ID);
});

test('strings queued in one turn go in one secondary request; the next batch waits for it', async () => {
    const { stream, net } = await createdLongPoll();
    stream.sendString('a');
    stream.sendString('b');
    stream.sendString('c');
    assert.equal(net.requests.length, 2, 'nothing is sent before the turn ends');
    await flush();
    assert.equal(net.requests.length, 3);
    const s = net.requests[2];
    assert.equal(
        s.body,
        `{"tnum":2,"ver":2,"format":2,"id":"${ID}","ming":false,"maxb":300000,"maxia":0,"tcpack":false,` +
            '"sack":"|-1","seenack":"|-1"}H\n0N\na \nb \nc \n',
    );
    stream.sendString('d');
    stream.sendString('e');
    await flush();
    assert.equal(net.requests.length, 3, 'one upload at a time');
    s.reply(';)]}^\n|2A\n|2A\n|-1T\n');
    await flush();
    assert.equal(net.requests.length, 4);
    assert.deepEqual(net.requests[3].frames, ['3N', 'd ', 'e ']);
    assert.equal(net.requests[3].hello.seenack, '|2');
    net.requests[3].reply(';)]}^\n|4A\n|4A\n|-1T\n');
    await flush();
    assert.equal(net.requests.length, 4, 'nothing left to send');
    assert.equal(stream._queue.items.size, 0);
});

test('strings sent before C wait for the next primary, which carries them', async () => {
    const { stream, net } = makeStream({ transport: 'long-poll' });
    stream.start();
    await flush();
    stream.sendString('early');
    await flush();
    assert.equal(net.requests.length, 1, 'no secondary before the stream exists at the server');
    net.requests[0].reply(CREATED);
    await flush();
    assert.equal(net.requests.length, 2);
    assert.deepEqual(net.requests[1].frames, ['0N', 'early ']);
    assert.equal(net.requests[1].hello.eeds, null);
});

test('a lost upload is retransmitted with the same sequence numbers after the backoff delay', async () => {
    const { stream, net, clock } = await createdLongPoll();
    stream.sendString('one');
    stream.sendString('two');
    await flush();
    net.requests[2].fail();
    await flush();
    assert.equal(net.requests.length, 3, 'a transport that decoded no frame suggests a delay');
    await clock.advance(1999);
    assert.equal(net.requests.length, 3);
    await clock.advance(1);
    assert.equal(net.requests.length, 4);
    assert.deepEqual(net.requests[3].frames, ['0N', 'one ', 'two ']);
    assert.equal(net.requests[3].hello.tnum, 3);
});

test('a request carries at most about 1 MiB of strings; the rest follows in the next one', async () => {
    const { stream, net } = await createdLongPoll();
    const shape = (r) => r.frames.map((f) => (f.length > 20 ? f[0] + f.length : f)); // keeps failures readable
    for (let i = 0; i < 3; i++) stream.sendString('b'.repeat(400000));
    stream.sendString('small');
    await flush();
    assert.deepEqual(shape(net.requests[2]), ['0N', 'b400001', 'b400001']);
    net.requests[2].reply(';)]}^\n|1A\n|1A\n|-1T\n');
    await flush();
    assert.deepEqual(shape(net.requests[3]), ['2N', 'b400001', 'small ']);
    stream.sendString('h'.repeat(1048575));
    net.requests[3].reply(';)]}^\n|3A\n|3A\n|-1T\n');
    await flush();
    assert.deepEqual(shape(net.requests[4]), ['4N', 'h1048576'], 'one string always fits');
});

test('S2C strings: SeqNum frames, duplicates and reordering within and across responses', async () => {
    const { net, strings } = await createdLongPoll();
    net.requests[1].reply(';)]}^\n1N\nb \n0N\na \na \n3N\nd \n|-1A\n|-1T\n');
    await flush();
    assert.deepEqual(strings(), ['a', 'b']);
    assert.equal(net.requests[2].hello.sack, '3|1', 'the next long-poll carries the SACK');
    net.requests[2].reply(';)]}^\n0N\na \nb \nc \nd \ne \n|-1A\n|1T\n');
    await flush();
    assert.deepEqual(strings(), ['a', 'b', 'c', 'd', 'e']);
    assert.equal(net.requests[3].hello.sack, '|4');
    assert.equal(net.requests.length, 4, 'long-poll SACKs ride on the next poll, no upload');
});

test('case 79: strings already queued at the server arrive with the creating response', async () => {
    const { stream, net, strings } = makeStream({ transport: 'long-poll' });
    stream.sendString('string0');
    stream.start();
    await flush();
    net.requests[0].reply(';)]}^\nC\n0N\nstring0 \nstring1 \n|0A\n|0A\n|-1T\n');
    await flush();
    assert.deepEqual(strings(), ['string0', 'string1']);
    assert.equal(stream._queue.items.size, 0);
    assert.equal(net.requests[1].hello.sack, '|1');
    assert.equal(net.requests[1].hello.seenack, '|0');
    assert.equal(net.requests[1].frames.length, 0);
});

test('streaming: strings arrive as written and are SACKed by an upload, once', async () => {
    const { stream, net, primary, strings } = await createdStreaming();
    assert.equal(net.requests.length, 1);
    primary.write('0N\nhello \nwor');
    await flush();
    assert.deepEqual(strings(), ['hello']);
    assert.equal(net.requests.length, 2);
    const sack = net.requests[1];
    assert.equal(sack.hello.sack, '|0');
    assert.equal(sack.hello.eeds, undefined);
    assert.equal(sack.frames.length, 0);
    primary.write('ld \n');
    await flush();
    assert.deepEqual(strings(), ['hello', 'world']);
    assert.equal(net.requests.length, 2, 'the SACK waits for the upload in progress');
    sack.reply(';)]}^\n|-1A\n|0T\n');
    await flush();
    assert.equal(net.requests.length, 3);
    assert.equal(net.requests[2].hello.sack, '|1');
    net.requests[2].reply(';)]}^\n|-1A\n|1T\n');
    await flush();
    assert.equal(net.requests.length, 3, 'server has seen the current SACK');
    stream.sendString('up');
    await flush();
    assert.deepEqual(net.requests[3].frames, ['0N', 'up ']);
    assert.ok(primary.open);
});

test('streaming: strings queued before C are uploaded when C arrives', async () => {
    const { stream, net } = makeStream({ transport: 'streaming' });
    stream.start();
    await flush();
    stream.sendString('x');
    await flush();
    assert.equal(net.requests.length, 1);
    assert.equal(net.requests[0].frames.length, 0, 'queued after the request left');
    net.requests[0].respond();
    net.requests[0].write(';)]}^\nC\n');
    await flush();
    assert.equal(net.requests.length, 2);
    assert.deepEqual(net.requests[1].frames, ['0N', 'x ']);
});

test('stream_attach_failure ends the stream: penalty limit, no further request (case 105)', async () => {
    const { stream, net, events, clock } = makeStream({ transport: 'long-poll' });
    stream.start();
    await flush();
    net.requests[0].reply(';)]}^\nstream_attach_failureK\n');
    await flush();
    assert.deepEqual(events, [['started'], ['reset', 'stream penalty reached limit', false], ['disconnect']]);
    await clock.advance(60000);
    assert.equal(net.requests.length, 1);
    assert.throws(() => stream.sendString('x'), /reset or disposed/);
});

test('a ResetFrame delivers earlier strings, then onreset and ondisconnect (case 106)', async () => {
    const { stream, net, events } = await createdLongPoll();
    net.requests[1].reply(';)]}^\n0N\nhi \nbye|1!\n');
    await flush();
    assert.deepEqual(events, [['started'], ['string', 'hi'], ['reset', 'bye', true], ['disconnect']]);
    assert.equal(net.requests.length, 2);
    assert.throws(() => stream.reset('again'), /already reset/);
});

test('a server reset during streaming aborts the primary and the upload (internal reset, flag 0)', async () => {
    const { stream, net, primary, events } = await createdStreaming();
    stream.sendString('x');
    await flush();
    primary.write('no activity from peer|0!\n');
    await flush();
    assert.deepEqual(events.slice(1), [['reset', 'no activity from peer', false], ['disconnect']]);
    assert.ok(primary.aborted);
    assert.ok(net.requests[1].aborted);
});

test('a valid first frame that is not the preamble: closed, replaced after backoff (case 107, 10.21)', async () => {
    const { stream, net, clock } = makeStream({ transport: 'long-poll' });
    stream.start();
    await flush();
    net.requests[0].reply('C\n');
    await flush();
    assert.equal(net.requests.length, 1);
    await clock.advance(2000);
    assert.equal(net.requests.length, 2);
    assert.equal(net.requests[1].hello.new, true, 'C before the preamble is not believed');
});

test('non-200 responses are not decoded and suggest a delay (10.21)', async () => {
    const { stream, net, clock, strings } = makeStream({ transport: 'long-poll' });
    stream.start();
    await flush();
    net.requests[0].reply(';)]}^\nC\n0N\nhi \n', 500);
    await flush();
    assert.deepEqual(strings(), []);
    assert.equal(net.requests.length, 1);
    await clock.advance(2000);
    assert.equal(net.requests.length, 2);
});

test('an HTML error page (undecodable first line) suggests a delay', async () => {
    const { stream, net, clock } = makeStream({ transport: 'long-poll' });
    stream.start();
    await flush();
    net.requests[0].reply('<html><body>Bad gateway</body></html>\n');
    await flush();
    await clock.advance(1999);
    assert.equal(net.requests.length, 1);
    await clock.advance(1);
    assert.equal(net.requests.length, 2);
});

test('backoff: 2000 x min(count, 3) + jitter - duration; reset to 0 by a good transport (7.7)', async () => {
    let jitter = 0.5;
    const { stream, net, clock } = makeStream({ transport: 'long-poll', random: () => jitter });
    stream.start();
    await flush();
    const gaps = [];
    for (let i = 0; i < 5; i++) {
        const n = net.requests.length;
        net.last.fail();
        const failedAt = clock.now();
        while (net.requests.length === n) await clock.advance(100);
        gaps.push(clock.now() - failedAt);
    }
    assert.deepEqual(gaps, [2000, 4000, 6000, 6000, 6000]);
    // A transport that lived long counts its duration against the delay.
    await clock.advance(2500);
    net.last.fail();
    await clock.advance(3499);
    assert.equal(net.requests.length, 6, '6000 - 2500 = 3500 ms');
    await clock.advance(1);
    assert.equal(net.requests.length, 7);
    net.last.reply(CREATED);
    await flush();
    assert.equal(net.requests.length, 8, 'a good transport resets the count; replacement is immediate');
    // Jitter: random 0.99975 gives +1999, random 0 gives -2000.
    jitter = 0.99975;
    net.last.fail();
    await clock.advance(3998);
    assert.equal(net.requests.length, 8);
    await clock.advance(1);
    assert.equal(net.requests.length, 9);
    jitter = 0;
    net.last.reply(';)]}^\n|-1A\n|-1T\n');
    await flush();
    assert.equal(net.requests.length, 10);
    net.last.fail();
    await flush();
    assert.equal(net.requests.length, 11, '2000 - 2000 = 0: immediate');
});

test('penalty: acked_unsent_strings twice ends the stream even across a backoff delay (7.7, 10.22)', async () => {
    const { stream, net, clock, events } = await createdLongPoll();
    net.requests[1].reply(';)]}^\n|-1A\n|-1T\nacked_unsent_stringsK\n');
    await flush();
    assert.equal(net.requests.length, 2, 'a kill frame means problems: delay');
    await clock.advance(2000);
    assert.equal(net.requests.length, 3);
    net.requests[2].reply(';)]}^\n|-1A\n|-1T\nacked_unsent_stringsK\n');
    await flush();
    assert.deepEqual(events.slice(1), [['reset', 'stream penalty reached limit', false], ['disconnect']]);
});

test('penalty: a good transport in between resets it', async () => {
    const { net, clock, events } = await createdLongPoll();
    net.requests[1].reply(';)]}^\nacked_unsent_stringsK\n');
    await clock.advance(2000);
    net.requests[2].reply(';)]}^\n|-1A\n|-1T\n');
    await flush();
    net.requests[3].reply(';)]}^\nacked_unsent_stringsK\n');
    await clock.advance(10000);
    assert.deepEqual(events, [['started']]);
    assert.equal(net.requests.length, 5);
    for (const reason of ['invalid_frame_type_or_arguments', 'frame_corruption', 'rwin_overflow']) {
        net.last.reply(`;)]}^\n${reason}K\n`);
        await clock.advance(10000);
    }
    assert.deepEqual(events, [['started']], 'other kill reasons add no penalty');
    assert.equal(net.requests.length, 8);
});

test('a SACK acknowledging unsent strings closes the transport with problems, no penalty', async () => {
    const { stream, net, clock, events } = await createdLongPoll();
    stream.sendString('a');
    await flush();
    net.requests[1].reply(';)]}^\n|5A\n|-1T\n');
    await flush();
    assert.equal(net.requests.length, 3, 'only the upload is open');
    await clock.advance(2000);
    assert.equal(net.requests.length, 4);
    assert.deepEqual(events, [['started']]);
});

test('client reset: aborts transports, sends unacked strings and the ResetFrame, then disconnects', async () => {
    const { stream, net, events } = await createdLongPoll();
    stream.sendString('last words');
    await flush();
    const upload = net.requests[2];
    stream.reset('done here');
    assert.deepEqual(events, [['started'], ['reset', 'done here', true]]);
    assert.ok(net.requests[1].aborted && upload.aborted);
    await flush();
    assert.equal(net.requests.length, 4);
    const r = net.requests[3];
    assert.equal(
        r.body,
        `{"tnum":3,"ver":2,"format":2,"id":"${ID}","ming":false,"maxb":300000,"maxia":0,"tcpack":false,` +
            '"sack":"|-1","seenack":"|-1"}H\n0N\nlast words \ndone here|1!\n',
    );
    assert.throws(() => stream.sendString('x'), /reset or disposed/);
    assert.throws(() => stream.reset('x'), /already reset/);
    r.reply(';)]}^\n|-1A\n|-1T\n');
    await flush();
    assert.deepEqual(events.slice(2), [['disconnect']]);
    assert.equal(net.requests.length, 4);
});

test('client reset reasons are validated (10.12); reset before start reports locally (10.24)', async () => {
    const { stream, net, events } = makeStream();
    assert.throws(() => stream.reset('tab\there'), /restricted/);
    assert.throws(() => stream.reset('x'.repeat(256)), /255/);
    stream.reset('never mind');
    assert.deepEqual(events, [['reset', 'never mind', true], ['disconnect']]);
    await flush();
    assert.equal(net.requests.length, 0);
    assert.throws(() => stream.start(), /already started/);
});

test('sendString rejects non-restricted strings and non-strings; validate=false skips it (case 103)', async () => {
    const { stream, net } = makeStream({ transport: 'long-poll' });
    for (const bad of ['\x00', '\xff', '\n', '\x1f', '\x7f', 'hello\tworld', '\u20ac']) {
        assert.throws(() => stream.sendString(bad), /outside U\+0020\.\.U\+007E/);
    }
    assert.throws(() => stream.sendString('hello\tworld'), /character U\+0009 at index 5 /);
    for (const bad of [1, null, undefined, {}, ['x']]) assert.throws(() => stream.sendString(bad), TypeError);
    stream.sendString('\x7f', false);
    stream.start();
    await flush();
    assert.deepEqual(net.requests[0].frames, ['0N', '\x7f ']);
});

test('start() refuses an onmessage property (a common mistake)', () => {
    const { stream } = makeStream();
    stream.onmessage = () => {};
    assert.throws(() => stream.start(), /onstring/);
});

test('dispose closes everything silently and calls ondisconnect once', async () => {
    const { stream, net, events, clock } = await createdStreaming();
    stream.sendString('x');
    await flush();
    stream.dispose();
    stream.dispose();
    assert.deepEqual(events, [['started'], ['disconnect']]);
    assert.ok(net.requests.every((r) => r.aborted));
    await clock.advance(100000);
    assert.equal(net.requests.length, 2);
});

test('auto mode falls back to long-polling when no preamble arrives in time, without losing strings', async () => {
    const { stream, net, clock, strings } = makeStream();
    stream.sendString('s0');
    stream.start();
    await flush();
    assert.equal(net.requests[0].hello.ming, true);
    await clock.advance(4999);
    assert.equal(net.requests.length, 1);
    await clock.advance(1);
    assert.ok(net.requests[0].aborted);
    assert.equal(net.requests.length, 2, 'replaced at once, no backoff');
    const lp = net.requests[1];
    assert.equal(lp.hello.ming, false);
    assert.equal(lp.hello.maxia, 0);
    assert.equal(lp.hello.maxt, 25);
    assert.equal(lp.hello.tnum, 1);
    assert.equal(lp.hello.new, true);
    assert.deepEqual(lp.frames, ['0N', 's0 ']);
    lp.reply(';)]}^\nC\n0N\nfrom server \n|0A\n|0A\n|-1T\n');
    await flush();
    assert.deepEqual(strings(), ['from server']);
    assert.equal(net.requests[2].hello.ming, false, 'stays on long-polling');
    assert.equal(stream._queue.items.size, 0);
});

test('auto mode also falls back when headers arrive but the body is held back', async () => {
    const { stream, net, clock } = makeStream();
    stream.start();
    await flush();
    net.requests[0].respond();
    await clock.advance(5000);
    assert.ok(net.requests[0].aborted);
    assert.equal(net.requests[1].hello.ming, false);
});

test('auto mode keeps streaming when the preamble arrives in time', async () => {
    const { stream, net, clock } = makeStream();
    stream.start();
    await flush();
    await clock.advance(4000);
    net.requests[0].respond();
    net.requests[0].write(';)]}^\nC\nbeat^\n');
    await clock.advance(9000);
    assert.equal(net.requests.length, 1);
    assert.ok(!net.requests[0].aborted);
    net.requests[0].write('beat^\n');
    await clock.advance(13499);
    assert.ok(!net.requests[0].aborted, 'heartbeats keep it alive');
    await clock.advance(1);
    assert.ok(net.requests[0].aborted, 'silent for 13500 ms: closed');
    assert.equal(net.requests[1].hello.ming, true, 'a later stall is not buffering: still streaming');
});

test('auto mode falls back after two streaming primaries in a row go silent after their preamble', async () => {
    const { stream, net, clock } = makeStream();
    stream.start();
    await flush();
    for (const i of [0, 1]) {
        net.requests[i].respond();
        net.requests[i].write(i === 0 ? ';)]}^\nC\nbeat^\n' : ';)]}^\nbeat^\n');
        await clock.advance(13500);
        assert.ok(net.requests[i].aborted);
    }
    assert.equal(net.requests[1].hello.ming, true, 'one stall is not enough');
    assert.equal(net.requests[2].hello.ming, false);
    // A streaming primary that ends normally in between resets the count.
    const other = makeStream();
    other.stream.start();
    await flush();
    const r = other.net.requests;
    r[0].respond();
    r[0].write(';)]}^\nC\nbeat^\n');
    await other.clock.advance(13500);
    r[1].respond();
    r[1].write(';)]}^\n|-1A\n|-1T\n');
    r[1].end();
    await flush();
    r[2].respond();
    r[2].write(';)]}^\nbeat^\n');
    await other.clock.advance(13500);
    assert.equal(r[3].hello.ming, true);
});

test('forced streaming never falls back', async () => {
    const { stream, net, clock } = makeStream({ transport: 'streaming' });
    stream.start();
    await flush();
    await clock.advance(11499);
    assert.equal(net.requests.length, 1);
    await clock.advance(1);
    assert.ok(net.requests[0].aborted, 'request timeout 11500 ms');
    await clock.advance(2000);
    assert.equal(net.requests[1].hello.ming, true);
});

test('receive timeouts: long-poll 36500 ms (42500 https) until headers, then Content-Length based', async () => {
    for (const [url, ms] of [['http://h/m/', 36500], ['https://h/m/', 42500]]) {
        const { stream, net, clock } = makeStream({ transport: 'long-poll', url });
        stream.start();
        await flush();
        await clock.advance(ms - 1);
        assert.ok(!net.requests[0].aborted);
        await clock.advance(1);
        assert.ok(net.requests[0].aborted, url);
    }
    const { stream, net, clock } = makeStream({ transport: 'long-poll' });
    stream.start();
    await flush();
    net.requests[0].respond({ contentLength: 3072 });
    await clock.advance(2999);
    assert.ok(!net.requests[0].aborted);
    await clock.advance(1);
    assert.ok(net.requests[0].aborted, '2000 + 3072 bytes at 3072 bytes/s');
});

test('receive window overflow closes the transport; the next hello reports what is cached', async () => {
    const { stream, net, strings } = await createdLongPoll();
    stream.maxUndeliveredStrings = 2;
    net.requests[1].reply(';)]}^\n5N\nf \ng \nh \n0N\na \n|-1A\n|-1T\n');
    await flush();
    assert.deepEqual(strings(), []);
    assert.equal(net.requests.length, 3, 'closed and replaced at once');
    assert.equal(net.requests[2].hello.sack, '5,6|-1');
});

test('overflow on a stream delivers what is in order, then closes', async () => {
    const { stream, primary, net, strings } = await createdStreaming();
    stream.maxUndeliveredStrings = 1;
    primary.write('2N\nc \nd \n0N\na \n');
    await flush();
    assert.ok(primary.aborted);
    assert.deepEqual(strings(), []);
    net.requests[1].respond();
    net.requests[1].write(';)]}^\n0N\na \nb \nc \nd \n');
    await flush();
    assert.deepEqual(strings(), ['a', 'b', 'c', 'd']);
});

test('non-restricted S2C strings and undecodable frames close with problems; earlier strings delivered', async () => {
    for (const bad of ['bad\x01 ', 'gibberish', 'caf\u00e9 ', '']) {
        const { net, clock, strings } = await createdLongPoll();
        net.requests[1].respond();
        net.requests[1].write(';)]}^\n0N\nok \n' + bad + '\nlater \n');
        await flush();
        assert.deepEqual(strings(), ['ok'], JSON.stringify(bad));
        assert.ok(net.requests[1].aborted);
        assert.equal(net.requests.length, 2);
        await clock.advance(2000);
        assert.equal(net.requests[2].hello.sack, '|0');
    }
});

test('Y closes the transport; comments are ignored', async () => {
    const { net, strings } = await createdLongPoll();
    net.requests[1].respond();
    net.requests[1].write(';)]}^\nhello^\n0N\na \nY\nb \n');
    await flush();
    assert.deepEqual(strings(), ['a']);
    assert.ok(net.requests[1].aborted);
    assert.equal(net.requests.length, 3, 'not a problem: immediate');
});

test('frames split across chunks and CRLF line ends are decoded', async () => {
    const { primary, strings } = await createdStreaming();
    for (const piece of ['0', 'N\r', '\nab', 'c \r\n', '1N\ndef', ' \n']) primary.write(piece);
    await flush();
    assert.deepEqual(strings(), ['abc', 'def']);
});

test('a frame longer than 1 MiB closes the transport', async () => {
    const { primary, strings } = await createdStreaming();
    primary.write('0N\nok \n' + 'x'.repeat(1048576) + '\r');
    await flush();
    assert.ok(!primary.aborted, 'exactly 1 MiB plus CR is fine');
    primary.write('y');
    await flush();
    assert.deepEqual(strings(), ['ok']);
    assert.ok(primary.aborted);
});

test('a failed upload is retransmitted even while a newer primary is open (10.23)', async () => {
    const { stream, net, clock } = await createdLongPoll();
    stream.sendString('a');
    stream.sendString('b');
    await flush();
    const upload = net.requests[2];
    net.requests[1].reply(';)]}^\n|-1A\n|-1T\n'); // long-poll ends, a new one starts
    await flush();
    assert.equal(net.requests.length, 4);
    assert.deepEqual(net.requests[3].frames, [], 'a and b are in flight on the upload');
    upload.fail();
    await clock.advance(2000);
    assert.equal(net.requests.length, 5);
    assert.deepEqual(net.requests[4].frames, ['0N', 'a ', 'b ']);
    assert.equal(net.requests[4].hello.eeds, undefined);
});

test('a new primary retransmits what a failed primary carried; an unacknowledged upload is resent', async () => {
    const { stream, net, clock } = makeStream({ transport: 'streaming' });
    stream.sendString('a');
    stream.start();
    await flush();
    net.requests[0].fail();
    await clock.advance(2000);
    assert.equal(net.requests.length, 2);
    assert.deepEqual(net.requests[1].frames, ['0N', 'a ']);
    assert.equal(net.requests[1].hello.new, true);
    net.requests[1].respond();
    net.requests[1].write(';)]}^\nC\nbeat^\n');
    await flush();
    assert.equal(net.requests.length, 2, 'a is in flight on the open primary');
    stream.sendString('b');
    await flush();
    assert.deepEqual(net.requests[2].frames, ['1N', 'b ']);
    net.requests[2].reply(';)]}^\n|-1A\n|-1T\n'); // answered, but neither string acknowledged
    await flush();
    assert.deepEqual(net.requests[3].frames, ['1N', 'b '], 'resent at once; a is still in flight');
    net.requests[3].reply(';)]}^\n|1A\n|1A\n|-1T\n');
    await flush();
    assert.equal(net.requests.length, 4);
    assert.equal(stream._queue.items.size, 0);
});

test('onstring exceptions are reported asynchronously and delivery continues', async () => {
    const { stream, net, errors } = await createdLongPoll();
    const got = [];
    stream.onstring = (s) => {
        got.push(s);
        if (s === 'b') throw new Error('boom');
    };
    net.requests[1].reply(';)]}^\n0N\na \nb \nc \n|-1A\n|-1T\n');
    await flush();
    assert.deepEqual(got, ['a', 'b', 'c']);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].message, 'boom');
});

test('a reset from inside onstring stops delivery', async () => {
    const { stream, net, events } = await createdLongPoll();
    stream.onstring = (s) => {
        events.push(['string', s]);
        stream.reset('enough');
    };
    net.requests[1].reply(';)]}^\n0N\na \nb \n|-1A\n|-1T\n');
    await flush();
    assert.deepEqual(events.slice(1), [['string', 'a'], ['reset', 'enough', true]]);
    assert.ok(net.last.body.endsWith('enough|1!\n'));
});

test('bindToProtocol routes callbacks (with transport info) to the protocol object', async () => {
    const calls = [];
    const { stream, net } = makeStream({ transport: 'long-poll' });
    stream.bindToProtocol({
        streamStarted: (s) => calls.push(['streamStarted', s === stream]),
        stringReceived: (s) => calls.push(['stringReceived', s]),
        streamReset: (r, a) => calls.push(['streamReset', r, a]),
        transportCreated: (i) => calls.push(['created', i.transportNumber, i.isPrimary, i.streamingFromPeer]),
        transportDestroyed: (i) => calls.push(['destroyed', i.transportNumber]),
    });
    stream.start();
    await flush();
    net.requests[0].reply(';)]}^\nC\n0N\nhey \n|-1A\n|-1T\n');
    await flush();
    net.requests[1].reply(';)]}^\nbye|1!\n');
    await flush();
    assert.deepEqual(calls, [
        ['streamStarted', true], ['created', 0, true, false], ['stringReceived', 'hey'], ['destroyed', 0],
        ['created', 1, true, false], ['streamReset', 'bye', true],
    ]);
    assert.equal(stream.getUserContext(), stream);
});

test('connectionState: connecting, connected, reconnecting during backoff, disconnected', async () => {
    const { stream, net, clock } = makeStream({ transport: 'long-poll' });
    const states = [];
    stream.onconnectionstate = (state) => states.push(state);
    assert.equal(stream.connectionState, 'unstarted');
    stream.start();
    await flush();
    net.requests[0].reply(CREATED);
    await flush();
    net.requests[1].fail();
    await flush();
    assert.equal(stream.connectionState, 'reconnecting');
    await clock.advance(2000);
    net.requests[2].reply(';)]}^\n|-1A\n|-1T\n');
    await flush();
    stream.dispose();
    assert.deepEqual(states, ['connecting', 'connected', 'reconnecting', 'connected', 'disconnected']);
});

test('an exception in onstarted is reported and the stream still connects; bindToProtocol checks methods', async () => {
    const { stream, net, errors } = makeStream();
    stream.onstarted = () => {
        throw new Error('oops');
    };
    stream.start();
    await flush();
    assert.equal(errors[0].message, 'oops');
    assert.equal(net.requests.length, 1);
    assert.throws(() => stream.bindToProtocol({ streamStarted() {}, stringReceived() {} }), /streamReset/);
});
