// The one socket machinery: `MinervaTCPConnection` reads into the loop's shared buffer, writes with writev (water
// marks, a write watcher only while output is pending, a write-stall timeout) and closes. HTTP, Minerva's socket
// mode and the Swift client are handlers on it that hold protocol state only. `Acceptor` is the one accept loop
// (accept until EAGAIN, back off when out of descriptors, pause at a connection limit).
//
// Stored properties of the loop-confined classes of MinervaIO and MinervaHTTP are `@exclusivity(unchecked)`: they are
// only touched on their loop, never while another access to the same property is in progress, and the runtime's
// dynamic exclusivity checks were ~20% of the instructions of a request (callgrind).
internal import CShims
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Receives a TCP connection's events, on its loop's thread.
public protocol MinervaTCPConnectionHandler: AnyObject {
    /// Bytes arrived. - Warning: `bytes` points into the loop's shared read buffer and is valid only during the call.
    func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer)
    /// The peer closed its side (or the read failed). The default closes at once, dropping queued output.
    /// `connection.peerHalfClosed` tells a clean end of the peer's data (a FIN: the peer may still read) from a
    /// reset or read error. Reading is paused after this call if the connection is still open.
    func connectionPeerClosed(_ connection: MinervaTCPConnection)
    /// The connection is closed (by the peer, an error, the write-stall timeout, `close`, `closeNow` or `abort`).
    /// Called once; the handler is released right after.
    func connectionDidClose(_ connection: MinervaTCPConnection)
    /// Buffered output fell to the low-water mark after `isWritable` had turned false.
    func connectionBecameWritable(_ connection: MinervaTCPConnection)
    /// The kernel stopped taking output (`blocked`) or took all of it again.
    func connection(_ connection: MinervaTCPConnection, writeBlocked blocked: Bool)
}

extension MinervaTCPConnectionHandler {
    /// Closes at once.
    public func connectionPeerClosed(_ connection: MinervaTCPConnection) { connection.closeNow() }
    /// Does nothing.
    public func connectionBecameWritable(_ connection: MinervaTCPConnection) {}
    /// Does nothing.
    public func connection(_ connection: MinervaTCPConnection, writeBlocked blocked: Bool) {}
}

/// Buffering and timeout settings of TCP connections.
public struct MinervaTCPConnectionOptions: Sendable {
    /// Buffered output at or above which `isWritable` turns false.
    public var highWaterMark = 256 * 1024
    /// Buffered output at or below which a paused producer hears `connectionBecameWritable`.
    public var lowWaterMark = 64 * 1024
    /// Seconds without write progress while output is blocked before the connection is closed.
    public var writeTimeout = 30.0

    /// The defaults.
    public init() {}
}

/// Why a connection closed (readable in `connectionDidClose`).
package enum TCPCloseReason: Sendable {
    /// Still open.
    case open
    /// The peer closed or reset the connection, or a read or write failed.
    case peer
    /// Output made no progress for `writeTimeout` seconds.
    case writeTimeout
    /// This side closed it (`close`, `closeNow`, `abort`).
    case local
}

/// A TCP connection confined to one event loop. It stays alive while open, even if nobody keeps it.
public final class MinervaTCPConnection: EndOfTurnTask, DeadlineTarget {
    // Stored properties: words first, then the 4-byte and 1-byte fields together (every connection keeps one of
    // these: no padding between fields).

    /// The loop this connection lives on.
    public let eventLoop: MinervaEventLoop
    /// Receives the connection's events; released when the connection closes.
    @exclusivity(unchecked) public var handler: (any MinervaTCPConnectionHandler)?
    /// `MinervaTCPConnectionOptions.highWaterMark` and `lowWaterMark` (the write timeout is `writeTimeouts`').
    private let highWaterMark: Int
    private let lowWaterMark: Int
    /// The queued output: borrowed from the loop's pool while there is some, returned once it is written (an idle
    /// connection owns no output buffer; the pool makes a keep-alive request cost no allocation for it).
    @exclusivity(unchecked) private var output: OutputQueue?
    private let writeTimeouts: DeadlineList
    /// The connection's place in the write-stall list: made the first time a write blocks (most never do).
    @exclusivity(unchecked) private var timeoutNode: DeadlineNode?
    /// The acceptor that counts this connection against its limit, if any.
    package weak var acceptor: Acceptor?
    /// Position in the loop's list of open connections.
    @exclusivity(unchecked) var index = 0
    @exclusivity(unchecked) private var watcher = ConnectionIOWatcher()
    /// The socket descriptor (-1 once closed).
    @exclusivity(unchecked) package private(set) var fd: Int32
    @exclusivity(unchecked) private var writeBlocked = false
    @exclusivity(unchecked) private var flushScheduled = false
    @exclusivity(unchecked) private var closeAfterFlush = false
    @exclusivity(unchecked) private var readPaused = false
    @exclusivity(unchecked) private var producerPaused = false
    /// Why the connection closed (`.open` while it is open).
    @exclusivity(unchecked) package private(set) var closeReason = TCPCloseReason.open
    /// Whether the connection is still open.
    public var isOpen: Bool { closeReason == .open }
    /// Whether the peer ended its data cleanly (a read returned 0: it sent a FIN and may still be reading), as
    /// opposed to a reset or a read error. Set before `connectionPeerClosed`.
    @exclusivity(unchecked) public private(set) var peerHalfClosed = false

