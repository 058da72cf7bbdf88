// The server: one HTTPLoopContext (loop, listener, connections, deadline lists) per thread.
internal import CShims
import Logging
import MinervaIO
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Per-loop server state. Everything here is confined to `loop`'s thread.
package final class HTTPLoopContext {
    package let loop: MinervaEventLoop
    let configuration: MinervaHTTPServerConfiguration
    let router: MinervaHTTPRouter
    let logger: Logger
    /// Weak: the server may be going away while loops drain (its deinit shuts them down).
    weak var server: MinervaHTTPServer?
    @exclusivity(unchecked) private(set) var connections: [HTTPConnection] = []
    let headerTimeouts: DeadlineList
    let bodyTimeouts: DeadlineList
    let idleTimeouts: DeadlineList
    /// The buffers this loop's request decoders borrow while a request is in progress.
    let decoderBuffers = HTTPDecoderBufferPool()
    /// Request decoders no connection is using: a connection borrows one when bytes arrive and gives it back when
    /// it rests between requests or while its request is answered (a held long-poll owns none).
    @exclusivity(unchecked) private var spareDecoders: [HTTPRequestDecoder] = []
    /// The most spare decoders kept.
    static let spareDecoderLimit = 256
    private let date = ByteStorage(capacity: 64)
    @exclusivity(unchecked) private var dateSecond = -1
    private let serverLine: [UInt8]
    @exclusivity(unchecked) var acceptor: Acceptor?
    @exclusivity(unchecked) private(set) var draining = false
    @exclusivity(unchecked) private var drainTimer: MinervaLoopTimer?
    /// Rejected requests (4xx answers, timeouts) logged per second at most; the rest are counted.
    @exclusivity(unchecked) var rejectionLog = RateLimitedLog(window: 1, linesPerWindow: 20)

    /// The socket options of this server's connections.
    var socketOptions: MinervaTCPConnectionOptions {
        var options = MinervaTCPConnectionOptions()
        options.highWaterMark = configuration.highWaterMark
        options.lowWaterMark = configuration.lowWaterMark
        options.writeTimeout = configuration.writeTimeout
        return options
    }

    init(
        configuration: MinervaHTTPServerConfiguration, router: MinervaHTTPRouter, logger: Logger,
        server: MinervaHTTPServer?, listening: ListeningSocket?
    ) {
        self.server = server
        loop = MinervaEventLoop(readBufferSize: configuration.readBufferSize)
        self.configuration = configuration
        self.router = router
        self.logger = logger
        headerTimeouts = DeadlineList(loop: loop, duration: configuration.headerTimeout)
        bodyTimeouts = DeadlineList(loop: loop, duration: configuration.bodyTimeout)
        idleTimeouts = DeadlineList(loop: loop, duration: configuration.idleTimeout)
        serverLine = configuration.serverName.map { Array("Server: \($0)\r\n".utf8) } ?? []
        connections.reserveCapacity(1024)
        if let listening {
            acceptor = Acceptor(
                socket: listening, loop: loop, logger: logger, name: "HTTP",
                maxConnections: configuration.maxConnectionsPerLoop, options: socketOptions
            ) { [unowned self] socket in self.adopt(socket) }
            if configuration.shedAtConnectionLimit {
                acceptor?.shed = { [unowned self] in self.shedOne() }
            }
        }
    }

    /// At the connection limit with a client waiting: closes the connection that can best be spared, in O(1) from
    /// the heads of the deadline lists: the longest-idle keep-alive connection, else the connection that has spent
    /// the longest (at least `shedSlowRequestsAfter` seconds) on an unfinished request head or body.
    /// - Returns: whether a connection was closed.
    func shedOne() -> Bool {
        if let node = idleTimeouts.head, let connection = node.target as? HTTPConnection {
            connection.shed()
            return true
        }
        var oldest: DeadlineNode?
        var startedAt = Double.infinity
        if let node = headerTimeouts.head, node.deadline - headerTimeouts.duration < startedAt {
            oldest = node
            startedAt = node.deadline - headerTimeouts.duration
        }
        if let node = bodyTimeouts.head, node.deadline - bodyTimeouts.duration < startedAt {
            oldest = node
            startedAt = node.deadline - bodyTimeouts.duration
        }
        guard let oldest, loop.now - startedAt >= configuration.shedSlowRequestsAfter,
            let connection = oldest.target as? HTTPConnection
        else { return false }
        connection.shed()
        return true
    }

    @exclusivity(unchecked) private var tearingDown = false

    deinit {
        tearingDown = true
        for c in connections { c.close() }
        acceptor = nil
        drainTimer?.cancel()
    }

    func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM] {
            loop.onSignal(sig) { [unowned self] in
                self.logger.info("signal received, shutting down")
                self.server?.shutdown()
            }
        }
    }

    /// Appends `HTTP/1.1 <status> <reason>` and the `Date` (and `Server`) lines.
    @inline(__always) func appendStatusLineAndDate(_ status: Int, to out: ByteStorage) {
        out.append("HTTP/1.1 ")
        out.appendDecimal(status)
        out.append(byte: 32)
        out.append(reasonPhrase(status))
        out.append("\r\n")
        out.append(dateLine().bytes)
    }

    /// The `Date` header line (and `Server`, if configured), reformatted at most once per second.
    func dateLine() -> ByteStorage {
        let second = Int(loop.now)
        if second != dateSecond {
            dateSecond = second
            date.count = 0
            date.append("Date: ")
            date.reserve(40)
            let n = cshims_format_http_date(Double(second), date.base.assumingMemoryBound(to: CChar.self) + 6, 40)
            date.count += n
            date.append("\r\n")
            date.append(serverLine)
        }
        return date
    }

    /// A request decoder at a message boundary (paused: a request of the connection is being answered), from the
    /// spares if there is one.
    func takeDecoder(paused: Bool) -> HTTPRequestDecoder {
        if let decoder = spareDecoders.popLast() {
            decoder.reuse(paused: paused)
            return decoder
        }
        let decoder = HTTPRequestDecoder(
            limits: HTTPDecoderLimits(
                maxHeaderBytes: configuration.maxHeaderBytes, maxHeaderCount: configuration.maxHeaderCount,
                maxURLBytes: configuration.maxURLBytes, maxBodyBytes: configuration.maxBodyBytes),
            pool: decoderBuffers)
        if paused { decoder.reuse(paused: true) }
        return decoder
    }

    /// Takes back a decoder that holds nothing of its connection (``HTTPRequestDecoder/isAtRest``).
    func recycle(_ decoder: HTTPRequestDecoder) {
        guard spareDecoders.count < HTTPLoopContext.spareDecoderLimit else { return }
        spareDecoders.append(decoder)
    }

    /// Makes `socket` an HTTP connection of this loop.
    @discardableResult
    package func adopt(_ socket: MinervaTCPConnection) -> HTTPConnection? {
        if draining {
            socket.closeNow()
            return nil
        }
        let connection = HTTPConnection(socket: socket, context: self)
        connection.index = connections.count
        connections.append(connection)
        server?.connectionOpened()
        return connection
    }

    func connectionClosed(_ connection: HTTPConnection) {
        let i = connection.index
        let last = connections.count - 1
        if i <= last && connections[i] === connection {
            if i != last {
                connections[i] = connections[last]
                connections[i].index = i
            }
            connections.removeLast()
        }
        loop.releaseLater(connection)
        if tearingDown { return }
        server?.connectionClosed()
        if draining && connections.isEmpty { finish() }
    }

    /// Starts a graceful shutdown of this loop.
    package func beginDrain(grace: Double) {
        if draining { return }
        draining = true
        acceptor = nil
        loop.removeSignalHandlers()
        for hook in loop.willDrain { hook() }
        for c in connections.reversed() { c.drain() }
        if connections.isEmpty {
            finish()
            return
        }
        drainTimer = loop.schedule(after: grace) { [unowned self] in
            for c in self.connections.reversed() { c.close() }
            self.finish()
        }
    }

    private func finish() {
        drainTimer?.cancel()
        drainTimer = nil
        loop.stop()
    }
}

