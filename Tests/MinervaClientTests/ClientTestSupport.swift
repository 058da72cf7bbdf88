// Helpers for the client tests: a demo server (HTTP endpoint and socket listener on 127.0.0.1, port 0), a client
// event loop on its own thread, and a recorder of a stream's callbacks with bounded waits.
import Foundation
import Logging
import MinervaClient
import MinervaCore
import MinervaServer

@testable import MinervaHTTP
@testable import MinervaIO
@testable import minerva_demo

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The demo application behind a real MinervaHTTPServer with MinervaEndpoint at `/_minerva/`, plus a socket listener.
final class DemoServer {
    let server: MinervaHTTPServer
    let endpoint: MinervaEndpoint
    let socketListener: MinervaSocketListener
    var httpPort: Int { server.localPort }
    var socketPort: Int { socketListener.port }

    init(
        http: (inout MinervaHTTPServerConfiguration) -> Void = { _ in },
        engine: (inout MinervaEndpointConfiguration) -> Void = { _ in }
    ) throws {
        var configuration = MinervaEndpointConfiguration()
        configuration.clientScriptPath = nil
        engine(&configuration)
        var logger = Logger(label: "test.client")
        logger.logLevel = .critical
        endpoint = MinervaEndpoint(
            configuration: configuration, logger: logger, handlerFactory: MinervaDemoApplication().handlerFactory)
        let router = MinervaHTTPRouter()
        endpoint.mount(on: router)
        var serverConfiguration = MinervaHTTPServerConfiguration()
        serverConfiguration.host = "127.0.0.1"
        serverConfiguration.port = 0
        http(&serverConfiguration)
        server = MinervaHTTPServer(configuration: serverConfiguration, router: router, logger: logger)
        try server.start()
        let loop = server.eventLoops[0]
        let endpoint = self.endpoint
        let result = Locked<Result<MinervaSocketListener, Error>?>(nil)
        loop.execute {
            result.set(Result { try MinervaSocketListener(endpoint: endpoint, host: "127.0.0.1", port: 0, on: loop) })
        }
        guard waitUntil(timeout: 5, { result.get() != nil }), let listener = try result.get()?.get() else {
            throw TestFailure("socket listener did not start")
        }
        socketListener = listener
    }

    /// The client configuration reaching this server with `transport`.
    func clientConfiguration(_ transport: ClientEndpointKind) -> MinervaClientConfiguration {
        let port = transport == .socket ? socketPort : httpPort
        return MinervaClientConfiguration(host: "127.0.0.1", port: port, transport: transport)
    }

    func stop() {
        let loop = server.eventLoops[0]
        let listener = socketListener
        let done = Locked(false)
        loop.execute {
            listener.close()
            done.set(true)
        }
        _ = waitUntil(timeout: 5) { done.get() }
        server.shutdown(gracePeriod: 0.2)
        server.waitUntilStopped()
    }
}

/// A value behind a lock.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func get() -> T { lock.withLock { value } }
    func set(_ newValue: T) { lock.withLock { value = newValue } }
    func update<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&value) } }
}

/// Polls `condition` every millisecond until it holds or `timeout` seconds pass; returns whether it held.
func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}

/// An event loop running on its own thread.
final class ClientLoop {
    let loop = MinervaEventLoop()
    private let thread: Thread
    private let finished = Locked(false)

    init() {
        let loop = self.loop
        let finished = self.finished
        thread = Thread {
            loop.run()
            finished.set(true)
        }
        thread.start()
    }

    /// Runs `body` on the loop and waits (at most 5 s) for its result.
    func sync<T>(_ body: @escaping () throws -> T) throws -> T {
        let result = Locked<Result<T, Error>?>(nil)
        loop.execute { result.set(Result { try body() }) }
        guard waitUntil(timeout: 5, { result.get() != nil }), let value = result.get() else {
            throw TestFailure("loop did not answer")
        }
        return try value.get()
    }

    func stop() {
        loop.stop()
        _ = waitUntil(timeout: 5) { finished.get() }
    }
}

/// A client stream on a ClientLoop and everything its callbacks reported.
final class RecordedStream {
    let client: ClientLoop
    let stream: MinervaClientStream
    let strings = Locked<[String]>([])
    let resets = Locked<[(String, Bool)]>([])
    let started = Locked(false)
    let disconnected = Locked(false)

    init(_ configuration: MinervaClientConfiguration, on client: ClientLoop) throws {
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
        guard waitUntil(timeout: timeout, { strings.get().count >= count }) else {
            throw TestFailure("wanted \(count) strings, got \(strings.get().count): \(strings.get().suffix(3))")
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

        func connection(_ connection: MinervaTCPConnection, didReceive bytes: UnsafeRawBufferPointer) {
            if let other = peer?.connection { other.write(bytes) } else { peer?.pending += Array(bytes) }
        }

        func connectionDidClose(_ connection: MinervaTCPConnection) {
            closed = true
            self.connection = nil
            peer?.connection?.close()
        }
    }

    let client = ClientLoop()
    private var listener: MinervaTCPListener?
    private var pairs: [(Side, Side)] = []
    let port: Int
    /// Connections accepted so far (read on the proxy loop).
    private(set) var accepted = 0

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
