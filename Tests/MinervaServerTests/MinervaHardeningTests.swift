// Minerva-side hardening over real sockets: the socket listener's connection limit (accepting pauses at
// maxSocketConnections and resumes when one closes, with a log line), a log line for every engine rejection (kill
// frames, refused streams) without a full stream id, and the configurable frame limit on sockets and HTTP.
import Glibc
import Logging
import MinervaCore
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer

/// A server with the Minerva endpoint and a socket listener whose log goes into `logs`.
private final class LoggedMinervaServer {
    let logs = LogCapture()
    let endpoint: MinervaEndpoint
    let server: TestServer
    let socketListener: MinervaSocketListener
    var port: Int { server.port }
    var socketPort: Int { socketListener.port }

    init(_ configure: (inout MinervaEndpointConfiguration) -> Void = { _ in }) throws {
        var configuration = MinervaEndpointConfiguration()
        configuration.clientScriptPath = nil
        configure(&configuration)
        let endpoint = MinervaEndpoint(configuration: configuration, logger: logs.logger(label: "minerva")) { _, _ in
            RecordingHandler(Recording())
        }
        self.endpoint = endpoint
        server = try TestServer(routes: { endpoint.mount(on: $0) })
        socketListener = try MinervaSocketListener(
            endpoint: endpoint, host: "127.0.0.1", port: 0, on: server.server.eventLoops[0])
    }

    func stop() {
        socketListener.close()
        server.stop(grace: 0.2)
    }

    /// The captured lines (level and message) containing `text`.
    func lines(containing text: String) -> [(level: Logger.Level, message: String)] {
        logs.lines.get().filter { $0.message.contains(text) }
    }

    /// Whether a line containing `text` is logged within `seconds`.
    func logs(_ text: String, within seconds: Double = 3) -> Bool {
        waitUntil(seconds) { !lines(containing: text).isEmpty }
    }

    /// The listener's open connection count and pause state, read on the loop.
    func listenerState() -> (open: Int, paused: Bool)? {
        let listener = socketListener
        return server.onLoop { (listener.openConnections, listener.isPaused) }
    }
}

/// An int32-mode client of the server's socket listener.
private func int32Client(_ server: LoggedMinervaServer) throws -> RawClient {
    let client = try RawClient(port: server.socketPort)
    try client.sendModePrefix()
    return client
}

@Suite("Minerva hardening: socket connection limit, rejection log lines, frame limit", .serialized)
struct MinervaHardeningTests {
    @Test func theSocketConnectionLimitHasAnExplicitDefault() {
        #expect(MinervaEndpointConfiguration().maxSocketConnections == 4_096)
        #expect(ServerEngineConfiguration().maxFrameLength == 1_048_576)
    }

    @Test func acceptingPausesAtTheSocketLimitAndResumesWhenOneCloses() throws {
        let server = try LoggedMinervaServer { $0.maxSocketConnections = 2 }
        defer { server.stop() }
        var first: RawClient? = try int32Client(server)
        let second = try int32Client(server)
        try first!.sendFrames([hello(.socket)])
        #expect(try first!.readFrames(1) == ["C"])
        #expect(waitUntil(3) { server.listenerState().map { $0.open == 2 && $0.paused } ?? false })
        #expect(server.logs("socket connection limit reached"))
        #expect(server.lines(containing: "socket connection limit reached").first?.level == .warning)
        // The third connection completes in the kernel's backlog but is not accepted: its policy request waits.
        let third = try RawClient(port: server.socketPort)
        try third.send(Array("<policy-file-request/>".utf8) + [0])
        #expect(third.receivesNothing(for: 0.3))
        first = nil  // closes: the server accepts the third
        #expect(try third.take(1, timeout: 3) == [0])
        #expect(waitUntil(3) { server.listenerState().map { $0.open == 2 && $0.paused } ?? false })
        // The second is still served.
        try second.sendFrames([hello(.socket, "id:\"\(String(repeating: "w", count: 26))\"")])
        #expect(try second.readFrames(1) == ["C"])
    }

    @Test func theListenerAcceptsAgainAfterAllConnectionsClose() throws {
        let server = try LoggedMinervaServer { $0.maxSocketConnections = 1 }
        defer { server.stop() }
        for _ in 0..<3 {
            var client: RawClient? = try RawClient(port: server.socketPort)
            try client!.send(Array("<policy-file-request/>".utf8) + [0])
            #expect(try client!.take(1, timeout: 3) == [0])
            client = nil
            #expect(waitUntil(3) { server.listenerState().map { $0.open == 0 && !$0.paused } ?? false })
        }
        #expect(server.lines(containing: "socket connection limit reached").count == 1)  // rate-limited: 1 per 10 s
    }

