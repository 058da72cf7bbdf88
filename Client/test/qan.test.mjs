// QAN: frame codec and helper (PROTOCOL.md 8 and 9 group G), and the protocol wrapper on a fake stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Minerva, flush, makeStream } from './fakes.mjs';

const { encodeQAN, decodeQAN } = Minerva.internal;
const { QANHelper, QANProtocolWrapper, KnownError, UnknownError, QuestionFailed, CancelledError } = Minerva;

test('QAN frames encode (G92)', () => {
    assert.equal(encodeQAN({ type: '#', body: 'blah' }), 'blah#');
    assert.equal(encodeQAN({ type: 'Q', body: 'blah', qid: 0 }), 'blah|0Q');
    for (const t of 'QKEU') assert.equal(encodeQAN({ type: t, body: 'blah', qid: 100 }), 'blah|100' + t);
    assert.equal(encodeQAN({ type: 'C', qid: 100 }), '100C');
});

test('QAN frames decode (G93)', () => {
    assert.deepEqual(decodeQAN('blah|10Q'), { type: 'Q', body: 'blah', qid: 10 });
    assert.deepEqual(decodeQAN('a|b|10K'), { type: 'K', body: 'a|b', qid: 10 });
    assert.deepEqual(decodeQAN('blah|10E'), { type: 'E', body: 'blah', qid: 10 });
    assert.deepEqual(decodeQAN('|9007199254740992U'), { type: 'U', body: '', qid: 9007199254740992 });
    assert.deepEqual(decodeQAN('10C'), { type: 'C', qid: 10 });
    assert.deepEqual(decodeQAN('bl|ah#'), { type: '#', body: 'bl|ah' });
    for (const bad of ['', 'whatX', 'blah|10X', '1x0C', 'C', 'blah|1x0Q', 'Q', 'blah|01Q', 'blah10Q',
        'b|9007199254740993K', 'b|-1K']) {
        assert.equal(decodeQAN(bad), null, bad);
    }
});

function helper(bodyReceived = () => 'ok') {
    const sent = [];
    const fatal = [];
    const logged = [];
    const h = new QANHelper(bodyReceived, (m, e) => logged.push([m, e]), (f) => sent.push(encodeQAN(f)),
        (m) => fatal.push(m));
    return { h, sent, fatal, logged };
}

test('ask: answers settle questions; unknown qids are fatal (G94)', async () => {
    const { h, sent, fatal } = helper();
    const q1 = h.ask('what?');
    const q2 = h.ask('two');
    const q3 = h.ask('three');
    assert.deepEqual(sent, ['what?|1Q', 'two|2Q', 'three|3Q']);
    h.handleQANFrame(decodeQAN('answer with wrong qid|100K'));
    assert.deepEqual(fatal, ['Received an answer with invalid qid: 100']);
    h.handleQANFrame(decodeQAN('no.|1K'));
    h.handleQANFrame(decodeQAN('bad|2E'));
    h.handleQANFrame(decodeQAN('worse|3U'));
    assert.equal(await q1, 'no.');
    await assert.rejects(q2, (e) => e instanceof KnownError && e.body === 'bad');
    await assert.rejects(q3, (e) => e instanceof UnknownError && e.body === 'worse');
    h.handleQANFrame(decodeQAN('again|1K'));
    assert.equal(fatal.length, 2, 'an answered qid is no longer known');
});

test('questions received are answered, also asynchronously and in completion order (G95, G96)', async () => {
    let n = 0;
    const resolvers = [];
    const { h, sent } = helper((body, isQuestion) => {
        assert.equal(isQuestion, true);
        if (++n <= 2) return 'chilly';
        return new Promise((resolve, reject) => resolvers.push({ resolve, reject }));
    });
    h.handleQANFrame(decodeQAN('the weather?|1Q'));
    h.handleQANFrame(decodeQAN('how about now?|2Q'));
    assert.deepEqual(sent, ['chilly|1K', 'chilly|2K']);
    h.handleQANFrame(decodeQAN('later?|3Q'));
    h.handleQANFrame(decodeQAN('much later?|4Q'));
    h.handleQANFrame(decodeQAN('error?|5Q'));
    resolvers[1].resolve('sunny');
    resolvers[0].resolve('hurricane');
    resolvers[2].reject(new KnownError('no forecast'));
    await flush();
    assert.deepEqual(sent.slice(2), ['sunny|4K', 'hurricane|3K', 'no forecast|5E']);
});

test('duplicate qid of a pending question is fatal; body not delivered (G97)', () => {
    const bodies = [];
    const { h, fatal } = helper((b) => {
        bodies.push(b);
        return new Promise(() => {});
    });
    h.handleQANFrame(decodeQAN('what?|1Q'));
    h.handleQANFrame(decodeQAN('where?|1Q'));
    assert.deepEqual(fatal, ['Received Question with duplicate qid: 1']);
    assert.deepEqual(bodies, ['what?']);
});

test('they cancel: cancellable answers decide, others answer CancelledError (G98)', async () => {
    const pending = {};
    const { h, sent } = helper((body) => {
        let reject;
        let resolve;
        const p = new Promise((res, rej) => {
            resolve = res;
            reject = rej;
        });
        if (body === 'two') p.cancel = () => reject(new KnownError("okay, you'll never know"));
        if (body === 'four') p.cancel = () => resolve('maybe a little warm');
        pending[body] = { resolve, reject };
        return p;
    });
    for (const [i, b] of ['one', 'two', 'three', 'four'].entries()) h.handleQANFrame(decodeQAN(`${b}|${i + 1}Q`));
    h.handleQANFrame(decodeQAN('2C'));
    h.handleQANFrame(decodeQAN('4C'));
    h.handleQANFrame(decodeQAN('1C'));
    pending.three.reject(new KnownError('weather station is broken'));
    pending.one.resolve('too late');
    await flush();
    assert.deepEqual(sent, ['CancelledError|1U', "okay, you'll never know|2E", 'maybe a little warm|4K',
        'weather station is broken|3E']);
    h.handleQANFrame(decodeQAN('7C'));
    assert.equal(sent.length, 4, 'unknown cancellations are ignored');
});

