// PROTOCOL.md 9 group E (cases 59-76): streams with several socket transports, through the engine's tracker.

import MinervaTestSupport
import Testing

@testable import MinervaCore

private let closeInit = ["|-1A", "|-1T", "Y"]

@Suite struct ServerStreamTests {
    @Test func case59_stringSendingAndNewTransport() throws {
        let h = Harness()
        let t0 = h.socket()
        h.send(t0, [hs("eeds:null")])
        #expect(h.out(t0) == ["C"])
        h.send(t0, ["string0 ", "2N", "string2 "])
        #expect(h.out(t0) == ["2|0A"])
        #expect(h.app.received == [["string0"]])
        h.send(t0, ["1N", "string1 ", "3N", "string3 "])
        #expect(h.out(t0) == ["|3A"])
        #expect(h.app.received == [["string0"], ["string1", "string2", "string3"]])
        try h.app {
            try h.stream!.send("s2cstring0")
            try h.stream!.send("s2cstring1")
        }
        #expect(h.out(t0) == ["0N", "s2cstring0 ", "s2cstring1 "])
        let t1 = h.socket()
        h.send(t1, [hs("-new", "eeds:null", "seenack:\"|3\"")])
        #expect(h.out(t1) == ["0N", "s2cstring0 ", "s2cstring1 "])
        #expect(h.out(t0) == ["|3A", "|-1T", "Y"])
        h.send(t1, ["|1A"])
        #expect(h.out(t1).isEmpty)
        let t2 = h.socket()
        h.send(t2, [hs("-new", "eeds:null", "seenack:\"|3\"")])
        #expect(h.out(t2).isEmpty)
        #expect(h.out(t1) == ["|3A", "|1T", "Y"])
        h.send(t2, ["testing|1!"])
        #expect(h.out(t2) == ["|3A", "|1T", "Y"])
        #expect(h.app.resets.map(\.reason) == ["testing"])
        #expect(h.app.resets.map(\.applicationLevel) == [true])
        #expect(h.out(t0).isEmpty)
        #expect(h.out(t1).isEmpty)
    }

    @Test func case60_succeedsTransport() throws {
        let h = Harness()
        let t0 = h.socket()
        h.send(t0, [hs("eeds:null")])
        #expect(h.out(t0) == ["C"])
        try h.app {
            try h.stream!.send("s2cstring0")
            try h.stream!.send("s2cstring1")
        }
        #expect(h.out(t0) == ["0N", "s2cstring0 ", "s2cstring1 "])
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1", "eeds:0")])
        #expect(h.out(t1).isEmpty)
        #expect(h.out(t0) == closeInit)
        try h.app { try h.stream!.send("s2cstring2") }
        #expect(h.out(t1) == ["2N", "s2cstring2 "])
    }

    @Test func case61_pretendAckedThenRewind() throws {
        let h = Harness()
        let t30 = h.socket()
        h.send(t30, [hs("tnum:30", "eeds:null")])
        try h.app { for index in 0..<5 { try h.stream!.send("string\(index)") } }
        #expect(h.out(t30) == ["C", "0N"] + (0..<5).map { "string\($0) " })
        let t31 = h.socket()
        h.send(t31, [hs("-new", "tnum:31", "eeds:30")])
        #expect(h.out(t30) == closeInit)
        #expect(h.out(t31).isEmpty)
        #expect(h.stream?.pretendAcked == 4)
        try h.app {
            try h.stream!.send("string5")
            try h.stream!.send("string6")
        }
        #expect(h.out(t31) == ["5N", "string5 ", "string6 "])
        h.send(t31, ["|2A"])
        #expect(h.out(t31) == ["3N", "string3 ", "string4 ", "string5 ", "string6 "])
        #expect(h.stream?.queue.sequenceNumbers == [3, 4, 5, 6])
    }

    @Test(arguments: ["eeds:7", "eeds:null"])
    func case62_succeedsUnknownTransportActsLikeNull(edit: String) throws {
        let h = Harness()
        let t0 = h.socket()
        h.send(t0, [hs("eeds:null")])
        try h.app { try h.stream!.send("a") }
        #expect(h.out(t0) == ["C", "0N", "a "])
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1", edit)])
        #expect(h.out(t1) == ["0N", "a "])
        #expect(h.out(t0) == closeInit)
        // And with no primary at all.
        let h2 = Harness()
        let s0 = h2.socket()
        h2.send(s0, [hs()])
        try h2.app { try h2.stream!.send("a") }
        let s1 = h2.socket()
        h2.send(s1, [hs("-new", "tnum:1", "eeds:0")])
        #expect(h2.out(s1) == ["0N", "a "])
    }