    @Test func aBadSocketFrameIsLoggedAsANotice() throws {
        let server = try LoggedMinervaServer()
        defer { server.stop() }
        let client = try int32Client(server)
        try client.sendFrames([hello(.socket), "?"])
        #expect(try client.readFrames(5) == ["C", "|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y"])
        #expect(server.logs("minerva rejected: invalid_frame_type_or_arguments"))
        let line = server.lines(containing: "minerva rejected").first
        #expect(line?.level == .notice)
        #expect(line?.message.contains("stream=xxxx…(26)") == true)
        #expect(line?.message.contains("peer=127.0.0.1:") == true)
        #expect(line?.message.contains(testStreamID) == false)
    }

    @Test func streamAttachFailureIsLoggedWithoutTheStreamID() throws {
        let server = try LoggedMinervaServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hello(.http, "-new") + "\n")
        #expect(try client.readResponse().text == ";)]}^\nstream_attach_failureK\n")
        #expect(server.logs("minerva rejected: stream_attach_failure: hello for an unknown stream"))
        for line in server.logs.lines.get() {
            #expect(!line.message.contains(testStreamID))
        }
    }

    @Test func aRateLimitRefusalIsLoggedAsAWarningNamingTheLimit() throws {
        let server = try LoggedMinervaServer { $0.engine.maxNewStreamsPerKeyPerSecond = 1 }
        defer { server.stop() }
        let first = try RawClient(port: server.port)
        try first.post(hello(.http, "-eeds") + "\n")
        #expect(try first.readResponse().text.hasPrefix(";)]}^\nC\n"))
        let second = try RawClient(port: server.port)
        try second.post(hello(.http, "-eeds", "id:\"\(String(repeating: "q", count: 26))\"") + "\n")
        #expect(try second.readResponse().text == ";)]}^\nstream_attach_failureK\n")
        #expect(server.logs("limit=maxNewStreamsPerKeyPerSecond"))
        #expect(server.lines(containing: "limit=maxNewStreamsPerKeyPerSecond").first?.level == .warning)
    }

    @Test func aSocketAbortedInModeDetectionIsLogged() throws {
        let server = try LoggedMinervaServer { $0.socketModeTimeout = 0.3 }
        defer { server.stop() }
        let client = try RawClient(port: server.socketPort)
        try client.send("GET / HTTP/1.1\r\n")
        #expect(client.closedByServer(within: 3))
        #expect(server.logs("socket aborted in mode detection: unrecognizedPrefix"))
        let silent = try RawClient(port: server.socketPort)
        #expect(silent.closedByServer(within: 3))
        #expect(server.logs("socket aborted in mode detection: timeout"))
        #expect(server.lines(containing: "socket aborted").allSatisfy { $0.level == .notice })
    }

    @Test func rejectionLinesAreRateLimitedAndCountWhatTheyHoldBack() throws {
        let server = try LoggedMinervaServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let requests = 200
        let start = monotonicNow()
        for _ in 0..<requests {
            try client.post("?\n")
            #expect(try client.readResponse().text == ";)]}^\ninvalid_frame_type_or_argumentsK\n")
        }
        let elapsed = monotonicNow() - start
        let logged = server.lines(containing: "minerva rejected").count
        #expect(logged >= 20)
        #expect(logged <= 20 * (Int(elapsed.rounded(.up)) + 1))  // at most 20 per second
        guard logged < requests else { return }
        usleep(1_100_000)  // a new window: the next line counts the ones held back
        try client.post("?\n")
        _ = try client.readResponse()
        #expect(server.logs("earlierRejectionsNotLogged="))
    }

    @Test func aSocketFrameOverTheConfiguredLimitIsFrameCorruption() throws {
        let server = try LoggedMinervaServer { $0.engine.maxFrameLength = 1000 }
        defer { server.stop() }
        let client = try int32Client(server)
        try client.sendFrames([hello(.socket), String(repeating: "a", count: 999) + " "])
        #expect(try client.readFrames(2) == ["C", "|0A"])
        try client.send([0, 0, 0x03, 0xE9])  // 1001
        #expect(try client.readFrames(4) == ["|0A", "|-1T", "frame_corruptionK", "Y"])
        #expect(server.logs("minerva rejected: frame_corruption: length prefix 1001 over the frame limit of 1000"))
    }

    @Test func anHTTPLineOverTheConfiguredLimitIsFrameCorruption() throws {
        let server = try LoggedMinervaServer { $0.engine.maxFrameLength = 1000 }
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hello(.http, "-eeds") + "\n" + String(repeating: "a", count: 1000) + " \n")
        #expect(try client.readResponse().text == ";)]}^\nframe_corruptionK\n")
        #expect(server.logs("minerva rejected: frame_corruption: line of 1001 bytes"))
    }
}
