// The client with Node's real fetch (streaming bodies, aborts, Content-Length) and real timers, against the model
// server (fake-server.mjs) behind a real HTTP server on 127.0.0.1, directly and through the lossy proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Minerva } from './fakes.mjs';
import { FakeServer } from './fake-server.mjs';
import { startProxy } from './browser/lossy-proxy.mjs';

const HEADERS = {
    'cache-control': 'no-cache, no-store, max-age=0, must-revalidate',
    pragma: 'no-cache',
    expires: '-1',
    'content-type': 'text/plain',
};

/**
 * Serves the model at /_minerva/io/. Output written in one turn is sent together; a response that ends in the
 * turn of its first write gets a Content-Length (PROTOCOL.md 4.2), others are chunked.
 */
async function startModelServer() {
    const model = new FakeServer();
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            if (req.method !== 'POST' || !req.url.startsWith('/_minerva/io/')) {
                res.writeHead(404);
                return res.end();
            }
            let pending = '';
            let started = false;
            let ended = false;
            let scheduled = false;
            const send = () => {
                scheduled = false;
                if (!started) {
                    started = true;
                    const headers = { ...HEADERS };
                    if (ended) headers['content-length'] = Buffer.byteLength(pending);
                    res.writeHead(200, headers);
                }
                if (pending) res.write(pending);
                pending = '';
                if (ended) res.end();
            };
            const conn = {
                onclose: null,
                gone: false,
                write(text) {
                    if (conn.gone) return;
                    pending += text;
                    if (!scheduled) {
                        scheduled = true;
                        setImmediate(send);
                    }
                },
                end() {
                    if (conn.gone) return;
                    conn.gone = true;
                    ended = true;
                    if (!scheduled) {
                        scheduled = true;
                        setImmediate(send);
                    }
                },
                close() {
                    if (conn.gone) return;
                    conn.gone = true;
                    if (conn.onclose) conn.onclose();
                },
            };
            res.on('close', () => res.writableFinished || conn.close());
            model.handle(conn, Buffer.concat(chunks).toString('latin1'));
        });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, model, base: `http://127.0.0.1:${server.address().port}` };
}

/**
 * Echoes `count` strings through a stream, in bursts of 10; with `pingPong` each burst waits for the previous
 * burst's echoes (many more requests). Resolves when all echoes arrived (bounded by the test timeout).
 */
async function echo(base, transport, count, pingPong = false) {
    const stream = new Minerva.ClientStream(new Minerva.HttpEndpoint(base + '/_minerva/'), { transport });
    const sent = [];
    const got = [];
    const resets = [];
    let wake = () => {};
    const until = (condition) => new Promise(function check(resolve) {
        if (condition() || resets.length) resolve();
        else wake = () => check(resolve);
    });
    stream.onstring = (s) => {
        got.push(s);
        wake();
    };
    stream.onreset = (reason, applicationLevel) => {
        resets.push([reason, applicationLevel]);
        wake();
    };
    stream.start();
    for (let i = 0; i < count; i += 10) {
        for (let j = i; j < Math.min(i + 10, count); j++) {
            const s = `s${j} ` + '~'.repeat(j % 97);
            sent.push(s);
            stream.sendString(s);
        }
        if (pingPong) await until(() => got.length >= sent.length);
        else await new Promise((r) => setTimeout(r, 5));
    }
    await until(() => got.length >= count);
    stream.dispose();
    return { sent, got, resets, stream };
}

for (const transport of ['streaming', 'long-poll', 'auto']) {
    test(`real fetch, ${transport}: 300 strings echoed once, in order`, { timeout: 60000 }, async (t) => {
        const { server, model, base } = await startModelServer();
        t.after(() => {
            server.closeAllConnections();
            server.close();
        });
        const { sent, got, resets, stream } = await echo(base, transport, 300);
        assert.deepEqual(resets, []);
        assert.deepEqual(got, sent);
        assert.deepEqual(model.streams.get(stream.streamId).delivered, sent);
    });
}

for (const transport of ['streaming', 'long-poll']) {
    test(`real fetch through the lossy proxy (10% aborted), ${transport}`, { timeout: 120000 }, async (t) => {
        const { server, model, base } = await startModelServer();
        const proxy = await startProxy({ target: base, port: 0, abort: 0.1, maxDelayMs: 100, seed: 5 });
        t.after(() => {
            proxy.server.closeAllConnections();
            proxy.server.close();
            server.closeAllConnections();
            server.close();
        });
        const { sent, got, resets, stream } = await echo(`http://127.0.0.1:${proxy.port}`, transport, 200, true);
        assert.deepEqual(resets, []);
        assert.deepEqual(got, sent, 'no loss, duplication or reordering');
        assert.deepEqual(model.streams.get(stream.streamId).delivered, sent);
        t.diagnostic(`proxy: ${JSON.stringify(proxy.stats)}`);
        assert.ok(proxy.stats.abortedBefore + proxy.stats.abortedDuring > 0, 'the proxy did abort requests');
    });
}
