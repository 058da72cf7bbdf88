// PROTOCOL.md 9 group B's socket cases (26, 27), groups C (case 34) and D (cases 35-58): one socket transport
// against the engine.

import MinervaTestSupport
import Testing

@testable import MinervaCore

private let sackInit = "|-1A"
private let statusInit = "|-1T"
private let invalid = "invalid_frame_type_or_argumentsK"

@Suite struct ServerSocketTests {
    @Test func case26_emptyHelloIsInvalidAndCreatesNoStream() {
        let h = Harness()
        let t = h.socket()
        h.send(t, ["{}H"])
        #expect(h.out(t) == [invalid, "Y"])
        #expect(h.engine.streamCount == 0)
        #expect(h.recorders.isEmpty)  // no stream, so the application never heard of one
    }

    @Test(arguments: [9_007_199_254_740_992, 1, 1000, 10000, 12_378_912, 1_283_718_237] as [Int64])
    func case27_transportNumberDoesNotMatter(tnum: Int64) {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs("tnum:\(tnum)")])
        #expect(h.out(t) == ["C"])
        #expect(h.stream != nil)
        #expect(h.app.started == 1)
        #expect(h.app.created == [tnum])
    }

    @Test func case34_zeroLengthFrameAfterHello() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        #expect(h.out(t) == ["C"])
        h.send(t, [""])
        #expect(h.out(t) == [sackInit, statusInit, invalid, "Y"])
    }

    @Test func case35_validHello() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        #expect(h.out(t) == ["C"])
        #expect(h.stream != nil)
        #expect(h.app.started == 1)
    }

    @Test func case36_unknownFrameTypeThenIgnored() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        _ = h.out(t)
        h.send(t, ["?"])
        #expect(h.out(t) == [sackInit, statusInit, invalid, "Y"])
        h.send(t, [hs(), "string0 "])
        #expect(h.out(t).isEmpty)
        #expect(h.app.received.isEmpty)
        #expect(h.closed.isEmpty)
    }

    @Test(arguments: ["invalid_frame_type_or_argumentsK", String(repeating: " ", count: 4096) + "^", "C", "Y", "|-1T"])
    func case37_serverOnlyFrameTypeFromClient(frame: String) {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        _ = h.out(t)
        h.send(t, [frame])
        #expect(h.out(t) == [sackInit, statusInit, invalid, "Y"])
    }

    @Test func case38_firstFrameMustBeHello() {
        let h = Harness()
        let t = h.socket()
        h.send(t, ["string0 "])
        #expect(h.out(t) == [invalid, "Y"])
        #expect(h.engine.streamCount == 0)
    }

    @Test func case39_helloSentTwice() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        #expect(h.out(t) == ["C"])
        h.send(t, [hs()])
        #expect(h.out(t) == [sackInit, statusInit, invalid, "Y"])
    }

    @Test func case40_helloSentTwiceInOneChunk() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs(), hs()])
        #expect(h.out(t) == ["C", sackInit, statusInit, invalid, "Y"])
    }

    @Test(arguments: ["-new", "new:0", "new:0.0", "new:-0.0", "new:false"])
    func case41_noSuchStream(edit: String) {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs(edit)])
        #expect(h.out(t) == ["stream_attach_failureK", "Y"])
        #expect(h.engine.streamCount == 0)
        #expect(h.recorders.isEmpty)
    }

    @Test func case42_newStreamMoreThanOnce() {
        let h = Harness()
        let t1 = h.socket()
        let t2 = h.socket()
        h.send(t1, [hs()])
        h.send(t2, [hs()])
        #expect(h.out(t1) == ["C"])
        #expect(h.out(t2) == ["C"])
        #expect(h.engine.streamCount == 1)
        #expect(h.recorders.count == 1)
        #expect(h.stream?.transportCount == 2)
    }

    // Closing gently is triggered by a newer primary (the engine's only socket-side trigger).
    @Test func case43_closeGently() {
        let h = Harness()
        let t0 = h.socket()
        let t1 = h.socket()
        h.send(t0, [hs("eeds:null")])
        h.send(t1, [hs("-new", "tnum:1", "eeds:null")])
        #expect(h.out(t0) == ["C", sackInit, statusInit, "Y"])
        #expect(h.out(t1).isEmpty)
    }

    @Test func case44_serverResetWritten() throws {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        _ = h.out(t)
        try h.app { try h.stream!.reset(reason: "the reason") }
        #expect(h.out(t) == ["the reason|1!", "Y"])
        #expect(h.app.resets.map(\.reason) == ["the reason"])
        #expect(h.app.resets.map(\.applicationLevel) == [true])
        #expect(h.stream == nil)

        // An internal reset (here: the send-queue bound of 10.13) writes flag 0.
        var configuration = ServerEngineConfiguration()
        configuration.maxQueuedBytesPerStream = 10
        let h2 = Harness(configuration: configuration)
        let t2 = h2.socket()
        h2.send(t2, [hs()])
        _ = h2.out(t2)
        let stream = h2.stream!
        h2.app { #expect(throws: MinervaStreamError.sendQueueFull) { try stream.send("01234567890") } }
        #expect(h2.out(t2) == ["send queue limit exceeded|0!", "Y"])
        #expect(h2.app.resets.map(\.applicationLevel) == [false])
    }

    @Test func case45_stringsDeliveredAndAcked() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        _ = h.out(t)
        h.send(t, ["string0 "])
        #expect(h.out(t) == ["|0A"])
        h.send(t, ["2N", "string2 "])
        #expect(h.out(t) == ["2|0A"])
        #expect(h.app.received == [["string0"]])
        #expect(h.stream?.window.sack == SACK(ackNumber: 0, sackList: [2]))
    }

    @Test(arguments: [[0x00], [0xFF], [0x0A], [0x1F], [0x7F], Array("hello\tworld".utf8)] as [[UInt8]])
    func case46_stringWithIllegalBytes(payload: [UInt8]) {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        _ = h.out(t)
        h.sendBytes(t, [payload + [0x20]])
        #expect(h.out(t) == [sackInit, statusInit, invalid, "Y"])
        #expect(h.app.received.isEmpty)
    }

    @Test(arguments: [(1, "|0A"), (3, "2|0A")])
    func case47_validSack(queued: Int, sack: String) throws {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        _ = h.out(t)
        try h.app { for index in 0..<queued { try h.stream!.send("s2c\(index)") } }
        #expect(h.out(t).isEmpty)
        h.send(t, [sack])
        #expect(h.out(t).isEmpty)
        #expect(h.stream?.queuedCount == (queued == 1 ? 0 : 1))
        #expect(h.stream?.queue.sequenceNumbers == (queued == 1 ? [] : [1]))
    }

    @Test func case48_sackedUnsentStrings() throws {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        _ = h.out(t)
        try h.app { try h.stream!.send("s2c0") }
        h.send(t, ["|1A"])
        #expect(h.out(t) == [sackInit, "|1T", "acked_unsent_stringsK", "Y"])
        #expect(h.stream != nil)
        #expect(h.app.resets.isEmpty)
    }

    @Test(arguments: [("|1", false), ("|0", true)])
    func case49_sackInHello(sack: String, good: Bool) throws {
        let h = Harness()
        let t0 = h.socket()
        h.send(t0, [hs()])
        try h.app { try h.stream!.send("s2c0") }
        let t1 = h.socket()
        h.send(t1, [hs("sack:\"\(sack)\"")])
        if good {
            #expect(h.out(t1) == ["C"])
            #expect(h.stream?.queuedCount == 0)
            #expect(h.stream?.transportCount == 2)
        } else {
            #expect(h.out(t1) == ["C", "acked_unsent_stringsK", "Y"])
            #expect(h.stream?.transportCount == 1)
        }
    }

    @Test(arguments: ["the reason", ""])
    func case50_resetFromClient(reason: String) {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        _ = h.out(t)
        h.send(t, [reason + "|1!"])
        #expect(h.out(t) == [sackInit, statusInit, "Y"])
        #expect(h.app.resets.map(\.reason) == [reason])
        #expect(h.app.resets.map(\.applicationLevel) == [true])
        #expect(h.stream == nil)
    }

    @Test func case51_heartbeats() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs("maxia:2")])
        #expect(h.out(t) == ["C", "beat^"])
        h.advance(to: 1)
        #expect(h.out(t).isEmpty)
        h.advance(to: 2)
        #expect(h.out(t) == ["beat^"])
        h.advance(to: 3)
        #expect(h.out(t).isEmpty)
        h.advance(to: 4)
        #expect(h.out(t) == ["beat^"])
    }

    @Test func case52_heartbeatRestartedByWrite() throws {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs("eeds:null", "maxia:2")])
        #expect(h.out(t) == ["C", "beat^"])
        h.now = 1
        try h.stream!.send("s2c0")
        #expect(h.out(t).isEmpty)  // coalesced: written at the end of the turn
        h.advance(to: 1.001)
        #expect(h.out(t) == ["0N", "s2c0 "])
        h.advance(to: 2.001)
        #expect(h.out(t).isEmpty)
        h.advance(to: 3.001)
        #expect(h.out(t) == ["beat^"])
    }

    @Test func case53_noHeartbeatAfterTermination() {
        let h = Harness()
        let t0 = h.socket()
        h.send(t0, [hs("eeds:null", "maxia:2")])
        #expect(h.out(t0) == ["C", "beat^"])
        h.advance(to: 1)
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1", "eeds:null")])
        #expect(h.out(t0) == [sackInit, statusInit, "Y"])
        h.advance(to: 5)
        #expect(h.out(t0).isEmpty)
    }

    // Cases 54 and 55 call writeStrings directly with explicit starts (as the original's tests do).
    private func attached(_ h: Harness, strings count: Int) throws -> (ServerTransport, ServerStream) {
        let t = h.socket()
        h.send(t, [hs()])
        let stream = h.stream!
        try h.app { for index in 0..<count { try stream.send("string\(index)") } }
        return (h.engine.transports[t]!, stream)
    }

    private func write(_ h: Harness, _ transport: ServerTransport, _ stream: ServerStream, start: Int64?) {
        transport.writeStrings(stream.queue, start: start)
        h.engine.flushIfIdle(transport)
        h.endTurn()
    }

    @Test func case54_writeStrings() throws {
        let h = Harness()
        let (transport, stream) = try attached(h, strings: 2)
        write(h, transport, stream, start: nil)
        #expect(h.out(transport.handle) == ["C", "0N", "string0 ", "string1 "])
        write(h, transport, stream, start: nil)
        #expect(h.out(transport.handle).isEmpty)
        try stream.send("string2")
        write(h, transport, stream, start: nil)
        #expect(h.out(transport.handle) == ["string2 "])

        let h2 = Harness()
        let (transport2, stream2) = try attached(h2, strings: 3)
        write(h2, transport2, stream2, start: 1)
        #expect(h2.out(transport2.handle) == ["C", "1N", "string1 ", "string2 "])
    }

    @Test(arguments: [([3, 3, nil, nil], 0), ([3, 3, 1, 1], 1)] as [([Int64?], Int)])
    func case55_writeStringsInterleaving(starts: [Int64?], rewindTo: Int) throws {
        let h = Harness()
        let (transport, stream) = try attached(h, strings: 5)
        for start in starts { write(h, transport, stream, start: start) }
        let rewound = [String(rewindTo) + "N"] + (rewindTo...4).map { "string\($0) " }
        #expect(h.out(transport.handle) == ["C", "3N", "string3 ", "string4 "] + rewound)
    }

    @Test func case56_receiveWindowTooManyStrings() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        _ = h.out(t)
        h.send(t, ["1N"] + Array(repeating: "string ", count: 201))
        let list = (1...50).map(String.init).joined(separator: ",")
        #expect(h.out(t) == [list + "|-1A", statusInit, "rwin_overflowK", "Y"])
        #expect(h.app.received.isEmpty)
        #expect(h.stream?.window.cachedCount == 50)
        #expect(h.stream != nil)
        #expect(h.app.resets.isEmpty)
    }

    @Test func case57_receiveWindowTooManyBytes() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        #expect(h.out(t) == ["C"])
        h.send(t, ["1N", String(repeating: "x", count: 1_048_575) + " "])
        #expect(h.out(t) == [sackInit, statusInit, "rwin_overflowK", "Y"])
        #expect(h.stream?.window.cachedCount == 0)
    }

    @Test func case58_reorderedBatches() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        _ = h.out(t)
        h.send(t, ["1N", "a "])
        #expect(h.out(t) == ["1|-1A"])
        h.send(t, ["0N", "b "])
        #expect(h.out(t) == ["|1A"])
        #expect(h.app.received == [["b", "a"]])
        // Within one batch the pairs are sorted first.
        let h2 = Harness()
        let t2 = h2.socket()
        h2.send(t2, [hs(), "1N", "a ", "0N", "b ", "4N", "c ", "5N", "d "])
        #expect(h2.out(t2) == ["C", "4,5|1A"])
        #expect(h2.app.received == [["b", "a"]])
    }
}

