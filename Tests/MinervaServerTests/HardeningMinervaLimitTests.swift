// The engine limits of ServerEngineConfiguration, set through MinervaEndpointConfiguration and checked over real
// sockets: MinervaCoreTests checks each in the engine alone; these check that the endpoint passes them on and that
// each rejection reaches the client as the protocol's answer. The per-address rate is in MinervaRateLimitTests.
// Public API only.
import MinervaCore
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer

/// A stream id of 26 copies of `letter`.
private func streamID(_ letter: Character) -> String { String(repeating: letter, count: 26) }

@Suite("Hardening: Minerva limits over sockets", .serialized)
struct HardeningMinervaLimitTests {
    @Test func maxStreamsRefusesANewStreamWithStreamAttachFailure() throws {
        let server = try MinervaTestServer(configure: { $0.engine.maxStreams = 1 })
        defer { server.stop() }
        let first = try RawClient(port: server.port)
        try first.post(hh("eeds:null") + "\n")
        #expect(try first.readResponse().text == ";)]}^\nC\n|-1A\n|-1T\n")
        let second = try RawClient(port: server.port)
        try second.post(hh("eeds:null", "id:\"\(streamID("y"))\"") + "\n")
        #expect(try second.readResponse().text == ";)]}^\nstream_attach_failureK\n")
        #expect(server.total(\.streamCount) == 1)
    }

    @Test func maxStreamsCountsTheStreamsOfEveryLoopTogether() throws {
        let server = try MinervaTestServer(configure: { $0.engine.maxStreams = 2 }, threads: 2)
        defer { server.stop() }
        // Three ids owned by the same loop would pass a per-loop limit of 2 on one loop and fail on the other; pick two
        // ids of one loop and one of the other, so that a per-loop count would accept all three.
        let letters: [Character] = ["a", "b", "c", "d", "e", "f", "g", "h"]
        let id = { (letter: Character) in String(repeating: "a", count: 25) + String(letter) }
        let loops = letters.map { ObjectIdentifier(server.ownerLoop(of: id($0))) }
        let a = letters[0]
        let other = letters[loops.firstIndex { $0 != loops[0] }!]
        let same = letters[loops.dropFirst().firstIndex { $0 == loops[0] }!]
        for (letter, expected) in [(a, "C"), (other, "C"), (same, "stream_attach_failureK")] {
            let client = try RawClient(port: server.port)
            try client.post(hh("eeds:null", "id:\"\(id(letter))\"") + "\n")
            #expect(try client.readResponse().text.contains(expected))
        }
        #expect(server.total(\.streamCount) == 2)
        #expect(server.endpoint.streamBudget.inUse == 2)
    }

    @Test func theAuthorizerSeesTheCookieAndRefusesWithAReason() throws {
        let server = try MinervaTestServer(configure: {
            $0.authorizeStream = { request in
                request.header("cookie") == "session=ok" ? nil : "login required"
            }
        })
        defer { server.stop() }
        let refused = try RawClient(port: server.port)
        try refused.post(hh("eeds:null") + "\n")
        #expect(try refused.readResponse().text == ";)]}^\nlogin required|1!\n")
        #expect(server.total(\.streamCount) == 0)
        let allowed = try RawClient(port: server.port)
        try allowed.post(hh("eeds:null") + "\n", extraHeaders: "Cookie: session=ok\r\n")
        #expect(try allowed.readResponse().text.hasPrefix(";)]}^\nC\n"))
        #expect(server.total(\.streamCount) == 1)
    }

    @Test func maxTransportsPerStreamRefusesOneMore() throws {
        let server = try MinervaTestServer(configure: { $0.engine.maxTransportsPerStream = 1 })
        defer { server.stop() }
        let first = try RawClient(port: server.port)
        try first.post(hh("eeds:null") + "\n")
        _ = try first.readResponse()
        let waiting = try RawClient(port: server.port)  // a long-poll primary: attached while it waits
        try waiting.post(hh("-new", "tnum:1", "eeds:null") + "\n")
        #expect(waiting.receivesNothing(for: 0.1))
        let extra = try RawClient(port: server.port)
        try extra.post(hh("-new", "tnum:2", "-eeds") + "\n")
        #expect(try extra.readResponse().text.hasSuffix("invalid_frame_type_or_argumentsK\n"))
        #expect(server.withStream { $0.transportCount } == 1)
    }

    @Test(arguments: [
        // String 0 is missing, so strings 1... stay undelivered; the third one overflows a 2-string window.
        (
            ReceiveWindowLimits(maxUndeliveredStrings: 2, maxUndeliveredBytes: 1_048_576, overheadPerString: 30),
            "a \nb \nc \n"
        ),
        // One string of 80 bytes + 30 overhead overflows a 100-byte window.
        (
            ReceiveWindowLimits(maxUndeliveredStrings: 50, maxUndeliveredBytes: 100, overheadPerString: 30),
            String(repeating: "x", count: 80) + " \n"
        ),
    ])
    func receiveWindowOverflowKillsTheTransport(limits: ReceiveWindowLimits, strings: String) throws {
        let server = try MinervaTestServer(configure: { $0.engine.receiveWindow = limits })
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("-eeds") + "\n1N\n" + strings)
        #expect(try client.readResponse().text.hasSuffix("rwin_overflowK\n"))
        #expect(!server.recording.all.contains { $0.hasPrefix("strings") })
    }

    @Test func queuedBytesLimitResetsTheStream() throws {
        let server = try MinervaTestServer(configure: { $0.engine.maxQueuedBytesPerStream = 10 })
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("-eeds") + "\n")  // a stream with no primary: sends queue up
        _ = try client.readResponse()
        let thrown = server.withStream { stream -> Bool in
            do {
                try stream.send("01234567890")
                return false
            } catch {
                return error as? MinervaStreamError == .sendQueueFull
            }
        }
        #expect(thrown == true)
        #expect(waitUntil(2) { server.recording.all.contains("reset send queue limit exceeded false") })
        #expect(server.total(\.streamCount) == 0)
    }

    @Test func aBodyOverTheHTTPLimitIsA413NotAKillFrame() throws {
        let server = try MinervaTestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let body = Array((hh("-eeds") + "\n").utf8) + [UInt8](repeating: 0x20, count: 2 * 1_048_576 + 1)
        try? client.post(body)
        #expect(try client.readResponse().status == 413)
        #expect(server.total(\.transportCount) == 0)
    }
}
