// PROTOCOL.md 9 groups C and D over a real socket listener: mode detection (policy file, <int32/>, 512-byte rule,
// early rejection, timeout), int32 framing both ways, kill frames, Y and the close after the grace period.
import Glibc
import MinervaTestSupport
import Testing

@testable import MinervaHTTP
@testable import MinervaIO
@testable import MinervaServer

private func socketServer(
    _ configure: @escaping (inout MinervaEndpointConfiguration) -> Void = { _ in },
    makeHandler: ((RecordingHandler) -> Void)? = nil
) throws -> MinervaTestServer {
    try MinervaTestServer(configure: configure, socket: true, makeHandler: makeHandler)
}

/// Sends `bytes` in pieces of `size` bytes, pausing briefly between them so they arrive as separate chunks.
private func sendChunked(_ client: RawClient, _ bytes: [UInt8], size: Int) throws {
    var start = 0
    while start < bytes.count {
        let end = min(bytes.count, start + size)
        try client.send(Array(bytes[start..<end]))
        start = end
        usleep(500)
    }
}

@Suite("Minerva socket listener (PROTOCOL.md 9 groups C, D)", .serialized)
struct MinervaSocketTests {
    @Test("28: 512 unrecognised bytes abort the connection when byte 512 arrives, nothing written")
    func case28() throws {
        let server = try socketServer { $0.socketEarlyRejection = false }
        defer { server.stop() }
        for size in [1, 2, 200, 511, 512] {
            let client = try RawClient(port: server.socketPort)
            let spaces = [UInt8](repeating: 32, count: 512)
            if size < 512 {
                try sendChunked(client, Array(spaces[..<511]), size: size)
                #expect(client.receivesNothing(for: 0.1))
                try client.send([32])
            } else {
                try client.send(spaces)
            }
            #expect(client.waitForClose(within: 3))
            #expect(client.buffer.isEmpty)
        }
    }

    @Test("10.8: bytes that can match no prefix are rejected at once; silence times out")
    func earlyRejectionAndTimeout() throws {
        let server = try socketServer { $0.socketModeTimeout = 0.3 }
        defer { server.stop() }
        let client = try RawClient(port: server.socketPort)
        try client.send("GET / HTTP/1.1\r\n")
        #expect(client.waitForClose(within: 2))
        #expect(client.buffer.isEmpty)
        let slow = try RawClient(port: server.socketPort)
        try slow.send("<int3")
        #expect(slow.receivesNothing(for: 0.1))
        #expect(slow.waitForClose(within: 3))
        #expect(slow.buffer.isEmpty)
    }

    @Test("issue 12: a later frame left unfinished past socketFrameTimeout aborts; finished frames never do")
    func unfinishedLaterFrameTimesOut() throws {
        let server = try socketServer { $0.socketFrameTimeout = 0.3 }
        defer { server.stop() }
        let client = try RawClient(port: server.socketPort)
        try client.send(Array("<int32/>\n".utf8) + int32Frame(Array(hs().utf8)))
        #expect(try client.readFrames(1) == ["C"])
        try client.send([0, 0])  // half a length prefix, then nothing
        #expect(client.waitForClose(within: 3))
        let partial = try RawClient(port: server.socketPort)
        try partial.send(Array("<int32/>\n".utf8) + int32Frame(Array(hs("-new", "tnum:1").utf8)))
        try partial.send([0, 0, 0, 9] + Array("|-".utf8))  // a frame of 9 bytes, 2 of them sent
        #expect(partial.waitForClose(within: 3))
        let steady = try RawClient(port: server.socketPort)
        try steady.send(Array("<int32/>\n".utf8) + int32Frame(Array(hs("-new", "tnum:2").utf8)))
        for _ in 0..<6 {
            let frame = int32Frame(Array("|-1A".utf8))
            try steady.send(Array(frame[..<3]))  // frames cut across writes, each finished soon
            usleep(50_000)
            try steady.send(Array(frame[3...]))
            usleep(50_000)
        }
        #expect(steady.receivesNothing(for: 0.4))
    }

    @Test func int32FrameBoundaryTellsWhetherAFrameIsUnfinished() {
        var boundary = Int32FrameBoundary()
        let frames: [UInt8] = [0, 0, 0, 2, 65, 66, 0, 0, 0, 1, 67]
        for cut in 0...frames.count {
            var b = Int32FrameBoundary()
            let first = frames[..<cut].withUnsafeBytes { b.consume($0) }
            let rest = frames[cut...].withUnsafeBytes { b.consume($0) }
            #expect(first == (cut != 0 && cut != 6 && cut != 11))
            #expect(rest == false)
        }
        #expect([0, 0, 0, 0].withUnsafeBytes { boundary.consume($0) } == false)  // an empty frame ends at once
    }

