// The Minerva HTTP endpoint (PROTOCOL.md 4): `POST <prefix>io/` feeds whole bodies to the loop's
// MinervaServerEngine and carries out its actions on the HTTP responses; `GET <prefix>minerva-client.js` serves the
// JavaScript client; optional CORS. One engine per event loop, driven by MinervaLoopDriver.
import Logging
import Metrics
import MinervaCore
import MinervaHTTP
import MinervaIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Settings of a ``MinervaEndpoint``.
public struct MinervaEndpointConfiguration: Sendable {
    /// The path the endpoint is mounted at; must start and end with `/` (default `/_minerva/`).
    public var prefix = "/_minerva/"
    /// The engine's limits and timings (idle timeout, stream limits, socket grace period...), for each loop's engine.
    public var engine = ServerEngineConfiguration()
    /// Origins allowed to POST from other sites (CORS). Empty: no CORS headers at all. `*` allows any origin.
    ///
    /// An entry `*.example.com`, `http://*.example.com` or `https://*.example.com:8443` allows a whole domain: the
    /// origins whose host is `example.com` or any name under it, with that scheme (`http` or `https` when none is
    /// given) and that port (any when none is given). It is what an endpoint URL with `%random%` needs (the
    /// JavaScript client's `HttpEndpoint`): every stream then sends its requests to random names under the domain, so
    /// that a dozen tabs of one browser do not share its few connections per host, and the page's origin differs
    /// from theirs. The endpoint answers for any `Host`; point the domain's wildcard DNS name at the server
    /// (`*.localhost` needs none: browsers resolve it to the loopback address).
    public var allowedOrigins: [String] = []
    /// Whether a request whose `Origin` is neither the request's own (`http://` or `https://` + `Host`) nor in
    /// ``allowedOrigins`` is refused with 403 before it reaches a stream (`Origin: null` too, unless listed). Requests
    /// without `Origin` (native clients) pass. CORS headers only stop a browser from reading the answer; this stops a
    /// hostile page from writing into a stream.
    public var enforcesOrigins = true
    /// Whether CORS answers say `Access-Control-Allow-Credentials: true`, so that a page of an allowed origin may send
    /// cookies (the JavaScript client's `credentials: 'include'`). Off by default.
    public var allowsCredentials = false
    /// Whether `<prefix>minerva-client.js` serves the JavaScript client (false answers 404).
    public var servesClientScript = true
    /// A file to serve as the JavaScript client instead of the copy compiled into the library (nil, the default:
    /// the compiled copy of `Client/minerva-client.js`, so a binary serves it wherever it runs). Set it while
    /// editing the client to see changes without rebuilding; a missing file answers 404 and logs an error.
    public var clientScriptPath: String? = nil
    /// The `Cache-Control` value of the JavaScript client (it also gets an `ETag`).
    public var clientScriptCacheControl = "public, max-age=300"
    /// Whether the application's `TransportInfo` carries the HTTP request headers (copied per request). The engine
    /// keeps them only until the application has seen them (``authorizeStream`` and `transportCreated`), unless
    /// `engine.keepsRequestHeaders` (`ServerEngineConfiguration/keepsRequestHeaders`) is set: then for the
    /// transport's whole life (`transportDestroyed` sees them too), at the cost of a copy per long-lived transport.
    public var includeRequestHeaders = true
    /// The Flash socket policy the socket listener serves (nil answers a lone NUL, PROTOCOL.md 3.2).
    public var socketPolicy: String?
    /// Seconds a socket may take to send its mode prefix before it is aborted (PROTOCOL.md 10.8); also how long a
    /// connection that got the policy file may stay open.
    public var socketModeTimeout = SocketModeDetector.defaultTimeout
    /// Seconds an int32 socket may take to finish a frame once its first byte arrived (after the first frame, whose
    /// deadline is ``socketModeTimeout``); a frame left unfinished longer is a stalled or hostile peer, and the
    /// connection is aborted with a rate-limited notice. 0 disables the deadline.
    public var socketFrameTimeout: Double = 30
    /// Whether a socket is aborted as soon as its first bytes can match no mode prefix (false: wait for 512 bytes).
    public var socketEarlyRejection = true
    /// The most connections one ``MinervaSocketListener`` keeps open at once (in mode detection or carrying a
    /// transport). At the limit it stops accepting until one closes; the kernel queues new ones up to the backlog.
    public var maxSocketConnections = 4_096
    /// Seconds between two reports of each loop's counters to swift-metrics (streams, transports by kind, strings in,
    /// out and retransmitted, SACK holes, kills and resets by reason, queued bytes); 0 turns metrics off.
    public var metricsInterval: Double = 1
    /// Seconds between two checks of the process heap by one event loop (they also update the
    /// `minerva_heap_bytes` gauges): when the allocator holds more than
    /// ``heapTrimThreshold`` bytes freed (streams reset or expired, a burst's buffers), they are returned to the kernel
    /// (`MinervaHeap.trim()`, glibc `malloc_trim`), so RSS falls back after an attack or a crowd leaves. 0 turns it off.
    public var heapTrimInterval: Double = 10
    /// Freed bytes held by the allocator above which ``heapTrimInterval``'s check returns them (default 1 MiB). Low,
    /// because a long-running server's churn (transports opened and closed every poll) leaves free chunks scattered
    /// through the heap that otherwise grow RSS a few MB per hour; a trim costs about 1 ms per 100 MB free.
    public var heapTrimThreshold = 1_048_576
    /// Decides whether a new stream may be created, seeing the hello and the request (headers with cookies and
    /// `Authorization`, peer address) before the stream exists: return nil to allow it, or a reason to refuse it; the
    /// client then gets `reason|1!` (its `streamReset(reason, true)`) and no handler is built. Called on the loop that
    /// would own the stream.
    public var authorizeStream: (@Sendable (StreamAuthorizationRequest) -> String?)? = nil
    /// Addresses of reverse proxies (exact IP addresses, e.g. `127.0.0.1`) whose `X-Forwarded-For` is believed: a
    /// request from one of them is attributed to the right-most forwarded address that is not itself a trusted proxy,
    /// for the per-address stream limit and the application's `ConnectionInfo/peerAddress`. Empty (the default):
    /// `X-Forwarded-For` is ignored.
    public var trustedProxies: [String] = []
    /// Whether peers on a loopback address (127.0.0.0/8, ::1) are subject to
    /// `ServerEngineConfiguration/maxNewStreamsPerKeyPerSecond`. Off by default: local processes (a reverse proxy
    /// that does not forward the client's address, load tests) are not one client. Behind a local proxy, list it in
    /// ``trustedProxies`` so that each client is limited by its own address.
    public var rateLimitsLoopback = false
    /// Where metrics go: nil (the default) for the factory bootstrapped in `MetricsSystem`.
    public var metricsFactory: (any MetricsFactory)? = nil
    /// Whether `GET <prefix>ws` accepts WebSocket upgrades (PROTOCOL.md 11.1; false answers 404). A WebSocket is one
    /// of the HTTP server's connections: the HTTP connection limit covers it. Its largest message is the engine's
    /// `ServerEngineConfiguration/maxFrameLength`; origins are checked against ``allowedOrigins``.
    public var webSockets = true
    /// Seconds the server waits for the client's close frame after sending its own before it closes the TCP
    /// connection (PROTOCOL.md 11.1). A WebSocket that sends no first message within ``socketModeTimeout`` is
    /// closed (1008).
    public var webSocketCloseTimeout = 5.0
    /// Where streams run when several servers share them (a cluster, e.g. `MinervaCluster`); nil: every stream runs
    /// here. Asked before each POST of `io/` runs.
    public var placement: (any MinervaStreamPlacement)?

