/*
 * Minerva client: a reliable, ordered stream of strings between a web page and a Minerva server, over
 * WebSocket, HTTP streaming (fetch with a streaming body reader) or HTTP long-polling, switching between them
 * without losing a string. No dependencies. This is the readable source: Client/build.sh minifies it into
 * Client/minerva-client.js, the file that is served, embedded in the server and shipped (its size budget is checked
 * by Client/test/run-node-tests.sh). Loaded as a classic <script>, it defines the global `Minerva`;
 * `minerva-client.mjs` re-exports it as an ES module. The wire protocol is described in PROTOCOL.md (Minerva
 * version 2; WebSocket: section 11.1).
 */
(function (root) {
'use strict';

const TWO53 = 9007199254740992;
const MAX_FRAME_LENGTH = 1048576;
const MAX_BODY_STRINGS = 1048576; // characters of strings per request (at least one string is always sent)
const RTT_GUESS = 3000;
const RTT_VARIANCE = 1500;
const DL_SPEED = 3072; // bytes per second, used to size a long-poll's receive timeout
const MAX_SERVER_JANK = 2000;
const HEARTBEAT_INTERVAL = 10000;
const STREAMING_LIFE_TIMEOUT = MAX_SERVER_JANK + RTT_VARIANCE + HEARTBEAT_INTERVAL;
/**
 * The `maxt` (seconds) of long-polls once an upload stalled (`connectionState` 'stalled'): the browser has no free
 * connection to the host, so every poll gives its connection back soon and a waiting request gets one.
 */
const SHORT_MAXT = 3;
/** The placeholder an endpoint URL may contain instead of a DNS label (see HttpEndpoint). */
const RANDOM = '%random%';
/** The BroadcastChannel on which streams tell the other tabs of their origin that an upload stalled. */
const STALL_CHANNEL = 'minerva-upload-stalls';
/** Stands for RANDOM while a URL is parsed ('%' is not allowed in a host name). */
const RANDOM_MARK = 'minerva-random-label';
const PREAMBLE = ';)]}';
/** Penalty points added by each kill reason (PROTOCOL.md 7.7); the keys are all valid reasons. */
const KILL_PENALTY = {
  stream_attach_failure: 1,
  acked_unsent_strings: 0.5,
  invalid_frame_type_or_arguments: 0,
  frame_corruption: 0,
  rwin_overflow: 0,
};
const RESTRICTED = /^[\x20-\x7e]*$/;
const NON_NEGATIVE = /^(0|[1-9][0-9]*)$/;

const UNSTARTED = 'unstarted';
const STARTED = 'started';
const RESETTING = 'resetting';
const DISCONNECTED = 'disconnected';

/** True if `s` is a string made only of the characters U+0020..U+007E. */
function isRestricted(s) {
  return typeof s === 'string' && RESTRICTED.test(s);
}

/** Parses a non-negative protocol integer (no sign, no leading zeros, at most 2^53); null if invalid. */
function parseNonNegative(s) {
  // Compared as text: 2^53 + 1 would round to 2^53 as a double.
  if (s.length > 16 || !NON_NEGATIVE.test(s) || (s.length === 16 && s > '9007199254740992')) return null;
  return Number(s);
}

/** A selective acknowledgement: everything up to `ack`, plus the out-of-order numbers in `list`. */
class SACK {
  constructor(ack, list) {
    this.ack = ack;
    this.list = list || [];
  }
  /** The wire form, e.g. `1,4|2`. */
  toString() {
    return this.list.join(',') + '|' + this.ack;
  }
  /** Element-wise equality (ack number and list, in order). */
  equals(other) {
    return !!other && this.toString() === other.toString();
  }
  /** Parses a SACK string; returns null if invalid. */
  static parse(s) {
    const bar = s.indexOf('|');
    if (bar < 0 || s.indexOf('|', bar + 1) >= 0) return null;
    const ackText = s.slice(bar + 1);
    const ack = ackText === '-1' ? -1 : parseNonNegative(ackText);
    if (ack === null) return null;
    const list = [];
    if (bar > 0) {
      for (const part of s.slice(0, bar).split(',')) {
        const n = parseNonNegative(part);
        if (n === null) return null;
        list.push(n);
      }
    }
    return new SACK(ack, list);
  }
}

/**
 * Decodes one server-to-client frame. Returns `{type, ...}` (type is the frame's last character)
 * or null if the frame is invalid in that direction.
 */
function decodeFrame(frame) {
  const n = frame.length;
  if (n === 0) return null;
  const type = frame[n - 1];
  const body = frame.slice(0, n - 1);
  switch (type) {
    case ' ':
    case '^':
      return { type, string: body };
    case 'N': {
      const seqNum = parseNonNegative(body);
      return seqNum === null ? null : { type, seqNum };
    }
    case 'A':
    case 'T': {
      const sack = SACK.parse(body);
      return sack && { type, sack };
    }
    case 'C':
    case 'Y':
      return body ? null : { type };
    case 'K':
      return Object.prototype.hasOwnProperty.call(KILL_PENALTY, body) ? { type, reason: body } : null;
    case '!': {
      const m = /^([\x20-\x7e]*)\|([01])$/.exec(body);
      return m && m[1].length <= 255 ? { type, reason: m[1], applicationLevel: m[2] === '1' } : null;
    }
  }
  return null;
}

/** Encodes a client hello (the first frame of every request), keys in the original client's order. */
function encodeHello(h) {
  return JSON.stringify({
    tnum: h.tnum,
    ver: 2,
    format: 2,
    new: h.isNew ? true : undefined,
    id: h.id,
    ming: h.ming,
    pad: h.ming ? 4096 : undefined,
    maxb: 300000,
    maxt: h.primary ? (h.ming ? 3580 : h.shortPolls ? SHORT_MAXT : 25) : undefined,
    maxia: h.ming ? 10 : 0,
    tcpack: false,
    eeds: h.primary ? null : undefined,
    sack: h.sack.toString(),
    seenack: h.seenack.toString(),
  }) + 'H';
}

/** Returns 26 base-36 characters (about 134 bits) from a cryptographic random source. */
function makeStreamId(getRandomValues) {
  const bytes = new Uint8Array(40);
  let id = '';
  while (id.length < 26) {
    getRandomValues(bytes);
    for (const b of bytes) {
      // 252 = 7 x 36: rejecting 252..255 keeps every character equally likely.
      if (b < 252 && id.length < 26) id += (b % 36).toString(36);
    }
  }
  return id;
}

/** The strings we sent and the server has not acknowledged yet, by sequence number (ascending). */
class SendQueue {
  constructor() {
    this.items = new Map();
    this.lastSeqNum = -1;
  }
  /** Appends `s` with the next sequence number. */
  push(s) {
    this.items.set(++this.lastSeqNum, s);
  }
  /** Drops every acknowledged item; returns true if the SACK acknowledges a number never assigned. */
  handleSACK(sack) {
    let bad = sack.ack > this.lastSeqNum;
    for (const seqNum of this.items.keys()) {
      if (seqNum > sack.ack) break;
      this.items.delete(seqNum);
    }
    for (const seqNum of sack.list) {
      if (seqNum > this.lastSeqNum) bad = true;
      this.items.delete(seqNum);
    }
    return bad;
  }
}

/** The receive window: puts numbered strings back in order and ignores duplicates. */
class ReceiveWindow {
  constructor() {
    this.lastAck = -1;
    this.cache = new Map();
    this.cachedBytes = 0;
  }
  /**
   * Takes [seqNum, string] pairs; returns `[deliverable strings in order, limitHit]`. Stops at the first
   * out-of-order string that would overflow the limits (estimated size: 21 + 2 x length per string).
   */
  give(pairs, maxStrings, maxBytes) {
    const out = [];
    for (const [seqNum, s] of pairs) {
      if (seqNum === this.lastAck + 1) {
        out.push(s);
        this.lastAck++;
        while (this.cache.has(this.lastAck + 1)) {
          const next = this.cache.get(++this.lastAck);
          this.cache.delete(this.lastAck);
          this.cachedBytes -= 21 + 2 * next.length;
          out.push(next);
        }
      } else if (seqNum > this.lastAck && !this.cache.has(seqNum)) {
        const size = 21 + 2 * s.length;
        if (this.cache.size >= maxStrings || this.cachedBytes + size > maxBytes) return [out, true];
        this.cache.set(seqNum, s);
        this.cachedBytes += size;
      }
    }
    return [out, false];
  }
  /** The SACK describing what has been received. */
  getSACK() {
    return new SACK(this.lastAck, [...this.cache.keys()].sort((a, b) => a - b));
  }
}

/**
 * Where a stream connects: `url` (ending in `/`) is a Minerva WebPort, requests go to `url + 'io/'`.
 * `%random%` in a URL (e.g. `https://%random%.example.com/_minerva/`) is replaced by every ClientStream with a
 * fresh random DNS label, one for the primary URL and another for the secondary URL, kept for the stream's life:
 * every tab then talks to host names of its own, and no tab's requests wait for the browser's few connections per
 * host (6 in Chromium) that other tabs hold. The server must answer for those names and allow the page's origin
 * (CORS).
 */
class HttpEndpoint {
  constructor(primaryUrl, secondaryUrl) {
    this.primaryUrl = resolveUrl(primaryUrl);
    this.secondaryUrl = resolveUrl(secondaryUrl || primaryUrl);
  }
}

function resolveUrl(url) {
  const base = root.location && root.location.href;
  const marked = url.split(RANDOM).join(RANDOM_MARK);
  const resolved = (base ? new URL(marked, base) : new URL(marked)).href.split(RANDOM_MARK).join(RANDOM);
  if (!resolved.endsWith('/')) throw new Error('Minerva endpoint URL must end in "/": ' + resolved);
  return resolved;
}

let transportKinds = 0;
const PRIMARY = ++transportKinds;
const SECONDARY = ++transportKinds;
const RESETTER = ++transportKinds;

/** What every transport has: its frames' bookkeeping and a timer that closes it. */
class Transport {
  constructor(stream, kind, ming) {
    this.stream = stream;
    this.kind = kind;
    this.ming = ming;
    this.number = stream._nextTransportNumber++;
    this.written = new Set(); // sequence numbers of the strings sent on it
    this.last = -1; // the last of them, for SeqNum frames
    this.sackWritten = null;
    this.problems = false; // had problems: bad frame, kill frame, bad SACK, bad response
    this.penalty = 0;
    this.frames = 0;
    this.noDelay = false; // replaced on purpose (fallback): no backoff
    this.timedOut = false;
    this.peerSeqNum = -1;
    this.gotPreamble = false; // for a WebSocket: got its first frame
    this.done = false;
    this.started = stream._clock.now();
    this.timer = null;
    this.fallbackTimer = null;
  }

  /** 'websocket', 'streaming' or 'long-poll'. */
  get name() {
    return this.ws ? 'websocket' : this.ming ? 'streaming' : 'long-poll';
  }

  info() {
    return {
      transportNumber: this.number,
      isPrimary: this.kind === PRIMARY,
      streamingFromPeer: this.ming,
      streamingToPeer: !!this.ws,
    };
  }

  setTimer(ms) {
    const clock = this.stream._clock;
    if (this.timer !== null) clock.clearTimeout(this.timer);
    this.timer = clock.setTimeout(() => {
      this.timer = null;
      this.timedOut = true;
      this.close();
    }, ms);
  }

  clearTimers() {
    if (this.timer !== null) this.stream._clock.clearTimeout(this.timer);
    this.timer = null;
    this.clearLate();
  }

  /** Cancels the `fallbackTimer` (the transport is not late: see HttpTransport.run). */
  clearLate() {
    if (this.fallbackTimer !== null) this.stream._clock.clearTimeout(this.fallbackTimer);
    this.fallbackTimer = null;
  }

  /** Ends the transport (if still running) and tells the stream, once. */
  close() {
    if (this.done) return;
    this.abort();
    this.stream._transportOffline(this);
  }
}

/**
 * A WebSocket to `<endpoint>ws` (PROTOCOL.md 11.1): a primary with socket semantics that also carries our
 * strings and SACKs, one frame per text message in both directions.
 */
class WsTransport extends Transport {
  constructor(stream) {
    super(stream, PRIMARY, true);
    this.ws = true;
    this.socket = null;
    this.open = false;
  }

  run(url, hello) {
    const stream = this.stream;
    // Silent until the first frame (the server's first heartbeat at the latest): fall back or retry.
    this.setTimer(stream._fallbackMs || RTT_GUESS * 2.5 + 2 * MAX_SERVER_JANK);
    try {
      this.socket = new stream._WebSocket(url, 'minerva.v2');
    } catch (e) {
      return queueMicrotask(() => this.close());
    }
    const ws = this.socket;
    ws.onopen = () => {
      if (this.done) return;
      this.open = true;
      ws.send(hello);
      stream._trySend();
    };
    ws.onmessage = (e) => {
      if (this.done) return;
      this.setTimer(STREAMING_LIFE_TIMEOUT);
      const ok = typeof e.data === 'string' && e.data.length <= MAX_FRAME_LENGTH;
      stream._handleFrames(this, ok ? [e.data] : [], !ok);
    };
    ws.onclose = () => this.close();
  }

  send(frames) {
    for (const f of frames) this.socket.send(f);
  }

  abort() {
    this.done = true;
    this.open = false;
    this.clearTimers();
    try {
      if (this.socket) this.socket.close(1000);
    } catch (e) {
      // Already closed.
    }
  }
}

/** One HTTP request carrying frames for a stream (a hello, strings, maybe a reset) and its response. */
class HttpTransport extends Transport {
  constructor(stream, kind, ming) {
    super(stream, kind, ming);
    this.buffer = '';
    this.controller = new AbortController();
  }

  /**
   * Sends the request. `lateMs` (0: none): a streaming primary without its preamble, or an upload without its
   * response, after that long calls stream._late(this).
   */
  async run(url, body, lateMs) {
    const stream = this.stream;
    const isHttps = url.startsWith('https:');
    this.setTimer(
      RTT_GUESS * (1.5 + (isHttps ? 3 : 1)) + 2 * MAX_SERVER_JANK +
        (this.kind === PRIMARY && !this.ming ? 25000 : 0),
    );
    if (lateMs) {
      this.fallbackTimer = stream._clock.setTimeout(() => {
        this.fallbackTimer = null;
        stream._late(this);
      }, lateMs);
    }
    try {
      const response = await stream._fetch(url, {
        method: 'POST',
        body,
        cache: 'no-store',
        credentials: stream._options.credentials || 'same-origin',
        signal: this.controller.signal,
      });
      if (this.done) return;
      if (this.kind !== PRIMARY) this.clearLate();
      if (response.status !== 200) {
        this.problems = true;
        return this.close();
      }
      if (this.ming) {
        this.setTimer(STREAMING_LIFE_TIMEOUT);
      } else {
        const length = Number(response.headers.get('content-length'));
        const bytes = length > 0 && length < TWO53 ? length : 500000;
        this.setTimer(MAX_SERVER_JANK + (bytes / DL_SPEED) * 1000);
      }
      if (response.body) {
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (this.done) return;
          if (done) break;
          if (this.ming) this.setTimer(STREAMING_LIFE_TIMEOUT);
          this.received(decoder.decode(value, { stream: true }));
          if (this.done) return;
        }
      } else {
        this.received(await response.text());
      }
    } catch (e) {
      // Network failure, abort or timeout: the transport simply goes offline.
    }
    this.close();
  }

  /** Splits received text into lines and hands the complete ones to the stream. */
  received(text) {
    const buf = this.buffer + text;
    const frames = [];
    let start = 0;
    let tooLong = false;
    for (let nl; (nl = buf.indexOf('\n', start)) >= 0; start = nl + 1) {
      let line = buf.slice(start, nl);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line.length > MAX_FRAME_LENGTH) {
        tooLong = true;
        break;
      }
      frames.push(line);
    }
    this.buffer = buf.slice(start);
    const rest = this.buffer.length - MAX_FRAME_LENGTH;
    if (rest > 1 || (rest === 1 && !this.buffer.endsWith('\r'))) tooLong = true;
    this.stream._handleFrames(this, frames, tooLong);
  }

  /** Ends the request without telling the stream. */
  abort() {
    this.done = true;
    this.clearTimers();
    this.controller.abort();
  }
}