    @Test func case63_sackedStringsNotSentAgain() throws {
        let h = Harness()
        let t0 = h.socket()
        h.send(t0, [hs("eeds:null")])
        try h.app { for index in 0..<12 { try h.stream!.send(String(index)) } }
        #expect(h.out(t0) == ["C", "0N"] + (0..<12).map { "\($0) " })
        h.send(t0, ["1,3,5,9|-1A"])
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1", "eeds:null")])
        #expect(h.out(t1) == ["0N", "0 ", "2N", "2 ", "4N", "4 ", "6N", "6 ", "7 ", "8 ", "10N", "10 ", "11 "])
    }

    @Test func case64_alreadyReceivedStringsIgnored() {
        let h = Harness()
        let t0 = h.socket()
        h.send(t0, [hs("eeds:null")])
        #expect(h.out(t0) == ["C"])
        h.send(t0, ["0N", "string0 "])
        #expect(h.out(t0) == ["|0A"])
        h.send(t0, ["0N", "string0 ", "string1 "])
        #expect(h.out(t0) == ["|1A"])
        h.send(t0, ["0N", "string0 ", "string1 ", "string2 "])
        #expect(h.out(t0) == ["|2A"])
        #expect(h.app.received == [["string0"], ["string1"], ["string2"]])
    }

