import MinervaServer
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO

/// A graceful server shutdown closes Minerva transports gently at once instead of holding long-polls for the
/// whole grace period.
@Suite("Minerva endpoint during a graceful shutdown", .serialized)
struct MinervaShutdownTests {
    @Test func anOpenLongPollIsClosedGentlyWhenTheServerDrains() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let creator = try RawClient(port: server.port)
        try creator.post(hh("eeds:null") + "\n")
        #expect(try creator.readResponse().text == ";)]}^\nC\n|-1A\n|-1T\n")

        let poll = try RawClient(port: server.port)
        try poll.post(hh("-new", "tnum:1", "eeds:null") + "\n")
        #expect(poll.receivesNothing(for: 0.3))  // a waiting long-poll

        let start = monotonicNow()
        server.http.server.shutdown(gracePeriod: 30)
        let reply = try poll.readResponse(timeout: 5)
        #expect(reply.text == ";)]}^\n|-1A\n|-1T\n")  // SACK + StreamStatus: the client reconnects at once
        #expect(reply.header("Content-Length") == "16")
        #expect(monotonicNow() - start < 5)
        #expect(server.recording.all.filter { $0.hasPrefix("reset") }.isEmpty)  // the stream lives on
    }
}