    /// `Client/minerva-client.js` of the source tree this library was built from (for ``clientScriptPath`` during
    /// development; a deployed binary does not need it).
    public static let defaultClientScriptPath: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Sources/MinervaServer/MinervaEndpoint.swift
        return parts.joined(separator: "/") + "/Client/minerva-client.js"
    }()

    /// The defaults described on each property.
    public init() {}
}

/// The Minerva endpoint: mount it on an `MinervaHTTPRouter` beside the application's own routes.
///
/// ```swift
/// let endpoint = MinervaEndpoint { stream, loop in EchoHandler() }
/// endpoint.mount(on: router)
/// ```
///
/// Each event loop of the server gets its own `MinervaServerEngine`. With several loops, each stream is owned by
/// one of them, computed from its id alone (``ownerIndex(of:loopCount:)``): a request or socket that arrives on
/// another loop is handed to the owner as messages (the receiving loop keeps the connection and carries the bytes
/// the owner's engine produces), so the stream's handler always runs on its owner loop. The engine's limits
/// (``MinervaEndpointConfiguration/engine``) apply per loop. `Sendable`: share it between loops; what it keeps per
/// loop lives on that loop. Keep the endpoint alive as long as the server runs (mounting it on a router does).
public final class MinervaEndpoint: Sendable {
    /// Builds the application handler of a new stream; called on the stream's event loop (any loop of the server,
    /// hence `@Sendable`).
    public typealias HandlerFactory = @Sendable (ServerStream, MinervaEventLoop) -> any MinervaStreamHandler