test('exceptions: questions answer "Uncaught exception", notifications nothing (G99)', async () => {
    const { h, sent, logged } = helper(() => {
        throw new Error('secret details');
    });
    h.handleQANFrame(decodeQAN('q|1Q'));
    h.handleQANFrame(decodeQAN('n#'));
    assert.deepEqual(sent, ['Uncaught exception|1U']);
    assert.equal(logged.length, 2);
    const rejecting = helper(() => Promise.reject(new Error('later')));
    rejecting.h.handleQANFrame(decodeQAN('q|1Q'));
    await flush();
    assert.deepEqual(rejecting.sent, ['Uncaught exception|1U']);
});

test('we cancel: sends qidC, rejects with CancelledError, ignores the answer (G100)', async () => {
    const { h, sent, fatal } = helper();
    const q = h.ask('going to the theater?');
    q.cancel();
    q.cancel();
    assert.deepEqual(sent, ['going to the theater?|1Q', '1C']);
    await assert.rejects(q, CancelledError);
    h.handleQANFrame(decodeQAN('nope|1K'));
    assert.deepEqual(fatal, []);
});

test('failAll fails pending questions once, skipping cancelled ones; later answers ignored (G101)', async () => {
    const { h, fatal } = helper();
    const q1 = h.ask('a');
    const q2 = h.ask('b');
    const q3 = h.ask('c');
    q3.cancel();
    await assert.rejects(q3, CancelledError);
    h.failAll('just because');
    await assert.rejects(q1, (e) => e instanceof QuestionFailed && e.message === 'just because');
    await assert.rejects(q2, QuestionFailed);
    h.handleQANFrame(decodeQAN('no|1K'));
    h.handleQANFrame(decodeQAN('what?|2E'));
    h.handleQANFrame(decodeQAN('1C'));
    h.handleQANFrame(decodeQAN('2C'));
    assert.deepEqual(fatal, []);
});

test('ask counter advances only if sending succeeded', () => {
    let fail = true;
    const sent = [];
    const h = new QANHelper(() => {}, () => {}, (f) => {
        if (fail) throw new Error('nope');
        sent.push(encodeQAN(f));
    }, () => {});
    assert.throws(() => h.ask('x'));
    fail = false;
    h.ask('y').catch(() => {});
    h.notify('z');
    assert.deepEqual(sent, ['y|1Q', 'z#']);
});

test('QANProtocolWrapper over a ClientStream: questions, bad frames, resets', async () => {
    const { stream, net } = makeStream({ transport: 'long-poll' });
    const log = [];
    let qan;
    let q;
    stream.bindToProtocol(new QANProtocolWrapper({
        streamStarted(s, helper) {
            qan = helper;
            q = helper.ask('ping'); // before the first request leaves, so it travels with it
            log.push(['started', s === stream]);
        },
        bodyReceived: (body, isQuestion) => (isQuestion ? 'answer to ' + body : void log.push(['note', body])),
        streamReset: (reason, applicationLevel) => log.push(['reset', reason, applicationLevel]),
    }));
    stream.start();
    await flush();
    assert.deepEqual(net.requests[0].frames, ['0N', 'ping|1Q ']);
    net.requests[0].reply(';)]}^\nC\n0N\npong|1K \nx|1Q \nhi# \n|0A\n|0A\n|-1T\n');
    await flush();
    assert.equal(await q, 'pong');
    assert.deepEqual(net.requests[1].frames, ['1N', 'answer to x|1K '], 'the next long-poll carries the answer');
    const q2 = qan.ask('unanswered');
    const q2Failed = assert.rejects(q2, (e) => e instanceof QuestionFailed &&
        e.message === 'Stream reset applicationLevel=true, reason: Bad QAN frame.  Did peer send a non-QAN string?');
    await flush();
    net.requests[1].reply(';)]}^\n3N\nnot qan \n|-1A\n|-1T\n');
    await flush();
    assert.deepEqual(log, [
        ['started', true], ['note', 'hi'],
        ['reset', 'Bad QAN frame.  Did peer send a non-QAN string?', true],
    ]);
    assert.ok(net.last.body.endsWith('Bad QAN frame.  Did peer send a non-QAN string?|1!\n'));
    await q2Failed;
});

test('QANProtocolWrapper: fatal helper errors reset the stream with "QANHelper said: ..."', async () => {
    const { stream, net, events } = makeStream({ transport: 'long-poll' });
    const wrapper = new QANProtocolWrapper({ streamStarted() {}, bodyReceived() {}, streamReset() {} });
    stream.bindToProtocol(wrapper);
    stream.onreset = (reason, applicationLevel) => {
        events.push(['reset', reason, applicationLevel]);
        wrapper.streamReset(reason, applicationLevel);
    };
    stream.start();
    await flush();
    net.requests[0].reply(';)]}^\nC\n0N\nx|5K \n|-1A\n|-1T\n');
    await flush();
    assert.deepEqual(events, [['reset', 'QANHelper said: Received an answer with invalid qid: 5', true]]);
});