/** Placeholder that holds a transport slot during a backoff delay. */
class Delay {
  constructor(clock, ms, then) {
    this.placeholder = true;
    this.done = false;
    this.written = new Set();
    this.sackWritten = null;
    this.clock = clock;
    this.timer = clock.setTimeout(() => {
      this.done = true;
      then();
    }, ms);
  }
  abort() {
    this.done = true;
    this.clock.clearTimeout(this.timer);
  }
}

const DEFAULT_CLOCK = {
  now: () => Date.now(),
  setTimeout: (f, ms) => setTimeout(f, ms),
  clearTimeout: (id) => clearTimeout(id),
};

function defaultReportError(e) {
  if (typeof root.reportError === 'function') root.reportError(e);
  else setTimeout(() => {
    throw e;
  }, 0);
}

/**
 * A Minerva stream: start() it, sendString() restricted strings, receive them with onstring. Options (README):
 * `transport` ('auto', 'websocket', 'streaming', 'long-poll'), `fallbackMs`, `wsRetryMs`, `stallMs`, `credentials`, and,
 * for tests, `fetch`, `WebSocket`, `BroadcastChannel` (constructors; null for none), `clock` ({now, setTimeout,
 * clearTimeout}), `random`, `getRandomValues`, `reportError`.
 */
