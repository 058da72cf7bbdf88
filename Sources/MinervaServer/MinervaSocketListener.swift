// The Minerva socket listener (PROTOCOL.md 3.2): a separate TCP port whose connections choose their mode with their
// first bytes (Flash policy file, `<int32/>\n`, or abort), then carry int32-framed frames both ways. Each int32
// connection is one socket transport of the engine of the loop owning its stream: this loop's, or (several loops)
// another's, to which the connection then only carries bytes (MinervaLoopHandOff.swift).
import Logging
import MinervaCore
import MinervaHTTP
import MinervaIO

/// A listening socket for Minerva's socket mode, bound to one event loop of the server.
///
/// It accepts through the shared accept loop (which backs off for 100 ms when out of descriptors) and holds at most
/// ``MinervaEndpointConfiguration/maxSocketConnections`` connections open: at the limit it stops accepting (the
/// kernel queues new connections up to the backlog) and logs a warning, rate-limited; it accepts again when one
/// closes.
public final class MinervaSocketListener: @unchecked Sendable {
    // @unchecked: the mutable state is confined to `eventLoop` (set up and torn down through `execute`).
    /// The port listened on (the kernel's choice when 0 was asked for).
    public let port: Int
    /// The event loop the connections run on.
    public let eventLoop: MinervaEventLoop
    /// The most connections this listener keeps open at once.
    public let maxConnections: Int
    private var driver: MinervaLoopDriver!
    private var acceptor: Acceptor?
    private var connections: [ObjectIdentifier: MinervaSocketConnection] = [:]
    private var isClosed = false
    /// Mode-detection aborts logged per second at most; the rest are counted.
    private var abortLog = RateLimitedLog(window: 1, linesPerWindow: 20)

    /// Binds and listens; connections are accepted on `loop` once it runs.
    /// - Parameters:
    ///   - endpoint: the endpoint whose engine (on `loop`) the socket transports join.
    ///   - host: the address to bind, e.g. `127.0.0.1`.
    ///   - port: the port, or 0 for any free one.
    ///   - loop: the event loop (one of the HTTP server's, so HTTP and socket transports share streams).
    /// - Throws: `MinervaIOError` with code `.bindFailed`.
    public init(endpoint: MinervaEndpoint, host: String, port: Int, on loop: MinervaEventLoop) throws {
        let socket = try ListeningSocket.bind(host: host, port: port, backlog: 1024, reusePort: false)
        self.port = socket.address.port
        self.eventLoop = loop
        self.maxConnections = max(1, endpoint.configuration.maxSocketConnections)
        loop.execute { [self] in
            let self_ = self
            guard !self_.isClosed else {
                socket.close()
                return
            }
            self_.driver = endpoint.driver(for: loop)  // on the loop's thread: it hooks into the loop
            self_.acceptor = Acceptor(
                socket: socket, loop: loop, logger: endpoint.logger, name: "socket",
                maxConnections: self_.maxConnections, options: MinervaTCPConnectionOptions()
            ) { [unowned self_] tcp in self_.accepted(tcp) }
        }
    }

    /// Whether accepting is paused at the connection limit. Loop thread only.
    var isPaused: Bool {
        eventLoop.preconditionInEventLoop()
        return acceptor?.isPaused ?? false
    }

    /// The connections accepted and not yet closed (including those still detecting their mode). Loop thread only.
    var openConnections: Int {
        eventLoop.preconditionInEventLoop()
        return acceptor?.openConnections ?? 0
    }

    /// Stops listening and closes the connections it accepted (their transports detach). Thread-safe; returns at
    /// once. Call it before stopping the server's loop.
    public func close() {
        eventLoop.execute { [self] in
            let self_ = self
            guard !self_.isClosed else { return }
            self_.isClosed = true
            self_.acceptor = nil  // closes the listening socket
            for connection in Array(self_.connections.values) { connection.disconnect() }
        }
    }

    /// A connection was accepted (TCP_NODELAY set): start mode detection.
    private func accepted(_ tcp: MinervaTCPConnection) {
        let connection = MinervaSocketConnection(tcp: tcp, listener: self, driver: driver)
        connections[ObjectIdentifier(connection)] = connection
        connection.start()
    }

