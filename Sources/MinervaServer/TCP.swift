// Raw TCP on an event loop: a listener and byte-stream connections with the same output machinery as HTTP
// (writev, write watcher only while output is pending, water marks, write-stall timeout). For protocols that
// are not HTTP (Minerva's socket mode) and for tests.
internal import CShims
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A listening socket on one loop: accepts until EAGAIN on each wake-up; pauses briefly when out of descriptors.
final class Listener {
    let fd: Int32
    private var watcher: IOWatcher!
    private unowned let loop: EventLoop
    private let logger: Logger?
    private let onAccept: (Int32) -> Void
    private var retryTimer: LoopTimer?
    /// Out-of-descriptor pauses logged once per 10 s at most; the rest are counted.
    private var exhaustionLog = RateLimitedLog(window: 10, linesPerWindow: 1)
    /// Whether accepting is paused (`pause()`); the socket stays open and the kernel queues up to the backlog.
    private(set) var isPaused = false

    init(fd: Int32, loop: EventLoop, logger: Logger?, onAccept: @escaping (Int32) -> Void) {
        self.fd = fd
        self.loop = loop
        self.logger = logger
        self.onAccept = onAccept
        watcher = IOWatcher(loop: loop.raw, fd: fd) { [unowned self] _ in self.acceptAll() }
        watcher.watch(cshims_EV_READ())
    }

    deinit {
        retryTimer?.cancel()
        watcher = nil
        _ = cshims_close(fd)
    }

    /// Stops accepting until `resume()` (also from inside `onAccept`: the current accept loop ends at once).
    func pause() {
        isPaused = true
        retryTimer?.cancel()
        retryTimer = nil
        watcher.watch(0)
    }

    /// Accepts again after `pause()`.
    func resume() {
        guard isPaused else { return }
        isPaused = false
        watcher.watch(cshims_EV_READ())
    }

    private func acceptAll() {
        while !isPaused {
            let fd = cshims_accept(self.fd)
            if fd >= 0 {
                onAccept(fd)
                continue
            }
            switch -fd {
            case EAGAIN, EWOULDBLOCK: return
            case ECONNABORTED, EINTR, EPROTO: continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                if let logger, let suppressed = exhaustionLog.admit(now: loop.now) {
                    logger.warning(
                        "accept failed: errno \(-fd); pausing accepts for 100 ms",
                        metadata: ["earlierPausesNotLogged": "\(suppressed)"])
                }
                watcher.watch(0)
                retryTimer = loop.schedule(after: 0.1) { [unowned self] in
                    self.retryTimer = nil
                    self.watcher.watch(cshims_EV_READ())
                }
                return
            default:
                logger?.error("accept failed: errno \(-fd)")
                return
            }
        }
    }
}

/// Receives a raw TCP connection's events, on its loop's thread.
public protocol TCPConnectionHandler: AnyObject {
    /// Bytes arrived. - Warning: `bytes` is valid only during the call.
    func connection(_ connection: TCPConnection, didReceive bytes: UnsafeRawBufferPointer)
    /// The connection is closed (by the peer, an error, the write-stall timeout, `close` or `abort`). Called once.
    func connectionDidClose(_ connection: TCPConnection)
    /// Buffered output fell to the low-water mark after `isWritable` had turned false.
    func connectionBecameWritable(_ connection: TCPConnection)
}

extension TCPConnectionHandler {
    /// Does nothing.
    public func connectionBecameWritable(_ connection: TCPConnection) {}
}

/// Buffering and timeout settings of raw TCP connections.
public struct TCPConnectionOptions: Sendable {
    /// Buffered output at or above which `isWritable` turns false.
    public var highWaterMark = 256 * 1024
    /// Buffered output at or below which a paused producer hears `connectionBecameWritable`.
    public var lowWaterMark = 64 * 1024
    /// Seconds without write progress while output is blocked before the connection is closed.
    public var writeTimeout = 30.0

    /// The defaults.
    public init() {}
}

/// A raw TCP connection confined to one event loop. It stays alive while open, even if nobody keeps it.
public final class TCPConnection: EndOfTurnTask {
    /// The connection's place in its loop's write-stall deadline list.
    private final class WriteTimeoutNode: DeadlineNode {
        unowned(unsafe) var owner: TCPConnection?
        override func deadlineExpired(_ list: DeadlineList) { owner?.abort() }
    }

    /// The loop this connection lives on.
    public let eventLoop: EventLoop
    /// Receives the connection's events; released when the connection closes.
    public var handler: TCPConnectionHandler?
    private let fd: Int32
    private let options: TCPConnectionOptions
    private var watcher: IOWatcher!
    private let output = OutputQueue(capacity: 1024)
    private var writeBlocked = false
    private var flushScheduled = false
    private var closeAfterFlush = false
    private var readPaused = false
    private var producerPaused = false
    private let writeTimeouts: DeadlineList
    private let timeoutNode = WriteTimeoutNode()
    var index = 0
    /// Whether the connection is still open.
    public private(set) var isOpen = true

    init(fd: Int32, loop: EventLoop, options: TCPConnectionOptions) {
        self.fd = fd
        self.eventLoop = loop
        self.options = options
        writeTimeouts = loop.deadlineList(duration: options.writeTimeout)
        timeoutNode.owner = self
        watcher = IOWatcher(loop: loop.raw, fd: fd) { [unowned self] revents in self.handleEvents(revents) }
        watcher.watch(cshims_EV_READ())
        index = loop.openConnections.count
        loop.openConnections.append(self)
    }

    /// The peer's address.
    public var remoteAddress: SocketAddress? { isOpen ? SocketAddress.of(fd: fd, peer: true) : nil }

