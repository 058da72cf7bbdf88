// Type declarations for minerva-client.js (the global `Minerva` of the classic script) and
// minerva-client.mjs (the same object as an ES module: default export plus named exports).

declare namespace Minerva {
    /** Transport choice: WebSocket with fallback to streaming, then long-polling (default), or one of them only. */
    type TransportMode = 'auto' | 'websocket' | 'streaming' | 'long-poll';

    /** The transport a connected stream's primary uses. */
    type ConnectionTransport = 'websocket' | 'streaming' | 'long-poll';

    /**
     * Where a stream's connection stands. 'stalled': an upload got no response within stallMs (the browser has no
     * free connection to the host, e.g. too many tabs streaming to it); the stream gave up its primary and goes on
     * with short long-polls ('connected' with 'long-poll' once one answers).
     */
    type ConnectionState = 'unstarted' | 'connecting' | 'connected' | 'reconnecting' | 'stalled' | 'disconnected';

    /** Options for a ClientStream; all optional. The last seven exist for tests. */
    interface ClientStreamOptions {
        /**
         * 'auto' (default) starts with a WebSocket, falls back to HTTP streaming when the upgrade fails, the socket
         * closes before its first frame or stays silent (and tries WebSocket again later), and to long-polling if
         * streaming responses are buffered. 'websocket' uses WebSocket only.
         */
        transport?: TransportMode;
        /** How long (ms) a WebSocket or a streaming request may stay silent before 'auto' falls back (5000). */
        fallbackMs?: number;
        /** After a WebSocket failure, 'auto' tries WebSocket again after this many ms (10000), doubling up to 32x. */
        wsRetryMs?: number;
        /**
         * Deadlock detector (any transport mode): an upload request without a response after this many ms (4000,
         * plus its size at 3072 bytes/s) means the browser has no free connection to the host; the stream then gives
         * up its HTTP primary, reports connectionState 'stalled', and long-polls with maxt 3 s for the rest of its
         * life; other streams of the origin on the same host (other tabs) are told and do the same. 0 turns it off.
         */
        stallMs?: number;
        /** fetch's credentials mode for cross-origin endpoints (default 'same-origin'). */
        credentials?: RequestCredentials;
        /** Replaces fetch. */
        fetch?: (url: string, init: RequestInit) => Promise<Response>;
        /** Replaces the WebSocket constructor (undefined or null: no WebSocket). */
        WebSocket?: { new (url: string, protocol: string): WebSocket } | null;
        /** Replaces the BroadcastChannel constructor that carries stall reports between tabs (null: none). */
        BroadcastChannel?: { new (name: string): BroadcastChannel } | null;
        /** Replaces Date.now, setTimeout and clearTimeout. */
        clock?: { now(): number; setTimeout(f: () => void, ms: number): unknown; clearTimeout(id: unknown): void };
        /** Replaces Math.random (backoff jitter). */
        random?: () => number;
        /** Replaces crypto.getRandomValues (stream ids). */
        getRandomValues?: (array: Uint8Array) => unknown;
        /** Receives exceptions thrown by callbacks (default: reportError, or a rethrow in a new task). */
        reportError?: (error: unknown) => void;
    }

    /** Information about one transport (HTTP request or WebSocket) of a stream. */
    interface TransportInfo {
        transportNumber: number;
        isPrimary: boolean;
        streamingFromPeer: boolean;
        streamingToPeer: boolean;
    }

    /** The object given to ClientStream.bindToProtocol. */
    interface StreamProtocol {
        streamStarted(stream: ClientStream): void;
        stringReceived(s: string): void;
        streamReset(reason: string, applicationLevel: boolean): void;
        transportCreated?(info: TransportInfo): void;
        transportDestroyed?(info: TransportInfo): void;
    }

    /**
     * Where a stream connects: a Minerva WebPort URL ending in '/'; requests go to `url + 'io/'`. `%random%` in a URL
     * (`http://%random%.example.com/_minerva/`) is replaced by each ClientStream with a random DNS label (one for
     * the primary URL, another for the secondary URL, kept for the stream's life); primaryUrl keeps the placeholder.
     */
    class HttpEndpoint {
        constructor(primaryUrl: string, secondaryUrl?: string);
        readonly primaryUrl: string;
        readonly secondaryUrl: string;
    }

    /** A reliable, ordered stream of restricted strings (U+0020..U+007E) to and from a Minerva server. */
    class ClientStream {
        constructor(endpoint: HttpEndpoint, options?: ClientStreamOptions);
        /** 26 random base-36 characters. */
        readonly streamId: string;
        /** Receive-window limits for out-of-order strings (50 strings, 1048576 estimated bytes). */
        maxUndeliveredStrings: number;
        maxUndeliveredBytes: number;
        onstarted: ((this: ClientStream, stream: ClientStream) => void) | null;
        onstring: ((this: ClientStream, s: string) => void) | null;
        onreset: ((this: ClientStream, reason: string, applicationLevel: boolean) => void) | null;
        ondisconnect: ((this: ClientStream) => void) | null;
        /** Extension (not in the original API): where the stream's connection stands. */
        readonly connectionState: ConnectionState;
        /** Extension: while 'connected', the transport of the primary (null in the other states). */
        readonly connectionTransport: ConnectionTransport | null;
        /** Extension: called with the new connectionState and connectionTransport whenever either changes. */
        onconnectionstate:
            | ((this: ClientStream, state: ConnectionState, transport: ConnectionTransport | null) => void)
            | null;
        /** Returns the stream itself (the `this` of the callbacks). */
        getUserContext(): ClientStream;
        bindToProtocol(protocol: StreamProtocol): void;
        /** Calls onstarted, then connects. Throws if already started or if an `onmessage` property is set. */
        start(): void;
        /** Queues `s`; throws for non-restricted strings (unless validate is false) or after reset/dispose. */
        sendString(s: string, validate?: boolean): void;
        /** Application-level reset; `reason`: restricted, at most 255 characters. Throws if already reset. */
        reset(reason?: string): void;
        /** Closes everything without telling the server; calls ondisconnect. */
        dispose(): void;
    }

