internal import CShims
import Logging
// The server: one HTTPLoopContext (loop, listener, connections, deadline lists) per thread.
import MinervaIO

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
    private(set) var connections: [HTTPConnection] = []
    let headerTimeouts: DeadlineList
    let bodyTimeouts: DeadlineList
    let idleTimeouts: DeadlineList
    private let date = ByteStorage(capacity: 64)
    private var dateSecond = -1
    private let serverLine: [UInt8]
    var acceptor: Acceptor?
    private(set) var draining = false
    private var drainTimer: MinervaLoopTimer?
    /// Rejected requests (4xx answers, timeouts) logged per second at most; the rest are counted.
    var rejectionLog = RateLimitedLog(window: 1, linesPerWindow: 20)

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
        }
    }

    private var tearingDown = false

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
public final class MinervaHTTPServer {
    /// The settings the server was created with.
    public let configuration: MinervaHTTPServerConfiguration
    /// The router every request goes through.
    public let router: MinervaHTTPRouter
    let logger: Logger
    private var contexts: [HTTPLoopContext] = []
    /// The contexts, each reachable from other threads only through its loop.
    private var boundContexts: [MinervaLoopBound<HTTPLoopContext>] = []
    private var threads: [PosixThread] = []
    private let stateLock = Lock()
    private var openConnections = 0
    private var started = false
    private var stopped = false
    /// The port the server listens on (after `start`).
    public private(set) var localPort = 0
    /// The address the server listens on, as text (after `start`).
    public private(set) var localAddress = ""

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
        if !threads.isEmpty {
            shutdown(gracePeriod: 0)
            waitUntilStopped()
        }
    }

    /// The server's event loops (one per thread), available after `start`.
    public var eventLoops: [MinervaEventLoop] { contexts.map(\.loop) }

    /// Binds, listens and starts the loop threads; returns at once.
    /// - Throws: `MinervaHTTPServerError` with code `.bindFailed` or `.invalidState`.
    public func start() throws {
        guard !started else { throw MinervaHTTPServerError(code: .invalidState, message: "server already started") }
        started = true
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
        localPort = port
        localAddress = sockets[0].address.host
        contexts = sockets.map {
            HTTPLoopContext(configuration: configuration, router: router, logger: logger, server: self, listening: $0)
        }
        boundContexts = contexts.map { MinervaLoopBound(handingOver: $0, to: $0.loop) }
        if configuration.handleSignals { contexts[0].installSignalHandlers() }
        for context in contexts {
            let loop = context.loop
            threads.append(PosixThread { loop.run() })
        }
    }

    /// Starts a graceful shutdown: stop accepting, close idle connections, let in-flight responses finish for up
    /// to `gracePeriod` seconds (default: the configuration's), then close the rest. Thread-safe; returns at once.
    public func shutdown(gracePeriod: Double? = nil) {
        let grace = gracePeriod ?? configuration.shutdownGracePeriod
        for context in boundContexts {
            context.execute { $0.beginDrain(grace: grace) }
        }
    }

    /// Blocks until every loop thread has stopped (after `shutdown`).
    public func waitUntilStopped() {
        let toJoin = stateLock.withLock { () -> [PosixThread] in
            let t = threads
            threads = []
            return t
        }
        for t in toJoin { t.join() }
    }

    /// `start`, then `waitUntilStopped`.
    public func run() throws {
        try start()
        waitUntilStopped()
    }

    /// Connections currently open across all loops. Thread-safe.
    public var connectionCount: Int { stateLock.withLock { openConnections } }

    func connectionOpened() { stateLock.withLock { openConnections += 1 } }
    func connectionClosed() { stateLock.withLock { openConnections -= 1 } }
}
