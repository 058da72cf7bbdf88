// The server: one HTTPLoopContext (loop, listener, connections, deadline lists) per thread.
internal import CShims
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Per-loop server state. Everything here is confined to `loop`'s thread.
final class HTTPLoopContext {
    let loop: EventLoop
    let configuration: HTTPServerConfiguration
    let router: HTTPRouter
    let logger: Logger
    /// Weak: the server may be going away while loops drain (its deinit shuts them down).
    weak var server: HTTPServer?
    let readBuffer: ByteStorage
    private(set) var connections: [HTTPConnection] = []
    var flushQueue: [HTTPConnection] = []
    private var flushing: [HTTPConnection] = []
    let headerTimeouts: DeadlineList
    let bodyTimeouts: DeadlineList
    let idleTimeouts: DeadlineList
    let writeTimeouts: DeadlineList
    private let date = ByteStorage(capacity: 64)
    private var dateSecond = -1
    private let serverLine: [UInt8]
    var listener: Listener?
    private var signals: [SignalWatcher] = []
    private(set) var draining = false
    private var drainTimer: LoopTimer?
    /// This loop's share of `maxConnections`; accepting pauses while `connections.count` is at it.
    let connectionLimit: Int
    private var limitLog = RateLimitedLog(window: 10, linesPerWindow: 1)
    /// Rejected requests (4xx answers, timeouts) logged per second at most; the rest are counted.
    var rejectionLog = RateLimitedLog(window: 1, linesPerWindow: 20)

    init(
        configuration: HTTPServerConfiguration, router: HTTPRouter, logger: Logger, server: HTTPServer?,
        listenFD: Int32?
    ) {
        self.server = server
        loop = EventLoop()
        self.configuration = configuration
        self.router = router
        self.logger = logger
        readBuffer = ByteStorage(capacity: configuration.readBufferSize)
        headerTimeouts = DeadlineList(loop: loop, duration: configuration.headerTimeout)
        bodyTimeouts = DeadlineList(loop: loop, duration: configuration.bodyTimeout)
        idleTimeouts = DeadlineList(loop: loop, duration: configuration.idleTimeout)
        writeTimeouts = DeadlineList(loop: loop, duration: configuration.writeTimeout)
        serverLine = configuration.serverName.map { Array("Server: \($0)\r\n".utf8) } ?? []
        connectionLimit = configuration.maxConnectionsPerLoop
        connections.reserveCapacity(1024)
        flushQueue.reserveCapacity(64)
        flushing.reserveCapacity(64)
        if let listenFD {
            listener = Listener(fd: listenFD, loop: loop, logger: logger) { [unowned self] fd in self.adopt(fd: fd) }
        }
        loop.beforeBlocking.append { [unowned self] in self.flushAll() }
    }

    private var tearingDown = false

    deinit {
        tearingDown = true
        for c in connections { c.close() }
        listener = nil
        signals.removeAll()
        drainTimer?.cancel()
    }

    func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM] {
            signals.append(
                SignalWatcher(loop: loop.raw, signal: sig) { [unowned self] in
                    self.logger.info("signal received, shutting down")
                    self.server?.shutdown()
                })
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

    @discardableResult
    func adopt(fd: Int32) -> HTTPConnection? {
        if draining {
            _ = cshims_close(fd)
            return nil
        }
        let connection = HTTPConnection(fd: fd, context: self)
        connection.index = connections.count
        connections.append(connection)
        server?.connectionOpened()
        if connections.count >= connectionLimit, let listener, !listener.isPaused {
            listener.pause()
            if let suppressed = limitLog.admit(now: loop.now) {
                logger.warning(
                    "connection limit reached: \(connections.count) open on this loop; accepting paused",
                    metadata: ["limit": "\(connectionLimit)", "earlierHitsNotLogged": "\(suppressed)"])
            }
        }
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
        if let listener, listener.isPaused, connections.count < connectionLimit { listener.resume() }
        server?.connectionClosed()
        if draining && connections.isEmpty { finish() }
    }

    private func flushAll() {
        while !flushQueue.isEmpty {
            swap(&flushQueue, &flushing)
            for c in flushing where c.flushScheduled { c.flush() }
            flushing.removeAll(keepingCapacity: true)
        }
    }

    /// Starts a graceful shutdown of this loop.
    func beginDrain(grace: Double) {
        if draining { return }
        draining = true
        listener = nil
        signals.removeAll()
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

/// Admits at most `linesPerWindow` log lines per `window` seconds and counts the ones it holds back, so hostile
/// input cannot flood the log. Loop thread only.
struct RateLimitedLog {
    /// Seconds per window.
    let window: Double
    /// Lines admitted per window.
    let linesPerWindow: Int
    private var windowStart = -Double.infinity
    private var admitted = 0
    private var suppressed = 0

    init(window: Double, linesPerWindow: Int) {
        self.window = window
        self.linesPerWindow = linesPerWindow
    }

    /// Whether a line may be written at `now`: nil if not (it is counted), else how many were held back since
    /// the last admitted line.
    mutating func admit(now: Double) -> Int? {
        if now - windowStart >= window {
            windowStart = now
            admitted = 0
        }
        guard admitted < linesPerWindow else {
            suppressed += 1
            return nil
        }
        admitted += 1
        defer { suppressed = 0 }
        return suppressed
    }
}

/// An HTTP/1.1 server: one or more event-loop threads, each with its own listener and connections.
public final class HTTPServer {
    /// The settings the server was created with.
    public let configuration: HTTPServerConfiguration
    /// The router every request goes through.
    public let router: HTTPRouter
    let logger: Logger
    private var contexts: [HTTPLoopContext] = []
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
        configuration: HTTPServerConfiguration = HTTPServerConfiguration(), router: HTTPRouter,
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
    public var eventLoops: [EventLoop] { contexts.map(\.loop) }

    /// Binds, listens and starts the loop threads; returns at once.
    /// - Throws: `HTTPServerError` with code `.bindFailed` or `.invalidState`.
    public func start() throws {
        guard !started else { throw HTTPServerError(code: .invalidState, message: "server already started") }
        started = true
        cshims_ignore_sigpipe()
        let threadCount = max(1, configuration.threads)
        let reusePort = configuration.reusePort || threadCount > 1
        var port = configuration.port
        var fds: [Int32] = []
        for _ in 0..<threadCount {
            let fd = cshims_listen_tcp(configuration.host, Int32(port), Int32(configuration.backlog), reusePort ? 1 : 0)
            if fd < 0 {
                for f in fds { _ = cshims_close(f) }
                throw HTTPServerError(
                    code: .bindFailed,
                    message: "cannot listen on \(configuration.host):\(port): \(String(cString: strerror(-fd)))")
            }
            fds.append(fd)
            if port == 0 { port = Int(cshims_local_port(fd)) }
        }
        localPort = port
        var text = [CChar](repeating: 0, count: 64)
        if cshims_local_address(fds[0], &text, 64) == 0 { localAddress = String(cString: text) }
        contexts = fds.map {
            HTTPLoopContext(configuration: configuration, router: router, logger: logger, server: self, listenFD: $0)
        }
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
        for context in contexts {
            context.loop.execute { [unowned context] in context.beginDrain(grace: grace) }
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
