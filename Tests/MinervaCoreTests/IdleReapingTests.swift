// Idle streams are reset exactly when they expire, found through a deadline queue (no scan of every stream), and a
// crowd expiring together is reset over several timer runs, not in one long stall (issues 9 and 12).

import MinervaTestSupport
import Testing

@testable import MinervaCore

@Suite struct IdleReapingTests {
    /// A 26-byte stream id numbered `n`.
    private func id(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "s", count: 26 - digits.count) + digits
    }

    /// Opens a socket stream with id `n`, then drops its connection (the stream becomes idle at `h.now`).
    private func idleStream(_ h: Harness, _ n: Int) {
        let t = h.socket()
        h.send(t, [hs("id:\"\(id(n))\"")])
        h.engine.transportClosed(t, now: h.now)
    }

    @Test func resetExactlyWhenIdleTimeRunsOut() {
        let h = Harness()
        h.now = 10
        idleStream(h, 1)
        h.advance(to: 129.9)
        #expect(h.engine.streamCount == 1)
        #expect(h.engine.nextDeadline <= 130)
        h.advance(to: 130)
        #expect(h.engine.streamCount == 0)
        #expect(h.app.resets.map(\.reason) == ["no activity from peer"])
        #expect(h.engine.idleQueueCount == 0)
    }

    @Test func onlyTheExpiredStreamsAreTouched() {
        let h = Harness()
        for n in 0..<1_000 {
            h.now = Double(n)
            idleStream(h, n)
        }
        #expect(h.engine.idleQueueCount == 1_000)
        h.advance(to: 120 + 9)
        #expect(h.engine.streamCount == 990)
        #expect(h.engine.idleQueueCount == 990)
        #expect(h.recorders.prefix(10).allSatisfy { $0.resets.count == 1 })
        #expect(h.recorders.dropFirst(10).allSatisfy { $0.resets.isEmpty })
        #expect(h.engine.nextDeadline == 130)
    }

    @Test func aStreamWithATransportLeavesTheQueueAndReturnsOnDetach() {
        let h = Harness()
        idleStream(h, 1)
        h.now = 100
        let t = h.socket()
        h.send(t, [hs("id:\"\(id(1))\"", "-new")])
        h.advance(to: 150)
        #expect(h.engine.streamCount == 1)
        #expect(h.engine.idleQueueCount == 0)  // popped at 120, busy: left the queue
        h.engine.transportClosed(t, now: 160)
        #expect(h.engine.idleQueueCount == 1)
        h.advance(to: 279)
        #expect(h.engine.streamCount == 1)
        h.advance(to: 280)
        #expect(h.engine.streamCount == 0)
    }

    @Test func aStreamActiveAgainBeforeItsDeadlineIsRequeuedAtTheNewTime() {
        let h = Harness()
        idleStream(h, 1)
        h.now = 100
        let t = h.socket()
        h.send(t, [hs("id:\"\(id(1))\"", "-new")])
        h.engine.transportClosed(t, now: 110)  // still queued from time 0: the entry at 120 finds a later expiry
        h.advance(to: 120)
        #expect(h.engine.streamCount == 1)
        h.advance(to: 229)
        #expect(h.engine.streamCount == 1)
        h.advance(to: 230)
        #expect(h.engine.streamCount == 0)
    }

    @Test func aShorterIdleTimeTakesEffectWhileQueued() {
        let h = Harness()
        idleStream(h, 1)
        h.stream(id(1))?.maxIdleTime = 5
        h.advance(to: 5)
        #expect(h.engine.streamCount == 0)
    }

    @Test func aCrowdExpiringTogetherIsSpreadOverTimerRuns() {
        var configuration = ServerEngineConfiguration()
        configuration.maxIdleResetsPerTurn = 100
        let h = Harness(configuration: configuration)
        for n in 0..<250 { idleStream(h, n) }
        h.advance(to: 120)
        #expect(h.engine.streamCount == 150)
        #expect(h.engine.nextDeadline <= 120)  // the loop comes back at once for the rest
        h.advance(to: 120)
        #expect(h.engine.streamCount == 50)
        h.advance(to: 120)
        #expect(h.engine.streamCount == 0)
        #expect(h.engine.nextDeadline > 120)
    }

    @Test func theManualCheckResetsEveryExpiredStreamAtOnce() {
        var configuration = ServerEngineConfiguration()
        configuration.idleCheckInterval = 0
        configuration.maxIdleResetsPerTurn = 1
        let h = Harness(configuration: configuration)
        for n in 0..<20 { idleStream(h, n) }
        h.advance(to: 500)
        #expect(h.engine.streamCount == 20)  // no automatic check
        h.engine.resetIdleStreams()
        #expect(h.engine.streamCount == 0)
    }

    @Test func aStreamWhoseFirstTransportIsRefusedStillExpires() {
        let h = Harness()
        let t = h.socket()
        // The hello's SACK acknowledges a string never sent: the transport is killed, the new stream stays.
        h.send(t, [hs("sack:\"|1\"")])
        #expect(h.out(t).contains("acked_unsent_stringsK"))
        #expect(h.engine.streamCount == 1)
        h.advance(to: 120)
        #expect(h.engine.streamCount == 0)
    }
}

extension Harness {
    /// The live stream with this id.
    fileprivate func stream(_ id: String) -> ServerStream? { engine.stream(StreamID(id)!) }
}