class ClientStream {
  constructor(endpoint, options) {
    if (!(endpoint instanceof HttpEndpoint)) throw new TypeError('endpoint must be a Minerva.HttpEndpoint');
    const o = (this._options = options || {});
    this._endpoint = endpoint;
    this._clock = o.clock || DEFAULT_CLOCK;
    this._fetch = o.fetch || ((url, init) => root.fetch(url, init));
    this._random = o.random || Math.random;
    this._reportError = o.reportError || defaultReportError;
    this._WebSocket = 'WebSocket' in o ? o.WebSocket : root.WebSocket;
    const mode = o.transport || 'auto';
    if (!['auto', 'websocket', 'streaming', 'long-poll'].includes(mode)) {
      throw new Error('unknown transport: ' + mode);
    }
    if (mode === 'websocket' && !this._WebSocket) throw new Error('transport websocket: no WebSocket');
    this._streaming = mode !== 'long-poll';
    this._auto = mode === 'auto';
    this._useWs = mode === 'websocket' || (this._auto && !!this._WebSocket);
    this._wsRetryMs = o.wsRetryMs || 10000;
    this._wsFails = 0; // WebSockets in a row that failed before their first frame
    this._wsTimer = null;
    this._probe = null; // a WebSocket trying to replace an HTTP primary
    this._fallbackMs = this._auto ? o.fallbackMs || 5000 : 0;
    this._stalls = 0; // streaming primaries in a row that went silent after their preamble
    // Deadlock detector: an upload without a response after this long (plus its size at DL_SPEED) means the browser
    // has no free connection to the host, probably because our own primary holds one (see _uploadStalled).
    this._stallMs = o.stallMs === undefined ? 4000 : o.stallMs;
    this._shortPolls = false; // since an upload stalled: long-polls with maxt SHORT_MAXT, no streaming
    const getRandomValues = o.getRandomValues || ((a) => root.crypto.getRandomValues(a));
    this.streamId = makeStreamId(getRandomValues);
    // %random% (see HttpEndpoint): one label for each URL, for the stream's life.
    const fill = (url) => url.split(RANDOM).join('ml' + makeStreamId(getRandomValues).slice(0, 16));
    this._primaryUrl = fill(endpoint.primaryUrl);
    this._secondaryUrl = fill(endpoint.secondaryUrl);
    this.maxUndeliveredStrings = 50;
    this.maxUndeliveredBytes = 1048576;
    this.onstarted = null;
    this.onstring = null;
    this.onreset = null;
    this.ondisconnect = null;
    /**
     * Extension: 'unstarted', 'connecting', 'connected', 'reconnecting' (backing off), 'stalled' (an upload got no
     * response in time: the client gave up streaming for short long-polls) or 'disconnected'.
     */
    this.connectionState = 'unstarted';
    /** Extension: while connected, the primary's transport: 'websocket', 'streaming' or 'long-poll'; else null. */
    this.connectionTransport = null;
    /** Extension: called with (connectionState, connectionTransport) whenever either changes. */
    this.onconnectionstate = null;
    this._protocol = null;
    this._state = UNSTARTED;
    this._nextTransportNumber = 0;
    this._queue = new SendQueue();
    this._window = new ReceiveWindow();
    this._lastSackSeenByClient = new SACK(-1);
    this._lastSackSeenByServer = new SACK(-1);
    this._streamExistsAtServer = false;
    this._primary = null;
    this._secondary = null;
    this._resetter = null;
    this._primaryDelays = 0;
    this._secondaryDelays = 0;
    this._penalty = 0;
    this._sendScheduled = false;
    this._channel = null; // BroadcastChannel of stall reports (see start)
  }