    /// The local address.
    public var localAddress: SocketAddress? { isOpen ? SocketAddress.of(fd: fd, peer: false) : nil }

    /// Bytes queued and not yet accepted by the kernel.
    public var bufferedBytes: Int { output.count }

    /// False while buffered output is above the high-water mark.
    public var isWritable: Bool { isOpen && !producerPaused }

    /// Queues bytes; they are written at the end of the loop turn.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard isOpen, !closeAfterFlush, let base = bytes.baseAddress, !bytes.isEmpty else { return }
        _ = output.append { $0.append(base, count: bytes.count) }
        if output.count >= options.highWaterMark { producerPaused = true }
        scheduleFlush()
    }

    /// Queues bytes.
    public func write(_ bytes: [UInt8]) { bytes.withUnsafeBytes { write($0) } }

    /// Stops delivering received bytes until `resumeReading` (the kernel buffers, then the peer slows down).
    public func pauseReading() {
        readPaused = true
        updateWatcher()
    }

    /// Delivers received bytes again.
    public func resumeReading() {
        readPaused = false
        updateWatcher()
    }

    /// Closes after the queued output is written (reading stops at once).
    public func close() {
        guard isOpen else { return }
        closeAfterFlush = true
        readPaused = true
        updateWatcher()
        if output.count == 0 { finish(abort: false) } else { scheduleFlush() }
    }

    /// Closes at once, dropping queued output, with a TCP RST.
    public func abort() { finish(abort: true) }

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
            finish(abort: false)
        }
    }

    private func updateWatcher() {
        guard isOpen else { return }
        var events: Int32 = 0
        if !readPaused { events |= cshims_EV_READ() }
        if writeBlocked { events |= cshims_EV_WRITE() }
        watcher.watch(events)
    }

    private func scheduleFlush() {
        if flushScheduled || writeBlocked { return }
        flushScheduled = true
        eventLoop.scheduleAtEndOfTurn(self)
    }

    func runAtEndOfTurn() { flush() }

    private func flush() {
        flushScheduled = false
        guard isOpen else { return }
        while output.count > 0 {
            let n = output.writeOnce(fd: fd, iovecs: eventLoop.iovecs, maxIovecs: EventLoop.maxIovecs)
            if n < 0 {
                if n == -Int(EAGAIN) || n == -Int(EWOULDBLOCK) {
                    if !writeBlocked {
                        writeBlocked = true
                        writeTimeouts.add(timeoutNode)
                        updateWatcher()
                    }
                    return
                }
                finish(abort: false)
                return
            }
            if writeBlocked { writeTimeouts.touch(timeoutNode) }
            if producerPaused && output.count <= options.lowWaterMark {
                producerPaused = false
                handler?.connectionBecameWritable(self)
                if !isOpen { return }
            }
        }
        if writeBlocked {
            writeBlocked = false
            writeTimeouts.remove(timeoutNode)
            updateWatcher()
        }
        if closeAfterFlush { finish(abort: false) }
    }

    private func finish(abort: Bool) {
        guard isOpen else { return }
        isOpen = false
        writeTimeouts.remove(timeoutNode)
        watcher.watch(0)
        _ = abort ? cshims_abort_close(fd) : cshims_close(fd)
        output.removeAll()
        let loop = eventLoop
        let i = index
        if i < loop.openConnections.count && loop.openConnections[i] === self {
            let last = loop.openConnections.count - 1
            if i != last {
                loop.openConnections[i] = loop.openConnections[last]
                loop.openConnections[i].index = i
            }
            loop.openConnections.removeLast()
        }
        loop.releaseLater(self)
        let handler = self.handler
        self.handler = nil
        handler?.connectionDidClose(self)
    }
}

/// A listening TCP socket on one event loop that hands each accepted connection to a closure.
public final class TCPListener {
    private var listener: Listener?
    /// The bound address.
    public let localAddress: SocketAddress

    fileprivate init(listener: Listener, address: SocketAddress) {
        self.listener = listener
        self.localAddress = address
    }

    /// Stops accepting (open connections are not affected). Loop thread only.
    public func close() { listener = nil }
}

extension EventLoop {
    /// Listens for TCP connections on this loop. Call on the loop's thread (or before it runs).
    /// - Parameters:
    ///   - host: the address to bind (IPv4 or IPv6).
    ///   - port: the port, 0 for any free one (see `TCPListener.localAddress`).
    ///   - backlog: the listen backlog.
    ///   - reusePort: set SO_REUSEPORT.
    ///   - options: buffering and timeouts of accepted connections.
    ///   - onAccept: called on the loop with each new connection (TCP_NODELAY set); set its `handler` there.
    /// - Returns: the listener; keep it, it stops accepting when released.
    /// - Throws: `HTTPServerError` with code `.bindFailed`.
    public func listenTCP(
        host: String, port: Int, backlog: Int = 1024, reusePort: Bool = false,
        options: TCPConnectionOptions = TCPConnectionOptions(), onAccept: @escaping (TCPConnection) -> Void
    ) throws -> TCPListener {
        cshims_ignore_sigpipe()
        let fd = cshims_listen_tcp(host, Int32(port), Int32(backlog), reusePort ? 1 : 0)
        guard fd >= 0 else {
            throw HTTPServerError(
                code: .bindFailed, message: "cannot listen on \(host):\(port): \(String(cString: strerror(-fd)))")
        }
        let address = SocketAddress.of(fd: fd, peer: false) ?? SocketAddress(host: host, port: port)
        let listener = Listener(fd: fd, loop: self, logger: nil) { [unowned self] fd in
            onAccept(TCPConnection(fd: fd, loop: self, options: options))
        }
        return TCPListener(listener: listener, address: address)
    }
}
