// Issue 9 item 1: N loops, each stream owned by one loop (chosen from its id). Requests and sockets that land on
// another loop are handed to the owner as messages; the owner's engine produces every byte and runs the handler.
import Glibc
import MinervaCore
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer
@testable import minerva_demo

/// A 26-character stream id made of `prefix` and `index`.
private func multiLoopID(_ prefix: String, _ index: Int) -> String {
    let suffix = String(index)
    return prefix + String(repeating: "m", count: 26 - prefix.count - suffix.count) + suffix
}

/// `count` stream ids owned by loop `owner` of a `loops`-loop server.
private func ids(ownedBy owner: Int, of loops: Int, count: Int, prefix: String) -> [String] {
    (0..<10_000).lazy.map { multiLoopID(prefix, $0) }
        .filter { MinervaEndpoint.ownerIndex(of: StreamID($0)!, loopCount: loops) == owner }
        .prefix(count).map { $0 }
}

/// A demo server (socket listener on loop 0) with two loops and a `/loop` route answering the index of the loop
/// that served the request (so a test can pick a connection on a given loop).
private func twoLoopDemoServer() throws -> MinervaTestServer {
    let demo = MinervaDemoApplication()
    return try MinervaTestServer(socket: true, threads: 2, factory: demo.handlerFactory, routes: loopRoute)
}

/// A socket primary of stream `id` on the demo server, past its `C`.
private func socketStream(_ server: MinervaTestServer, id: String) throws -> RawClient {
    let client = try RawClient(port: server.socketPort)
    try client.sendModePrefix()
    try client.sendFrames([hs("eeds:null", "id:\"\(id)\"")])
    #expect(try client.readFrames(1) == ["C"])
    return client
}

/// Counts what the owner-checking handler saw, across threads.
private final class OwnerChecks: Sendable {
    let callbacks = Locked(0)
    let offOwner = Locked<[String]>([])
    let startedOn = Locked<[Int: Int]>([:])
}

/// Echoes every string, checking on each callback that it runs on the stream's owner loop.
private final class OwnerCheckingEcho: MinervaStreamHandler {
    let loop: MinervaEventLoop
    let checks: OwnerChecks

    init(loop: MinervaEventLoop, checks: OwnerChecks) {
        self.loop = loop
        self.checks = checks
    }

    private func check(_ stream: ServerStream, _ what: String) {
        checks.callbacks.update { $0 += 1 }
        let owner = MinervaEndpoint.ownerIndex(of: stream.streamID, loopCount: loop.group?.count ?? 1)
        if !loop.inEventLoop || loop.indexInGroup != owner {
            checks.offOwner.update { $0.append(what) }
        }
    }

    func streamStarted(_ stream: ServerStream) throws {
        check(stream, "started")
        checks.startedOn.update { $0[loop.indexInGroup, default: 0] += 1 }
    }

    func stringsReceived(_ strings: [ArraySlice<UInt8>], on stream: ServerStream) {
        check(stream, "strings")
        for string in strings { try? stream.send(string) }
    }

    func streamReset(_ stream: ServerStream, reason: String, applicationLevel: Bool) { check(stream, "reset") }
}

/// One echo round trip of stream `id` over fresh connections: a POST carrying `echo:<text>` (string number
/// `round`), then long-polls until the echo comes back. Returns what the stream received.
private func echoRoundTrip(_ server: MinervaTestServer, id: String, round: Int, tnum: inout Int) throws -> String {
    var edits = ["eeds:null", "id:\"\(id)\"", "tnum:\(tnum)"]
    if round > 0 { edits += ["-new", "sack:\"|\(round - 1)\""] }
    tnum += 1
    let text = "echo:\(id)-\(round) "
    var received = try server.post(hsList(["format:2", "ming:0"] + edits) + "\n\(round)N\n\(text)\n").text
    var polls = 0
    while !received.contains("\n\(text)\n") && polls < 3 {
        polls += 1
        let poll =
            ["-new", "eeds:null", "id:\"\(id)\"", "tnum:\(tnum)"] + (round > 0 ? ["sack:\"|\(round - 1)\""] : [])
        tnum += 1
        received += try server.post(hsList(["format:2", "ming:0"] + poll) + "\n").text
    }
    return received
}

