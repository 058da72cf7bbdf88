// The browser tests' lossy proxy, checked on loopback against a small upstream server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startProxy, parseArgs } from './browser/lossy-proxy.mjs';

let release = () => {};

async function upstream() {
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.write('got:' + Buffer.concat(chunks).toString() + '\n');
            if (req.url.startsWith('/stream')) {
                // A streaming answer: the second chunk only after the test has read the first one.
                release = () => res.end('later\n');
            } else {
                res.end();
            }
        });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    return server;
}

test('parses its options', () => {
    assert.deepEqual(parseArgs(['--target', 'http://h:1', '--abort', '0.5', '--max-delay-ms', '7']),
        { target: 'http://h:1', port: 0, abort: 0.5, maxDelayMs: 7, seed: 1 });
    assert.throws(() => parseArgs(['--bogus', '1']), /unknown option/);
    assert.throws(() => parseArgs([]), /--target/);
});

test('passes requests through, streaming chunk by chunk', async (t) => {
    const up = await upstream();
    const proxy = await startProxy({ target: `http://127.0.0.1:${up.address().port}`, port: 0, abort: 0,
        maxDelayMs: 0, seed: 1 });
    t.after(() => {
        proxy.server.close();
        up.close();
    });
    const base = `http://127.0.0.1:${proxy.port}`;
    const plain = await fetch(base + '/_minerva/io/', { method: 'POST', body: 'hello' });
    assert.equal(await plain.text(), 'got:hello\n');
    const res = await fetch(base + '/stream/io/', { method: 'POST', body: 'x' });
    const reader = res.body.getReader();
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('first chunk held back by the proxy')), 10000);
    });
    const first = new TextDecoder().decode((await Promise.race([reader.read(), timeout])).value);
    clearTimeout(timer);
    assert.equal(first, 'got:x\n');
    release();
    let rest = '';
    for (let r; !(r = await reader.read()).done;) rest += new TextDecoder().decode(r.value);
    assert.equal(rest, 'later\n');
});

test('with --abort 1 every transport request fails, other paths pass', async (t) => {
    const up = await upstream();
    const proxy = await startProxy({ target: `http://127.0.0.1:${up.address().port}`, port: 0, abort: 1,
        maxDelayMs: 0, seed: 3 });
    t.after(() => {
        proxy.server.close();
        up.close();
    });
    const base = `http://127.0.0.1:${proxy.port}`;
    let failures = 0;
    for (let i = 0; i < 6; i++) {
        try {
            const res = await fetch(base + '/stream/io/', { method: 'POST', body: 'x' });
            await res.text();
        } catch {
            failures++;
        }
    }
    assert.equal(failures, 6);
    assert.equal(proxy.stats.abortedBefore + proxy.stats.abortedDuring, 6);
    assert.equal(await (await fetch(base + '/page', { method: 'POST', body: 'p' })).text(), 'got:p\n');
});