    deinit { watcher.free(loop: eventLoop.raw) }

    /// Adopts a connected, non-blocking socket. Loop thread only.
    package init(fd: Int32, loop: MinervaEventLoop, options: MinervaTCPConnectionOptions) {
        self.fd = fd
        self.eventLoop = loop
        highWaterMark = options.highWaterMark
        lowWaterMark = options.lowWaterMark
        writeTimeouts = loop.deadlineList(duration: options.writeTimeout)
        watcher.attach(fd: fd, to: self)
        watcher.watch(cshims_EV_READ(), loop: loop.raw)
        index = loop.openConnections.count
        loop.openConnections.append(self)
    }

    /// The peer's address.
    public var remoteAddress: MinervaSocketAddress? { isOpen ? MinervaSocketAddress.of(fd: fd, peer: true) : nil }

    /// The local address.
    public var localAddress: MinervaSocketAddress? { isOpen ? MinervaSocketAddress.of(fd: fd, peer: false) : nil }

    /// Bytes queued and not yet accepted by the kernel.
    public var bufferedBytes: Int { output?.count ?? 0 }

    /// False while buffered output is above the high-water mark (or the connection is closed).
    public var isWritable: Bool { isOpen && !producerPaused }

    /// Whether the kernel is not taking output right now.
    package var isWriteBlocked: Bool { writeBlocked }

