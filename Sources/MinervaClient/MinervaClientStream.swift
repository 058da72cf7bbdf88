// The Swift client: MinervaCore's ClientStreamMachine driven by real I/O on a MinervaServer MinervaEventLoop (HTTP POST
// to `<endpoint>io/` over keep-alive connections, a WebSocket to `<endpoint>ws`, or socket mode), with the
// application's callbacks.
import MinervaCore
import MinervaHTTP
import MinervaIO

/// Where and how a ``MinervaClientStream`` reaches a Minerva server.
public struct MinervaClientConfiguration: Sendable {
    /// The server's host: a numeric IPv4/IPv6 address or a name (resolved with a blocking lookup).
    public var host: String
    /// The HTTP port, or the socket listener's port for ``ClientEndpointKind/socket``.
    public var port: Int
    /// The endpoint path, ending in `/`; requests go to `<path>io/`, WebSockets to `<path>ws` (ignored in socket
    /// mode).
    public var path: String = "/_minerva/"
    /// The `Host` header value; nil uses `host:port`.
    public var hostHeader: String?
    /// Seconds a connect may take before the transport counts as failed.
    public var connectTimeout: Double = 10
    /// The protocol tunables; `stream.endpoint` chooses long-poll, HTTP streaming, socket, WebSocket or auto
    /// (WebSocket first, falling back to HTTP streaming).
    public var stream: ClientConfiguration

    /// Creates a configuration with the original client's tunables, except that strings are sent at the end of
    /// the current loop turn instead of after the original's 6 ms (`stream.sendCoalescingDelay` = 0): a burst sent
    /// in one turn still leaves in one request, and a reply on a streaming or socket transport is not held back
    /// 6 ms (measured: about 4.5 ms to 0.4 ms per echo round trip over HTTP streaming).
    /// - Parameters:
    ///   - host: the server's address.
    ///   - port: its HTTP port (or socket port for `.socket`).
    ///   - transport: long-poll, HTTP streaming, socket, WebSocket or auto.
    public init(host: String, port: Int, transport: ClientEndpointKind) {
        self.host = host
        self.port = port
        self.stream = ClientConfiguration(endpoint: transport)
        self.stream.sendCoalescingDelay = 0
    }
}

/// A Minerva client stream with real transports, confined to one ``MinervaEventLoop``.
///
/// Create it, set the callbacks, then call ``start()``; every method and callback runs on the loop's thread
/// (use `MinervaEventLoop.execute` from elsewhere). Strings are restricted (bytes 0x20...0x7E). The stream is over after
/// ``onDisconnect`` (following a reset by either side, or ``dispose()``).
public final class MinervaClientStream {
    /// The loop the stream runs on.
    public let eventLoop: MinervaEventLoop
    /// The configuration in force.
    public let configuration: MinervaClientConfiguration
    /// The server acknowledged the stream (its first `StreamCreated` frame). Called once.
    public var onStarted: (() -> Void)?
    /// A string from the server, in order, exactly once.
    public var onString: ((String) -> Void)?
    /// The stream was reset: the reason and whether it was application-level (the peer's or ``reset(reason:)``)
    /// rather than internal (e.g. too many failed transports).
    public var onReset: ((_ reason: String, _ applicationLevel: Bool) -> Void)?
    /// The stream is over: no transport is open and no callback follows.
    public var onDisconnect: (() -> Void)?

    private var machine: ClientStreamMachine
    private var queue: [ClientAction] = []
    private var draining = false
    private var startedReported = false
    private var timer: MinervaLoopTimer?
    private var timerDeadline: Double?
    private var idleConnections: [HTTPClientConnection] = []
    private var busyConnections: [Int64: HTTPClientConnection] = [:]
    private var requests: [Int64: [UInt8]] = [:]
    private var sockets: [Int64: SocketClientTransport] = [:]
    private var webSockets: [Int64: WebSocketClientTransport] = [:]
    /// The most idle kept-alive HTTP connections a stream keeps (it has at most three requests at once).
    static let maxIdleConnections = 3
    /// How the current primary transport is carried (nil while there is none): with
    /// ``ClientEndpointKind/auto``, `.webSocket` or `.httpStreaming`.
    public var primaryTransportMode: ClientTransportMode? { machine.primaryTransportMode }
    /// Transports opened so far (HTTP requests, sockets and WebSockets), for tests and statistics.
    public private(set) var transportsOpened = 0
    /// TCP connections made so far (lower than ``transportsOpened`` when HTTP keep-alive reuses connections).
    public private(set) var connectionsOpened = 0

