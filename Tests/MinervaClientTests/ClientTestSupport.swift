// Helpers for the client tests: the demo server (MinervaTestServer with the demo protocol), a recorder of a client
// stream's callbacks with bounded waits, and a proxy whose connections the test can kill.
import MinervaClient
import MinervaCore
import MinervaServer
import MinervaTestSupport

@testable import MinervaHTTP
@testable import MinervaIO
@testable import minerva_demo

/// The demo application behind a MinervaHTTPServer with the endpoint at `/_minerva/`, plus a socket listener.
func demoServer(
    http: (inout MinervaHTTPServerConfiguration) -> Void = { _ in },
    engine: (inout MinervaEndpointConfiguration) -> Void = { _ in }
) throws -> MinervaTestServer {
    try MinervaTestServer(configure: engine, http: http, socket: true, factory: MinervaDemoApplication().handlerFactory)
}

/// Runs `body` with the demo server, a client loop and a recorded (not yet started) stream over `transport` (its
/// configuration changed by `configure`), then stops the loop and the server.
func withDemoStream(
    _ transport: ClientEndpointKind, http: (inout MinervaHTTPServerConfiguration) -> Void = { _ in },
    engine: (inout MinervaEndpointConfiguration) -> Void = { _ in },
    configure: (inout MinervaClientConfiguration) -> Void = { _ in },
    _ body: (MinervaTestServer, LoopThread, RecordedStream) throws -> Void
) throws {
    let server = try demoServer(http: http, engine: engine)
    defer { server.stop() }
    let client = LoopThread()
    defer { client.stop() }
    var configuration = server.clientConfiguration(transport)
    configure(&configuration)
    try body(server, client, try RecordedStream(configuration, on: client))
}

extension MinervaTestServer {
    /// The client configuration reaching this server with `transport`.
    func clientConfiguration(_ transport: ClientEndpointKind) -> MinervaClientConfiguration {
        MinervaClientConfiguration(
            host: "127.0.0.1", port: transport == .socket ? socketPort : port, transport: transport)
    }
}

/// A client stream on a LoopThread and everything its callbacks reported.
final class RecordedStream {
    let client: LoopThread
    let stream: MinervaClientStream
    let strings = Locked<[String]>([])
    let resets = Locked<[(String, Bool)]>([])
    let started = Locked(false)
    let disconnected = Locked(false)

    init(_ configuration: MinervaClientConfiguration, on client: LoopThread) throws {
        self.client = client
        let strings = self.strings
        let resets = self.resets
        let started = self.started
        let disconnected = self.disconnected
        stream = try client.sync {
            let stream = MinervaClientStream(configuration: configuration, on: client.loop)
            stream.onStarted = { started.set(true) }
            stream.onString = { string in strings.update { $0.append(string) } }
            stream.onReset = { reason, applicationLevel in resets.update { $0.append((reason, applicationLevel)) } }
            stream.onDisconnect = { disconnected.set(true) }
            return stream
        }
    }

    func start() throws { try client.sync { try self.stream.start() } }

    func send(_ strings: [String]) throws {
        try client.sync { for string in strings { try self.stream.send(string) } }
    }

    /// Waits until at least `count` strings arrived; returns them.
    func waitForStrings(_ count: Int, timeout: Double = 10) throws -> [String] {
        guard waitUntil(timeout, { strings.get().count >= count }) else {
            throw TestError("wanted \(count) strings, got \(strings.get().count): \(strings.get().suffix(3))")
        }
        return strings.get()
    }

    /// Reads a property of the stream on its loop.
    func inspect<T>(_ body: @escaping (MinervaClientStream) -> T) throws -> T {
        try client.sync { body(self.stream) }
    }
}

/// A TCP proxy on its own loop in front of the server, whose connections the test can kill (TCP RST both ways).
final class KillingProxy {
    private final class Side: MinervaTCPConnectionHandler {
        var connection: MinervaTCPConnection?
        weak var peer: Side?
        var pending: [UInt8] = []
        var closed = false
        /// Looks at the client's first bytes; true refuses the connection (abort).
        var refuse: ((UnsafeRawBufferPointer) -> Bool)?

        func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
            if let refuse {
                self.refuse = nil
                if refuse(bytes) {
                    closed = true
                    connection.abort()
                    peer?.connection?.abort()
                    return
                }
            }
            if let other = peer?.connection { other.write(bytes) } else { peer?.pending += Array(bytes) }
        }

        func connectionDidClose(_ connection: MinervaTCPConnection) {
            closed = true
            self.connection = nil
            peer?.connection?.close()
        }
    }

    let client = LoopThread()
    private var listener: MinervaTCPListener?
    private var pairs: [(Side, Side)] = []
    let port: Int
    /// Connections accepted so far (read on the proxy loop).
    private(set) var accepted = 0
    /// While true, connections whose first request is a WebSocket upgrade are aborted at once.
    let refusingUpgrades = Locked(false)
    /// Upgrade requests refused so far.
    let refusedUpgrades = Locked(0)

    init(targetPort: Int) throws {
        let holder = Locked<KillingProxy?>(nil)
        let listenerBox = Locked<MinervaTCPListener?>(nil)
        let loop = client.loop
        port = try client.sync { () -> Int in
            let listener = try loop.listenTCP(host: "127.0.0.1", port: 0) { inbound in
                guard let proxy = holder.get() else {
                    inbound.abort()
                    return
                }
                proxy.accepted += 1
                let front = Side()
                let back = Side()
                front.peer = back
                back.peer = front
                front.connection = inbound
                let refusing = proxy.refusingUpgrades
                let refused = proxy.refusedUpgrades
                front.refuse = { bytes in
                    guard refusing.get() else { return false }
                    let head = String(decoding: bytes, as: UTF8.self).lowercased()
                    guard head.contains("\r\nupgrade: websocket") else { return false }
                    refused.update { $0 += 1 }
                    return true
                }
                inbound.handler = front
                proxy.pairs.append((front, back))
                loop.connectTCP(host: "127.0.0.1", port: targetPort) { result in
                    guard case .success(let outbound) = result, !front.closed else {
                        inbound.abort()
                        if case .success(let outbound) = result { outbound.abort() }
                        return
                    }
                    back.connection = outbound
                    outbound.handler = back
                    outbound.write(back.pending)
                    back.pending = []
                }
            }
            listenerBox.set(listener)
            return listener.localAddress.port
        }
        listener = listenerBox.get()
        holder.set(self)
    }

    /// Aborts every proxied connection (both sides); returns how many pairs were open.
    @discardableResult
    func killAll() throws -> Int {
        try client.sync {
            var killed = 0
            for (front, back) in self.pairs where !front.closed || !back.closed {
                killed += 1
                front.connection?.abort()
                back.connection?.abort()
            }
            self.pairs.removeAll { $0.0.closed && $0.1.closed }
            return killed
        }
    }

    func stop() {
        try? client.sync {
            self.listener?.close()
            for (front, back) in self.pairs {
                front.connection?.abort()
                back.connection?.abort()
            }
            self.pairs.removeAll()
        }
        client.stop()
    }
}