    /// Queues bytes; they are written at the end of the loop turn.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        withOutput { $0.append(base, count: bytes.count) }
    }

    /// Queues bytes.
    public func write(_ bytes: [UInt8]) { bytes.withUnsafeBytes { write($0) } }

    /// Appends to the output by letting `body` write into the scratch buffer, then schedules a flush.
    @inline(__always) package func withOutput(_ body: (ByteStorage) -> Void) {
        guard isOpen, !closeAfterFlush else { return }
        let queue = takeOutput()
        if queue.append(body) > 0 {
            enqueued(queue)
        } else if queue.count == 0 {
            returnOutput()
        }
    }

    /// Queues a range of an immutable shared buffer without copying it.
    package func writeShared(_ storage: ByteStorage, start: Int, end: Int) {
        guard isOpen, !closeAfterFlush, end > start else { return }
        let queue = takeOutput()
        queue.appendShared(storage, start: start, end: end)
        enqueued(queue)
    }

    @inline(__always) private func takeOutput() -> OutputQueue {
        if let output { return output }
        let queue = eventLoop.takeOutputQueue()
        output = queue
        return queue
    }

    /// Gives the (drained) output queue back to the loop's pool.
    private func returnOutput() {
        guard let queue = output else { return }
        output = nil
        eventLoop.recycle(queue)
    }

    private func enqueued(_ output: OutputQueue) {
        if output.count >= highWaterMark { producerPaused = true }
        if flushScheduled || writeBlocked { return }
        flushScheduled = true
        eventLoop.scheduleAtEndOfTurn(self)
    }

    /// Stops delivering received bytes until `resumeReading` (the kernel buffers, then the peer slows down).
    public func pauseReading() {
        if readPaused { return }
        readPaused = true
        updateWatcher()
    }

    /// Delivers received bytes again (not after `close`).
    public func resumeReading() {
        if !readPaused || closeAfterFlush { return }
        readPaused = false
        updateWatcher()
    }

    /// Closes once the queued output is written (reading stops at once).
    public func close() {
        guard isOpen else { return }
        closeAfterFlush = true
        pauseReading()
        if bufferedBytes == 0 { finish(.local, abort: false) }
    }

    /// Closes now, dropping queued output.
    public func closeNow() { finish(.local, abort: false) }

    /// Closes now, dropping queued output, with a TCP RST.
    public func abort() { finish(.local, abort: true) }

    private func handleEvents(_ revents: Int32) {
        if revents & cshims_EV_WRITE() != 0 { flush() }
        if revents & cshims_EV_READ() != 0 && isOpen && !readPaused { readable() }
    }

    private func readable() {
        let buffer = eventLoop.readBuffer
        let n = cshims_read(fd, buffer.base, buffer.capacity)
        if n > 0 {
            handler?.connection(self, didReceive: UnsafeRawBufferPointer(start: buffer.base, count: n))
        } else if n == 0 || (n != -Int(EAGAIN) && n != -Int(EWOULDBLOCK)) {
            peerHalfClosed = n == 0
            if let handler { handler.connectionPeerClosed(self) } else { finish(.peer, abort: false) }
            if isOpen && !readPaused { pauseReading() }  // never spin on a readable EOF
        }
    }

    private func updateWatcher() {
        guard isOpen else { return }
        var events: Int32 = 0
        if !readPaused { events |= cshims_EV_READ() }
        if writeBlocked { events |= cshims_EV_WRITE() }
        watcher.watch(events, loop: eventLoop.raw)
    }

    package func runAtEndOfTurn() { flush() }

    package func deadlineExpired(_ list: DeadlineList) { finish(.writeTimeout, abort: true) }

    /// Writes as much queued output as the socket takes.
    private func flush() {
        flushScheduled = false
        guard isOpen, let output else { return }
        while output.count > 0 {
            let n = output.writeOnce(fd: fd, iovecs: eventLoop.iovecs, maxIovecs: MinervaEventLoop.maxIovecs)
            if n < 0 {
                if n == -Int(EAGAIN) || n == -Int(EWOULDBLOCK) {
                    if !writeBlocked {
                        writeBlocked = true
                        writeTimeouts.add(stallNode())
                        updateWatcher()
                        handler?.connection(self, writeBlocked: true)
                    }
                    return
                }
                finish(.peer, abort: false)
                return
            }
            if writeBlocked, let timeoutNode { writeTimeouts.touch(timeoutNode) }
            if producerPaused && output.count <= lowWaterMark {
                producerPaused = false
                handler?.connectionBecameWritable(self)
                if !isOpen { return }
            }
        }
        if writeBlocked {
            writeBlocked = false
            if let timeoutNode { writeTimeouts.remove(timeoutNode) }
            updateWatcher()
            handler?.connection(self, writeBlocked: false)
            if !isOpen { return }
        }
        if output.count == 0 {
            returnOutput()
            if closeAfterFlush { finish(.local, abort: false) }
        }
    }

    private func stallNode() -> DeadlineNode {
        if let timeoutNode { return timeoutNode }
        let node = DeadlineNode()
        node.target = self
        timeoutNode = node
        return node
    }

    private func finish(_ reason: TCPCloseReason, abort: Bool) {
        guard isOpen else { return }
        closeReason = reason
        if let timeoutNode { writeTimeouts.remove(timeoutNode) }
        watcher.watch(0, loop: eventLoop.raw)
        _ = abort ? cshims_abort_close(fd) : cshims_close(fd)
        fd = -1
        output?.removeAll()
        returnOutput()
        eventLoop.connectionFinished(self)
        acceptor?.connectionClosed()
        let handler = self.handler
        self.handler = nil
        handler?.connectionDidClose(self)
    }
}

/// A bound, listening socket (not yet watched by any loop).
package struct ListeningSocket: Sendable {
    /// The descriptor.
    package let fd: Int32
    /// The bound address (the kernel's port when 0 was asked for).
    package let address: MinervaSocketAddress

    /// Binds and listens (SIGPIPE is ignored process-wide from here on).
    /// - Throws: `MinervaIOError` with code `.bindFailed`.
    package static func bind(host: String, port: Int, backlog: Int, reusePort: Bool) throws -> ListeningSocket {
        cshims_ignore_sigpipe()
        let fd = cshims_listen_tcp(host, Int32(port), Int32(backlog), reusePort ? 1 : 0)
        guard fd >= 0 else {
            throw MinervaIOError(
                code: .bindFailed, message: "cannot listen on \(host):\(port): \(String(cString: strerror(-fd)))")
        }
        let address =
            MinervaSocketAddress.of(fd: fd, peer: false)
            ?? MinervaSocketAddress(host: host, port: Int(cshims_local_port(fd)))
        return ListeningSocket(fd: fd, address: address)
    }

    /// Closes a socket that no acceptor took over.
    package func close() { _ = cshims_close(fd) }
}