    /// Logs a connection aborted during mode detection (PROTOCOL.md 3.2, 10.8), rate-limited.
    func logAbort(_ reason: SocketModeAbortReason, peer: String) {
        guard let suppressed = abortLog.admit(now: eventLoop.now) else { return }
        var metadata: Logger.Metadata = ["peer": "\(peer)"]
        if suppressed > 0 { metadata["earlierAbortsNotLogged"] = "\(suppressed)" }
        driver.endpoint.logger.notice("socket aborted in mode detection: \(reason)", metadata: metadata)
    }

    /// Logs a connection aborted because its first frame did not arrive whole in time, rate-limited (the same budget
    /// as mode-detection aborts).
    func logFirstFrameTimeout(peer: String, bytes: Int) {
        guard let suppressed = abortLog.admit(now: eventLoop.now) else { return }
        var metadata: Logger.Metadata = ["peer": "\(peer)", "bytesReceived": "\(bytes)"]
        if suppressed > 0 { metadata["earlierAbortsNotLogged"] = "\(suppressed)" }
        driver.endpoint.logger.notice("socket aborted: no whole first frame in time", metadata: metadata)
    }

    /// Logs a connection aborted because a later frame stayed unfinished too long, rate-limited (the same budget).
    func logFrameTimeout(peer: String) {
        guard let suppressed = abortLog.admit(now: eventLoop.now) else { return }
        var metadata: Logger.Metadata = ["peer": "\(peer)"]
        if suppressed > 0 { metadata["earlierAbortsNotLogged"] = "\(suppressed)" }
        driver.endpoint.logger.notice("socket aborted: a frame stayed unfinished too long", metadata: metadata)
    }

    /// One of this listener's connections closed.
    func connectionClosed(_ connection: MinervaSocketConnection) {
        connections[ObjectIdentifier(connection)] = nil
    }
}

/// The protocol state of one accepted socket (a handler on the loop's one socket type): mode detection, then an
/// int32 transport of the engine.
final class MinervaSocketConnection: MinervaTCPConnectionHandler, MinervaPlaceableSocket {
    /// `placing`: the first frame (a hello) is whole and the placement (a cluster) decides where the transport runs;
    /// `diverted`: the placement took the connection over (every event goes to `diverted`).
    private enum State { case detecting, policyServed, peeking, placing, diverted, int32, closed }

    let tcp: MinervaTCPConnection
    let handle: TransportHandle
    unowned let listener: MinervaSocketListener
    private unowned let driver: MinervaLoopDriver
    private var state = State.detecting
    private var detector: SocketModeDetector
    private var detectionTimer: MinervaLoopTimer?
    private var backedUp = false
    /// The bytes after the mode prefix, kept until the first frame (the hello) is whole (and, with several loops,
    /// names the stream).
    private var peeked: [UInt8] = []
    private var info = ConnectionInfo()
    /// Whether another loop's engine runs this transport (this connection only carries its bytes).
    private var proxied = false
    /// Where the int32 stream stands between frames, so that an unfinished frame can have a deadline.
    private var boundary = Int32FrameBoundary()
    private var frameTimer: MinervaLoopTimer?
    /// Whether the placement was asked (once).
    private var offered = false
    private var diverted: (any MinervaTCPConnectionHandler)?

    init(tcp: MinervaTCPConnection, listener: MinervaSocketListener, driver: MinervaLoopDriver) {
        self.tcp = tcp
        self.listener = listener
        self.driver = driver
        handle = driver.newHandle()
        let configuration = driver.endpoint.configuration
        detector = SocketModeDetector(
            policy: configuration.socketPolicy.map { Array($0.utf8) }, now: driver.now,
            timeout: configuration.socketModeTimeout, earlyRejection: configuration.socketEarlyRejection)
        tcp.handler = self
    }

