// Test doubles for the Minerva client: a manual clock and a scripted fetch that hands every request to the
// test, which answers it with exact response bytes (a real Response over a ReadableStream it controls).
// The shipped (minified) client, or the file MINERVA_CLIENT_FILE names (relative to Client/, e.g. its source
// src/minerva-client.js): run-node-tests.sh runs the suite against both.
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

await import(
    pathToFileURL(path.resolve(fileURLToPath(new URL('..', import.meta.url)), process.env.MINERVA_CLIENT_FILE || 'minerva-client.js')).href
);

export const Minerva = globalThis.Minerva;

/** Lets every pending promise callback and stream read run. */
export async function flush() {
    for (let i = 0; i < 8; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A clock whose time only moves when the test calls advance(). */
export class FakeClock {
    constructor() {
        this.time = 1_000_000;
        this.timers = new Map();
        this.nextId = 1;
    }
    now() {
        return this.time;
    }
    setTimeout(f, ms) {
        const id = this.nextId++;
        this.timers.set(id, { at: this.time + ms, f, id });
        return id;
    }
    clearTimeout(id) {
        this.timers.delete(id);
    }
    /** Runs, in time order, every timer due within `ms`, flushing promises after each. */
    async advance(ms) {
        const end = this.time + ms;
        for (;;) {
            await flush();
            let due = null;
            for (const t of this.timers.values()) {
                if (t.at <= end && (!due || t.at < due.at || (t.at === due.at && t.id < due.id))) due = t;
            }
            if (!due) break;
            this.timers.delete(due.id);
            this.time = due.at;
            due.f();
        }
        this.time = end;
        await flush();
    }
}

const encoder = new TextEncoder();

/** One request seen by the fake network. */
export class FakeRequest {
    constructor(url, init) {
        this.url = url;
        this.init = init;
        this.body = init.body;
        const lines = init.body.split('\n');
        this.helloText = lines[0];
        this.hello = JSON.parse(lines[0].slice(0, -1));
        this.frames = lines.slice(1, -1); // frames after the hello (the body ends with \n)
        this.aborted = false;
        this.settled = false;
        this.promise = new Promise((resolve, reject) => {
            this._resolve = resolve;
            this._reject = reject;
        });
        this._body = new ReadableStream({ start: (c) => (this._controller = c) });
        this._closed = false;
        init.signal.addEventListener('abort', () => {
            if (this.settled && this._closed) return; // aborting a finished request does nothing
            this.aborted = true;
            const error = new DOMException('aborted', 'AbortError');
            if (!this.settled) this._reject(error);
            this.settled = true;
            if (!this._closed) {
                this._closed = true;
                this._controller.error(error);
            }
        });
    }
    /** Sends the status line and headers. */
    respond({ status = 200, contentLength } = {}) {
        const headers = { 'content-type': 'text/plain' };
        if (contentLength !== undefined) headers['content-length'] = String(contentLength);
        this.settled = true;
        this._resolve(new Response(this._body, { status, headers }));
    }
    /** Sends body bytes. */
    write(text) {
        if (!this._closed) this._controller.enqueue(encoder.encode(text));
    }
    /** Finishes the response body. */
    end() {
        if (!this._closed) {
            this._closed = true;
            this._controller.close();
        }
    }
    /** A complete response with an exact Content-Length, like a long-poll answer. */
    reply(text, status = 200) {
        this.respond({ status, contentLength: encoder.encode(text).length });
        this.write(text);
        this.end();
    }
    /** The request fails as fetch does for a network error. */
    fail() {
        if (!this.settled) {
            this.settled = true;
            this._reject(new TypeError('fetch failed'));
        } else if (!this._closed) {
            this._closed = true;
            this._controller.error(new TypeError('network error'));
        }
    }
    /** True while neither side has ended it. */
    get open() {
        return !this.aborted && !this._closed;
    }
}

/** A fetch replacement that records requests for the test to answer. */
export class FakeNet {
    constructor() {
        this.requests = [];
        this.onrequest = null; // optional hook, called with each new FakeRequest
        this.fetch = (url, init) => {
            const request = new FakeRequest(url, init);
            this.requests.push(request);
            if (this.onrequest) this.onrequest(request);
            return request.promise;
        };
    }
    get last() {
        return this.requests[this.requests.length - 1];
    }
}

export const ID = 'x'.repeat(26);

/**
 * A ClientStream on a fake network and clock, with its callbacks recorded in `events`.
 * Random jitter is 0 (random() = 0.5) unless `random` is given.
 */
export function makeStream(options = {}) {
    const net = new FakeNet();
    const clock = new FakeClock();
    const errors = [];
    const endpoint = new Minerva.HttpEndpoint(options.url || 'http://127.0.0.1:8080/_minerva/');
    const stream = new Minerva.ClientStream(endpoint, {
        fetch: net.fetch,
        clock,
        random: options.random || (() => 0.5),
        getRandomValues: (a) => a.fill(33), // 33 is 'x' in base 36
        reportError: (e) => errors.push(e),
        WebSocket: undefined, // no WebSocket unless a test gives one
        BroadcastChannel: null, // no stall reports between streams unless a test gives one
        ...options,
    });
    const events = [];
    stream.onstarted = () => events.push(['started']);
    stream.onstring = (s) => events.push(['string', s]);
    stream.onreset = (reason, applicationLevel) => events.push(['reset', reason, applicationLevel]);
    stream.ondisconnect = () => events.push(['disconnect']);
    const strings = () => events.filter((e) => e[0] === 'string').map((e) => e[1]);
    return { stream, net, clock, events, errors, strings };
}

/** A WebSocket replacement: the test opens, feeds and closes each socket the client creates. */
export class FakeWebSockets {
    constructor() {
        this.sockets = [];
        this.onsocket = null; // optional hook, called with each new socket
        const all = this.sockets;
        const hooks = this;
        this.WebSocket = class {
            constructor(url, protocol) {
                this.url = url;
                this.protocol = protocol;
                this.sent = []; // messages the client sent
                this.closedByClient = null; // the code given to close()
                this.readyState = 0;
                this.onsend = null; // optional hooks for a connected fake server
                this.onclientclose = null;
                all.push(this);
                if (hooks.onsocket) hooks.onsocket(this);
            }
            send(data) {
                if (this.readyState !== 1) throw new Error('send on a WebSocket that is not open');
                this.sent.push(data);
                if (this.onsend) this.onsend(data);
            }
            close(code) {
                if (this.readyState < 2) {
                    this.closedByClient = code;
                    if (this.onclientclose) this.onclientclose();
                }
                this.readyState = 3;
            }
            /** The upgrade succeeded. */
            accept() {
                this.readyState = 1;
                this.onopen({});
            }
            /** The server sent one message per frame. */
            receive(...frames) {
                for (const data of frames) if (this.readyState === 1) this.onmessage({ data });
            }
            /** The connection ended (refused upgrade, server close or network loss). */
            drop() {
                if (this.readyState === 3) return;
                this.readyState = 3;
                this.onclose({ code: 1006 });
            }
            /** The frames sent after the hello. */
            get frames() {
                return this.sent.slice(1);
            }
            get hello() {
                return JSON.parse(this.sent[0].slice(0, -1));
            }
        };
    }
    get last() {
        return this.sockets[this.sockets.length - 1];
    }
}
