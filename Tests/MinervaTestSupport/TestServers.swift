// The test servers, written once: an HTTP server on 127.0.0.1:0, the same with the Minerva endpoint mounted (and
// optionally a socket listener), and an event loop on its own thread. Stop each in a `defer`.
import Logging
import MinervaCore
import MinervaHTTP
import MinervaIO
import MinervaServer

/// Moves a value into a `@Sendable` closure that runs on the loop the value belongs to.
private struct LoopTransfer<Value>: @unchecked Sendable {
    // @unchecked: the value is used only on the loop it is handed to, while the sender waits.
    let value: Value
}

/// An event loop running on its own thread for the duration of a test.
package final class LoopThread: Sendable {
    package let loop = MinervaEventLoop()
    private let thread: Locked<PosixThread?>

    package init() {
        let loop = self.loop
        thread = Locked(PosixThread { loop.run() })
    }

    /// Stops the loop and joins its thread.
    package func stop() {
        loop.stop()
        thread.update { thread in
            thread?.join()
            thread = nil
        }
    }

    /// Runs `body` on the loop and waits (at most 5 s) for its result.
    package func sync<T>(_ body: @escaping () throws -> T) throws -> T {
        try runOnLoop(loop, body)
    }
}

/// Runs `body` on `loop` and waits (at most 5 s) for its result.
package func runOnLoop<T>(_ loop: MinervaEventLoop, _ body: @escaping () throws -> T) throws -> T {
    let result = Locked<LoopTransfer<Result<T, Error>>?>(nil)
    let work = LoopTransfer(value: body)
    loop.execute { result.set(LoopTransfer(value: Result { try work.value() })) }
    guard waitUntil(5, { result.get() != nil }), let value = result.get()?.value else {
        throw TestError("loop did not answer")
    }
    return try value.get()
}

/// A started `MinervaHTTPServer` on 127.0.0.1:0 whose log goes into `logs`; call `stop()` in a defer.
package final class TestServer {
    package let server: MinervaHTTPServer
    package let router = MinervaHTTPRouter()
    package let logs: LogCapture
    package var port: Int { server.localPort }
    /// The server's first loop (the one socket listeners and engines of the tests use).
    package var loop: MinervaEventLoop { server.eventLoops[0] }

    /// - Parameters:
    ///   - configure: server settings (host and port are 127.0.0.1 and 0 unless changed here).
    ///   - logLevel: the level from which log lines go into `logs`.
    ///   - logs: where the log lines go (a new capture unless given).
    ///   - routes: adds the routes.
    package init(
        _ configure: (inout MinervaHTTPServerConfiguration) -> Void = { _ in }, logLevel: Logger.Level = .critical,
        logs: LogCapture = LogCapture(), routes: (MinervaHTTPRouter) -> Void
    ) throws {
        self.logs = logs
        var configuration = MinervaHTTPServerConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configure(&configuration)
        routes(router)
        server = MinervaHTTPServer(
            configuration: configuration, router: router, logger: logs.logger(label: "test.http", level: logLevel))
        try server.start()
    }

    package func stop(grace: Double = 0.5) {
        server.shutdown(gracePeriod: grace)
        server.waitUntilStopped()
    }

    /// Runs `body` on the server's first loop and waits for its result (nil if the loop does not answer).
    package func onLoop<T>(_ body: @escaping () -> T) -> T? {
        try? runOnLoop(loop, body)
    }
}

/// What a recording handler saw, in order (thread-safe).
package final class Recording: Sendable {
    package let events = Locked<[String]>([])
    package init() {}
    package func add(_ event: String) { events.update { $0.append(event) } }
    package var all: [String] { events.get() }
}

/// A stream handler that records its callbacks and can be told to misbehave.
package final class RecordingHandler: MinervaStreamHandler {
    package let recording: Recording
    package var onStarted: ((ServerStream) throws -> Void)?
    package var onStrings: (([ArraySlice<UInt8>], ServerStream) -> Void)?

    package init(_ recording: Recording) { self.recording = recording }

    package func streamStarted(_ stream: ServerStream) throws {
        recording.add("started")
        try onStarted?(stream)
    }

    package func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
        recording.add("strings " + strings.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ","))
        onStrings?(strings, stream)
    }

    package func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) {
        recording.add("reset \(reason) \(applicationLevel)")
    }

    package func transportCreated(_ info: TransportInfo, on stream: ServerStream) {
        recording.add("created \(info.transportNumber)")
    }

    package func transportDestroyed(_ info: TransportInfo, on stream: ServerStream) {
        recording.add("destroyed \(info.transportNumber)")
    }
}

