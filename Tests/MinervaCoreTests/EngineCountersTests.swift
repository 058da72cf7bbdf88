// The engine's counters (for metrics) follow what happened on the wire.

import MinervaTestSupport
import Testing

@testable import MinervaCore

@Suite struct EngineCountersTests {
    @Test func countersFollowAnExchange() throws {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs("eeds:null"), "0N", "a ", "b ", "3N", "d "])  // 0 and 1 in order; 3 leaves a hole at 2
        var c = h.engine.counters
        #expect(c.streamsCreated == 1)
        #expect(c.socketTransportsOpened == 1)
        #expect(c.stringsReceived == 2)
        #expect(c.sackHoles == 1)
        try h.app {
            for string in ["x", "yy", "zzz"] { try h.stream!.send(string) }
        }
        c = h.engine.counters
        #expect(c.stringsSent == 3)
        #expect(c.stringsRetransmitted == 0)
        #expect(c.queuedBytes == 6)
        // The connection drops before any acknowledgement: a new transport gets all three again.
        h.engine.transportClosed(t, now: 0)
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1", "eeds:null")])
        c = h.engine.counters
        #expect(c.stringsSent == 3)
        #expect(c.stringsRetransmitted == 3)
        h.send(t1, ["|1A"])  // acknowledges 0 and 1
        #expect(h.engine.counters.queuedBytes == 3)
        h.send(t1, ["bad\u{1} "])
        #expect(h.engine.counters.kills(.invalidFrameTypeOrArguments) == 1)
        #expect(h.engine.counters.kills(.streamAttachFailure) == 0)
        try h.app { try h.stream!.reset(reason: "bye") }
        c = h.engine.counters
        #expect(c.resetsByApplication == 1)
        #expect(c.queuedBytes == 0)
        #expect(c.resetsIdle + c.resetsByPeer + c.resetsOther == 0)
    }

    @Test func idleAndPeerResetsAreCountedApart() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        h.engine.transportClosed(t, now: 0)
        h.advance(to: 120)
        let other = String(repeating: "z", count: 26)
        let t1 = h.socket()
        h.send(t1, [hs("id:\"\(other)\""), "done|1!"])
        let c = h.engine.counters
        #expect(c.resetsIdle == 1)
        #expect(c.resetsByPeer == 1)
        #expect(c.resetsOther == 0)
        #expect(c.streamsCreated == 2)
    }
}