/// Socket bytes through the codec's mode detector and the engine's int32 decoding.
@Suite struct ServerSocketBytesTests {
    private func int32(_ frames: [String]) -> [UInt8] {
        var bytes: [UInt8] = []
        for frame in frames {
            let payload = Array(frame.utf8)
            let length = UInt32(payload.count)
            bytes += [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
            bytes += payload
        }
        return bytes
    }

    /// Feeds `input` in chunks of `size` through mode detection then the engine; returns the frames written.
    private func run(_ input: [UInt8], chunk size: Int, then later: [UInt8] = []) -> [String] {
        let h = Harness()
        var detector = SocketModeDetector(now: 0)
        var handle: TransportHandle?
        var start = 0
        while start < input.count {
            let piece = input[start..<min(start + size, input.count)]
            start += size
            if let handle {
                h.engine.socketBytesReceived(handle, bytes: piece, now: 0)
            } else if case .int32(let remainder) = detector.receive(piece) {
                let t = h.socket()
                handle = t
                h.engine.socketBytesReceived(t, bytes: remainder, now: 0)
            }
            h.endTurn()
        }
        guard let handle else { return [] }
        if !later.isEmpty {
            h.engine.socketBytesReceived(handle, bytes: later, now: 0)
            h.endTurn()
        }
        return h.out(handle)
    }

    @Test(arguments: 1...19)
    func case31_int32HelloForUnknownStreamInChunks(size: Int) {
        let id = String(repeating: "\\u0000", count: 26)
        let input = SocketModeDetector.int32Prefix + int32([hs("id:\"\(id)\"", "-new")])
        #expect(run(input, chunk: size) == ["stream_attach_failureK", "Y"])
    }

    @Test func case32_frameCorruptionThenIgnored() {
        let input = SocketModeDetector.int32Prefix + Array("1:xxxxxxxx".utf8)
        #expect(run(input, chunk: 100, then: int32(["?"])) == ["frame_corruptionK", "Y"])
    }

    @Test(arguments: [1, 2, 3, 7, 50, 1000])
    func helloAndStringsInAnyChunking(size: Int) {
        let input = SocketModeDetector.int32Prefix + int32([hs(), "string0 ", "2N", "string2 ", "1N", "string1 "])
        let out = run(input, chunk: size)
        #expect(out.first == "C")
        #expect(out.last == "|2A")
    }

    @Test func frameCorruptionAfterHelloIsKillAttached() {
        let input = SocketModeDetector.int32Prefix + int32([hs()])
        let later = int32(["string0 "]) + [0x00, 0x10, 0x00, 0x01]
        #expect(run(input, chunk: 1000, then: later) == ["C", "|-1A", "|-1T", "frame_corruptionK", "Y"])
        // In one chunk, nothing before the bad prefix is processed (PROTOCOL.md 3.2).
        #expect(run(input + later, chunk: 1000) == ["frame_corruptionK", "Y"])
    }
}