    @Test(arguments: [("|-1", ["|0A"]), ("|0", [])])
    func case65_lastSackSeenByClient(seenack: String, expected: [String]) {
        let h = Harness()
        let t0 = h.socket()
        h.send(t0, [hs("eeds:null")])
        h.send(t0, ["string0 "])
        #expect(h.out(t0) == ["C", "|0A"])
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1", "eeds:0", "seenack:\"\(seenack)\"")])
        #expect(h.out(t1) == expected)
    }

    @Test func case66_resetAsFirstFrame() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        #expect(h.out(t) == ["C"])
        h.send(t, ["reason|1!", "x|0!", "?"])
        #expect(h.out(t) == closeInit)
        #expect(h.app.resets.map(\.reason) == ["reason"])
        #expect(h.app.received.isEmpty)
    }

    @Test func case67_stringThenResetWritesSACK() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs("eeds:null"), "string0 ", "string1 ", "|1!"])
        #expect(h.out(t) == ["C", "|1A", "|1A", "|-1T", "Y"])
        #expect(h.app.received == [["string0", "string1"]])
        #expect(h.app.resets.map(\.reason) == [""])
        #expect(h.app.resets.map(\.applicationLevel) == [true])
    }

    @Test func case68_simultaneousReset() {
        let h = Harness()
        let t0 = h.socket()
        let t1 = h.socket()
        h.send(t0, [hs()])
        h.send(t1, [hs()])
        #expect(h.out(t0) == ["C"])
        #expect(h.out(t1) == ["C"])
        h.send(t0, ["reason|1!"])
        h.send(t1, ["reason|0!"])
        #expect(h.out(t0) == closeInit)
        #expect(h.out(t1) == closeInit)
        #expect(h.app.resets.count == 1)
        #expect(h.app.resets.first?.applicationLevel == true)
    }

    @Test(arguments: [false, true])
    func case69_sendAndResetInsideStreamStarted(withReset: Bool) {
        let h = Harness()
        h.configure = { recorder in
            recorder.onStarted = { stream in
                for index in 0..<3 { try stream.send("s2cstring\(index)") }
                try stream.reset(reason: "reset forced by mock protocol")
            }
        }
        let t = h.socket()
        h.send(t, [hs("eeds:null")] + (withReset ? ["|1!"] : []))
        #expect(h.out(t) == ["C", "reset forced by mock protocol|1!", "Y"])
        #expect(h.app.resets.map(\.reason) == ["reset forced by mock protocol"])
    }

    @Test(arguments: [false, true])
    func case70_sendInsideStreamStarted(withReset: Bool) {
        let h = Harness()
        h.configure = { recorder in
            recorder.onStarted = { stream in
                for index in 0..<3 { try stream.send("s2cstring\(index)") }
            }
        }
        let t = h.socket()
        h.send(t, [hs("eeds:null")] + (withReset ? ["|1!"] : []))
        let strings = ["C", "0N", "s2cstring0 ", "s2cstring1 ", "s2cstring2 "]
        #expect(h.out(t) == strings + (withReset ? closeInit : []))
    }

    @Test(arguments: [false, true])
    func case71_sendAndResetInsideStringsReceived(withReset: Bool) {
        let h = Harness()
        h.configure = { recorder in
            recorder.onStrings = { stream, _ in
                for index in 0..<3 { try? stream.send("s2cstring\(index)") }
                try? stream.reset(reason: "reset forced by mock protocol")
            }
        }
        let t = h.socket()
        h.send(t, [hs("eeds:null"), "string0 ", "string1 "] + (withReset ? ["|1!"] : []))
        #expect(h.out(t) == ["C", "|1A", "reset forced by mock protocol|1!", "Y"])
        #expect(h.app.resets.count == 1)
    }

    @Test(arguments: [false, true])
    func case72_sendInsideStringsReceived(withReset: Bool) {
        let h = Harness()
        h.configure = { recorder in
            recorder.onStrings = { stream, _ in
                for index in 0..<3 { try? stream.send("s2cstring\(index)") }
            }
        }
        let t = h.socket()
        h.engine.framesReceived(
            t,
            frames: ([hs("eeds:null"), "string0 ", "string1 "] + (withReset ? ["|1!"] : [])).map {
                Array($0.utf8)[...]
            },
            now: 0)
        h.endTurn()
        if withReset {
            #expect(h.out(t) == ["C", "|1A", "|1A", "|-1T", "Y"])
        } else {
            // `C |1A` in the batch's write, the strings in a second write at the end of the turn.
            #expect(h.out(t) == ["C", "|1A", "0N", "s2cstring0 ", "s2cstring1 ", "s2cstring2 "])
            #expect(h.socketWrites[t] == 2)
        }
    }

    @Test(arguments: [false, true])
    func case73_serverResetsInsideStringsReceived(withReset: Bool) {
        let h = Harness()
        h.configure = { recorder in
            recorder.onStrings = { stream, _ in try? stream.reset(reason: "reset forced by mock protocol") }
        }
        let t = h.socket()
        h.send(t, [hs("eeds:null"), "string0 ", "string1 ", "string2 "] + (withReset ? ["client's reason|1!"] : []))
        #expect(h.out(t) == ["C", "|2A", "reset forced by mock protocol|1!", "Y"])
        #expect(h.app.resets.map(\.reason) == ["reset forced by mock protocol"])
    }

    @Test(arguments: [false, true])
    func case74_streamStartedThrows(resetsFirst: Bool) {
        let h = Harness()
        h.configure = { recorder in
            recorder.onStarted = { stream in
                if resetsFirst { try stream.reset(reason: "mine") }
                throw StartError()
            }
        }
        let t = h.socket()
        h.send(t, [hs()])
        if resetsFirst {
            #expect(h.out(t) == ["C", "mine|1!", "Y"])
            #expect(h.app.resets.map(\.reason) == ["mine"])
            #expect(h.app.resets.map(\.applicationLevel) == [true])
        } else {
            #expect(h.out(t) == ["C", "streamStarted raised uncaught exception|0!", "Y"])
            #expect(h.app.resets.map(\.reason) == ["streamStarted raised uncaught exception"])
            #expect(h.app.resets.map(\.applicationLevel) == [false])
        }
        #expect(h.errors == ["streamStarted"])
    }

    @Test func case75_idleStreamReset() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        h.engine.transportClosed(t, now: 0)
        h.advance(to: 60)
        #expect(h.app.resets.isEmpty)
        h.advance(to: 120)
        #expect(h.app.resets.map(\.reason) == ["no activity from peer"])
        #expect(h.app.resets.map(\.applicationLevel) == [false])
        #expect(h.stream == nil)
        let t1 = h.socket()
        h.send(t1, [hs("-new")])
        #expect(h.out(t1) == ["stream_attach_failureK", "Y"])
    }

    @Test func case76_sendValidationAndAfterReset() throws {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        let stream = h.stream!
        try stream.send("")
        try stream.send(" ~")
        #expect(throws: MinervaStreamError.invalidString) { try stream.send("bad\t") }
        #expect(throws: MinervaStreamError.invalidString) { try stream.send("bad\n") }
        #expect(throws: MinervaStreamError.invalidString) { try stream.send([0xFF] as [UInt8]) }
        #expect(stream.queuedCount == 2)
        try stream.reset(reason: "done")
        #expect(throws: MinervaStreamError.streamIsReset) { try stream.send("x") }
        #expect(throws: MinervaStreamError.streamIsReset) { try stream.reset(reason: "again") }
    }
}