    /// The settings.
    public let configuration: MinervaEndpointConfiguration
    /// Logs startup facts, application callback failures, socket errors, the socket connection limit, and every
    /// rejection of the engine (kill frames, refused streams, send-queue resets) at `notice` or `warning`, at most
    /// 20 per second per loop (never a full stream id).
    public let logger: Logger
    let handlerFactory: HandlerFactory
    /// Keeps every loop's driver alive (each loop's slot holds its driver weakly). Touched only when a loop meets the
    /// endpoint for the first time, never per request.
    private let drivers = Mutex<[MinervaLoopBound<MinervaLoopDriver>]>([])
    /// Whether a loop's driver has taken the process heap check (one per endpoint: the first driver made).
    private let heapCheckTaken = Atomic<Bool>(false)
    private let clientScript: MinervaStaticContent?
    private let prefixBytes: [UInt8]
    let corsOrigins: Set<String>
    let corsAnyOrigin: Bool
    let corsDomains: [OriginPattern]
    let trustedProxies: Set<String>
    /// `configuration.engine.maxStreams`, counted across every loop's engine.
    public let streamBudget: MinervaStreamBudget
    /// `configuration.engine.maxQueuedBytesTotal`, counted across every loop's engine.
    public let queuedMemoryBudget: MinervaQueuedMemoryBudget

    /// Creates an endpoint.
    /// - Parameters:
    ///   - configuration: prefix, engine limits, CORS, client script.
    ///   - logger: where failures are reported.
    ///   - handlerFactory: builds the handler of each new stream, given the stream and its event loop.
    public init(
        configuration: MinervaEndpointConfiguration = MinervaEndpointConfiguration(),
        logger: Logger = Logger(label: "minerva.endpoint"), handlerFactory: @escaping HandlerFactory
    ) {
        precondition(configuration.prefix.hasPrefix("/") && configuration.prefix.hasSuffix("/"), "bad prefix")
        self.configuration = configuration
        self.logger = logger
        self.handlerFactory = handlerFactory
        prefixBytes = Array(configuration.prefix.utf8)
        corsOrigins = Set(configuration.allowedOrigins)
        corsAnyOrigin = corsOrigins.contains("*")
        corsDomains = configuration.allowedOrigins.compactMap(OriginPattern.init)
        trustedProxies = Set(configuration.trustedProxies)
        streamBudget = MinervaStreamBudget(limit: configuration.engine.maxStreams)
        queuedMemoryBudget = MinervaQueuedMemoryBudget(limit: configuration.engine.maxQueuedBytesTotal)
        let javascript = "text/javascript; charset=utf-8"
        if !configuration.servesClientScript {
            clientScript = nil
        } else if let path = configuration.clientScriptPath {
            clientScript = try? MinervaStaticContent(
                file: path, contentType: javascript, cacheControl: configuration.clientScriptCacheControl)
            if clientScript == nil { logger.error("cannot read the JavaScript client at \(path): answering 404") }
        } else {
            clientScript = MinervaStaticContent(
                text: Self.embeddedClientScript, contentType: javascript,
                cacheControl: configuration.clientScriptCacheControl)
        }
    }

    /// Creates an endpoint whose factory does not need the event loop.
    /// - Parameters:
    ///   - configuration: prefix, engine limits, CORS, client script.
    ///   - logger: where failures are reported.
    ///   - handlerFactory: builds the handler of each new stream.
    public convenience init(
        configuration: MinervaEndpointConfiguration = MinervaEndpointConfiguration(),
        logger: Logger = Logger(label: "minerva.endpoint"),
        handlerFactory: @escaping @Sendable (ServerStream) -> any MinervaStreamHandler
    ) {
        self.init(configuration: configuration, logger: logger) { stream, _ in handlerFactory(stream) }
    }

    /// Whether the JavaScript client file was found and is served.
    public var servesClientScript: Bool { clientScript != nil }

    /// Mounts the endpoint at ``MinervaEndpointConfiguration/prefix`` on `router`.
    /// - Parameter router: the server's router.
    public func mount(on router: MinervaHTTPRouter) {
        router.mount(configuration.prefix, methods: nil) { [self] request, response in
            self.dispatch(request, response)
        }
    }

    /// The engine of `loop`, created on first use. Call it on `loop`'s thread only.
    /// - Parameter loop: an event loop of the server.
    /// - Returns: the loop's engine (inspect streams, or run application code against it).
    public func engine(on loop: MinervaEventLoop) -> MinervaServerEngine {
        driver(for: loop).engine
    }

    /// True for the first caller only: that loop's driver runs the heap check (drivers are made when a loop first
    /// sees traffic, so it is not necessarily loop 0's).
    func takeHeapCheck() -> Bool {
        heapCheckTaken.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
    }