@Suite("Minerva with several loops: streams owned by one loop each", .serialized)
struct MinervaMultiLoopTests {
    @Test("the owner comes from the id alone: FNV-1a modulo the loop count, one loop owns everything")
    func ownerFromID() throws {
        let id = StreamID(testStreamID)!
        #expect(MinervaEndpoint.ownerIndex(of: id, loopCount: 1) == 0)
        let spread = (0..<1000).map {
            MinervaEndpoint.ownerIndex(of: StreamID(multiLoopID("o", $0))!, loopCount: 2)
        }
        #expect(spread.allSatisfy { $0 == 0 || $0 == 1 })
        #expect(spread.filter { $0 == 0 }.count > 300 && spread.filter { $0 == 1 }.count > 300)
        // Deterministic: the same on every loop and in every process.
        #expect(
            spread == (0..<1000).map { MinervaEndpoint.ownerIndex(of: StreamID(multiLoopID("o", $0))!, loopCount: 2) })
    }

    @Test("2 loops: 50 streams x 3 echo round trips over fresh connections; handlers run on their owner loop")
    func manyStreamsEcho() throws {
        let checks = OwnerChecks()
        let server = try MinervaTestServer(
            threads: 2, factory: { _, loop in OwnerCheckingEcho(loop: loop, checks: checks) })
        defer { server.stop() }
        #expect(server.threads == 2)
        let streams = (0..<50).map { multiLoopID("e", $0) }
        var tnums = Array(repeating: 0, count: streams.count)
        for round in 0..<3 {
            for (index, id) in streams.enumerated() {
                let received = try echoRoundTrip(server, id: id, round: round, tnum: &tnums[index])
                #expect(received.contains("\necho:\(id)-\(round) \n"), "\(id) round \(round): \(received)")
                #expect(!received.contains("stream_attach_failure"), "\(id) round \(round): \(received)")
            }
        }
        #expect(server.total(\.streamCount) == 50)
        let perLoop = server.http.server.eventLoops.map { loop in server.withEngine(on: loop) { $0.streamCount } }
        #expect(perLoop.allSatisfy { ($0 ?? 0) > 0 }, "streams per loop: \(perLoop)")
        #expect(checks.startedOn.get().values.reduce(0, +) == 50)
        #expect(checks.offOwner.get().isEmpty)
        #expect(checks.callbacks.get() >= 50 * 4)
        #expect(server.logs.messages(containing: "stream_attach_failure").isEmpty)
    }

    @Test("2 loops: a POST landing on the other loop is answered by the owner (both directions)")
    func postOnEachLoop() throws {
        let checks = OwnerChecks()
        let server = try MinervaTestServer(
            threads: 2, factory: { _, loop in OwnerCheckingEcho(loop: loop, checks: checks) }, routes: loopRoute)
        defer { server.stop() }
        for owner in 0..<2 {
            let id = ids(ownedBy: owner, of: 2, count: 1, prefix: "p\(owner)")[0]
            for via in 0..<2 {
                let client = try connection(onLoop: via, of: server)
                let tnum = via * 2
                var edits = ["eeds:null", "id:\"\(id)\"", "tnum:\(tnum)"]
                if via > 0 { edits += ["-new", "sack:\"|0\""] }
                // CRLF line ends (tolerated, PROTOCOL.md 3.1) on the second request: the owner is still found.
                let end = via == 0 ? "\n" : "\r\n"
                try client.post(hsList(["format:2", "ming:1"] + edits) + "\(end)\(via)N\(end)hello\(via) \(end)")
                let head = try client.readHead()
                #expect(head.status == 200)
                let prefix = via == 0 ? ";)]}^\nC\n" : ";)]}^\n|0A\n"
                let expected = prefix + "|\(via)A\n\(via)N\nhello\(via) \n"
                let got = try client.readChunks(totalling: expected.utf8.count)
                #expect(got == expected, "owner \(owner) via \(via): \(got.debugDescription)")
                client.abort()
            }
        }
        #expect(checks.offOwner.get().isEmpty)
        #expect(checks.startedOn.get() == [0: 1, 1: 1])
    }

    @Test("2 loops: a client aborting a proxied held long-poll detaches it on the owner; nothing is lost")
    func abortedProxiedLongPoll() throws {
        let server = try MinervaTestServer(threads: 2, routes: loopRoute)
        defer { server.stop() }
        let owner = server.ownerLoop.indexInGroup
        let created = try server.post(hh("eeds:null") + "\n")
        #expect(created.text == ";)]}^\nC\n|-1A\n|-1T\n")
        // A held long-poll on a connection of the loop that does not own the stream.
        let client = try connection(onLoop: 1 - owner, of: server)
        try client.post(hh("-new", "eeds:null", "tnum:1") + "\n")
        #expect(client.receivesNothing(for: 0.2))
        #expect(server.withStream { $0.transportCount } == 1)
        client.abort()
        #expect(waitUntil(5) { server.withStream { $0.transportCount } == 0 })
        #expect(waitUntil(5) { server.recording.all.contains("destroyed 1") })
        // Strings sent while no transport is attached wait for the next primary, on any loop.
        _ = server.withStream { stream in
            try? stream.send("while0")
            try? stream.send("while1")
        }
        let next = try connection(onLoop: 1 - owner, of: server)
        try next.post(hh("-new", "eeds:null", "tnum:2") + "\n")
        #expect(try next.readResponse().text == ";)]}^\n0N\nwhile0 \nwhile1 \n|-1A\n|-1T\n")
        #expect(server.withStream { $0.queuedCount } == 2)  // not acknowledged yet
        let acked = try connection(onLoop: owner, of: server)
        try acked.post(hh("-new", "eeds:null", "tnum:3", "sack:\"|1\"") + "\n")
        #expect(acked.receivesNothing(for: 0.2))
        #expect(server.withStream { $0.queuedCount } == 0)
        #expect(server.recording.all.filter { $0.hasPrefix("reset") }.isEmpty)
    }

    @Test("2 loops: socket mode on loop 0's listener for streams of both loops (echo, then a client abort)")
    func socketModeBothOwners() throws {
        let server = try twoLoopDemoServer()
        defer { server.stop() }
        for owner in 0..<2 {
            let id = ids(ownedBy: owner, of: 2, count: 1, prefix: "s\(owner)")[0]
            let client = try socketStream(server, id: id)
            try client.sendFrames(["echo:hello \(owner) "])
            #expect(try client.readFrames(3) == ["|0A", "0N", "hello \(owner) "])
            try client.sendFrames(["echo_twice:again "])
            #expect(try client.readFrames(3) == ["|1A", "again ", "again "])
            let ownerLoop = server.ownerLoop(of: id)
            #expect(server.withEngine(on: ownerLoop) { $0.stream(StreamID(id)!)?.transportCount } == 1)
            client.abort()
            #expect(
                waitUntil(5) {
                    server.withEngine(on: ownerLoop) { $0.stream(StreamID(id)!)?.transportCount } == 0
                })
            // The stream lives on: a new socket attaches and gets what was not acknowledged.
            let again = try RawClient(port: server.socketPort)
            try again.sendModePrefix()
            try again.sendFrames([hs("-new", "eeds:null", "id:\"\(id)\"", "tnum:1", "sack:\"|0\"")])
            let frames = try again.readFrames(4)
            #expect(frames.contains("1N") && frames.filter { $0 == "again " }.count == 2, "\(frames)")
            again.abort()
        }
    }

    @Test("2 loops: chat broadcast between streams of both loops reaches everyone in each sender's order")
    func chatAcrossLoops() throws {
        let server = try twoLoopDemoServer()
        defer { server.stop() }
        let ids = ids(ownedBy: 0, of: 2, count: 3, prefix: "c0") + ids(ownedBy: 1, of: 2, count: 3, prefix: "c1")
        let clients = try ids.map { try socketStream(server, id: $0) }
        let perLoop = server.http.server.eventLoops.map { loop in server.withEngine(on: loop) { $0.streamCount } }
        #expect(perLoop == [3, 3])  // the listener runs on loop 0: half the streams were handed to loop 1
        for client in clients {
            try client.sendFrames(["begin_chat "])
            #expect(try client.readFrames(1) == ["|0A"])
        }
        let messages = 5
        for round in 0..<messages {
            for (sender, client) in clients.enumerated() {
                try client.sendFrames(["broadcast:from\(sender)-m\(round) "])
            }
        }
        for (receiver, client) in clients.enumerated() {
            var texts: [String] = []
            let deadline = monotonicNow() + 10
            while texts.count < clients.count * messages && monotonicNow() < deadline {
                let frame = try client.readFrames(1)[0]
                if frame.hasPrefix("TEXT|") { texts.append(frame) }
            }
            #expect(texts.count == clients.count * messages, "receiver \(receiver)")
            for sender in clients.indices {
                let fromSender = texts.compactMap { text -> String? in
                    let body = String(text.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)[2])
                    return body.hasPrefix("from\(sender)-") ? body : nil
                }
                #expect(fromSender == (0..<messages).map { "from\(sender)-m\($0) " }, "receiver \(receiver)")
            }
        }
    }
}
