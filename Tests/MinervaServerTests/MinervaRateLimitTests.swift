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
        let server = try MinervaTestServer(configure: { $0.engine.maxNewStreamsPerKeyPerSecond = 3 })
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

    @Test func withoutALimitEveryNewStreamIsCreated() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        for index in 0..<5 {
            let client = try RawClient(port: server.port)
            try client.post(newStreamBody(index))
            #expect(try client.readResponse().text == ";)]}^\nC\n|-1A\n|-1T\n")
        }
    }
}