/// The one accept loop: accepts until EAGAIN on each wake-up, backs off for 100 ms when out of descriptors, and
/// keeps at most `maxConnections` of its connections open (at the limit it stops accepting; the kernel queues new
/// clients up to the backlog) with a rate-limited warning. Closes the listening socket when released. Loop thread.
package final class Acceptor: IOWatcherTarget {
    /// How long the acceptor waits before asking the shed hook again when it found nothing to close at the limit.
    static let shedRetryDelay = 0.25
    private let fd: Int32
    @exclusivity(unchecked) private var watcher: IOWatcher!
    private unowned let loop: MinervaEventLoop
    private let logger: Logger?
    private let name: String
    private let address: MinervaSocketAddress
    private let options: MinervaTCPConnectionOptions
    private let onAccept: (MinervaTCPConnection) -> Void
    @exclusivity(unchecked) private var retryTimer: MinervaLoopTimer?
    @exclusivity(unchecked) private var exhaustionLog = RateLimitedLog(window: 10, linesPerWindow: 1)
    @exclusivity(unchecked) private var limitLog = RateLimitedLog(window: 10, linesPerWindow: 1)
    /// The most connections of this acceptor open at once.
    package let maxConnections: Int
    /// Connections accepted and not yet closed.
    @exclusivity(unchecked) package private(set) var openConnections = 0
    /// Whether accepting is paused (at the limit, or by `pause()`).
    @exclusivity(unchecked) package private(set) var isPaused = false
    @exclusivity(unchecked) private var pausedByUser = false
    /// Called when a client waits to be accepted while this acceptor is at its limit: closes one of the open
    /// connections that can best be spared (idle or slow) and returns true, or returns false if none can be. While
    /// it is set, the acceptor keeps watching the listening socket at the limit (each wake-up then means a client
    /// is waiting), and pauses only when the hook finds nothing to close. Must be cheap (O(1)).
    @exclusivity(unchecked) package var shed: (() -> Bool)?

    /// Takes over `socket` and accepts on `loop`.
    /// - Parameters:
    ///   - name: what the log lines call this listener ("HTTP", "socket").
    ///   - onAccept: called with each new connection (TCP_NODELAY set); set its `handler` there.
    package init(
        socket: ListeningSocket, loop: MinervaEventLoop, logger: Logger?, name: String, maxConnections: Int,
        options: MinervaTCPConnectionOptions, onAccept: @escaping (MinervaTCPConnection) -> Void
    ) {
        self.fd = socket.fd
        self.loop = loop
        self.logger = logger
        self.name = name
        self.address = socket.address
        self.maxConnections = max(1, maxConnections)
        self.options = options
        self.onAccept = onAccept
        watcher = IOWatcher(loop: loop.raw, fd: fd, target: self)
        watcher.watch(cshims_EV_READ())
    }

    deinit {
        retryTimer?.cancel()
        watcher = nil
        _ = cshims_close(fd)
    }

    /// Stops accepting until `resume()` (the current accept loop ends at once).
    package func pause() {
        pausedByUser = true
        stopWatching()
    }

    /// Accepts again after `pause()` (unless at the limit).
    package func resume() {
        pausedByUser = false
        if openConnections < maxConnections { startWatching() }
    }

    private func stopWatching() {
        isPaused = true
        retryTimer?.cancel()
        retryTimer = nil
        watcher.watch(0)
    }

    private func startWatching() {
        guard isPaused, !pausedByUser else { return }
        isPaused = false
        watcher.watch(cshims_EV_READ())
    }

    /// One of this acceptor's connections closed: accept again below the limit.
    func connectionClosed() {
        openConnections -= 1
        if isPaused && retryTimer == nil && openConnections < maxConnections { startWatching() }
    }

    private func acceptAll() {
        if openConnections >= maxConnections {
            // Woken at the limit, so a client is waiting: make room if an idle or slow connection can be spared.
            guard let shed else {
                limitReached(pause: true)
                return
            }
            guard shed(), openConnections < maxConnections else {
                // Nothing can be spared yet (the slow requests are younger than the shedding age): look again soon,
                // rather than when a connection closes, which a slow-request attack may put off for a whole timeout.
                limitReached(pause: true)
                if retryTimer == nil {
                    retryTimer = loop.schedule(after: Acceptor.shedRetryDelay) { [unowned self] in
                        self.retryTimer = nil
                        self.startWatching()
                    }
                }
                return
            }
        }
        while !isPaused {
            if openConnections >= maxConnections { return }  // shedding: the next wake-up says whether one waits
            let fd = cshims_accept(self.fd)
            if fd >= 0 {
                let connection = MinervaTCPConnection(fd: fd, loop: loop, options: options)
                connection.acceptor = self
                openConnections += 1
                if openConnections >= maxConnections { limitReached(pause: shed == nil) }
                onAccept(connection)
                continue
            }
            switch -fd {
            case EAGAIN, EWOULDBLOCK: return
            case ECONNABORTED, EINTR, EPROTO: continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                if let logger, let suppressed = exhaustionLog.admit(now: loop.now) {
                    logger.warning(
                        "accept failed: errno \(-fd); pausing accepts for 100 ms",
                        metadata: ["address": "\(address)", "earlierPausesNotLogged": "\(suppressed)"])
                }
                stopWatching()
                retryTimer = loop.schedule(after: 0.1) { [unowned self] in
                    self.retryTimer = nil
                    if self.openConnections < self.maxConnections { self.startWatching() }
                }
                return
            default:
                logger?.error("accept failed: errno \(-fd)", metadata: ["address": "\(address)"])
                return
            }
        }
    }

    /// At the limit: pauses accepting (without a `shed` hook, or when it found nothing to close) and warns.
    private func limitReached(pause: Bool) {
        if pause { stopWatching() }
        if let logger, let suppressed = limitLog.admit(now: loop.now) {
            let what = pause ? "accepting paused" : "idle and slow connections are shed for new clients"
            logger.warning(
                "\(name) connection limit reached: \(openConnections) open on this loop; \(what)",
                metadata: [
                    "address": "\(address)", "limit": "\(maxConnections)", "earlierHitsNotLogged": "\(suppressed)",
                ])
        }
    }
}

