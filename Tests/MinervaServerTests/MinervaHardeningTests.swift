// Minerva-side hardening over real sockets: the socket listener's connection limit (accepting pauses at
// maxSocketConnections and resumes when one closes, with a log line), a log line for every engine rejection (kill
// frames, refused streams) without a full stream id, and the configurable frame limit on sockets and HTTP.
import Glibc
import Logging
import MinervaCore
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer

/// A server with the Minerva endpoint and a socket listener whose log lines (all levels) go into `logs`.
private func loggedServer(_ configure: (inout MinervaEndpointConfiguration) -> Void = { _ in }) throws
    -> MinervaTestServer
{
    try MinervaTestServer(configure: configure, socket: true, logLevel: .trace)
}

extension MinervaTestServer {
    /// The socket listener's open connection count and pause state, read on the loop.
    fileprivate func listenerState() -> (open: Int, paused: Bool)? {
        let listener = socketListener!
        return http.onLoop { (listener.openConnections, listener.isPaused) }
    }
}

@Suite("Minerva hardening: socket connection limit, rejection log lines, frame limit", .serialized)
struct MinervaHardeningTests {
    @Test func theSocketConnectionLimitHasAnExplicitDefault() {
        #expect(MinervaEndpointConfiguration().maxSocketConnections == 4_096)
        #expect(ServerEngineConfiguration().maxFrameLength == 1_048_576)
    }

    @Test func acceptingPausesAtTheSocketLimitAndResumesWhenOneCloses() throws {
        let server = try loggedServer { $0.maxSocketConnections = 2 }
        defer { server.stop() }
        var first: RawClient? = try server.int32Client()
        let second = try server.int32Client()
        try first!.sendFrames([hs()])
        #expect(try first!.readFrames(1) == ["C"])
        #expect(waitUntil(3) { server.listenerState().map { $0.open == 2 && $0.paused } ?? false })
        #expect(server.logs.logs("socket connection limit reached"))
        #expect(server.logs.lines(containing: "socket connection limit reached").first?.level == .warning)
        // The third connection completes in the kernel's backlog but is not accepted: its policy request waits.
        let third = try RawClient(port: server.socketPort)
        try third.send(Array("<policy-file-request/>".utf8) + [0])
        #expect(third.receivesNothing(for: 0.3))
        first = nil  // closes: the server accepts the third
        #expect(try third.take(1, timeout: 3) == [0])
        #expect(waitUntil(3) { server.listenerState().map { $0.open == 2 && $0.paused } ?? false })
        // The second is still served.
        try second.sendFrames([hs("id:\"\(String(repeating: "w", count: 26))\"")])
        #expect(try second.readFrames(1) == ["C"])
    }

    @Test func theListenerAcceptsAgainAfterAllConnectionsClose() throws {
        let server = try loggedServer { $0.maxSocketConnections = 1 }
        defer { server.stop() }
        for _ in 0..<3 {
            var client: RawClient? = try RawClient(port: server.socketPort)
            try client!.send(Array("<policy-file-request/>".utf8) + [0])
            #expect(try client!.take(1, timeout: 3) == [0])
            client = nil
            #expect(waitUntil(3) { server.listenerState().map { $0.open == 0 && !$0.paused } ?? false })
        }
        // Rate-limited: 1 per 10 s.
        #expect(server.logs.lines(containing: "socket connection limit reached").count == 1)
    }