    /// The driver of `loop`, found in the loop's own slot (no lock, no allocation); created on first use. Loop
    /// thread only.
    func driver(for loop: MinervaEventLoop) -> MinervaLoopDriver {
        if let driver = loop.slot(for: ObjectIdentifier(self)) {
            return unsafeDowncast(driver, to: MinervaLoopDriver.self)
        }
        let driver = MinervaLoopDriver(endpoint: self, loop: loop)
        let bound = MinervaLoopBound(driver, eventLoop: loop)
        drivers.withLock { $0.append(bound) }
        loop.setSlot(driver, for: ObjectIdentifier(self))
        return driver
    }

    // MARK: Routing

    private enum Child { case io, clientScript, webSocket, other }

    private func child(of request: MinervaHTTPRequest) -> Child {
        let path = request.pathBytes
        let rest = UnsafeRawBufferPointer(rebasing: path[prefixBytes.count...])
        if rest.elementsEqual("io/".utf8) || rest.elementsEqual("io".utf8) { return .io }
        if rest.elementsEqual("minerva-client.js".utf8) { return .clientScript }
        if rest.elementsEqual("ws".utf8) { return .webSocket }
        return .other
    }

    private func dispatch(_ request: MinervaHTTPRequest, _ response: MinervaHTTPResponse) {
        switch child(of: request) {
        case .io:
            if request.method == .POST {
                driver(for: response.eventLoop).handlePost(request, response)
            } else if request.method == .OPTIONS {
                answerPreflight(request, response)
            } else {
                response.status = 405
                response.setHeader("Allow", corsOrigins.isEmpty ? "POST" : "POST, OPTIONS")
                response.setHeader("Content-Type", "text/plain")
                response.end("Method Not Allowed\n")
            }
        case .clientScript:
            if let clientScript, request.method == .GET || request.method == .HEAD {
                response.send(clientScript, for: request)
            } else if clientScript != nil {
                response.status = 405
                response.setHeader("Allow", "GET, HEAD")
                response.setHeader("Content-Type", "text/plain")
                response.end("Method Not Allowed\n")
            } else {
                notFound(response)
            }
        case .webSocket:
            if configuration.webSockets {
                driver(for: response.eventLoop).handleWebSocketUpgrade(request, response)
            } else {
                notFound(response)
            }
        case .other:
            notFound(response)
        }
    }

    private func notFound(_ response: MinervaHTTPResponse) {
        response.status = 404
        response.setHeader("Content-Type", "text/plain")
        response.end("Not Found\n")
    }

    /// The allowed origin to echo for this request, if CORS is configured and the origin is allowed.
    func allowedOrigin(_ request: MinervaHTTPRequest) -> String? {
        guard !corsOrigins.isEmpty, let raw = request.headerBytes("Origin") else { return nil }
        let origin = String(decoding: MinervaWebSocketHandshake.trimmed(raw), as: UTF8.self)
        if origin == "null" { return corsOrigins.contains(origin) ? origin : nil }
        if corsAnyOrigin || corsOrigins.contains(origin) { return origin }
        return corsDomains.contains { $0.matches(origin) } ? origin : nil
    }

    /// Whether the request's `Origin` may use the endpoint: absent (a native client), the request's own site
    /// (`http://` or `https://` followed by its `Host`'s name, any port, so a proxy in front changes nothing), or
    /// allowed by ``MinervaEndpointConfiguration/allowedOrigins``.
    /// `Origin: null` (sandboxed pages, files) passes only if `null` is listed. The rule of `io/` and of WebSockets
    /// (PROTOCOL.md 11.1).
    public func originPermitted(_ request: MinervaHTTPRequest) -> Bool {
        guard let raw = request.headerBytes("Origin") else { return true }
        let origin = MinervaWebSocketHandshake.trimmed(raw)
        if let host = request.headerBytes("Host").map(MinervaWebSocketHandshake.trimmed), !host.isEmpty,
            Self.isOrigin(origin, ofHost: host)
        {
            return true
        }
        return allowedOrigin(request) != nil
    }

    /// Whether `origin` is `http://` or `https://` followed by the host name of `host` (the `Host` header), on any
    /// port (ASCII case-insensitive). The port is not compared: a reverse proxy or a test proxy in front (nginx,
    /// HAProxy, a lossy proxy) often rewrites `Host` to the server's own address and port while the browser's `Origin`
    /// names the proxy's; a page of another site has another host name either way.
    static func isOrigin(_ origin: UnsafeRawBufferPointer, ofHost host: UnsafeRawBufferPointer) -> Bool {
        let hostName = withoutPort(host)
        for scheme in ["http://", "https://"] {
            let schemeBytes = Array(scheme.utf8)
            guard origin.count > schemeBytes.count else { continue }
            var schemeMatches = true
            for index in 0..<schemeBytes.count where lowercased(origin[index]) != schemeBytes[index] {
                schemeMatches = false
                break
            }
            guard schemeMatches else { continue }
            let originHost = withoutPort(UnsafeRawBufferPointer(rebasing: origin[schemeBytes.count...]))
            guard originHost.count == hostName.count else { return false }
            for index in 0..<hostName.count where lowercased(originHost[index]) != lowercased(hostName[index]) {
                return false
            }
            return true
        }
        return false
    }