    func start() {
        driver.sockets[handle.rawValue] = self
        let timeout = driver.endpoint.configuration.socketModeTimeout
        detectionTimer = listener.eventLoop.schedule(after: timeout) { [unowned self] in
            self.detectionTimer = nil
            switch self.state {
            case .detecting:
                self.listener.logAbort(.timeout, peer: self.peerAddress)
                self.tcp.abort()
            case .policyServed: self.tcp.close()  // the Flash player should have closed it by now
            case .peeking, .placing:
                // `<int32/>` and then no whole first frame in time (nothing, a partial length or a partial hello):
                // such connections would otherwise stay open for as long as the peer likes.
                self.listener.logFirstFrameTimeout(peer: self.peerAddress, bytes: self.peeked.count)
                self.tcp.abort()
            case .int32, .diverted, .closed: break
            }
        }
    }

    private var peerAddress: String { tcp.remoteAddress?.description ?? "" }

    func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
        switch state {
        case .detecting:
            switch detector.receive(bytes) {
            case .needMoreBytes, .ignore:
                return
            case .policyFile(let response):
                state = .policyServed  // the detection timer stays: it closes the connection if the peer does not
                tcp.write(response)
            case .abort(let reason):
                listener.logAbort(reason, peer: peerAddress)
                tcp.abort()
            case .int32(let remainder):
                let peer = peerAddress
                info = ConnectionInfo(
                    localAddress: tcp.localAddress?.description ?? "", peerAddress: peer,
                    rateLimitKey: driver.endpoint.rateLimitKey(forHost: hostPart(of: peer)))
                state = .peeking  // the detection timer bounds the wait for the first whole frame (the hello)
                peek(remainder)
            }
        case .peeking:
            peek(bytes)
        case .placing:
            peeked.append(contentsOf: bytes)
            if peeked.count > driver.engine.maxFrameLength + 65536 { tcp.pauseReading() }
        case .diverted:
            diverted?.connection(connection, didReceive: bytes)
        case .int32:
            trackFrames(bytes)
            if proxied {
                driver.forwardSocketBytes(handle, Array(bytes))
            } else {
                framesArrived(bytes)
            }
        case .policyServed, .closed:
            return  // PROTOCOL.md 3.2: input after the policy answer is ignored
        }
    }

    /// Waits for the first whole int32 frame (within the detection deadline); with several loops its hello names the
    /// stream and so the loop that owns it.
    private func peek(_ bytes: some Sequence<UInt8>) {
        peeked.append(contentsOf: bytes)
        guard peeked.count >= 4 else { return }
        let length = Int(peeked[0]) << 24 | Int(peeked[1]) << 16 | Int(peeked[2]) << 8 | Int(peeked[3])
        guard length > 0, length <= driver.engine.maxFrameLength else {
            settle(owner: nil)  // not a frame this engine accepts: it answers
            return
        }
        guard peeked.count >= 4 + length else { return }
        if !offered, let placement = driver.endpoint.configuration.placement {
            offered = true
            let frame = peeked[4..<(4 + length)]
            if frame.last == FrameType.hello, case .success(let hello) = HelloFrame.decode(json: frame.dropLast()) {
                state = .placing
                let placed = MinervaPlacedSocket(
                    self, eventLoop: listener.eventLoop, connection: info, headers: [], isWebSocket: false)
                if placement.takeSocket(placed, hello: hello, endpoint: driver.endpoint) { return }
                state = .peeking
            }
        }
        if driver.peers.isEmpty {
            settle(owner: nil)  // one loop: this engine owns every stream
            return
        }
        let owner = peeked.withUnsafeBytes {
            driver.owner(ofFrame: UnsafeRawBufferPointer(rebasing: $0[4..<(4 + length)]))
        }
        settle(owner: owner)
    }

    /// Opens the transport on the owner's engine: this loop's (nil), or another's, for which this connection then
    /// only carries bytes.
    private func settle(owner: Int?) {
        state = .int32
        cancelDetectionTimer()
        let bytes = peeked
        peeked = []
        bytes.withUnsafeBytes { trackFrames($0) }
        if let owner {
            proxied = true
            driver.handOffSocket(handle, info: info, bytes: bytes, to: owner)
        } else {
            driver.engine.openTransport(handle, kind: .socket, connection: info, now: driver.now)
            framesArrived(bytes)
        }
    }

    /// Arms the frame deadline when the bytes end inside a frame, and disarms it when they end on a frame boundary.
    private func trackFrames(_ bytes: UnsafeRawBufferPointer) {
        let timeout = driver.endpoint.configuration.socketFrameTimeout
        guard timeout > 0 else { return }
        if boundary.consume(bytes) {
            guard frameTimer == nil else { return }
            frameTimer = listener.eventLoop.schedule(after: timeout) { [unowned self] in
                self.frameTimer = nil
                guard self.state == .int32 else { return }
                self.listener.logFrameTimeout(peer: self.peerAddress)
                self.tcp.abort()
            }
        } else {
            frameTimer?.cancel()
            frameTimer = nil
        }
    }

    /// The engine cuts the int32 frames (honouring its frame limit) and processes them.
    private func framesArrived(_ bytes: some Sequence<UInt8>) {
        driver.engine.socketBytesReceived(handle, bytes: bytes, now: driver.now)
        driver.perform()
    }

    // MARK: Placement (a cluster)

    var isPlacing: Bool { state == .placing }
    var placingBytes: [UInt8] { state == .placing ? peeked : [] }

    func placementRunsHere() {
        guard state == .placing else { return }
        state = .peeking
        tcp.resumeReading()
        peek([])
    }

    func placementRefuses(_ code: UInt16) {
        guard state == .placing else { return }
        state = .closed
        tcp.close()
    }

    func placementDiverts(
        to handler: any MinervaTCPConnectionHandler
    ) -> (connection: MinervaTCPConnection, received: [UInt8])? {
        guard state == .placing, tcp.isOpen else { return nil }
        state = .diverted
        diverted = handler
        cancelDetectionTimer()
        let bytes = peeked
        peeked = []
        tcp.resumeReading()
        return (tcp, bytes)
    }

    func connectionPeerClosed(_ connection: MinervaTCPConnection) {
        if state == .diverted, let diverted {
            diverted.connectionPeerClosed(connection)
        } else {
            connection.closeNow()
        }
    }

    func connectionBecameWritable(_ connection: MinervaTCPConnection) {
        if state == .diverted {
            diverted?.connectionBecameWritable(connection)
            return
        }
        guard backedUp else { return }
        backedUp = false
        driver.socketTransportWritable(handle, proxied: proxied, true)
    }

    func connectionDidClose(_ connection: MinervaTCPConnection) {
        let wasTransport = state == .int32
        state = .closed
        cancelDetectionTimer()
        frameTimer?.cancel()
        frameTimer = nil
        driver.sockets[handle.rawValue] = nil
        listener.connectionClosed(self)
        if wasTransport { driver.socketTransportClosed(handle, proxied: proxied) }
        if let diverted {
            self.diverted = nil
            diverted.connectionDidClose(connection)
        }
    }

    /// Closes the connection now, telling the engine (listener shutdown).
    func disconnect() { tcp.closeNow() }

    private func cancelDetectionTimer() {
        detectionTimer?.cancel()
        detectionTimer = nil
    }

    /// Queues bytes (copied; written at the end of the turn); tells the engine when the output backs up.
    func write(_ bytes: UnsafeRawBufferPointer) {
        guard state != .closed else { return }
        tcp.write(bytes)
        if !backedUp && !tcp.isWritable && tcp.isOpen {
            backedUp = true
            driver.socketTransportWritable(handle, proxied: proxied, false)
        }
    }

    /// Closes the socket: `abort` resets it (RST), otherwise it closes once queued output is written.
    func close(abort: Bool) {
        if abort { tcp.abort() } else { tcp.close() }
    }
}

/// Follows an int32-framed byte stream (4-byte big-endian length, then the frame) only far enough to tell whether it
/// stands between two frames; it keeps no bytes.
struct Int32FrameBoundary {
    private var headerBytes = 0
    private var length = 0
    private var remaining = 0

    /// Takes the next bytes of the stream.
    /// - Returns: true if they end inside a frame (or its length prefix).
    mutating func consume(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            if remaining > 0 {
                let step = min(remaining, count - index)
                remaining -= step
                index += step
                continue
            }
            length = length << 8 | Int(bytes[index])
            headerBytes += 1
            index += 1
            if headerBytes == 4 {
                remaining = length
                headerBytes = 0
                length = 0
            }
        }
        return headerBytes > 0 || remaining > 0
    }
}