    /// Creates an unstarted stream.
    /// - Parameters:
    ///   - configuration: server address, endpoint path and tunables.
    ///   - loop: the loop that runs the stream's I/O and callbacks.
    ///   - streamID: the stream id; nil generates a random one.
    public init(configuration: MinervaClientConfiguration, on loop: MinervaEventLoop, streamID: StreamID? = nil) {
        self.configuration = configuration
        self.eventLoop = loop
        machine = ClientStreamMachine(configuration: configuration.stream, streamID: streamID)
    }

    deinit {
        // The last reference may go away on any thread: release the I/O on the loop.
        let timer = self.timer
        let connections = idleConnections + Array(busyConnections.values)
        let sockets = Array(self.sockets.values)
        let webSockets = Array(self.webSockets.values)
        if timer == nil && connections.isEmpty && sockets.isEmpty && webSockets.isEmpty { return }
        MinervaLoopBound(handingOver: (timer, connections, sockets, webSockets), to: eventLoop).execute { io in
            io.0?.cancel()
            for connection in io.1 { connection.abort() }
            for socket in io.2 { socket.close() }
            for webSocket in io.3 { webSocket.close() }
        }
    }

    /// The stream id.
    public var streamID: StreamID { machine.streamID }
    /// The stream's life-cycle state.
    public var state: ClientStreamMachine.State { machine.state }
    /// Strings sent but not yet acknowledged by the server.
    public var unacknowledgedCount: Int { machine.queuedStringCount }

    /// Starts the stream: opens its first transport, which carries the strings sent so far.
    /// - Throws: `ClientStreamError.alreadyStarted`, or `.alreadyReset` after a reset or ``dispose()``.
    public func start() throws(ClientStreamError) {
        perform(try machine.start(now: eventLoop.now))
    }

    /// Sends a string to the server (after a short coalescing delay, with others sent meanwhile).
    /// - Parameter string: a restricted string (every byte in 0x20...0x7E).
    /// - Throws: `ClientStreamError.notRestricted` for other bytes; `.alreadyReset` after a reset or dispose.
    public func send(_ string: String) throws(ClientStreamError) {
        perform(try machine.sendString(Array(string.utf8), now: eventLoop.now))
    }

    /// Sends a string given as bytes (see the `String` overload).
    /// - Parameter bytes: a restricted string.
    /// - Throws: as the `String` overload.
    public func send(_ bytes: [UInt8]) throws(ClientStreamError) {
        perform(try machine.sendString(bytes, now: eventLoop.now))
    }

    /// Resets the stream: tells the server (reason, application-level), reports ``onReset`` at once, then
    /// ``onDisconnect`` once the reset was carried (or at once if the stream never started).
    /// - Parameter reason: a restricted string of at most 255 bytes.
    /// - Throws: `ClientStreamError.invalidResetReason` or `.alreadyReset`.
    public func reset(reason: String) throws(ClientStreamError) {
        perform(try machine.reset(reason: reason, now: eventLoop.now))
    }

    /// Ends the stream at once without telling the server (it times the stream out); ``onDisconnect`` follows.
    public func dispose() {
        perform(machine.dispose())
    }

    // MARK: Actions

    private func perform(_ actions: [ClientAction]) {
        queue.append(contentsOf: actions)
        if draining { return }
        draining = true
        var index = 0
        while index < queue.count {
            let action = queue[index]
            index += 1
            execute(action)
            if !startedReported, machine.streamKnownToServer {
                startedReported = true
                onStarted?()
            }
        }
        queue.removeAll(keepingCapacity: true)
        draining = false
    }

