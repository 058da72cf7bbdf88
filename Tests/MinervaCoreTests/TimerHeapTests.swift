// The transport timer heap stays as small as the transports that need it (the soak found it growing without bound).
import MinervaTestSupport
import Testing

@testable import MinervaCore

@Suite struct TimerHeapTests {
    @Test func answeredLongPollsLeaveNoTimersBehind() {
        let h = Harness()
        h.post(hh("-eeds", "maxt:25") + "\n")  // creates the stream; a long-poll primary held for up to 25 s
        for round in 0..<2_000 {
            h.now = Double(round) * 0.01
            // A new primary (maxt 25) replaces the previous one, like a browser's next long-poll after an answer.
            h.post(hh("-new", "tnum:\(round + 1)", "maxt:25", "seenack:\"|-1\"") + "\n")
        }
        // Every primary but the last has ended: at most the live ones' timers may stay, once their times have passed.
        h.advance(to: 60)
        #expect(h.engine.transportTimerCount <= 2)
    }

    @Test func deadEntriesAreSweptBeforeTheyComeDue() {
        let h = Harness()
        h.post(hh("-eeds", "maxt:25") + "\n")
        // 20,000 primaries replaced within 20 s, before the first one's maxt: without the sweep every one would
        // leave its maxt entry in the heap until it came due.
        for round in 0..<20_000 {
            h.now = Double(round) * 0.001
            h.post(hh("-new", "tnum:\(round + 1)", "maxt:25", "seenack:\"|-1\"") + "\n")
        }
        #expect(h.engine.transportTimerCount <= 2 * MinervaServerEngine.timerSweepFloor)
        #expect(h.engine.transportCount <= 2)
        // The live primary's own deadline survived the sweeps: at its maxt it is answered and closed.
        h.advance(to: 20 + 26)
        #expect(h.engine.transportCount == 0)
        #expect(h.engine.transportTimerCount == 0)
    }
}