    @Test("29, 30: the policy-file request in chunks gets exactly the policy and a NUL; garbage after is ignored")
    func cases29and30() throws {
        let server = try socketServer { $0.socketPolicy = "<nonsense-policy/>" }
        defer { server.stop() }
        let request = Array("<policy-file-request/>".utf8) + [0]
        for (size, garbage) in [(1, ""), (7, "BLAH, BLAH, BLAH"), (19, ""), (23, "BLAH, BLAH, BLAH")] {
            let client = try RawClient(port: server.socketPort)
            try sendChunked(client, request + Array(garbage.utf8), size: size)
            let expected = Array("<nonsense-policy/>".utf8) + [0]
            #expect(try client.take(expected.count) == expected)
            #expect(client.receivesNothing(for: 0.1))
        }
    }

    @Test("a policy-file connection the peer leaves open is closed after the detection timeout")
    func policyConnectionTimeout() throws {
        let server = try socketServer { $0.socketModeTimeout = 0.3 }
        defer { server.stop() }
        let client = try RawClient(port: server.socketPort)
        try client.send(Array("<policy-file-request/>".utf8) + [0])
        #expect(try client.take(1) == [0])
        #expect(client.waitForClose(within: 3))
    }

    @Test("31: <int32/> and a hello for an unknown id, in small chunks -> stream_attach_failure, Y")
    func case31() throws {
        let server = try socketServer()
        defer { server.stop() }
        let id = "\"" + String(repeating: "\\u0000", count: 26) + "\""
        for size in [1, 5, 19] {
            let client = try RawClient(port: server.socketPort)
            let bytes = Array("<int32/>\n".utf8) + int32Frame(Array(hs("id:\(id)", "-new").utf8))
            try sendChunked(client, bytes, size: size)
            #expect(try client.readFrames(2) == ["stream_attach_failureK", "Y"])
        }
    }

