// The demo protocol (issue 4, item 4) over real sockets: socket primaries and an HTTP long-poll round trip.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer
@testable import minerva_demo

private func demoServer() throws -> MinervaTestServer {
    let demo = MinervaDemoApplication()
    return try MinervaTestServer(socket: true, factory: demo.handlerFactory)
}

/// A socket primary of stream `id` on the demo server, past its `C`.
private func demoStream(_ server: MinervaTestServer, id: String = testStreamID) throws -> RawClient {
    let client = try RawClient(port: server.socketPort)
    try client.sendModePrefix()
    try client.sendFrames([hs("eeds:null", "id:\"\(id)\"")])
    #expect(try client.readFrames(1) == ["C"])
    return client
}

@Suite("Minerva demo protocol", .serialized)
struct MinervaDemoProtocolTests {
    @Test("echo:, echo_twice: and an unknown command")
    func echo() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try demoStream(server)
        try client.sendFrames(["echo:hello world "])
        #expect(try client.readFrames(3) == ["|0A", "0N", "hello world "])
        try client.sendFrames(["echo_twice:again "])
        #expect(try client.readFrames(3) == ["|1A", "again ", "again "])
        try client.sendFrames(["what? "])
        #expect(try client.readFrames(2) == ["|2A", "unknown_message_type "])
        try client.sendFrames(["echo: "])
        #expect(try client.readFrames(2) == ["|3A", " "])
    }

    @Test("reset_me: resets with the reason; string_then_reset_me: loses its string to the same-turn reset")
    func resets() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try demoStream(server)
        try client.sendFrames(["reset_me:bye now "])
        #expect(try client.readFrames(3) == ["|0A", "bye now|1!", "Y"])
        #expect(server.total(\.streamCount) == 0)
        let other = try demoStream(server, id: "yyyyyyyyyyyyyyyyyyyyyyyyyy")
        try other.sendFrames(["string_then_reset_me:R "])
        #expect(try other.readFrames(3) == ["|0A", "R|1!", "Y"])
    }

    @Test("send_demo: starting_send_demo, then i strings of 5i tokens #i every 0.2 s")
    func sendDemo() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try demoStream(server)
        try client.sendFrames(["send_demo "])
        #expect(try client.readFrames(3) == ["|0A", "0N", "starting_send_demo "])
        let start = monotonicNow()
        #expect(try client.readFrames(1) == [Array(repeating: "#1", count: 5).joined(separator: " ") + " "])
        let two = Array(repeating: "#2", count: 10).joined(separator: " ") + " "
        #expect(try client.readFrames(2) == [two, two])
        #expect(monotonicNow() - start >= 0.3)
        var count = 3
        for i in 3...20 {
            let line = Array(repeating: "#\(i)", count: 5 * i).joined(separator: " ") + " "
            #expect(try client.readFrames(i, timeout: 3) == Array(repeating: line, count: i))
            count += i
        }
        #expect(count == 210)
    }

    @Test("begin_chat and broadcast: every member gets TEXT|sender|T; a reset stream leaves the room")
    func chat() throws {
        let server = try demoServer()
        defer { server.stop() }
        let first = try demoStream(server)
        let second = try demoStream(server, id: "yyyyyyyyyyyyyyyyyyyyyyyyyy")
        try first.sendFrames(["begin_chat "])
        #expect(try first.readFrames(1) == ["|0A"])
        try second.sendFrames(["begin_chat ", "broadcast:hi all "])
        #expect(try second.readFrames(3) == ["|1A", "0N", "TEXT|1|hi all "])
        #expect(try first.readFrames(2) == ["0N", "TEXT|1|hi all "])
        try first.sendFrames(["reset_me:gone "])
        #expect(try first.readFrames(3) == ["|1A", "gone|1!", "Y"])
        try second.sendFrames(["broadcast:anyone? "])
        #expect(try second.readFrames(2) == ["|2A", "TEXT|1|anyone? "])
        #expect(first.receivesNothing(for: 0.1) || first.sawEOF)
    }

    @Test("an echo round trip over HTTP the way a browser does it: a POST with hello and echo:, then a long-poll")
    func httpEcho() throws {
        let server = try demoServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.post(hh("eeds:null") + "\necho:ping \n")
        let first = try client.readResponse()
        #expect(first.text == ";)]}^\nC\n|0A\n|0A\n|-1T\n")
        try client.post(hh("-new", "eeds:null", "seenack:\"|0\"", "tnum:1") + "\n")
        let second = try client.readResponse()
        #expect(second.text == ";)]}^\n0N\nping \n|0A\n|-1T\n")
        #expect(second.header("Content-Length") == "\(second.body.count)")
    }
}
