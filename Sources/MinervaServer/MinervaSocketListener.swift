// The Minerva socket listener (PROTOCOL.md 3.2): a separate TCP port whose connections choose their mode with their
// first bytes (Flash policy file, `<int32/>\n`, or abort), then carry int32-framed frames both ways. Each int32
// connection is one socket transport of the loop's engine.
internal import CShims
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A listening socket for Minerva's socket mode, bound to one event loop of the server.
///
/// It accepts through the server's shared accept loop (which backs off for 100 ms when out of descriptors) and
/// holds at most ``MinervaEndpointConfiguration/maxSocketConnections`` connections open: at the limit it stops
/// accepting (the kernel queues new connections up to the backlog) and logs a warning, rate-limited; it accepts
/// again when one closes.
public final class MinervaSocketListener {
    /// The port listened on (the kernel's choice when 0 was asked for).
    public let port: Int
    /// The event loop the connections run on.
    public let eventLoop: EventLoop
    /// The most connections this listener keeps open at once.
    public let maxConnections: Int
    private let fd: Int32
    private var driver: MinervaLoopDriver!
    private var listener: Listener?
    private var isClosed = false
    /// The connections accepted and not yet closed (including those still detecting their mode). Loop thread only.
    private(set) var openConnections = 0
    private var limitLog = RateLimitedLog(window: 10, linesPerWindow: 1)
    /// Mode-detection aborts logged per second at most; the rest are counted.
    private var abortLog = RateLimitedLog(window: 1, linesPerWindow: 20)
    let readBuffer = ByteStorage(capacity: 64 * 1024)

    /// Binds and listens; connections are accepted on `loop` once it runs.
    /// - Parameters:
    ///   - endpoint: the endpoint whose engine (on `loop`) the socket transports join.
    ///   - host: the address to bind, e.g. `127.0.0.1`.
    ///   - port: the port, or 0 for any free one.
    ///   - loop: the event loop (one of the HTTP server's, so HTTP and socket transports share streams).
    /// - Throws: `HTTPServerError` with code `.bindFailed`.
    public init(endpoint: MinervaEndpoint, host: String, port: Int, on loop: EventLoop) throws {
        cshims_ignore_sigpipe()
        let fd = cshims_listen_tcp(host, Int32(port), 1024, 0)
        guard fd >= 0 else {
            throw HTTPServerError(
                code: .bindFailed, message: "cannot listen on \(host):\(port): \(String(cString: strerror(-fd)))")
        }
        self.fd = fd
        self.port = Int(cshims_local_port(fd))
        self.eventLoop = loop
        self.maxConnections = max(1, endpoint.configuration.maxSocketConnections)
        loop.execute { [self] in
            guard !self.isClosed else { return }
            self.driver = endpoint.driver(for: loop)  // on the loop's thread: it hooks into the loop
            self.listener = Listener(fd: fd, loop: loop, logger: endpoint.logger) { [unowned self] connectionFD in
                self.accepted(connectionFD)
            }
        }
    }

    /// Whether accepting is paused at the connection limit. Loop thread only.
    var isPaused: Bool { listener?.isPaused ?? false }

    /// Stops listening and closes the connections it accepted (their transports detach). Thread-safe; returns at
    /// once. Call it before stopping the server's loop.
    public func close() {
        eventLoop.execute { [self] in
            guard !self.isClosed else { return }
            self.isClosed = true
            if self.listener != nil {
                self.listener = nil  // closes the listening socket
            } else {
                _ = cshims_close(self.fd)
            }
            guard let driver = self.driver else { return }
            for connection in driver.sockets.values where connection.listener === self {
                connection.disconnect()
            }
        }
    }

    /// A connection was accepted (TCP_NODELAY set): start mode detection; pause accepting at the limit.
    private func accepted(_ connectionFD: Int32) {
        let connection = MinervaSocketConnection(fd: connectionFD, listener: self, driver: driver)
        driver.sockets[connection.handle.rawValue] = connection
        openConnections += 1
        connection.start()
        if openConnections >= maxConnections, let listener, !listener.isPaused {
            listener.pause()
            if let suppressed = limitLog.admit(now: eventLoop.now) {
                driver.endpoint.logger.warning(
                    "socket connection limit reached: \(openConnections) open on port \(port); accepting paused",
                    metadata: ["limit": "\(maxConnections)", "earlierHitsNotLogged": "\(suppressed)"])
            }
        }
    }

    /// Logs a connection aborted during mode detection (PROTOCOL.md 3.2, 10.8), rate-limited.
    func logAbort(_ reason: SocketModeAbortReason, peer: String) {
        guard let suppressed = abortLog.admit(now: eventLoop.now) else { return }
        var metadata: Logger.Metadata = ["peer": "\(peer)"]
        if suppressed > 0 { metadata["earlierAbortsNotLogged"] = "\(suppressed)" }
        driver.endpoint.logger.notice("socket aborted in mode detection: \(reason)", metadata: metadata)
    }

    /// One of this listener's connections closed: accept again below the limit.
    func connectionClosed() {
        openConnections -= 1
        if let listener, listener.isPaused, openConnections < maxConnections { listener.resume() }
    }
}

/// One accepted socket: mode detection, then an int32 transport of the engine.
final class MinervaSocketConnection {
    private enum State { case detecting, policyServed, int32, closed }

    let fd: Int32
    let handle: TransportHandle
    let listener: MinervaSocketListener
    private unowned let driver: MinervaLoopDriver
    private var watcher: IOWatcher!
    private var state = State.detecting
    private var detector: SocketModeDetector
    private var detectionTimer: LoopTimer?
    private var output: [UInt8] = []
    private var outputStart = 0
    private var writeBlocked = false
    private var backedUp = false
    private var closeWhenWritten = false
    static let highWaterMark = 256 * 1024
    static let lowWaterMark = 64 * 1024