    /// `name` or `[v6]` without a trailing `:port`.
    private static func withoutPort(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var end = bytes.count
        if let close = bytes.lastIndex(of: UInt8(ascii: "]")) {
            end = close + 1  // an IPv6 literal: the port, if any, follows the bracket
        } else if let colon = bytes.lastIndex(of: UInt8(ascii: ":")) {
            end = colon
        }
        return UnsafeRawBufferPointer(rebasing: bytes[..<end])
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }

    /// Adds the CORS headers of an answer to an allowed cross-origin request.
    func addCORSHeaders(_ origin: String, _ response: MinervaHTTPResponse) {
        response.setHeader("Access-Control-Allow-Origin", origin)
        response.setHeader("Vary", "Origin")
        if configuration.allowsCredentials { response.setHeader("Access-Control-Allow-Credentials", "true") }
    }

    private func answerPreflight(_ request: MinervaHTTPRequest, _ response: MinervaHTTPResponse) {
        guard !corsOrigins.isEmpty else {
            response.status = 405
            response.setHeader("Allow", "POST")
            response.setHeader("Content-Type", "text/plain")
            response.end("Method Not Allowed\n")
            return
        }
        guard let origin = allowedOrigin(request) else {
            response.status = 403
            response.setHeader("Content-Type", "text/plain")
            response.end("Origin not allowed\n")
            return
        }
        response.status = 204
        addCORSHeaders(origin, response)
        response.setHeader("Access-Control-Allow-Methods", "POST, OPTIONS")
        let requested = request.header("Access-Control-Request-Headers") ?? "Content-Type"
        response.setHeader("Access-Control-Allow-Headers", requested.isEmpty ? "Content-Type" : requested)
        response.setHeader("Access-Control-Max-Age", "86400")
        response.end()
    }
}

/// The engine of one event loop and the I/O around it: HTTP responses and sockets by transport handle, the
/// engine's deadline on the loop's timer, and the end-of-turn flush (coalesced sending, PROTOCOL.md 6.4).
/// Confined to its loop: found through the loop's slot, on the loop's thread.
///
/// The path of a POST is one-way and allocation-free after warm-up: the response reports to the driver as its
/// ``HTTPResponseDelegate`` (tagged with the transport handle), the engine gets the borrowed body and the header bytes
/// (Strings only if the application reads them), and its actions are carried out with borrowed bytes.
final class MinervaLoopDriver: HTTPResponseDelegate {
    weak var loop: MinervaEventLoop?
    unowned let endpoint: MinervaEndpoint
    let engine: MinervaServerEngine
    // Per-request tables without dynamic exclusivity checks: loop-confined, never touched while one of them is being
    // mutated (see the note in MinervaServerEngine).
    @exclusivity(unchecked) var responses: [Int: MinervaHTTPResponse] = [:]
    /// Connections carrying socket transports (int32 sockets and WebSockets), by handle.
    @exclusivity(unchecked) var sockets: [Int: any MinervaSocketTransportConnection] = [:]
    private var nextHandle = 0
    private var timer: MinervaLoopTimer?
    private var armedDeadline = Double.infinity
    private var performing = false
    /// The constant headers of every `io/` answer, encoded once per loop.
    private let postHeaders: ByteStorage = {
        let block = ByteStorage(capacity: 256)
        block.append(
            "Cache-Control: no-cache, no-store, max-age=0, must-revalidate\r\nPragma: no-cache\r\nExpires: -1\r\n"
                + "Content-Type: text/plain\r\nX-XSS-Protection: 1; mode=block\r\nX-Content-Type-Options: nosniff\r\n")
        return block
    }()
    /// The server's loops when there are several (empty for one loop: nothing is handed off), and this loop's index.
    let peers: [MinervaEventLoop]
    let loopIndex: Int
    /// Receiving side of hand-offs: transports of this loop whose stream another loop owns (handle -> proxy).
    @exclusivity(unchecked) var proxied: [Int: ProxiedTransport] = [:]
    /// Owning side: transports this engine runs for another loop's connection (negative handle -> where it lives),
    /// and the way back from that loop's handle.
    @exclusivity(unchecked) var remoteTransports: [Int: RemoteTransport] = [:]
    @exclusivity(unchecked) var remoteHandles: [RemoteKey: Int] = [:]
    var nextRemoteHandle = 0
    /// Actions for other loops' connections, gathered during `perform` and sent once per target loop.
    var outbox: [[RemoteAction]] = []
    var outboxPending = false
    /// Reused bytes for peeking at a hello.
    var peekScratch: [UInt8] = []
    private var metrics: MinervaEngineMetrics?
    private var metricsTimer: MinervaLoopTimer?
    private var heapTimer: MinervaLoopTimer?
    /// Engine rejections logged per second at most; the rest are counted.
    private var rejectionLog = RateLimitedLog(window: 1, linesPerWindow: 20)
    /// POSTs refused for their origin, logged per second at most.
    private var originLog = RateLimitedLog(window: 1, linesPerWindow: 20)
    /// Refused upgrades and WebSockets closed for bad input, logged per second at most.
    var webSocketLog = RateLimitedLog(window: 1, linesPerWindow: 20)

