// The test servers, written once: an HTTP server on 127.0.0.1:0, the same with the Minerva endpoint mounted (and
// optionally a socket listener), and an event loop on its own thread. Stop each in a `defer`.
import Logging
import MinervaCore
import MinervaHTTP
import MinervaIO
import MinervaServer

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

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
    /// The server's first loop (the socket listener's).
    package var loop: MinervaEventLoop { http.loop }
    /// The loop that owns the test stream (`testStreamID`): its engine runs the stream.
    package var ownerLoop: MinervaEventLoop { ownerLoop(of: testStreamID) }
    /// How many loop threads the server runs.
    package var threads: Int { http.server.eventLoops.count }

    /// The loop threads of test servers unless a test says otherwise: `MINERVA_TEST_THREADS`, default 1.
    package static var defaultThreads: Int {
        guard let text = getenv("MINERVA_TEST_THREADS"), let count = Int(String(cString: text)), count >= 1 else {
            return 1
        }
        return count
    }

    /// The loop that owns the stream `id`.
    package func ownerLoop(of id: String) -> MinervaEventLoop {
        endpoint.ownerLoop(of: StreamID(id)!, from: loop)
    }

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
        threads: Int = MinervaTestServer.defaultThreads,
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
        let http = try TestServer(
            { configuration in
                configuration.threads = threads
                configureHTTP(&configuration)
            }, logLevel: logLevel, logs: logs
        ) { router in
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

    /// Runs `body` with the engine of the loop owning the test stream (or of `loop`), on that loop's thread, and
    /// returns its result.
    package func withEngine<T>(on loop: MinervaEventLoop? = nil, _ body: @escaping (MinervaServerEngine) -> T) -> T? {
        let endpoint = LoopTransfer(value: self.endpoint)
        let loop = loop ?? ownerLoop
        return try? runOnLoop(loop) { body(endpoint.value.engine(on: loop)) }
    }

    /// The sum of `count` over every loop's engine (each read on its own loop); -1 if a loop does not answer.
    package func total(_ count: @escaping (MinervaServerEngine, MinervaEventLoop) -> Int) -> Int {
        var sum = 0
        for loop in http.server.eventLoops {
            guard let value = withEngine(on: loop, { count($0, loop) }) else { return -1 }
            sum += value
        }
        return sum
    }

    /// The sum of an engine property over every loop.
    package func total(_ count: KeyPath<MinervaServerEngine, Int> & Sendable) -> Int {
        total { engine, _ in engine[keyPath: count] }
    }

    /// Runs `body` with the test stream on the loop thread (nil if it does not exist).
    package func withStream<T>(_ body: @escaping (ServerStream) -> T) -> T? {
        withEngine { engine -> T? in
            guard let stream = engine.stream(StreamID(testStreamID)!) else { return nil }
            return body(stream)
        } ?? nil
    }
}

/// A `/loop` route answering the index of the loop that served the request (so a test can pick a connection on a
/// given loop with ``connection(onLoop:of:)``).
package func loopRoute(_ router: MinervaHTTPRouter) {
    router.route("/loop") { _, response in response.send(status: 200, body: "\(response.eventLoop.indexInGroup)") }
}

/// A keep-alive connection that the server serves on loop `index` (new connections until the kernel picks it); the
/// server needs ``loopRoute(_:)``.
package func connection(onLoop index: Int, of server: MinervaTestServer) throws -> RawClient {
    for _ in 0..<200 {
        let client = try RawClient(port: server.port)
        if try client.request(get("/loop")).text == "\(index)" { return client }
        client.abort()
    }
    throw TestError("no connection landed on loop \(index)")
}