  /** The object the callbacks are called on (the stream itself). */
  getUserContext() {
    return this;
  }

  /**
   * Routes the callbacks to `protocol`: `streamStarted(stream)`, `stringReceived(s)`,
   * `streamReset(reason, applicationLevel)`, and optionally `transportCreated(info)`/`transportDestroyed(info)`.
   */
  bindToProtocol(protocol) {
    for (const name of ['streamStarted', 'stringReceived', 'streamReset']) {
      if (typeof protocol[name] !== 'function') throw new TypeError('bindToProtocol: protocol lacks ' + name);
    }
    this._protocol = protocol;
    this.onstarted = (stream) => protocol.streamStarted(stream);
    this.onstring = (s) => protocol.stringReceived(s);
    this.onreset = (reason, applicationLevel) => protocol.streamReset(reason, applicationLevel);
  }

  /** Connects: calls onstarted, then opens the first transport (carrying any queued strings). */
  start() {
    if (this.onmessage) throw new Error('ClientStream has an onmessage property; did you mean onstring?');
    if (this._state !== UNSTARTED) throw new Error('ClientStream.start: already started');
    this._state = STARTED;
    this._setConnectionState('connecting');
    const o = this._options;
    const Channel = 'BroadcastChannel' in o ? o.BroadcastChannel : root.BroadcastChannel;
    if (Channel && o.transport !== 'websocket') {
      // Stalls seen by the other streams of this origin (other tabs): see _uploadStalled.
      const channel = (this._channel = new Channel(STALL_CHANNEL));
      if (channel.unref) channel.unref(); // Node.js: do not keep the process alive
      const pool = new URL(this._primaryUrl).origin;
      channel.onmessage = (e) => {
        if (e.data === pool) this._uploadStalled();
      };
    }
    if (this.onstarted) this._call(this.onstarted, this);
    if (this._state === STARTED && !this._primary) this._newPrimary();
  }

  /**
   * Queues `s` to be sent reliably; strings queued in the same turn travel in one request.
   * Throws if `s` is not a restricted string (characters U+0020..U+007E; skip with validate false)
   * or if the stream was reset or disposed.
   */
  sendString(s, validate) {
    if (this._state === RESETTING || this._state === DISCONNECTED) {
      throw new Error('ClientStream.sendString: stream was reset or disposed');
    }
    if (typeof s !== 'string') throw new TypeError('ClientStream.sendString: not a string: ' + typeof s);
    const bad = validate === false ? -1 : s.search(/[^\x20-\x7e]/);
    if (bad >= 0) {
      const code = s.charCodeAt(bad).toString(16).toUpperCase().padStart(4, '0');
      throw new Error(
        `ClientStream.sendString: character U+${code} at index ${bad} is outside U+0020..U+007E; ` +
          'encode the string first (e.g. with Minerva.JSON.asciify)',
      );
    }
    this._queue.push(s);
    if (this._state === STARTED) this._scheduleSend();
  }

  /**
   * Resets the stream (application level): the server is told `reason` (a restricted string of at most 255
   * characters), onreset(reason, true) is called at once, ondisconnect when the reset has been sent.
   */
  reset(reason) {
    if (this._state === RESETTING || this._state === DISCONNECTED) {
      throw new Error('ClientStream.reset: stream was already reset or disposed');
    }
    reason = reason === undefined ? '' : reason;
    if (!isRestricted(reason) || reason.length > 255) {
      throw new Error('ClientStream.reset: reason must be a restricted string of at most 255 characters');
    }
    if (this._state === UNSTARTED) {
      this._state = RESETTING;
      this._callReset(reason, true);
      this.dispose();
      return;
    }
    this._state = RESETTING;
    this._abortTransports();
    this._openTransport(RESETTER, false, reason);
    this._callReset(reason, true);
  }

  /** Closes every transport without telling the server, then calls ondisconnect. */
  dispose() {
    if (this._state === DISCONNECTED) return;
    this._state = DISCONNECTED;
    this._abortTransports();
    if (this._resetter) this._resetter.abort();
    if (this._channel) this._channel.close();
    this._setConnectionState('disconnected');
    if (this.ondisconnect) this._call(this.ondisconnect);
  }

  _abortTransports() {
    for (const t of [this._primary, this._secondary, this._probe]) if (t) t.abort();
    this._primary = this._secondary = this._probe = null;
    if (this._wsTimer !== null) this._clock.clearTimeout(this._wsTimer);
    this._wsTimer = null;
  }