    init(endpoint: MinervaEndpoint, loop: MinervaEventLoop) {
        self.loop = loop
        self.endpoint = endpoint
        let factory = endpoint.handlerFactory
        let logger = endpoint.logger
        if let group = loop.group, group.count > 1 {
            peers = group.loops
            loopIndex = loop.indexInGroup
        } else {
            peers = []
            loopIndex = 0
        }
        outbox = Array(repeating: [], count: peers.count)
        engine = MinervaServerEngine(configuration: endpoint.configuration.engine, now: loop.now) {
            [unowned loop] stream in
            logger.debug("stream \(stream.streamID.redacted) started")
            return factory(stream, loop)
        }
        engine.streamBudget = endpoint.streamBudget
        engine.queuedMemoryBudget = endpoint.queuedMemoryBudget
        engine.streamAuthorizer = endpoint.configuration.authorizeStream
        engine.errorReporter = { error, callback in
            logger.error("application callback \(callback) failed: \(error)")
        }
        engine.rejectionReporter = { [weak self] rejection in self?.log(rejection) }
        // Before the HTTP server's output flush, so strings sent during this turn leave in this turn's writes.
        loop.addEndOfTurnHook(order: EndOfTurnOrder.engine) { [weak self] in self?.endOfTurn() }
        // A graceful server shutdown closes every transport gently (SACK, StreamStatus, [Y]) instead of holding
        // long-polls until the grace period ends; streams are not reset, so clients reconnect and carry on.
        loop.willDrain.append { [weak self] in
            guard let self else { return }
            self.engine.closeAllTransports(now: self.now)
            self.perform()
        }
        rearm()
        let trimInterval = endpoint.configuration.heapTrimInterval
        if trimInterval > 0, endpoint.takeHeapCheck() {
            let threshold = endpoint.configuration.heapTrimThreshold
            // One walk of the arenas per check (milliseconds on a fragmented heap, so not per metrics report): it
            // feeds the heap gauges and decides the trim.
            heapTimer = loop.schedule(after: trimInterval, repeating: trimInterval) { [weak self] in
                let clock = ContinuousClock()
                let start = clock.now
                let usage = MinervaHeap.usage
                self?.metrics?.recordHeap(inUse: usage.inUse, free: usage.free)
                guard usage.free > threshold else { return }
                MinervaHeap.trim()
                logger.debug(
                    "returned free heap memory to the kernel",
                    metadata: [
                        "free before": "\(usage.free)", "in use": "\(usage.inUse)", "took": "\(clock.now - start)",
                    ])
            }
        }
        let interval = endpoint.configuration.metricsInterval
        if interval > 0 {
            let metrics = MinervaEngineMetrics(
                loop: loopIndex, recordsHeap: heapTimer != nil,
                factory: endpoint.configuration.metricsFactory ?? MetricsSystem.factory)
            self.metrics = metrics
            metricsTimer = loop.schedule(after: interval, repeating: interval) { [weak self] in
                guard let self else { return }
                self.metrics?.report(self.engine)
            }
        }
    }

    var now: Double { loop?.now ?? engine.now }

    /// Limits whose refusals are logged as warnings (the server's capacity or an address's rate); every other
    /// rejection is the peer's fault and is logged as a notice.
    private static let warningLimits: Set<String> = [
        "maxStreams", "maxNewStreamsPerKeyPerSecond", "maxQueuedBytesPerStream", "maxQueuedBytesTotal",
    ]

    private func log(_ rejection: EngineRejection) {
        guard let suppressed = rejectionLog.admit(now: now) else { return }
        var metadata: Logger.Metadata = ["peer": "\(rejection.peerAddress)"]
        if let transport = rejection.transport { metadata["transport"] = "\(transport)" }
        if let stream = rejection.redactedStreamID { metadata["stream"] = "\(stream)" }
        if let limit = rejection.limit { metadata["limit"] = "\(limit)" }
        if suppressed > 0 { metadata["earlierRejectionsNotLogged"] = "\(suppressed)" }
        let isWarning = rejection.limit.map { Self.warningLimits.contains($0) } ?? false
        endpoint.logger.log(
            level: isWarning ? .warning : .notice, "minerva rejected: \(rejection)", metadata: metadata)
    }

