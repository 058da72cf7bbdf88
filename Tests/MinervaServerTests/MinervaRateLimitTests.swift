import MinervaCore
import MinervaServer
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

/// Issue 4 item 2: new streams per remote address per second, over real sockets.
@Suite struct MinervaRateLimitTests {
    /// A `new` long-poll hello for a fresh stream id (26 characters, unique per `index`).
    private func streamID(_ index: Int) -> String {
        let suffix = String(index)
        return String(repeating: "r", count: 26 - suffix.count) + suffix
    }

    private func newStreamBody(_ index: Int) -> String {
        let id = streamID(index)
        return hh("eeds:null", "id:\"\(id)\"") + "\n"
    }

    @Test func newStreamsBeyondThePerAddressRateGetStreamAttachFailure() throws {
        let server = try MinervaTestServer(configure: {
            $0.engine.maxNewStreamsPerKeyPerSecond = 3
            $0.rateLimitsLoopback = true
        })
        defer { server.stop() }
        // The limit is each loop's engine's: with several loops, use streams that one loop owns.
        let owned = (0..<100).filter { server.ownerLoop(of: streamID($0)) === server.loop }.prefix(5)
        var replies: [String] = []
        for index in owned {
            let client = try RawClient(port: server.port)
            try client.post(newStreamBody(index))
            replies.append(try client.readResponse().text)
        }
        let created = replies.filter { $0 == ";)]}^\nC\n|-1A\n|-1T\n" }.count
        let refused = replies.filter { $0 == ";)]}^\nstream_attach_failureK\n" }.count
        // A token bucket of one second's worth: 3 streams now, and at most one more if a second ticked over.
        #expect(created >= 3 && created <= 4)
        #expect(created + refused == 5)
        #expect(server.total(\.streamCount) == created)
    }

    @Test func theDefaultLimitIsOnButSparesLoopbackPeers() throws {
        #expect(ServerEngineConfiguration().maxNewStreamsPerKeyPerSecond == 100)
        let server = try MinervaTestServer()
        defer { server.stop() }
        for index in 0..<150 {
            let client = try RawClient(port: server.port)
            try client.post(newStreamBody(index))
            #expect(try client.readResponse().text == ";)]}^\nC\n|-1A\n|-1T\n")
        }
    }

    @Test func behindATrustedProxyEachForwardedClientHasItsOwnLimit() throws {
        let server = try MinervaTestServer(configure: {
            $0.engine.maxNewStreamsPerKeyPerSecond = 2
            $0.trustedProxies = ["127.0.0.1"]
        })
        defer { server.stop() }
        let owned = (0..<200).filter { server.ownerLoop(of: streamID($0)) === server.loop }
        func create(_ index: Int, forwardedFor: String) throws -> Bool {
            let client = try RawClient(port: server.port)
            try client.post(newStreamBody(index), extraHeaders: "X-Forwarded-For: \(forwardedFor)\r\n")
            return try client.readResponse().text.hasPrefix(";)]}^\nC\n")
        }
        // The right-most address that is not a trusted proxy is the client; a spoofed left part does not count.
        let first = try (0..<4).map { try create(owned[$0], forwardedFor: "9.9.9.\($0), 10.0.0.1") }
        #expect(first.filter { $0 }.count <= 3)
        #expect(first.filter { !$0 }.count >= 1)
        #expect(try create(owned[4], forwardedFor: "10.0.0.2, 127.0.0.1"))
    }

    @Test func withoutALimitEveryNewStreamIsCreated() throws {
        let server = try MinervaTestServer(configure: {
            $0.engine.maxNewStreamsPerKeyPerSecond = 0
            $0.rateLimitsLoopback = true
        })
        defer { server.stop() }
        for index in 0..<5 {
            let client = try RawClient(port: server.port)
            try client.post(newStreamBody(index))
            #expect(try client.readResponse().text == ";)]}^\nC\n|-1A\n|-1T\n")
        }
    }
}
