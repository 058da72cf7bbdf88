// A small model of a Minerva server (PROTOCOL.md sections 3.1, 5, 6 and 11.1: HTTP and WebSocket, echo application)
// and a lossy network between it and the client, for end-to-end reliability tests without a real server.
// Written independently of the client's code so that the two do not share mistakes.

const PREAMBLE = ';)]}^';

function parseSack(text) {
    const [list, ack] = text.split('|');
    return { ack: Number(ack), list: list ? list.split(',').map(Number) : [] };
}

class ServerStream {
    constructor(id, onDelivered) {
        this.id = id;
        this.queue = new Map(); // seqNum -> string, not yet acknowledged
        this.nextSeqNum = 0;
        this.lastAck = -1; // C2S receive window
        this.cache = new Map();
        this.lastSackSeenByServer = '|-1';
        this.primary = null;
        this.transports = new Set();
        this.onDelivered = onDelivered;
        this.sendScheduled = false;
        this.delivered = [];
    }
    sack() {
        return [...this.cache.keys()].sort((a, b) => a - b).join(',') + '|' + this.lastAck;
    }
    /** Applies a client SACK; returns false if it acknowledges a number never assigned. */
    applySack(text) {
        this.lastSackSeenByServer = text;
        const { ack, list } = parseSack(text);
        for (const n of [...this.queue.keys()]) if (n <= ack || list.includes(n)) this.queue.delete(n);
        return ack < this.nextSeqNum && list.every((n) => n < this.nextSeqNum);
    }
    /** Receive window (6.6) with the server's limits; returns true if the limit was hit. */
    receive(pairs) {
        pairs.sort((a, b) => a[0] - b[0]);
        let hit = false;
        for (const [n, s] of pairs) {
            if (n === this.lastAck + 1) {
                this.deliver(s);
                while (this.cache.has(this.lastAck + 1)) {
                    const next = this.cache.get(this.lastAck + 1);
                    this.cache.delete(this.lastAck + 1);
                    this.deliver(next);
                }
            } else if (n > this.lastAck && !this.cache.has(n)) {
                if (this.cache.size >= 50) {
                    hit = true;
                    break;
                }
                this.cache.set(n, s);
            }
        }
        return hit;
    }
    deliver(s) {
        this.lastAck++;
        this.delivered.push(s);
        this.onDelivered(this, s);
    }
    sendString(s) {
        this.queue.set(this.nextSeqNum++, s);
        if (this.sendScheduled) return;
        this.sendScheduled = true;
        queueMicrotask(() => {
            this.sendScheduled = false;
            if (this.primary) this.primary.writeStrings();
        });
    }
}

class ServerTransport {
    constructor(conn, hello, ws) {
        this.conn = conn;
        this.hello = hello;
        this.ws = ws; // a WebSocket: socket semantics, one frame per message, `Y` before closing
        this.ming = ws || !!hello.ming;
        this.out = [];
        this.wroteAnything = false;
        this.terminating = false;
        this.stream = null;
        this.ourSeqNum = -1;
        this.peerSeqNum = -1;
    }
    writeStrings() {
        if (this.terminating) return;
        for (const [n, s] of this.stream.queue) {
            if (n <= this.ourSeqNum) continue;
            if (this.ourSeqNum === -1 || n !== this.ourSeqNum + 1) this.out.push(n + 'N');
            this.out.push(s + ' ');
            this.ourSeqNum = n;
        }
        this.flush();
    }
    flush() {
        if (this.out.length && !this.ming && !this.terminating && this.stream) {
            this.out.push(this.stream.sack() + 'A', this.stream.lastSackSeenByServer + 'T');
            this.terminating = true;
        }
        if (this.ws && this.terminating && this.out[this.out.length - 1] !== 'Y') this.out.push('Y');
        if (this.out.length && this.ws) {
            for (const frame of this.out) this.conn.write(frame);
            this.out = [];
        } else if (this.out.length) {
            const text = (this.wroteAnything ? '' : PREAMBLE + '\n') + this.out.join('\n') + '\n';
            this.out = [];
            this.wroteAnything = true;
            this.conn.write(text);
        }
        if (this.terminating) {
            this.detach();
            this.conn.end();
        }
    }
    closeGently() {
        if (this.terminating) return;
        this.out.push(this.stream.sack() + 'A', this.stream.lastSackSeenByServer + 'T');
        this.terminating = true;
        this.flush();
    }
    kill(reason) {
        if (this.stream) this.out.push(this.stream.sack() + 'A', this.stream.lastSackSeenByServer + 'T');
        this.out.push(reason + 'K');
        this.terminating = true;
        this.flush();
    }
    detach() {
        const s = this.stream;
        if (!s) return;
        s.transports.delete(this);
        if (s.primary === this) s.primary = null;
        this.stream = null;
    }
}