    func newHandle() -> TransportHandle {
        nextHandle &+= 1
        return TransportHandle(nextHandle)
    }

    // MARK: HTTP

    func handlePost(_ request: MinervaHTTPRequest, _ response: MinervaHTTPResponse) {
        if endpoint.configuration.enforcesOrigins && !endpoint.originPermitted(request) {
            refuseOrigin(request, response)
            return
        }
        response.appendHeaderBlock(postHeaders)
        if let origin = endpoint.allowedOrigin(request) { endpoint.addCORSHeaders(origin, response) }
        var info = ConnectionInfo()
        if let connection = response.connection {
            // Formatted once per connection and kept by it (no table here: a held long-poll costs no entry).
            let addresses = connection.addressText
            info.localAddress = addresses.local
            info.peerAddress = addresses.peer
            info.rateLimitKey = endpoint.rateLimitKey(forHost: addresses.peerHost)
            if !endpoint.trustedProxies.isEmpty, endpoint.trustedProxies.contains(addresses.peerHost),
                let client = endpoint.forwardedClient(request)
            {
                info.peerAddress = client
                info.rateLimitKey = client
            }
        }
        if endpoint.configuration.placement != nil, placementTakes(request, response, info) { return }
        let handle = newHandle()
        responses[handle.rawValue] = response
        response.delegate = self
        response.delegateTag = handle.rawValue
        if !peers.isEmpty, let owner = owner(ofBody: request.body) {
            handOffPost(request, handle: handle, info: info, to: owner)
            return
        }
        let now = self.now
        if endpoint.configuration.includeRequestHeaders {
            // Copied as bytes into the transport's reused storage; Strings only if the application reads them.
            engine.openTransport(handle, kind: .http, connection: info, now: now) { headers in
                headers.reserveCapacity(rawHeadersSize(of: request))
                request.forEachHeader { name, value in headers.append(name: name, value: value) }
            }
        } else {
            engine.openTransport(handle, kind: .http, connection: info, now: now)
        }
        engine.httpBodyReceived(handle, body: request.body, now: now)
        perform()
    }

    /// The storage the headers of `request` take as ``RawRequestHeaders``.
    func rawHeadersSize(of request: MinervaHTTPRequest) -> Int {
        var size = 0
        request.forEachHeader { name, value in
            size += RawRequestHeaders.storageSize(nameCount: name.count, valueCount: value.count)
        }
        return size
    }

    /// A copy of the headers of `request`, without spare capacity.
    func rawHeaders(of request: MinervaHTTPRequest) -> RawRequestHeaders {
        var headers = RawRequestHeaders()
        headers.reserveCapacity(rawHeadersSize(of: request))
        request.forEachHeader { name, value in headers.append(name: name, value: value) }
        return headers
    }

    /// 403 for a POST from an origin that may not use the endpoint, and a rate-limited notice.
    private func refuseOrigin(_ request: MinervaHTTPRequest, _ response: MinervaHTTPResponse) {
        response.status = 403
        response.setHeader("Content-Type", "text/plain")
        response.end("Origin not allowed\n")
        guard let suppressed = originLog.admit(now: now) else { return }
        var metadata: Logger.Metadata = ["origin": "\(request.header("Origin") ?? "")"]
        if let peer = response.connection?.socket.remoteAddress { metadata["peer"] = "\(peer)" }
        if suppressed > 0 { metadata["earlierRefusalsNotLogged"] = "\(suppressed)" }
        endpoint.logger.notice("minerva refused a POST from a foreign origin", metadata: metadata)
    }

    func responseClosed(_ response: MinervaHTTPResponse, tag: Int) {
        guard responses.removeValue(forKey: tag) != nil else { return }
        if !proxied.isEmpty, proxiedClosed(tag) { return }
        engine.transportClosed(TransportHandle(tag), now: now)
        perform()
    }

    func responseWritable(_ response: MinervaHTTPResponse, tag: Int) {
        if !proxied.isEmpty, proxiedWritable(tag, true) { return }
        engine.transportWritable(TransportHandle(tag), true)
        perform()
    }

    // MARK: Actions

    /// Carries out the engine's actions (re-entrant calls leave the work to the outer call, keeping order).
    func perform() {
        if performing { return }
        performing = true
        defer { performing = false }
        while engine.hasActions {
            engine.drainBorrowedActions({ self.execute($0) })
        }
        if outboxPending { sendOutbox() }
    }