  _call(f, ...args) {
    try {
      f.apply(this, args);
    } catch (e) {
      this._reportError(e);
    }
  }

  _setConnectionState(state, transport) {
    transport = transport || null;
    if (this.connectionState === state && this.connectionTransport === transport) return;
    this.connectionState = state;
    this.connectionTransport = transport;
    if (this.onconnectionstate) this._call(this.onconnectionstate, state, transport);
  }

  _callReset(reason, applicationLevel) {
    if (this.onreset) this._call(this.onreset, reason, applicationLevel);
  }

  _scheduleSend() {
    if (this._sendScheduled) return;
    this._sendScheduled = true;
    queueMicrotask(() => {
      this._sendScheduled = false;
      this._trySend();
    });
  }

  /** The queued strings not carried by a request that is still open, as [seqNum, string] pairs. */
  _unsent() {
    const open = [this._primary, this._secondary].filter((t) => t && !t.done);
    const out = [];
    for (const item of this._queue.items) {
      if (!open.some((t) => t.written.has(item[0]))) out.push(item);
    }
    return out;
  }

  /** Sends strings and SACK on an open WebSocket primary, else opens an upload request if none is open. */
  _trySend() {
    const p = this._primary;
    const sack = this._window.getSACK();
    if (this._state === STARTED && p && p.ws) {
      // A WebSocket primary carries everything; while it connects, what it will carry waits.
      if (!p.open) return;
      const frames = [];
      if (!sack.equals(this._lastSackSeenByServer) && !sack.equals(p.sackWritten)) {
        frames.push(sack + 'A');
        p.sackWritten = sack;
      }
      this._writeStrings(p, frames, Infinity);
      return p.send(frames);
    }
    if (this._state !== STARTED || this._secondary) return;
    const sackNeeded =
      !sack.equals(this._lastSackSeenByServer) && !(this._primary && sack.equals(this._primary.sackWritten));
    if (!sackNeeded && this._unsent().length === 0) return;
    // Until the server confirmed the stream exists, the primary's next request carries everything.
    if (!this._streamExistsAtServer) return;
    this._openTransport(SECONDARY, false);
  }

  _newPrimary() {
    if (this._useWs) this._openWs();
    else this._openTransport(PRIMARY, this._streaming);
  }

  /** Appends our unsent strings to `frames` (at most about `limit` characters), noting them in `t`. */
  _writeStrings(t, frames, limit) {
    let size = 0;
    for (const [seqNum, s] of this._unsent()) {
      if (size > 0 && size + s.length > limit) break;
      size += s.length + 1;
      if (t.last === -1 || seqNum !== t.last + 1) frames.push(seqNum + 'N');
      frames.push(s + ' ');
      t.written.add(seqNum);
      t.last = seqNum;
    }
  }

  _hello(t, primary) {
    return encodeHello({
      tnum: t.number,
      isNew: !this._streamExistsAtServer,
      id: this.streamId,
      ming: t.ming,
      primary,
      shortPolls: this._shortPolls,
      sack: (t.sackWritten = this._window.getSACK()),
      seenack: this._lastSackSeenByClient,
    });
  }

  /** Opens a WebSocket primary, or a probe that replaces the HTTP primary once it works. */
  _openWs(probe) {
    const t = new WsTransport(this);
    if (probe) this._probe = t;
    else this._primary = t;
    const p = this._protocol;
    if (p && p.transportCreated) this._call(() => p.transportCreated(t.info()));
    t.run(this._primaryUrl.replace(/^http/, 'ws') + 'ws', this._hello(t, true));
  }

  /** Auto mode, some time after WebSocket failed: try it again. */
  _retryWs() {
    this._wsTimer = null;
    this._useWs = true;
    const p = this._primary;
    if (p && !p.placeholder && !p.ws) this._openWs(true);
  }

  _openTransport(kind, ming, resetReason) {
    const t = new HttpTransport(this, kind, ming);
    const lines = [this._hello(t, kind === PRIMARY)];
    this._writeStrings(t, lines, MAX_BODY_STRINGS);
    if (resetReason !== undefined) lines.push(resetReason + '|1!');
    const url = (kind === PRIMARY ? this._primaryUrl : this._secondaryUrl) + 'io/';
    if (kind === PRIMARY) this._primary = t;
    else if (kind === SECONDARY) this._secondary = t;
    else this._resetter = t;
    const p = this._protocol;
    if (p && p.transportCreated) this._call(() => p.transportCreated(t.info()));
    const body = lines.join('\n') + '\n';
    const lateMs =
      kind === PRIMARY
        ? ming && this._fallbackMs
        : kind === SECONDARY && this._stallMs && this._stallMs + (body.length / DL_SPEED) * 1000;
    t.run(url, body, lateMs);
  }

  /** HttpTransport.run's `lateMs` passed. */
  _late(t) {
    if (t.done || this._state !== STARTED) return;
    if (t === this._primary && !t.gotPreamble) {
      // A streaming response gave no sign of life in time: probably buffered; switch to long-polling.
      this._streaming = false;
      t.noDelay = true;
      t.close();
    } else if (t === this._secondary) {
      // Tell the other streams of this origin that share the upload's host (and so the browser's connections to it).
      if (this._channel) this._channel.postMessage(new URL(this._secondaryUrl).origin);
      this._uploadStalled();
    }
  }

  /**
   * Deadlock detector. An upload got no response within `stallMs`: the browser most likely has no free connection
   * to the host (at most 6 per host in Chromium, shared by all tabs), all of them held by primaries (this tab's,
   * other tabs'), which a streaming response holds for up to an hour, a long-poll for 25 s. Give ours back and, for
   * the rest of the stream, long-poll with maxt SHORT_MAXT, so that every poll (in every tab running this client)
   * returns its connection within seconds and waiting uploads get through. The upload itself stays queued.
   * Also called when another stream of this origin (another tab) saw a stall of the host our primary uses (a
   * BroadcastChannel message): then all of them give way at once, not each after a stall of its own.
   */
  _uploadStalled() {
    const p = this._primary;
    if (this._state !== STARTED || this._shortPolls || !p || p.placeholder || p.ws) return;
    this._shortPolls = true;
    this._streaming = false;
    this._setConnectionState('stalled');
    p.noDelay = true;
    p.close();
  }