/** The server: `handle(conn, body)` processes one POST; conn has write(text), end(). */
export class FakeServer {
    constructor() {
        this.streams = new Map();
        this.requests = 0;
        this.echo = true;
    }
    handle(conn, body) {
        this.requests++;
        const lines = body.replace(/\r\n/g, '\n').split('\n');
        lines.pop();
        const hello = JSON.parse(lines[0].slice(0, -1));
        const t = new ServerTransport(conn, hello, false);
        conn.onclose = () => t.detach();
        if (!this.open(t, hello) || !this.frames(t, lines.slice(1))) return;
        if (!('eeds' in hello)) return t.closeGently();
        if (hello.maxia > 0) t.out.push('beat^');
        t.flush();
    }
    /** A WebSocket connection: `conn` has write(message), end(); returns the handler of the client's messages. */
    handleWebSocket(conn) {
        this.webSockets = (this.webSockets || 0) + 1;
        let t = null;
        conn.onclose = () => t && t.detach();
        return (message) => {
            if (t && t.terminating) return;
            if (t) return this.frames(t, [message]) && t.flush();
            const hello = JSON.parse(message.slice(0, -1));
            t = new ServerTransport(conn, hello, true);
            if (!this.open(t, hello)) return;
            if (hello.maxia > 0) t.out.push('beat^');
            t.flush();
        };
    }
    /** Hello handling (5.3): finds or creates the stream and attaches; false if the transport was killed. */
    open(t, hello) {
        let s = this.streams.get(hello.id);
        if (!s) {
            if (!hello.new) return t.kill('stream_attach_failure'), false;
            s = new ServerStream(hello.id, (stream, str) => this.echo && stream.sendString(str));
            this.streams.set(hello.id, s);
        }
        if (hello.new) t.out.push('C');
        if (s.sack() !== hello.seenack) t.out.push(s.sack() + 'A');
        if (hello.sack !== undefined && !s.applySack(hello.sack)) return t.kill('acked_unsent_strings'), false;
        t.stream = s;
        s.transports.add(t);
        const wants = 'eeds' in hello;
        if (wants) {
            if (s.primary) s.primary.closeGently();
            s.primary = t;
            for (const [n, str] of s.queue) {
                if (t.ourSeqNum === -1 || n !== t.ourSeqNum + 1) t.out.push(n + 'N');
                t.out.push(str + ' ');
                t.ourSeqNum = n;
            }
        }
        return true;
    }
    /** Processes frames after the hello (5.2); false if the transport was killed. */
    frames(t, lines) {
        const s = t.stream;
        if (!s) return false;
        const pending = [];
        for (const line of lines) {
            const type = line[line.length - 1];
            if (type === ' ') pending.push([++t.peerSeqNum, line.slice(0, -1)]);
            else if (type === 'N') t.peerSeqNum = Number(line.slice(0, -1)) - 1;
            else if (type === 'A' && !s.applySack(line.slice(0, -1))) return t.kill('acked_unsent_strings'), false;
            else if (!'NA'.includes(type)) return t.kill('invalid_frame_type_or_arguments'), false;
        }
        if (pending.length) {
            const hit = s.receive(pending);
            if (hit) return t.kill('rwin_overflow'), false;
            if (!t.terminating) t.out.push(s.sack() + 'A');
        }
        return true;
    }
}