    @Test("32: an over-long length prefix is frame_corruption; later input gets nothing")
    func case32() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.send("1:xxxxxxxx")
        #expect(try client.readFrames(2) == ["frame_corruptionK", "Y"])
        try client.sendFrames(["?"])
        #expect(client.receivesNothing(for: 0.2))
    }

    @Test("33: a declared length of 1048577 is refused at once; 1048576 waits for its payload")
    func case33() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.send([0x00, 0x10, 0x00, 0x01])
        #expect(try client.readFrames(2) == ["frame_corruptionK", "Y"])
        let patient = try server.int32Client()
        try patient.send([0x00, 0x10, 0x00, 0x00])
        #expect(patient.receivesNothing(for: 0.2))
    }

    @Test("34: a zero-length frame after the hello is invalid")
    func case34() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs()])
        #expect(try client.readFrames(1) == ["C"])
        try client.send([0, 0, 0, 0])
        #expect(try client.readFrames(4) == ["|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y"])
    }

    @Test("35, 36: a valid hello gets C; an unknown frame type kills; later input is ignored")
    func cases35and36() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs()])
        #expect(try client.readFrames(1) == ["C"])
        try client.sendFrames(["?"])
        #expect(try client.readFrames(4) == ["|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y"])
        try client.sendFrames(["string0 "])
        #expect(client.receivesNothing(for: 0.2))
    }

    @Test("37, 38: a C2S kill frame, and a first frame that is no hello, are invalid")
    func cases37and38() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs(), "invalid_frame_type_or_argumentsK"])
        #expect(try client.readFrames(5) == ["C", "|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y"])
        let other = try server.int32Client()
        try other.sendFrames(["string0 "])
        #expect(try other.readFrames(2) == ["invalid_frame_type_or_argumentsK", "Y"])
    }

    @Test("39, 40: a second hello, later or in the same chunk, is invalid")
    func cases39and40() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs()])
        #expect(try client.readFrames(1) == ["C"])
        try client.sendFrames([hs()])
        #expect(try client.readFrames(4) == ["|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y"])
        let both = try server.int32Client()
        try both.sendFrames([hs("id:\"yyyyyyyyyyyyyyyyyyyyyyyyyy\""), hs()])
        #expect(try both.readFrames(5) == ["C", "|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y"])
    }

    @Test("41: every false-ish new on an unknown id -> stream_attach_failure")
    func case41() throws {
        let server = try socketServer()
        defer { server.stop() }
        for edit in ["-new", "new:0", "new:0.0", "new:-0.0", "new:false"] {
            let client = try server.int32Client()
            try client.sendFrames([hs(edit)])
            #expect(try client.readFrames(2) == ["stream_attach_failureK", "Y"])
        }
    }

    @Test("42: new on two connections: each gets C, one stream")
    func case42() throws {
        let server = try socketServer()
        defer { server.stop() }
        let first = try server.int32Client()
        try first.sendFrames([hs()])
        #expect(try first.readFrames(1) == ["C"])
        let second = try server.int32Client()
        try second.sendFrames([hs()])
        #expect(try second.readFrames(1) == ["C"])
        #expect(server.total(\.streamCount) == 1)
        #expect(server.withStream { $0.transportCount } == 2)
    }

    @Test("45: strings are delivered and acknowledged, gaps included")
    func case45() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs()])
        #expect(try client.readFrames(1) == ["C"])
        try client.sendFrames(["string0 "])
        #expect(try client.readFrames(1) == ["|0A"])
        try client.sendFrames(["2N", "string2 "])
        #expect(try client.readFrames(1) == ["2|0A"])
        #expect(server.recording.all.filter { $0.hasPrefix("strings") } == ["strings string0"])
    }

    @Test("46: strings with bytes outside 0x20...0x7E kill the transport")
    func case46() throws {
        let server = try socketServer()
        defer { server.stop() }
        for bad in ["\u{0}", "\n", "\u{1f}", "\u{7f}", "hello\tworld"] {
            let client = try server.int32Client()
            try client.sendFrames([hs()])
            #expect(try client.readFrames(1) == ["C"])
            try client.sendFrames([bad + " "])
            #expect(try client.readFrames(4) == ["|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y"])
        }
        let client = try server.int32Client()
        try client.sendFrames([hs()])
        #expect(try client.readFrames(1) == ["C"])
        try client.send(int32Frame([0xFF, 0x20]))
        #expect(try client.readFrames(4) == ["|-1A", "|-1T", "invalid_frame_type_or_argumentsK", "Y"])
    }

    @Test("47, 48: a SACK of sent strings is silent; a SACK of unsent strings kills with acked_unsent_strings")
    func cases47and48() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs()])
        #expect(try client.readFrames(1) == ["C"])
        _ = server.withStream { try? $0.send("s2c0") }
        try client.sendFrames(["|0A"])
        #expect(client.receivesNothing(for: 0.1))
        try client.sendFrames(["|1A"])
        #expect(try client.readFrames(4) == ["|-1A", "|1T", "acked_unsent_stringsK", "Y"])
    }

    @Test("50: a ResetFrame from the client closes gently and reaches the application")
    func case50() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs(), "the reason|1!"])
        #expect(try client.readFrames(4) == ["C", "|-1A", "|-1T", "Y"])
        #expect(waitUntil { server.recording.all.last == "reset the reason true" })
    }

    @Test("51: heartbeats every maxia seconds")
    func case51() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        let start = monotonicNow()
        try client.sendFrames([hs("maxia:1")])
        #expect(try client.readFrames(2) == ["C", "beat^"])
        #expect(try client.readFrames(1, timeout: 3) == ["beat^"])
        #expect(monotonicNow() - start >= 0.9)
    }

    @Test("59-like: S2C strings go to the socket primary; the server closes a socket the peer leaves open after Y")
    func primaryAndGraceClose() throws {
        let server = try socketServer { $0.engine.socketCloseGracePeriod = 0.3 }
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs("eeds:null"), "string0 ", "2N", "string2 "])
        #expect(try client.readFrames(2) == ["C", "2|0A"])
        _ = server.withStream { stream in
            try? stream.send("s2cstring0")
            try? stream.send("s2cstring1")
        }
        #expect(try client.readFrames(3) == ["0N", "s2cstring0 ", "s2cstring1 "])
        let second = try server.int32Client()
        try second.sendFrames([hs("-new", "eeds:null", "seenack:\"2|0\"", "tnum:1")])
        #expect(try second.readFrames(3) == ["0N", "s2cstring0 ", "s2cstring1 "])
        #expect(try client.readFrames(3) == ["2|0A", "|-1T", "Y"])
        #expect(client.waitForClose(within: 3))
        #expect(server.withStream { $0.transportCount } == 1)
    }

    @Test("a peer that disconnects detaches its socket transport")
    func peerDisconnect() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs("eeds:null")])
        #expect(try client.readFrames(1) == ["C"])
        client.abort()
        #expect(waitUntil { server.recording.all.contains("destroyed 0") })
        #expect(server.total(\.transportCount) == 0)
    }

    @Test("HTTP and socket transports share streams: an HTTP upload reaches the socket primary's stream")
    func mixedTransports() throws {
        let server = try socketServer()
        defer { server.stop() }
        let client = try server.int32Client()
        try client.sendFrames([hs("eeds:null")])
        #expect(try client.readFrames(1) == ["C"])
        let http = try RawClient(port: server.port)
        try http.post(hh("-new", "-eeds", "tnum:1") + "\nstring0 \n")
        #expect(try http.readResponse().text == ";)]}^\n|0A\n|0A\n|-1T\n")
        #expect(server.recording.all.contains("strings string0"))
    }
}