    private func execute(_ action: BorrowedServerAction) {
        if !remoteTransports.isEmpty, forwardIfRemote(action) { return }
        switch action {
        case .write(let handle, let bytes, let kind):
            switch kind {
            case .httpWholeBody:
                guard let response = responses.removeValue(forKey: handle.rawValue) else { return }
                response.delegate = nil
                response.end(bytes)
            case .httpChunk:
                guard let response = responses[handle.rawValue] else { return }
                response.write(bytes)
                if !response.isWritable { engine.transportWritable(handle, false) }
            case .socket:
                sockets[handle.rawValue]?.write(bytes)
            }
        case .finish(let handle):
            guard let response = responses.removeValue(forKey: handle.rawValue) else { return }
            response.delegate = nil
            response.end()
        case .close(let handle):
            sockets[handle.rawValue]?.close(abort: false)
        }
    }

    // MARK: Time

    /// End of a loop turn: write what the application sent, carry out actions, re-arm the engine's timer.
    func endOfTurn() {
        if engine.needsFlush {
            engine.flush(now: now)
        }
        perform()
        rearm()
    }

    private func rearm() {
        guard let loop else { return }
        let deadline = engine.nextDeadline
        if deadline == armedDeadline && timer != nil { return }
        timer?.cancel()
        timer = nil
        armedDeadline = deadline
        guard deadline.isFinite else { return }
        timer = loop.schedule(after: max(0, deadline - loop.now)) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.armedDeadline = .infinity
            self.engine.timersDue(now: self.now)
            self.perform()
            self.rearm()
        }
    }
}

/// The host part of an address written as `host:port` or `[v6]:port`: the key for per-address limits.
extension MinervaEndpoint {
    /// The per-address rate-limit key of a peer host: the host, or nil (no limit) for loopback unless
    /// ``MinervaEndpointConfiguration/rateLimitsLoopback``.
    func rateLimitKey(forHost host: String) -> String? {
        if !configuration.rateLimitsLoopback && isLoopback(host) { return nil }
        return host
    }

    /// The client a trusted proxy forwarded the request for: the right-most `X-Forwarded-For` address that is not a
    /// trusted proxy (each proxy appends the address it got the request from), if any.
    func forwardedClient(_ request: MinervaHTTPRequest) -> String? {
        guard let header = request.header("X-Forwarded-For") else { return nil }
        for part in header.split(separator: ",").reversed() {
            let address = String(part.trimmingPrefix(while: { $0 == " " }).prefix(while: { $0 != " " }))
            if address.isEmpty { continue }
            if !trustedProxies.contains(address) { return address }
        }
        return nil
    }
}

/// Whether a host is a loopback address (127.0.0.0/8, ::1, or either mapped into IPv6).
func isLoopback(_ host: String) -> Bool {
    var host = Substring(host)
    if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
    if host.hasPrefix("::ffff:") { host = host.dropFirst(7) }
    return host == "::1" || host.hasPrefix("127.")
}

func hostPart(of address: String) -> String { HTTPConnection.hostPart(of: address) }

/// An ``MinervaEndpointConfiguration/allowedOrigins`` entry that allows a whole domain: `[scheme://]*.domain[:port]`.
struct OriginPattern: Sendable {
    let scheme: Substring?
    /// The domain, lowercased, without the `*.`.
    let domain: Substring
    let port: Substring?

    /// Parses `entry`; nil if it is no domain pattern (an exact origin, `*`, `null`).
    init?(_ entry: String) {
        var rest = Substring(entry.lowercased())
        if let range = rest.firstRange(of: "://") {
            scheme = rest[..<range.lowerBound]
            rest = rest[range.upperBound...]
        } else {
            scheme = nil
        }
        guard rest.hasPrefix("*."), scheme == nil || scheme == "http" || scheme == "https" else { return nil }
        rest = rest.dropFirst(2)
        if let colon = rest.lastIndex(of: ":") {
            port = rest[rest.index(after: colon)...]
            rest = rest[..<colon]
        } else {
            port = nil
        }
        guard !rest.isEmpty, !rest.contains("*"), !rest.contains("/") else { return nil }
        domain = rest
    }

    /// Whether `origin` (the `Origin` header: `scheme://host[:port]`) is under the domain.
    func matches(_ origin: String) -> Bool {
        let lowered = Substring(origin.lowercased())
        guard let range = lowered.firstRange(of: "://") else { return false }
        let originScheme = lowered[..<range.lowerBound]
        guard originScheme == "http" || originScheme == "https", scheme == nil || scheme == originScheme else {
            return false
        }
        var host = lowered[range.upperBound...]
        guard !host.contains("/"), !host.contains("@") else { return false }
        var originPort: Substring? = nil
        if let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") {
            originPort = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        if let port, port != originPort { return false }
        if host == domain { return true }
        return host.count > domain.count + 1 && host.hasSuffix(domain)
            && host[host.index(host.endIndex, offsetBy: -domain.count - 1)] == "."
    }
}