    @Test func aBadSocketFrameIsLoggedAsANotice() throws {
        let server = try loggedServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs(), "?"])
        #expect(try client.readFrames(5) == ["C", "|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y"])
        #expect(server.logs.logs("minerva rejected: invalid_frame_type_or_arguments"))
        let line = server.logs.lines(containing: "minerva rejected").first
        #expect(line?.level == .notice)
        #expect(line?.message.contains("stream=xxxx…(26)") == true)
        #expect(line?.message.contains("peer=127.0.0.1:") == true)
        #expect(line?.message.contains(testStreamID) == false)
    }

    @Test func streamAttachFailureIsLoggedWithoutTheStreamID() throws {
        let server = try loggedServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("-new") + "\n")
        #expect(try client.readResponse().text == ";)]}^\nstream_attach_failureK\n")
        #expect(server.logs.logs("minerva rejected: stream_attach_failure: hello for an unknown stream"))
        for line in server.logs.lines.get() {
            #expect(!line.message.contains(testStreamID))
        }
    }

    @Test func aRateLimitRefusalIsLoggedAsAWarningNamingTheLimit() throws {
        let server = try loggedServer {
            $0.engine.maxNewStreamsPerKeyPerSecond = 1
            $0.rateLimitsLoopback = true
        }
        defer { server.stop() }
        let first = try RawClient(port: server.port)
        try first.post(hh("-eeds") + "\n")
        #expect(try first.readResponse().text.hasPrefix(";)]}^\nC\n"))
        let second = try RawClient(port: server.port)
        try second.post(hh("-eeds", "id:\"\(String(repeating: "q", count: 26))\"") + "\n")
        #expect(try second.readResponse().text == ";)]}^\nstream_attach_failureK\n")
        #expect(server.logs.logs("limit=maxNewStreamsPerKeyPerSecond"))
        #expect(server.logs.lines(containing: "limit=maxNewStreamsPerKeyPerSecond").first?.level == .warning)
    }

    @Test func aSocketAbortedInModeDetectionIsLogged() throws {
        let server = try loggedServer { $0.socketModeTimeout = 0.3 }
        defer { server.stop() }
        let client = try RawClient(port: server.socketPort)
        try client.send("GET / HTTP/1.1\r\n")
        #expect(client.waitForClose(within: 3))
        #expect(server.logs.logs("socket aborted in mode detection: unrecognizedPrefix"))
        let silent = try RawClient(port: server.socketPort)
        #expect(silent.waitForClose(within: 3))
        #expect(server.logs.logs("socket aborted in mode detection: timeout"))
        #expect(server.logs.lines(containing: "socket aborted").allSatisfy { $0.level == .notice })
    }

    @Test("issue 12: after <int32/> the first frame must arrive whole within the detection deadline")
    func aSocketWithoutAWholeFirstFrameIsAborted() throws {
        let server = try loggedServer { $0.socketModeTimeout = 0.3 }
        defer { server.stop() }
        // Nothing, part of a length prefix, a whole prefix and part of the frame.
        for tail: [UInt8] in [[], [0, 0], [0, 0, 0, 40, 123, 34]] {
            let client = try RawClient(port: server.socketPort)
            try client.sendModePrefix()
            try client.send(tail)
            #expect(client.waitForClose(within: 3), "tail \(tail)")
            #expect(client.buffer.isEmpty)
        }
        #expect(server.logs.lines(containing: "socket aborted: no whole first frame in time").count == 3)
        // A whole hello in time is answered, and the connection outlives the deadline.
        let client = try RawClient(port: server.socketPort)
        try client.sendModePrefix()
        try client.sendFrames([hs()])
        #expect(try client.readFrames(1) == ["C"])
        #expect(client.receivesNothing(for: 0.6))
        #expect(server.withEngine { $0.streamCount } == 1)
    }

    @Test func rejectionLinesAreRateLimitedAndCountWhatTheyHoldBack() throws {
        let server = try loggedServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let requests = 200
        let start = monotonicNow()
        for _ in 0..<requests {
            try client.post("?\n")
            #expect(try client.readResponse().text == ";)]}^\ninvalid_frame_type_or_argumentsK\n")
        }
        let elapsed = monotonicNow() - start
        let logged = server.logs.lines(containing: "minerva rejected").count
        #expect(logged >= 20)
        #expect(logged <= 20 * (Int(elapsed.rounded(.up)) + 1))  // at most 20 per second
        guard logged < requests else { return }
        usleep(1_100_000)  // a new window: the next line counts the ones held back
        try client.post("?\n")
        _ = try client.readResponse()
        #expect(server.logs.logs("earlierRejectionsNotLogged="))
    }

    @Test func aSocketFrameOverTheConfiguredLimitIsFrameCorruption() throws {
        let server = try loggedServer { $0.engine.maxFrameLength = 1000 }
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs(), String(repeating: "a", count: 999) + " "])
        #expect(try client.readFrames(2) == ["C", "|0A"])
        try client.send([0, 0, 0x03, 0xE9])  // 1001
        #expect(try client.readFrames(4) == ["|0A", "|-1T", "frame_corruptionK", "Y"])
        #expect(server.logs.logs("minerva rejected: frame_corruption: length prefix 1001 over the frame limit of 1000"))
    }

    @Test func anHTTPLineOverTheConfiguredLimitIsFrameCorruption() throws {
        let server = try loggedServer { $0.engine.maxFrameLength = 1000 }
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("-eeds") + "\n" + String(repeating: "a", count: 1000) + " \n")
        #expect(try client.readResponse().text == ";)]}^\nframe_corruptionK\n")
        #expect(server.logs.logs("minerva rejected: frame_corruption: line of 1001 bytes"))
    }
}