/// A server on 127.0.0.1:0 with the Minerva endpoint at `/_minerva/` and, optionally, a socket listener on the same
/// loop; the endpoint's and the server's log lines go into `logs`.
package final class MinervaTestServer {
    package let http: TestServer
    package let endpoint: MinervaEndpoint
    package let recording = Recording()
    package let socketListener: MinervaSocketListener?
    /// The endpoint's and the HTTP server's log lines.
    package var logs: LogCapture { http.logs }
    package var port: Int { http.port }
    /// The socket listener's port (the server must have been made with `socket: true`).
    package var socketPort: Int { socketListener!.port }
    package var loop: MinervaEventLoop { http.loop }

    /// - Parameters:
    ///   - configure: endpoint settings.
    ///   - http: HTTP server settings.
    ///   - socket: whether to start a socket listener.
    ///   - logLevel: the level from which log lines go into `logs`.
    ///   - makeHandler: customises the recording handler of each new stream (on the loop).
    ///   - factory: replaces the recording handler entirely (the demo protocol, say).
    ///   - routes: more routes beside the endpoint.
    package init(
        configure: (inout MinervaEndpointConfiguration) -> Void = { _ in },
        http configureHTTP: (inout MinervaHTTPServerConfiguration) -> Void = { _ in }, socket: Bool = false,
        logLevel: Logger.Level = .critical, makeHandler: ((RecordingHandler) -> Void)? = nil,
        factory: MinervaEndpoint.HandlerFactory? = nil, routes: (MinervaHTTPRouter) -> Void = { _ in }
    ) throws {
        var configuration = MinervaEndpointConfiguration()
        configuration.servesClientScript = false  // most tests never ask for it; the client tests turn it on
        configure(&configuration)
        let logs = LogCapture()
        let recording = self.recording
        // The factory is @Sendable; the tests' hooks run on the server's one loop thread.
        nonisolated(unsafe) let makeHandler = makeHandler
        let endpoint = MinervaEndpoint(
            configuration: configuration, logger: logs.logger(label: "test.minerva", level: logLevel),
            handlerFactory: factory ?? { _, _ in
                let handler = RecordingHandler(recording)
                makeHandler?(handler)
                return handler
            })
        self.endpoint = endpoint
        let http = try TestServer(configureHTTP, logLevel: logLevel, logs: logs) { router in
            routes(router)
            endpoint.mount(on: router)
        }
        self.http = http
        if socket {
            let loop = http.loop
            let shared = LoopTransfer(value: endpoint)
            socketListener = try runOnLoop(loop) {
                try MinervaSocketListener(endpoint: shared.value, host: "127.0.0.1", port: 0, on: loop)
            }
        } else {
            socketListener = nil
        }
    }

    package func stop() {
        if let listener = socketListener {
            let shared = LoopTransfer(value: listener)
            _ = try? runOnLoop(loop) { shared.value.close() }
        }
        http.stop(grace: 0.2)
    }

    /// POSTs `body` to the endpoint's `io/` on a new connection and reads the response.
    package func post(_ body: String) throws -> HTTPReply {
        let client = try RawClient(port: port)
        try client.post(body)
        return try client.readResponse()
    }

    /// A client of the socket listener that has sent the int32 mode prefix.
    package func int32Client() throws -> RawClient {
        let client = try RawClient(port: socketPort)
        try client.sendModePrefix()
        return client
    }

    /// Runs `body` with the loop's engine on the loop thread and returns its result.
    package func withEngine<T>(_ body: @escaping (MinervaServerEngine) -> T) -> T? {
        let endpoint = LoopTransfer(value: self.endpoint)
        let loop = self.loop
        return http.onLoop { body(endpoint.value.engine(on: loop)) }
    }

    /// Runs `body` with the test stream on the loop thread (nil if it does not exist).
    package func withStream<T>(_ body: @escaping (ServerStream) -> T) -> T? {
        withEngine { engine -> T? in
            guard let stream = engine.stream(StreamID(testStreamID)!) else { return nil }
            return body(stream)
        } ?? nil
    }
}