  /** A transport's first sign of life: its preamble, or a WebSocket's first frame. */
  _alive(t) {
    t.clearLate();
    if (this._state !== STARTED) return;
    if (t.ws) this._wsFails = 0;
    const old = this._primary;
    if (t === this._probe) {
      // The WebSocket works: it is the primary now (the server already closes the old one gently).
      this._probe = null;
      this._primary = t;
      old.noDelay = true;
      old.close();
      this._trySend();
    }
    const p = this._primary;
    this._setConnectionState('connected', p && p.gotPreamble ? p.name : this.connectionTransport || t.name);
  }

  /** Reacts to the frames of one delivery (PROTOCOL.md 7.8). */
  _handleFrames(t, frames, tooLong) {
    const received = [];
    let close = tooLong;
    let reset = null;
    for (const line of frames) {
      const frame = decodeFrame(line);
      if (!t.gotPreamble) {
        if (!t.ws && (!frame || frame.type !== '^' || frame.string !== PREAMBLE)) {
          t.problems = close = true;
          break;
        }
        t.gotPreamble = true;
        this._alive(t);
        if (!t.ws) {
          t.frames++;
          continue;
        }
      }
      if (!frame) {
        t.problems = close = true;
        break;
      }
      t.frames++;
      const type = frame.type;
      if (type === ' ') {
        if (!RESTRICTED.test(frame.string)) {
          t.problems = close = true;
          break;
        }
        received.push([++t.peerSeqNum, frame.string]);
      } else if (type === 'N') {
        t.peerSeqNum = frame.seqNum - 1;
      } else if (type === 'A') {
        this._lastSackSeenByClient = frame.sack;
        if (this._queue.handleSACK(frame.sack)) {
          t.problems = close = true;
          break;
        }
      } else if (type === 'T') {
        this._lastSackSeenByServer = frame.sack;
      } else if (type === 'C') {
        this._streamExistsAtServer = true;
        if (t.ming) this._scheduleSend();
      } else if (type === 'Y') {
        close = true;
        break;
      } else if (type === 'K') {
        t.problems = close = true;
        t.penalty = KILL_PENALTY[frame.reason];
        break;
      } else if (type === '!') {
        reset = frame;
        break;
      }
    }
    if (tooLong) t.problems = true;
    if (received.length && this._state === STARTED) {
      const [strings, limitHit] = this._window.give(
        received,
        this.maxUndeliveredStrings,
        this.maxUndeliveredBytes,
      );
      for (const s of strings) {
        if (this._state !== STARTED) break;
        if (this.onstring) this._call(this.onstring, s);
      }
      if (limitHit) close = true;
      if (t.ming) this._scheduleSend();
    }
    if (reset) {
      if (this._state === STARTED) {
        this._state = RESETTING;
        this._abortTransports();
        this._callReset(reset.reason, reset.applicationLevel);
      }
      this.dispose();
    } else if (close) {
      t.close();
    }
  }

  /** A transport ended: apply penalty and backoff, then replace it (PROTOCOL.md 7.7). */
  _transportOffline(t) {
    const p = this._protocol;
    if (p && p.transportDestroyed) this._call(() => p.transportDestroyed(t.info()));
    if (t === this._resetter) {
      if (this._state === RESETTING) this.dispose();
      return;
    }
    if (t.ws && this._auto && (!t.frames || t.timedOut) && this._state === STARTED) {
      // Upgrade refused, closed before the first frame, or silent: use HTTP, try WebSocket again later.
      this._useWs = false;
      t.noDelay = true;
      const ms = this._wsRetryMs * 2 ** Math.min(this._wsFails++, 5) * (0.75 + this._random() / 2);
      if (this._wsTimer === null) this._wsTimer = this._clock.setTimeout(() => this._retryWs(), ms);
    }
    if (t === this._probe) {
      this._probe = null;
      return;
    }
    const isPrimary = t === this._primary;
    if (!isPrimary && t !== this._secondary) return;
    if (isPrimary) this._primary = this._probe;
    else this._secondary = null;
    if (this._state !== STARTED) return;
    if (isPrimary && this._probe) {
      // A WebSocket probe took over the stream at the server; it is our primary now.
      this._probe = null;
      return this._trySend();
    }
    if (isPrimary && t.ming && !t.ws && this._fallbackMs) {
      // Heartbeats come every 10 s; silence twice in a row means something buffers the responses.
      this._stalls = t.timedOut && t.gotPreamble ? this._stalls + 1 : 0;
      if (this._stalls >= 2) this._streaming = false;
    }
    if (!t.penalty) {
      this._penalty = 0;
    } else if ((this._penalty += t.penalty) >= 1) {
      this._state = RESETTING;
      this._abortTransports();
      this._callReset('stream penalty reached limit', false);
      this.dispose();
      return;
    }
    const suggestsDelay = (t.problems || t.frames === 0) && !t.noDelay;
    const count = isPrimary
      ? (this._primaryDelays = suggestsDelay ? this._primaryDelays + 1 : 0)
      : (this._secondaryDelays = suggestsDelay ? this._secondaryDelays + 1 : 0);
    const jitter = Math.floor(this._random() * 4000) - 2000;
    const delay = count
      ? Math.max(0, 2000 * Math.min(count, 3) + jitter - (this._clock.now() - t.started))
      : 0;
    if (delay > 0) this._setConnectionState('reconnecting');
    if (isPrimary) {
      if (delay > 0) {
        this._primary = new Delay(this._clock, delay, () => {
          this._primary = null;
          if (this._state === STARTED) this._newPrimary();
        });
      } else {
        this._newPrimary();
      }
    } else if (delay > 0) {
      this._secondary = new Delay(this._clock, delay, () => {
        this._secondary = null;
        this._trySend();
      });
    } else {
      this._trySend();
    }
  }
}

// ---- ReconnectingStream: a ClientStream that is replaced when it ends for a reason the application did not give ----

/**
 * Owns one ClientStream at a time (`stream`, null between streams) and forwards its `onstring` and
 * `onconnectionstate`. When the stream is reset and `shouldRestart(reason, applicationLevel)` says so (default: not
 * an application-level reset, i.e. a lost stream: `stream penalty reached limit` after a server restart, `no activity
 * from peer` after an idle reset), it starts a new ClientStream after a backoff and calls `onstart(stream, true)` so
 * that the application joins its rooms again. Application-level resets (the server's, e.g. an authorizer's
 * `sign in first`, or the application's own) end it: `onreset(reason, applicationLevel, false)`, state
 * 'disconnected'. Backoff: min(maxDelayMs, minDelayMs x 2^(n-1)) x (0.5 .. 1) for the n-th restart in a row; a
 * stream that lived maxDelayMs or longer starts the count again. Strings sent between streams wait and go on the next
 * stream right after onstart's; strings of the old stream that the server had not acknowledged are not sent again
 * (they may or may not have arrived): nothing is promised exactly once across a restart. Options: those of
 * ClientStream (given to every stream), `minDelayMs` (1000), `maxDelayMs` (30000), `shouldRestart`.
 */
