// Pure logic: restricted strings, frame decoding (PROTOCOL.md 9 group A, S2C side), SACKs, hellos, stream ids,
// the send queue, the receive window and JSON.asciify.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Minerva, ID } from './fakes.mjs';

const { SACK, decodeFrame, encodeHello, makeStreamId, SendQueue, ReceiveWindow } = Minerva.internal;
const TWO53 = 9007199254740992;

test('restricted strings are exactly U+0020..U+007E', () => {
    let all = '';
    for (let c = 0x20; c <= 0x7e; c++) all += String.fromCharCode(c);
    assert.ok(Minerva.isRestricted(all));
    assert.ok(Minerva.isRestricted(''));
    for (const bad of ['\x00', '\x1f', '\x7f', '\xff', '\n', 'hello\tworld', '\u00e9', '\ud83d\ude00']) {
        assert.equal(Minerva.isRestricted(bad), false, JSON.stringify(bad));
    }
    assert.equal(Minerva.isRestricted(5), false);
});

test('SeqNum frames decode (A1) and reject bad numbers (A2)', () => {
    assert.deepEqual(decodeFrame('0N'), { type: 'N', seqNum: 0 });
    assert.equal(decodeFrame('1N').seqNum, 1);
    assert.equal(decodeFrame('4294967296N').seqNum, 4294967296);
    assert.equal(decodeFrame('9007199254740992N').seqNum, TWO53);
    const bad = ['-1N', '-9007199254740992N', '9007199254740993N', '00N', '0'.repeat(1023) + 'N', 'N', 'xN', ' 1N'];
    for (const frame of bad) {
        assert.equal(decodeFrame(frame), null, frame);
    }
});

test('SACK frames decode (A4) and reject bad input (A5-A7)', () => {
    for (const ack of [-1, 0, 1, TWO53]) {
        const f = decodeFrame(`1,4|${ack}A`);
        assert.equal(f.type, 'A');
        assert.equal(f.sack.ack, ack);
        assert.deepEqual(f.sack.list, [1, 4]);
    }
    assert.deepEqual(decodeFrame('|9007199254740992A').sack.list, []);
    for (const bad of [
        '1,4|9007199254740993A', '1,4|-2A', '1,4|-1.01A', '1,4|0.5A', '1,4|1.5A', '1,4|-0A',
        '1,9007199254740993|4A', '1,-1|4A', '1,0.5|4A', '1,1.5|4A', '1,|3A', '||4A', 'A', '|A',
    ]) {
        assert.equal(decodeFrame(bad), null, bad);
    }
    assert.equal(decodeFrame('1,4|-1T').type, 'T');
    assert.equal(decodeFrame('1,4|-1T').sack.toString(), '1,4|-1');
});

test('SACK encoding and equality (A8)', () => {
    assert.equal(new SACK(2, [1, 4]).toString(), '1,4|2');
    assert.equal(new SACK(2, [4]).toString(), '4|2');
    assert.equal(new SACK(2).toString(), '|2');
    assert.equal(new SACK(-1).toString(), '|-1');
    assert.ok(new SACK(2, [4]).equals(SACK.parse('4|2')));
    assert.ok(!new SACK(2, [4]).equals(new SACK(2, [5])));
    assert.ok(!new SACK(2, [4, 5]).equals(new SACK(2, [5, 4])));
    assert.ok(!new SACK(2).equals(new SACK(3)));
});

test('C, Y, comments, strings, kills (A9, A13, A14)', () => {
    assert.deepEqual(decodeFrame('C'), { type: 'C' });
    assert.deepEqual(decodeFrame('Y'), { type: 'Y' });
    assert.equal(decodeFrame('extra stuffC'), null);
    assert.equal(decodeFrame('extra stuffY'), null);
    assert.deepEqual(decodeFrame('\x00unchecked\xfftext '), { type: ' ', string: '\x00unchecked\xfftext' });
    assert.deepEqual(decodeFrame('\x00unchecked\xfftext^'), { type: '^', string: '\x00unchecked\xfftext' });
    assert.deepEqual(decodeFrame(' '), { type: ' ', string: '' });
    for (const r of ['stream_attach_failure', 'acked_unsent_strings', 'invalid_frame_type_or_arguments',
        'frame_corruption', 'rwin_overflow']) {
        assert.deepEqual(decodeFrame(r + 'K'), { type: 'K', reason: r });
    }
    assert.equal(decodeFrame('not_a_reasonK'), null);
    assert.equal(decodeFrame('toStringK'), null);
    assert.equal(decodeFrame(''), null);
    assert.equal(decodeFrame('{}H'), null, 'hello is C2S only');
    assert.equal(decodeFrame('xZ'), null);
});

test('Reset frames (A10-A12)', () => {
    const cases = [['the reason|0!', 'the reason', false], ['the | | reason|1!', 'the | | reason', true],
        ['|0!', '', false], ['||1!', '|', true], ['|||1!', '||', true]];
    for (const [frame, reason, applicationLevel] of cases) {
        assert.deepEqual(decodeFrame(frame), { type: '!', reason, applicationLevel }, frame);
    }
    for (const bad of ['\x7freason|0!', 'reason|2!', 'reason!', 'reason|!', 'x'.repeat(256) + '|0!']) {
        assert.equal(decodeFrame(bad), null, bad.slice(0, 20));
    }
    assert.equal(decodeFrame('x'.repeat(255) + '|0!').reason.length, 255);
});

