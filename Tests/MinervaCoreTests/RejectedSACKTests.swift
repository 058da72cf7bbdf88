// A SACK the server rejects (`acked_unsent_strings`) is reported in the StreamStatus of the kill and then dropped:
// it is not kept as the stream's last SACK seen, so a huge rejected SACK does not stay in memory with the stream
// (issue 12, memory amplification).

import MinervaTestSupport
import Testing

@testable import MinervaCore

@Suite struct RejectedSACKTests {
    @Test func aRejectedSACKInABatchIsNotKept() throws {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        try h.app { try h.stream!.send("s2c0") }
        h.send(t, ["|0A"])
        #expect(h.stream?.lastSackSeenByServer == SACK(ackNumber: 0, sackList: []))
        let huge = (2...20_000).map(String.init).joined(separator: ",") + "|0A"
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1")])
        _ = h.out(t1)
        h.send(t1, [huge])
        #expect(h.out(t1).contains("acked_unsent_stringsK"))
        #expect(h.stream != nil)
        #expect(h.stream?.lastSackSeenByServer == SACK(ackNumber: 0, sackList: []))
    }

    @Test func aRejectedSACKInAHelloIsNotKept() throws {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs()])
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1", "sack:\"|7\"")])
        #expect(h.out(t1).contains("acked_unsent_stringsK"))
        #expect(h.stream?.lastSackSeenByServer == SACK.initial)
    }
}

/// Sequence numbers stay within 2^53 (PROTOCOL.md 2.2): a string that would need a larger one is a kill, so the
/// server never emits a SACK its peers must reject (issue 12 item 6).
@Suite struct SequenceNumberLimitTests {
    @Test func theStringNumbered2To53IsTheLastOne() {
        let h = Harness()
        let t = h.socket()
        h.send(t, [hs(), "9007199254740992N", "last "])
        #expect(h.out(t) == ["C", "9007199254740992|-1A"])  // held: strings 0... are missing
        let t1 = h.socket()
        h.send(t1, [hs("-new", "tnum:1"), "9007199254740992N", "a ", "b "])
        let out = h.out(t1)
        #expect(out.contains("invalid_frame_type_or_argumentsK"))
        #expect(!out.contains { $0.contains("9007199254740993") })
    }
}