    /** Options for a ReconnectingStream: those of ClientStream (given to every stream it creates), and the restart rule. */
    interface ReconnectingStreamOptions extends ClientStreamOptions {
        /** The first restart's delay in ms before jitter (1000); it doubles with each restart in a row. */
        minDelayMs?: number;
        /**
         * The cap on the delay in ms before jitter (30000). A stream that lived this long or longer starts the count
         * of restarts in a row again.
         */
        maxDelayMs?: number;
        /**
         * Called when the current stream is reset; true: start a new stream after the backoff. Default
         * `(reason, applicationLevel) => !applicationLevel`: lost streams (`stream penalty reached limit` after a
         * server restart, `no activity from peer` after an idle reset) restart; application-level resets (the
         * server's, e.g. an authorizer's `sign in first`, or the application's own) end the ReconnectingStream.
         */
        shouldRestart?: (reason: string, applicationLevel: boolean) => boolean;
    }

    /**
     * A ClientStream that is replaced by a new one (a new stream id, after a backoff with jitter) when it ends for a
     * reason `shouldRestart` accepts; `onstart(stream, true)` then lets the application join its rooms again.
     * Strings sent between streams go on the next stream after those onstart sends. Strings the old stream had sent
     * and the server had not acknowledged are not sent again: nothing is promised exactly once across a restart.
     */
    class ReconnectingStream {
        constructor(endpoint: HttpEndpoint, options?: ReconnectingStreamOptions);
        /** The current stream; null before start() and between streams. */
        readonly stream: ClientStream | null;
        /** How many streams replaced a lost one. */
        readonly restarts: number;
        minDelayMs: number;
        maxDelayMs: number;
        shouldRestart: (reason: string, applicationLevel: boolean) => boolean;
        /** The current stream's state; 'reconnecting' between streams; 'disconnected' once ended. */
        readonly connectionState: ConnectionState;
        readonly connectionTransport: ConnectionTransport | null;
        /** Called as each stream starts, before it connects: send what joins the application's rooms here. */
        onstart: ((this: ReconnectingStream, stream: ClientStream, isRestart: boolean) => void) | null;
        onstring: ((this: ReconnectingStream, s: string) => void) | null;
        /** Called for every reset of a stream; `restarting`: a new stream follows (else the helper has ended). */
        onreset:
            | ((this: ReconnectingStream, reason: string, applicationLevel: boolean, restarting: boolean) => void)
            | null;
        onconnectionstate:
            | ((this: ReconnectingStream, state: ConnectionState, transport: ConnectionTransport | null) => void)
            | null;
        /** Starts the first stream (onstart(stream, false)). Throws if already started. */
        start(): void;
        /** Sends on the current stream, or queues for the next one; throws once ended or for a bad string. */
        sendString(s: string, validate?: boolean): void;
        /** Ends it: an application-level reset of the current stream with `reason`; no restart follows. */
        close(reason?: string): void;
    }

    /** A QAN frame: Question, OkayAnswer, KnownErrorAnswer, UnknownErrorAnswer, Cancellation, Notification. */
    interface QANFrame {
        type: 'Q' | 'K' | 'E' | 'U' | 'C' | '#';
        body?: string;
        qid?: number;
    }

    /** A promise of an answer body that can also be cancelled (sends `qidC`, rejects with CancelledError). */
    interface QuestionPromise extends Promise<string> {
        cancel(): void;
    }

    class QANHelper {
        constructor(
            bodyReceived: (body: string, isQuestion: boolean) => unknown,
            logError: (message: string, error: unknown) => void,
            sendQANFrame: (frame: QANFrame) => void,
            fatalError: (message: string) => void,
        );
        handleQANFrame(frame: QANFrame): void;
        ask(body: string): QuestionPromise;
        notify(body: string): void;
        failAll(reason: string): void;
    }

    /** The object wrapped by QANProtocolWrapper. */
    interface QANProtocol {
        streamStarted(stream: ClientStream, qanHelper: QANHelper): void;
        streamReset(reason: string, applicationLevel: boolean): void;
        /** Returns the answer to a question (a string, or a promise of one; throw KnownError to answer an error). */
        bodyReceived(body: string, isQuestion: boolean): unknown;
    }

    class QANProtocolWrapper implements StreamProtocol {
        constructor(qanProtocol: QANProtocol, validateBodies?: boolean, throwIntoWindow?: boolean);
        streamStarted(stream: ClientStream): void;
        stringReceived(s: string): void;
        streamReset(reason: string, applicationLevel: boolean): void;
    }

    class KnownError extends Error {
        constructor(body: string);
        body: string;
    }
    class UnknownError extends Error {
        constructor(body: string);
        body: string;
    }
    class QuestionFailed extends Error {
        constructor(reason: string);
    }
    class CancelledError extends Error {
        constructor();
    }

    const JSON: {
        parse(text: string): any;
        serialize(value: any): string;
        /** JSON.stringify with every character outside U+0020..U+007E escaped as \uXXXX. */
        asciify(value: any): string;
    };

    /** True for strings made only of U+0020..U+007E. */
    function isRestricted(s: unknown): boolean;

    /** Building blocks exported for tests; not a stable API. */
    const internal: Record<string, unknown>;
}