/** mulberry32: a small seeded PRNG, so that a failing run can be replayed. */
export function seededRandom(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

/**
 * Connects a FakeNet's requests to a FakeServer through a network that, with the given probabilities, loses
 * requests before the server sees them, loses responses after the server processed them (mid-stream for
 * streaming responses), and delays requests. `bufferStreaming` holds streaming responses until they end, like
 * a buffering proxy.
 */
export function connect(net, server, clock, random, { dropRequest = 0, dropResponse = 0, maxDelay = 0,
    bufferStreaming = false } = {}) {
    net.onrequest = (req) => {
        const init = req.init;
        const ming = req.hello.ming;
        const conn = {
            onclose: null,
            gone: false, // the server finished or lost the response
            lost: false, // nothing more reaches the client
            held: '',
            write(text) {
                if (conn.gone || conn.lost) return;
                if (!req.settled) req.respond();
                if (bufferStreaming && ming) conn.held += text;
                else req.write(text);
            },
            end() {
                if (conn.gone) return;
                conn.gone = true;
                if (conn.lost) return;
                if (!req.settled) req.respond();
                if (conn.held) req.write(conn.held);
                req.end();
            },
            close() {
                if (conn.gone) return;
                conn.gone = true;
                if (conn.onclose) conn.onclose();
            },
        };
        init.signal.addEventListener('abort', () => conn.close());
        const delay = Math.floor(random() * maxDelay);
        if (random() < dropRequest) {
            clock.setTimeout(() => req.fail(), delay);
        } else {
            clock.setTimeout(() => {
                if (req.aborted) return;
                const lose = random() < dropResponse;
                conn.lost = lose && !ming; // a long-poll's whole answer is lost
                server.handle(conn, req.body);
                if (!lose) return;
                const cut = () => {
                    conn.lost = true;
                    conn.close();
                    req.fail();
                };
                if (ming) clock.setTimeout(cut, Math.floor(random() * 3000));
                else cut();
            }, delay);
        }
    };
}

/**
 * Connects a FakeWebSockets to a FakeServer: each socket is accepted after a random delay (or refused while
 * `network.refuse` is true), messages travel in order, one task each, and with probability `cut` a socket dies
 * (both ends see it closed, no close frame) at a random time within `cutWithinMs`. `network.killAll()` cuts every
 * open socket at once.
 */
export function connectWebSockets(sockets, server, clock, random, network) {
    const live = new Set();
    network.killAll = () => {
        for (const kill of [...live]) kill();
    };
    sockets.onsocket = (ws) => {
        let dead = false;
        const conn = {
            onclose: null,
            write(message) {
                if (!dead) clock.setTimeout(() => !dead && ws.receive(message), 0);
            },
            end() {
                if (dead) return;
                dead = true;
                clock.setTimeout(() => ws.drop(), 0);
            },
        };
        const kill = () => {
            live.delete(kill);
            if (dead) return;
            dead = true;
            ws.drop();
            if (conn.onclose) conn.onclose();
        };
        live.add(kill);
        clock.setTimeout(() => {
            if (ws.closedByClient !== null) return;
            if (network.refuse) return ws.drop();
            const onmessage = server.handleWebSocket(conn);
            ws.onsend = (message) => clock.setTimeout(() => !dead && onmessage(message), 0);
            ws.onclientclose = () => {
                dead = true;
                if (conn.onclose) conn.onclose();
            };
            ws.accept();
            if (random() < (network.cut || 0)) clock.setTimeout(kill, Math.floor(random() * (network.cutWithinMs || 5000)));
        }, Math.floor(random() * 50));
    };
}