    init(fd: Int32, listener: MinervaSocketListener, driver: MinervaLoopDriver) {
        self.fd = fd
        self.listener = listener
        self.driver = driver
        handle = driver.newHandle()
        let configuration = driver.endpoint.configuration
        detector = SocketModeDetector(
            policy: configuration.socketPolicy.map { Array($0.utf8) }, now: driver.now,
            timeout: configuration.socketModeTimeout, earlyRejection: configuration.socketEarlyRejection)
    }

    func start() {
        watcher = IOWatcher(loop: listener.eventLoop.raw, fd: fd) { [unowned self] revents in
            self.handleEvents(revents)
        }
        watcher.watch(cshims_EV_READ())
        let timeout = driver.endpoint.configuration.socketModeTimeout
        detectionTimer = listener.eventLoop.schedule(after: timeout) { [unowned self] in
            self.detectionTimer = nil
            switch self.state {
            case .detecting:
                self.listener.logAbort(.timeout, peer: socketAddress(self.fd, peer: true))
                self.close(abort: true)
            case .policyServed: self.close(abort: false)  // the Flash player should have closed it by now
            case .int32, .closed: break
            }
        }
    }

    private func handleEvents(_ revents: Int32) {
        if revents & cshims_EV_WRITE() != 0 { flushOutput() }
        if revents & cshims_EV_READ() != 0 && state != .closed { readable() }
    }

    private func updateWatcher() {
        guard state != .closed else { return }
        watcher.watch(cshims_EV_READ() | (writeBlocked ? cshims_EV_WRITE() : 0))
    }

    private func readable() {
        let buffer = listener.readBuffer
        let n = cshims_read(fd, buffer.base, buffer.capacity)
        if n > 0 {
            received(UnsafeRawBufferPointer(start: buffer.base, count: n))
        } else if n == 0 || (n != -Int(EAGAIN) && n != -Int(EWOULDBLOCK)) {
            peerClosed()
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        switch state {
        case .detecting:
            switch detector.receive(bytes) {
            case .needMoreBytes, .ignore:
                return
            case .policyFile(let response):
                state = .policyServed  // the detection timer stays: it closes the connection if the peer does not
                write(response)
            case .abort(let reason):
                listener.logAbort(reason, peer: socketAddress(fd, peer: true))
                close(abort: true)
            case .int32(let remainder):
                state = .int32
                cancelDetectionTimer()
                let peer = socketAddress(fd, peer: true)
                let info = ConnectionInfo(
                    localAddress: socketAddress(fd, peer: false), peerAddress: peer, rateLimitKey: hostPart(of: peer))
                driver.engine.openTransport(handle, kind: .socket, connection: info, now: driver.now)
                framesArrived(remainder)
            }
        case .int32:
            framesArrived(bytes)
        case .policyServed, .closed:
            return  // PROTOCOL.md 3.2: input after the policy answer is ignored
        }
    }

    /// The engine cuts the int32 frames (honouring its frame limit) and processes them.
    private func framesArrived(_ bytes: some Sequence<UInt8>) {
        driver.engine.socketBytesReceived(handle, bytes: bytes, now: driver.now)
        driver.perform()
    }

    /// Closes the connection now, telling the engine (listener shutdown).
    func disconnect() { peerClosed() }

    private func peerClosed() {
        let wasTransport = state == .int32
        closeNow(abort: false)
        if wasTransport {
            driver.engine.transportClosed(handle, now: driver.now)
            driver.perform()
        }
    }

    private func cancelDetectionTimer() {
        detectionTimer?.cancel()
        detectionTimer = nil
    }

    // MARK: Output

    /// Queues bytes and writes as much as the socket takes now.
    func write(_ bytes: [UInt8]) {
        guard state != .closed, !bytes.isEmpty else { return }
        output.append(contentsOf: bytes)
        if !writeBlocked { flushOutput() }
        if !backedUp && output.count - outputStart > Self.highWaterMark {
            backedUp = true
            driver.engine.transportWritable(handle, false)
        }
    }

    private func flushOutput() {
        while outputStart < output.count && state != .closed {
            let n = output[outputStart...].withUnsafeBytes { cshims_send(fd, $0.baseAddress!, $0.count) }
            if n > 0 {
                outputStart += n
                continue
            }
            if n == -Int(EAGAIN) || n == -Int(EWOULDBLOCK) {
                if !writeBlocked {
                    writeBlocked = true
                    updateWatcher()
                }
                return
            }
            peerClosed()
            return
        }
        output.removeAll(keepingCapacity: output.capacity <= 64 * 1024)
        outputStart = 0
        if writeBlocked {
            writeBlocked = false
            updateWatcher()
        }
        if backedUp {
            backedUp = false
            driver.engine.transportWritable(handle, true)
        }
        if closeWhenWritten { close(abort: false) }
    }

    /// Closes the socket; `abort` resets the connection (SO_LINGER 0) instead of a normal close.
    func close(abort: Bool) {
        guard state != .closed else { return }
        if !abort && outputStart < output.count && !closeWhenWritten {
            closeWhenWritten = true  // the engine's grace-period close: write what is queued first
            return
        }
        closeNow(abort: abort)
    }

    private func closeNow(abort: Bool) {
        guard state != .closed else { return }
        state = .closed
        cancelDetectionTimer()
        watcher.watch(0)
        if abort {
            var linger = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
        }
        _ = cshims_close(fd)
        output = []
        driver.sockets[handle.rawValue] = nil
        listener.connectionClosed()
        listener.eventLoop.releaseLater(self)
    }
}