/// A listening TCP socket on one event loop that hands each accepted connection to a closure.
public final class MinervaTCPListener {
    @exclusivity(unchecked) private var acceptor: Acceptor?
    /// The bound address.
    public let localAddress: MinervaSocketAddress

    fileprivate init(acceptor: Acceptor, address: MinervaSocketAddress) {
        self.acceptor = acceptor
        self.localAddress = address
    }

    /// Stops accepting (open connections are not affected). Loop thread only.
    public func close() { acceptor = nil }
}

extension MinervaEventLoop {
    /// Listens for TCP connections on this loop. Call on the loop's thread (or before it runs).
    /// - Parameters:
    ///   - host: the address to bind (IPv4 or IPv6).
    ///   - port: the port, 0 for any free one (see `MinervaTCPListener.localAddress`).
    ///   - backlog: the listen backlog.
    ///   - reusePort: set SO_REUSEPORT.
    ///   - maxConnections: the most accepted connections open at once (accepting pauses at the limit).
    ///   - options: buffering and timeouts of accepted connections.
    ///   - onAccept: called on the loop with each new connection (TCP_NODELAY set); set its `handler` there.
    /// - Returns: the listener; keep it, it stops accepting when released.
    /// - Throws: `MinervaIOError` with code `.bindFailed`.
    public func listenTCP(
        host: String, port: Int, backlog: Int = 1024, reusePort: Bool = false, maxConnections: Int = 10_000,
        options: MinervaTCPConnectionOptions = MinervaTCPConnectionOptions(),
        onAccept: @escaping (MinervaTCPConnection) -> Void
    ) throws -> MinervaTCPListener {
        let socket = try ListeningSocket.bind(host: host, port: port, backlog: backlog, reusePort: reusePort)
        let acceptor = Acceptor(
            socket: socket, loop: self, logger: nil, name: "TCP", maxConnections: maxConnections,
            options: options, onAccept: onAccept)
        return MinervaTCPListener(acceptor: acceptor, address: socket.address)
    }
}

extension MinervaTCPConnection {
    func ioEvents(_ revents: Int32) { handleEvents(revents) }
}

extension Acceptor {
    package func ioEvents(_ revents: Int32) { acceptAll() }
}