class ReconnectingStream {
  constructor(endpoint, options) {
    if (!(endpoint instanceof HttpEndpoint)) throw new TypeError('endpoint must be a Minerva.HttpEndpoint');
    const o = (this._options = options || {});
    this._endpoint = endpoint;
    this._clock = o.clock || DEFAULT_CLOCK;
    this._random = o.random || Math.random;
    this._reportError = o.reportError || defaultReportError;
    this.minDelayMs = o.minDelayMs === undefined ? 1000 : o.minDelayMs;
    this.maxDelayMs = o.maxDelayMs === undefined ? 30000 : o.maxDelayMs;
    this.shouldRestart = o.shouldRestart || ((reason, applicationLevel) => !applicationLevel);
    /** The current ClientStream; null before start() and between streams. */
    this.stream = null;
    /** How many streams replaced a lost one. */
    this.restarts = 0;
    this.connectionState = 'unstarted';
    this.connectionTransport = null;
    this.onstart = null;
    this.onstring = null;
    this.onreset = null;
    this.onconnectionstate = null;
    this._state = UNSTARTED;
    this._queue = []; // strings sent while there was no stream
    this._failures = 0; // restarts in a row of streams that lived less than maxDelayMs
    this._timer = null;
  }

  /** Starts the first stream: onstart(stream, false), then connects. */
  start() {
    if (this._state !== UNSTARTED) throw new Error('ReconnectingStream.start: already started');
    this._state = STARTED;
    this._open(false);
  }

  /**
   * Sends `s` on the current stream, or, between streams, queues it for the next one (checked now). Throws after
   * close() or once an application-level reset ended the helper.
   */
  sendString(s, validate) {
    if (this._state === DISCONNECTED) throw new Error('ReconnectingStream.sendString: closed');
    if (this.stream) return this.stream.sendString(s, validate);
    if (typeof s !== 'string' || (validate !== false && !isRestricted(s))) {
      throw new TypeError('ReconnectingStream.sendString: not a restricted string (encode it, e.g. Minerva.JSON.asciify)');
    }
    this._queue.push(s);
  }

  /** Ends it: resets the current stream with `reason` (application level; the server is told), restarts nothing. */
  close(reason) {
    if (reason !== undefined && (!isRestricted(reason) || reason.length > 255)) {
      throw new Error('ReconnectingStream.close: reason must be a restricted string of at most 255 characters');
    }
    if (this._state === DISCONNECTED) return;
    this._state = DISCONNECTED;
    const stream = this.stream;
    if (stream) stream.reset(reason);
    else this._ended(null, reason || '', true);
  }

  _open(isRestart) {
    this._timer = null;
    if (isRestart) this.restarts++;
    const stream = (this.stream = new ClientStream(this._endpoint, this._options));
    const started = this._clock.now();
    stream.onstarted = () => {
      if (this.onstart) this._call(this.onstart, stream, isRestart);
      if (this.stream === stream) for (const s of this._queue.splice(0)) stream.sendString(s, false);
    };
    stream.onstring = (s) => {
      if (this.stream === stream && this.onstring) this.onstring(s);
    };
    stream.onconnectionstate = (state, transport) => {
      if (this.stream === stream) this._setState(state, transport);
    };
    stream.onreset = (reason, applicationLevel) => this._ended(stream, reason, applicationLevel, started);
    // Disposed by the application without a reset: an application-level end.
    stream.ondisconnect = () => this._ended(stream, 'disposed', true, started);
    stream.start();
  }

  /** The current stream (null: none) ended: restart it after a backoff, or end the helper. */
  _ended(stream, reason, applicationLevel, started) {
    if (this.stream !== stream) return;
    this.stream = null;
    let restart = false;
    if (this._state === STARTED) {
      try {
        restart = !!this.shouldRestart(reason, applicationLevel);
      } catch (e) {
        this._reportError(e);
      }
    }
    if (restart) {
      this._failures = this._clock.now() - started >= this.maxDelayMs ? 1 : this._failures + 1;
      const ms = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** (this._failures - 1)) * (0.5 + this._random() / 2);
      this._timer = this._clock.setTimeout(() => this._open(true), ms);
      this._setState('reconnecting');
    } else {
      this._state = DISCONNECTED;
      this._queue = [];
      if (this._timer !== null) this._clock.clearTimeout(this._timer);
      this._setState('disconnected');
    }
    if (this.onreset) this._call(this.onreset, reason, applicationLevel, restart);
  }

  // The same as ClientStream's (they use only _reportError, connectionState, connectionTransport, onconnectionstate).
  _call(f, ...args) {
    ClientStream.prototype._call.call(this, f, ...args);
  }

  _setState(state, transport) {
    ClientStream.prototype._setConnectionState.call(this, state, transport);
  }
}

// ---- QAN (question-answer-notify), PROTOCOL.md section 8 ----

/** An answer the peer sent as an error it knows about (`body|qidE`); also thrown to answer so. */
class KnownError extends Error {
  constructor(body) {
    super(String(body));
    this.name = 'KnownError';
    this.body = body;
  }
}

/** An answer the peer sent as an unexpected error (`body|qidU`). */
class UnknownError extends Error {
  constructor(body) {
    super(String(body));
    this.name = 'UnknownError';
    this.body = body;
  }
}

/** A question that will never be answered because the stream was reset. */
class QuestionFailed extends Error {
  constructor(reason) {
    super(String(reason));
    this.name = 'QuestionFailed';
  }
}

/** A question that was cancelled. */
class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

/** Encodes a QAN frame `{type, body, qid}` (type: Q K E U C #) as a string. */
function encodeQAN(f) {
  if (f.type === '#') return f.body + '#';
  if (f.type === 'C') return f.qid + 'C';
  return f.body + '|' + f.qid + f.type;
}

/** Decodes a QAN string; returns `{type, body, qid}` or null. */
function decodeQAN(s) {
  const n = s.length;
  if (!n) return null;
  const type = s[n - 1];
  if (type === '#') return { type, body: s.slice(0, n - 1) };
  if (type === 'C') {
    const qid = parseNonNegative(s.slice(0, n - 1));
    return qid === null ? null : { type, qid };
  }
  if (!'QKEU'.includes(type)) return null;
  const bar = s.lastIndexOf('|');
  if (bar < 0) return null;
  const qid = parseNonNegative(s.slice(bar + 1, n - 1));
  return qid === null ? null : { type, body: s.slice(0, bar), qid };
}