    private func execute(_ action: ClientAction) {
        switch action {
        case .openTransport(let request):
            transportsOpened += 1
            if request.mode.isHTTP {
                let head = requestHead(bodyLength: request.body.count)
                let bytes = head + request.body
                requests[request.transportNumber] = bytes
                sendRequest(bytes, transportNumber: request.transportNumber, reuse: true)
            } else if request.mode == .webSocket {
                connectionsOpened += 1
                webSockets[request.transportNumber] = WebSocketClientTransport(
                    loop: eventLoop, host: configuration.host, port: configuration.port,
                    hostHeader: configuration.hostHeader ?? hostHeaderValue(), path: configuration.path,
                    timeout: configuration.connectTimeout, transportNumber: request.transportNumber,
                    firstBytes: request.body, delegate: self)
            } else {
                connectionsOpened += 1
                sockets[request.transportNumber] = SocketClientTransport(
                    loop: eventLoop, host: configuration.host, port: configuration.port,
                    timeout: configuration.connectTimeout, transportNumber: request.transportNumber,
                    firstBytes: request.body, delegate: self)
            }
        case .write(let number, let bytes):
            sockets[number]?.write(bytes)
            webSockets[number]?.write(bytes)
        case .closeTransport(let number):
            requests[number] = nil
            if let connection = busyConnections.removeValue(forKey: number) { connection.abort() }
            sockets.removeValue(forKey: number)?.close()
            webSockets.removeValue(forKey: number)?.close()
        case .deliverStrings(let strings):
            for string in strings {
                onString?(String(decoding: string, as: UTF8.self))
            }
        case .streamReset(let reason, let applicationLevel):
            onReset?(String(decoding: reason, as: UTF8.self), applicationLevel)
        case .disconnected:
            timer?.cancel()
            timer = nil
            timerDeadline = nil
            for connection in idleConnections { connection.abort() }
            idleConnections.removeAll()
            onDisconnect?()
        case .nextDeadline(let deadline):
            schedule(deadline)
        }
    }

    private func requestHead(bodyLength: Int) -> [UInt8] {
        let host = configuration.hostHeader ?? hostHeaderValue()
        let head =
            "POST \(configuration.path)io/ HTTP/1.1\r\nHost: \(host)\r\n"
            + "Content-Type: application/octet-stream\r\nContent-Length: \(bodyLength)\r\n\r\n"
        return Array(head.utf8)
    }

    private func hostHeaderValue() -> String {
        configuration.host.contains(":")
            ? "[\(configuration.host)]:\(configuration.port)" : "\(configuration.host):\(configuration.port)"
    }

    private func sendRequest(_ bytes: [UInt8], transportNumber: Int64, reuse: Bool) {
        let connection: HTTPClientConnection
        if reuse, let index = idleConnections.lastIndex(where: { $0.isIdle }) {
            connection = idleConnections.remove(at: index)
        } else {
            connectionsOpened += 1
            connection = HTTPClientConnection(
                loop: eventLoop, host: configuration.host, port: configuration.port,
                timeout: configuration.connectTimeout, delegate: self)
        }
        busyConnections[transportNumber] = connection
        connection.send(bytes, transportNumber: transportNumber)
    }

    private func schedule(_ deadline: Double?) {
        if deadline == timerDeadline { return }
        timer?.cancel()
        timer = nil
        timerDeadline = deadline
        guard let deadline else { return }
        timer = eventLoop.schedule(after: max(0, deadline - eventLoop.now)) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.timerDeadline = nil
            self.perform(self.machine.timersDue(now: self.eventLoop.now))
        }
    }
}

extension MinervaClientStream: ClientTransportDelegate {
    func transportStarted(_ number: Int64, status: Int?, contentLength: Int?) {
        perform(
            machine.responseStarted(
                transportNumber: number, status: status, contentLength: contentLength, now: eventLoop.now))
    }

    func transportReceived(_ number: Int64, bytes: [UInt8]) {
        perform(machine.received(transportNumber: number, bytes: bytes, now: eventLoop.now))
    }

    func transportFinished(_ number: Int64, status: Int?) {
        busyConnections[number] = nil
        requests[number] = nil
        sockets[number] = nil
        webSockets[number] = nil
        perform(machine.transportFinished(transportNumber: number, status: status, now: eventLoop.now))
    }

    func transportFailed(_ number: Int64, retryable: Bool) {
        busyConnections[number] = nil
        if retryable, let request = requests[number] {
            // The server closed a kept-alive connection as the request went out: send it on a new one.
            sendRequest(request, transportNumber: number, reuse: false)
            return
        }
        requests[number] = nil
        sockets[number] = nil
        webSockets[number] = nil
        perform(machine.transportFailed(transportNumber: number, now: eventLoop.now))
    }

    func connectionIdle(_ connection: HTTPClientConnection) {
        if machine.state == .disconnected || idleConnections.count >= Self.maxIdleConnections {
            connection.abort()
        } else {
            idleConnections.append(connection)
        }
    }

    func connectionClosed(_ connection: HTTPClientConnection) {
        idleConnections.removeAll { $0 === connection }
    }
}