/// An HTTP/1.1 server: one or more event-loop threads, each with its own listener and connections.
///
/// Thread-safe: start, shut down and wait from any thread. Configure the router before `start`. It is also a
/// swift-service-lifecycle `Service`: its async ``run()`` starts the server and returns once it stopped, and a
/// graceful shutdown of the service group (or cancellation) shuts it down gracefully.
public final class MinervaHTTPServer: @unchecked Sendable {
    // @unchecked: `state` is behind a Mutex; the contexts in it are only used on their loops (through
    // `MinervaLoopBound`) once the loop threads run.
    /// The settings the server was created with.
    public let configuration: MinervaHTTPServerConfiguration
    /// The router every request goes through.
    public let router: MinervaHTTPRouter
    let logger: Logger

    private struct State {
        var started = false
        var loops: [MinervaEventLoop] = []
        var group: MinervaLoopGroup?
        var contexts: [MinervaLoopBound<HTTPLoopContext>] = []
        var threads: [PosixThread] = []
        var runningLoops = 0
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        var boundAddress: MinervaSocketAddress?
    }

    private let state = Mutex(State())
    /// Connections open across all loops (an atomic: loops never wait on each other for it).
    private let openConnections = Atomic<Int>(0)

    /// Creates a server; nothing is bound until `start`.
    /// - Parameters:
    ///   - configuration: address, threads, limits and timeouts.
    ///   - router: where requests go.
    ///   - logger: for startup, errors and shutdown.
    public init(
        configuration: MinervaHTTPServerConfiguration = MinervaHTTPServerConfiguration(), router: MinervaHTTPRouter,
        logger: Logger = Logger(label: "minerva.http")
    ) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
    }

    deinit {
        if state.withLock({ !$0.threads.isEmpty }) {
            shutdown(gracePeriod: 0)
            waitUntilStopped()
        }
    }

    /// The server's event loops (one per thread), available after `start`.
    public var eventLoops: [MinervaEventLoop] { state.withLock { $0.loops } }

    /// The address and port the server listens on (after `start`; with several loops, every loop listens there).
    public var boundAddress: MinervaSocketAddress? { state.withLock { $0.boundAddress } }

    /// The port the server listens on (after `start`; 0 before).
    public var localPort: Int { boundAddress?.port ?? 0 }

    /// The host the server listens on, as text (after `start`; "" before). See ``boundAddress`` for the port too.
    public var localAddress: String { boundAddress?.host ?? "" }

    /// Binds, listens and starts the loop threads; returns at once.
    /// - Throws: `MinervaHTTPServerError` with code `.bindFailed` or `.invalidState`.
    public func start() throws {
        let first = state.withLock { state in
            defer { state.started = true }
            return !state.started
        }
        guard first else { throw MinervaHTTPServerError(code: .invalidState, message: "server already started") }
        let threadCount = max(1, configuration.threads)
        let reusePort = configuration.reusePort || threadCount > 1
        var port = configuration.port
        var sockets: [ListeningSocket] = []
        for _ in 0..<threadCount {
            do {
                let socket = try ListeningSocket.bind(
                    host: configuration.host, port: port, backlog: configuration.backlog, reusePort: reusePort)
                sockets.append(socket)
                port = socket.address.port
            } catch let error as MinervaIOError {
                for socket in sockets { socket.close() }
                throw MinervaHTTPServerError(code: .bindFailed, message: error.message)
            }
        }
        let contexts = sockets.map {
            HTTPLoopContext(configuration: configuration, router: router, logger: logger, server: self, listening: $0)
        }
        if configuration.handleSignals { contexts[0].installSignalHandlers() }
        let loops = contexts.map(\.loop)
        // Before the threads run: every loop can name every other (the Minerva endpoint finds a stream's owner).
        let group = MinervaLoopGroup(loops)
        let bound = contexts.map { MinervaLoopBound(handingOver: $0, to: $0.loop) }
        state.withLock { state in
            state.loops = loops
            state.group = group
            state.contexts = bound
            state.boundAddress = sockets[0].address
            state.runningLoops = loops.count
        }
        // The contexts are handed over: from here on each is touched only by its loop's thread.
        let threads = loops.map { loop in
            PosixThread { [self] in
                loop.run()
                loopStopped()
            }
        }
        state.withLock { $0.threads = threads }
    }

    private func loopStopped() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.runningLoops -= 1
            guard state.runningLoops == 0 else { return [] }
            defer { state.stopWaiters = [] }
            return state.stopWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Starts a graceful shutdown: stop accepting, close idle connections, let in-flight responses finish for up
    /// to `gracePeriod` seconds (default: the configuration's), then close the rest. Thread-safe; returns at once.
    public func shutdown(gracePeriod: Double? = nil) {
        let grace = gracePeriod ?? configuration.shutdownGracePeriod
        for context in state.withLock({ $0.contexts }) {
            context.execute { $0.beginDrain(grace: grace) }
        }
    }

    /// Blocks until every loop thread has stopped (after `shutdown`).
    public func waitUntilStopped() {
        let toJoin = state.withLock { state -> [PosixThread] in
            defer { state.threads = [] }
            return state.threads
        }
        for t in toJoin { t.join() }
    }

    /// `start`, then `waitUntilStopped` (blocks the calling thread).
    public func run() throws {
        try start()
        waitUntilStopped()
    }

    /// Connections currently open across all loops. Thread-safe.
    public var connectionCount: Int { openConnections.load(ordering: .relaxed) }

    func connectionOpened() { openConnections.add(1, ordering: .relaxed) }
    func connectionClosed() { openConnections.subtract(1, ordering: .relaxed) }

    /// Waits (without blocking a thread) until every loop has stopped.
    private func stopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.runningLoops == 0 { return true }
                state.stopWaiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

extension MinervaHTTPServer: Service {
    /// Runs the server as a swift-service-lifecycle service: starts it, and returns once every loop stopped. A
    /// graceful shutdown of the service group, or cancelling the task, starts ``shutdown(gracePeriod:)``.
    /// - Throws: `MinervaHTTPServerError` if the server cannot start.
    public func run() async throws {
        try start()
        await withTaskCancellationOrGracefulShutdownHandler {
            await stopped()
        } onCancelOrGracefulShutdown: {
            self.shutdown()
        }
        waitUntilStopped()  // the threads have finished: this only joins them
    }
}