/**
 * Both peers' QAN logic. `bodyReceived(body, isQuestion)` returns the answer (or a promise of it; a
 * promise with a `cancel()` method is cancelled when the peer cancels); throw a KnownError to answer with
 * an error. `sendQANFrame(frame)`, `fatalError(message)`, `logError(message, error)` are called by it.
 */
class QANHelper {
  constructor(bodyReceived, logError, sendQANFrame, fatalError) {
    this._bodyReceived = bodyReceived;
    this._logError = logError;
    this._send = sendQANFrame;
    this._fatalError = fatalError;
    this._asked = new Map(); // our questions: qid -> {settled, resolve, reject}
    this._answering = new Map(); // their questions: qid -> {cancel}
    this._lastQid = 0;
  }

  /** Handles a decoded QAN frame from the peer. */
  handleQANFrame(frame) {
    const { type, body, qid } = frame;
    if (type === 'Q') {
      if (this._answering.has(qid)) return this._fatalError('Received Question with duplicate qid: ' + qid);
      this._answer(qid, body);
    } else if (type === '#') {
      try {
        this._bodyReceived(body, false);
      } catch (e) {
        this._logError('Peer\'s Notification caused uncaught exception', e);
      }
    } else if (type === 'C') {
      const entry = this._answering.get(qid);
      if (entry) entry.cancel();
    } else {
      const q = this._asked.get(qid);
      if (!q) return this._fatalError('Received an answer with invalid qid: ' + qid);
      this._asked.delete(qid);
      if (q.settled) return;
      q.settled = true;
      if (type === 'K') q.resolve(body);
      else q.reject(type === 'E' ? new KnownError(body) : new UnknownError(body));
    }
  }

  _answer(qid, body) {
    let finished = false;
    const finish = (type, answer) => {
      if (finished) return;
      finished = true;
      this._answering.delete(qid);
      try {
        this._send({ type, body: answer, qid });
      } catch (e) {
        this._logError('Failed to send answer', e);
      }
    };
    const fail = (e) => {
      if (e instanceof KnownError) return finish('E', e.body);
      if (e instanceof CancelledError) return finish('U', 'CancelledError');
      this._logError('Peer\'s Question caused uncaught exception', e);
      finish('U', 'Uncaught exception');
    };
    const entry = { cancel: () => fail(new CancelledError()) };
    this._answering.set(qid, entry);
    let result;
    try {
      result = this._bodyReceived(body, true);
    } catch (e) {
      return fail(e);
    }
    if (result && typeof result.then === 'function') {
      if (typeof result.cancel === 'function') entry.cancel = () => result.cancel();
      result.then((v) => finish('K', v), fail);
    } else {
      finish('K', result);
    }
  }

  /** Asks the peer; returns a promise of the answer body, with a `cancel()` method. */
  ask(body) {
    const qid = this._lastQid + 1;
    this._send({ type: 'Q', body, qid });
    this._lastQid = qid;
    const q = { settled: false };
    const promise = new Promise((resolve, reject) => {
      q.resolve = resolve;
      q.reject = reject;
    });
    this._asked.set(qid, q);
    promise.cancel = () => {
      if (q.settled) return;
      q.settled = true;
      this._send({ type: 'C', qid });
      q.reject(new CancelledError());
    };
    return promise;
  }

  /** Sends a notification (no answer expected). */
  notify(body) {
    this._send({ type: '#', body });
  }

  /** Fails every question still waiting for an answer with QuestionFailed(reason); later answers are ignored. */
  failAll(reason) {
    for (const q of this._asked.values()) {
      if (q.settled) continue;
      q.settled = true;
      q.reject(new QuestionFailed(reason));
    }
  }
}

/**
 * Adapts a QAN protocol object (`streamStarted(stream, qanHelper)`, `streamReset(reason, applicationLevel)`,
 * `bodyReceived(body, isQuestion)`) to ClientStream.bindToProtocol.
 */
class QANProtocolWrapper {
  constructor(qanProtocol, validateBodies, throwIntoWindow) {
    this._protocol = qanProtocol;
    this._validate = validateBodies !== false;
    this._throw = throwIntoWindow !== false;
    this._stream = null;
    this._helper = null;
  }

  streamStarted(stream) {
    this._stream = stream;
    this._helper = new QANHelper(
      (body, isQuestion) => this._protocol.bodyReceived(body, isQuestion),
      (message, e) => {
        if (this._throw) defaultReportError(e);
        else if (root.console) root.console.error(message, e);
      },
      (frame) => stream.sendString(encodeQAN(frame), this._validate),
      (message) => this._reset('QANHelper said: ' + message),
    );
    this._protocol.streamStarted(stream, this._helper);
  }

  _reset(reason) {
    try {
      this._stream.reset(reason);
    } catch (e) {
      // Already reset or disposed.
    }
  }

  stringReceived(s) {
    const frame = decodeQAN(s);
    if (frame) this._helper.handleQANFrame(frame);
    else this._reset('Bad QAN frame.  Did peer send a non-QAN string?');
  }

  streamReset(reason, applicationLevel) {
    if (this._helper) {
      this._helper.failAll('Stream reset applicationLevel=' + applicationLevel + ', reason: ' + reason);
    }
    this._protocol.streamReset(reason, applicationLevel);
  }
}

/** JSON whose output contains only U+0020..U+007E (everything else escaped as \uXXXX). */
function asciify(value) {
  const json = JSON.stringify(value);
  return json === undefined
    ? json
    : json.replace(/[^\x20-\x7e]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

const Minerva = {
  ClientStream,
  ReconnectingStream,
  HttpEndpoint,
  QANHelper,
  QANProtocolWrapper,
  KnownError,
  UnknownError,
  QuestionFailed,
  CancelledError,
  JSON: { parse: JSON.parse, serialize: JSON.stringify, asciify },
  isRestricted,
  /** Building blocks, exported for tests; not a stable API. */
  internal: {
    SACK,
    decodeFrame,
    encodeHello,
    makeStreamId,
    SendQueue,
    ReceiveWindow,
    encodeQAN,
    decodeQAN,
  },
};
root.Minerva = Minerva;
if (typeof module === 'object' && module && module.exports) module.exports = Minerva;
})(typeof globalThis !== 'undefined' ? globalThis : this);
