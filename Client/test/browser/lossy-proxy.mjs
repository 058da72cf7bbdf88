#!/usr/bin/env node
// Test-only HTTP proxy for the browser recovery test: sits between the browser and minerva-demo on loopback,
// and for Minerva transport requests (paths containing /io) aborts a fraction of them (half before the server
// sees them, half while the response is being delivered) and delays the others. Everything else passes through.
// Streaming responses are forwarded chunk by chunk. No dependencies (Node 20+).
//
//   node lossy-proxy.mjs --target http://127.0.0.1:8080 [--port 0] [--abort 0.1] [--max-delay-ms 300] [--seed 1]
//
// Prints one line `lossy-proxy listening on http://127.0.0.1:PORT` when ready, then a summary line on SIGTERM.
import http from 'node:http';

/** Parses `--name value` pairs. */
export function parseArgs(argv) {
    const options = { target: null, port: 0, abort: 0.1, maxDelayMs: 300, seed: 1 };
    for (let i = 0; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
        if (!(key in options)) throw new Error('unknown option ' + argv[i]);
        options[key] = key === 'target' ? argv[i + 1] : Number(argv[i + 1]);
    }
    if (!options.target) throw new Error('--target is required');
    return options;
}

/** mulberry32, so that a run can be replayed with the same --seed. */
function seededRandom(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

/** Starts the proxy; resolves to {server, port, stats}. */
export function startProxy(options) {
    const target = new URL(options.target);
    const random = seededRandom(options.seed);
    const stats = { requests: 0, abortedBefore: 0, abortedDuring: 0, delayed: 0 };
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const body = Buffer.concat(chunks);
            const chaos = /\/io(\/|$|\?)/.test(req.url);
            stats.requests++;
            const roll = chaos ? random() : 1;
            if (roll < options.abort / 2) {
                stats.abortedBefore++;
                req.socket.destroy();
                return;
            }
            const abortDuring = roll < options.abort;
            const delay = chaos ? Math.floor(random() * options.maxDelayMs) : 0;
            if (delay) stats.delayed++;
            setTimeout(() => forward(req, res, body, abortDuring), delay);
        });
    });

    function forward(req, res, body, abortDuring) {
        // Host passes unchanged, as a deployed reverse proxy must (README, Deployment): the server accepts a
        // browser's Origin only when it is http(s):// + Host, and the page's origin is this proxy's.
        const headers = { ...req.headers };
        const upstream = http.request(
            { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
            (up) => {
                res.writeHead(up.statusCode, up.headers);
                res.flushHeaders();
                up.on('data', (c) => res.write(c));
                // A response chosen for abortion never ends normally: it is cut after up to 2 s, even if
                // the server finished it earlier (the client then sees part of it, then an error).
                up.on('end', () => abortDuring || res.end());
                up.on('error', () => res.destroy());
                if (abortDuring) {
                    stats.abortedDuring++;
                    setTimeout(() => {
                        up.destroy();
                        res.destroy();
                    }, Math.floor(random() * 2000));
                }
            },
        );
        upstream.on('error', () => res.destroy());
        res.on('close', () => upstream.destroy());
        upstream.end(body);
    }

    return new Promise((resolve) => {
        server.listen(options.port, '127.0.0.1', () => resolve({ server, port: server.address().port, stats }));
    });
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const { server, port, stats } = await startProxy(parseArgs(process.argv.slice(2)));
    console.log(`lossy-proxy listening on http://127.0.0.1:${port}`);
    process.on('SIGTERM', () => {
        console.log('lossy-proxy ' + JSON.stringify(stats));
        server.close();
        process.exit(0);
    });
}