test('hellos are byte-identical to the original client (7.3)', () => {
    const base = { tnum: 0, isNew: true, id: ID, sack: new SACK(-1), seenack: new SACK(-1) };
    assert.equal(
        encodeHello({ ...base, ming: false, primary: true }),
        `{"tnum":0,"ver":2,"format":2,"new":true,"id":"${ID}","ming":false,"maxb":300000,"maxt":25,"maxia":0,` +
            '"tcpack":false,"eeds":null,"sack":"|-1","seenack":"|-1"}H',
    );
    assert.equal(
        encodeHello({ ...base, tnum: 1, isNew: false, ming: false, primary: false }),
        `{"tnum":1,"ver":2,"format":2,"id":"${ID}","ming":false,"maxb":300000,"maxia":0,"tcpack":false,` +
            '"sack":"|-1","seenack":"|-1"}H',
    );
    assert.equal(
        encodeHello({ ...base, tnum: 7, isNew: false, ming: true, primary: true, sack: new SACK(3, [5, 9]),
            seenack: new SACK(2) }),
        `{"tnum":7,"ver":2,"format":2,"id":"${ID}","ming":true,"pad":4096,"maxb":300000,"maxt":3580,"maxia":10,` +
            '"tcpack":false,"eeds":null,"sack":"5,9|3","seenack":"|2"}H',
    );
});

test('stream ids: 26 base-36 characters from the random source, uniform by rejection', () => {
    const id = makeStreamId((a) => crypto.getRandomValues(a));
    assert.match(id, /^[0-9a-z]{26}$/);
    assert.notEqual(id, makeStreamId((a) => crypto.getRandomValues(a)));
    // Bytes 252..255 are skipped; 0..251 map to byte % 36.
    let calls = 0;
    const fixed = makeStreamId((a) => {
        calls++;
        a.fill(calls === 1 ? 255 : 37);
    });
    assert.equal(fixed, '1'.repeat(26));
    assert.equal(calls, 2);
    const s = new Minerva.ClientStream(new Minerva.HttpEndpoint('http://h/'), { fetch() {} });
    assert.match(s.streamId, /^[0-9a-z]{26}$/);
});

test('send queue: SACKs remove items, bad SACKs are detected', () => {
    const q = new SendQueue();
    for (const s of ['a', 'b', 'c', 'd', 'e']) q.push(s);
    assert.equal(q.handleSACK(new SACK(0, [2, 4])), false);
    assert.deepEqual([...q.items.keys()], [1, 3]);
    assert.equal(q.handleSACK(new SACK(1)), false);
    assert.deepEqual([...q.items], [[3, 'd']]);
    assert.equal(q.handleSACK(new SACK(5)), true, 'ack of a number never assigned');
    assert.equal(q.items.size, 0);
    q.push('f');
    assert.equal(q.handleSACK(new SACK(-1, [6])), true);
    assert.equal(q.handleSACK(new SACK(-1, [5])), false);
});

test('receive window: order, duplicates, gaps, limits', () => {
    const w = new ReceiveWindow();
    assert.deepEqual(w.give([[1, 'b'], [3, 'd']], 50, 1048576), [[], false]);
    assert.equal(w.getSACK().toString(), '1,3|-1');
    assert.deepEqual(w.give([[0, 'a'], [0, 'a'], [1, 'b']], 50, 1048576), [['a', 'b'], false]);
    assert.equal(w.getSACK().toString(), '3|1');
    assert.deepEqual(w.give([[2, 'c']], 50, 1048576), [['c', 'd'], false]);
    assert.equal(w.getSACK().toString(), '|3');
    assert.equal(w.cachedBytes, 0);
    // Limits: 2 strings, then the third gap string is a limit hit; in-order strings still pass.
    assert.deepEqual(w.give([[5, 'f'], [6, 'g'], [7, 'h']], 2, 1048576), [[], true]);
    assert.equal(w.getSACK().toString(), '5,6|3');
    assert.deepEqual(w.give([[6, 'g']], 2, 1048576), [[], false], 'a cached number is a duplicate, not a hit');
    assert.deepEqual(w.give([[4, 'e']], 2, 1048576), [['e', 'f', 'g'], false]);
    // Byte limit: estimate 21 + 2 x length.
    const w2 = new ReceiveWindow();
    assert.deepEqual(w2.give([[1, 'x'.repeat(10)]], 50, 41), [[], false]);
    assert.equal(w2.cachedBytes, 41);
    assert.deepEqual(w2.give([[2, '']], 50, 41), [[], true]);
    assert.deepEqual(w2.give([[2, '']], 50, 62), [[], false]);
});

test('JSON.asciify keeps output within the restricted range', () => {
    const value = { s: 'h\u00e9\n\x7f\ud83d\ude00"\\', n: [1, 2.5, null] };
    const out = Minerva.JSON.asciify(value);
    assert.ok(Minerva.isRestricted(out), out);
    assert.equal(out, '{"s":"h\\u00e9\\n\\u007f\\ud83d\\ude00\\"\\\\","n":[1,2.5,null]}');
    assert.deepEqual(JSON.parse(out), value);
    assert.equal(Minerva.JSON.serialize([1]), '[1]');
    assert.deepEqual(Minerva.JSON.parse('[1]'), [1]);
});

test('endpoint URLs must end in a slash and are resolved', () => {
    assert.throws(() => new Minerva.HttpEndpoint('http://h/_minerva'), /must end in/);
    const e = new Minerva.HttpEndpoint('http://h/a/', 'http://h2/b/');
    assert.equal(e.primaryUrl, 'http://h/a/');
    assert.equal(e.secondaryUrl, 'http://h2/b/');
    assert.throws(() => new Minerva.ClientStream({ primaryUrl: 'http://h/' }), TypeError);
});
