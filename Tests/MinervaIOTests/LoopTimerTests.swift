// Loop timers keep their schedule while other work re-arms the loop's timer: work arriving through `execute`
// (connections handed over by another loop, cluster deliveries) and end-of-turn hooks that cancel and re-schedule
// a one-shot timer for a far deadline on most turns, as the Minerva endpoint's driver does.
import Glibc
import MinervaTestSupport
import Synchronization
import Testing

@testable import MinervaIO

/// Loop-confined state of one test: the far one-shot timer that is re-armed over and over, and a fixed-duration
/// deadline list whose nodes are re-added (as a handed-over connection's idle timeout is).
private final class Rearming: DeadlineTarget {
    var oneShot: MinervaLoopTimer?
    var list: DeadlineList?
    let node = DeadlineNode()
    let far: Double

    init(far: Double) { self.far = far }

    /// What the driver's `rearm` does: cancel the pending one-shot timer and schedule a new one.
    func rearm(on loop: MinervaEventLoop) {
        oneShot?.cancel()
        oneShot = loop.schedule(after: far) {}
    }

    /// Starts a node's far timeout in a deadline list afresh (as a new connection's idle timeout starts).
    func restartTimeout(on loop: MinervaEventLoop) {
        let list = self.list ?? loop.deadlineList(duration: far)
        self.list = list
        node.target = self
        list.remove(node)
        list.add(node)
    }

    func deadlineExpired(_ list: DeadlineList) {}
}

@Suite(.serialized) struct LoopTimerTests {
    /// Runs a 20 ms repeating timer for about two seconds while a second thread keeps the loop's inbox busy with
    /// `work`; returns how many times the repeating timer fired (about 100 when on time).
    private func repeatingFires(whileInboxRuns work: @escaping @Sendable (MinervaEventLoop, Rearming) -> Void)
        throws -> Int
    {
        let t = LoopThread()
        defer { t.stop() }
        let fired = Locked(0)
        let state = MinervaLoopBound(handingOver: Rearming(far: 30), to: t.loop)
        let repeating = try t.sync {
            MinervaLoopBound(
                t.loop.schedule(after: 0.02, repeating: 0.02) { fired.update { $0 += 1 } }, eventLoop: t.loop)
        }
        let running = Atomic<Bool>(true)
        let loop = t.loop
        let feeder = PosixThread {
            while running.load(ordering: .relaxed) {
                state.execute { work(loop, $0) }
                usleep(50)
            }
        }
        usleep(2_000_000)
        running.store(false, ordering: .relaxed)
        feeder.join()
        let count = fired.get()
        try t.sync { repeating.value.cancel() }
        return count
    }

    @Test func repeatingTimerKeepsFiringWhileInboxWorkRearmsAFarTimer() throws {
        let count = try repeatingFires { loop, state in state.rearm(on: loop) }
        // On time it fires about 100 times; a timer left waiting for the far (30 s) deadline fires a handful.
        #expect(count >= 30, "the 20 ms repeating timer fired only \(count) times in 2 s")
    }

    @Test func repeatingTimerKeepsFiringWhileInboxWorkRestartsAFarDeadline() throws {
        let count = try repeatingFires { loop, state in state.restartTimeout(on: loop) }
        #expect(count >= 30, "the 20 ms repeating timer fired only \(count) times in 2 s")
    }

    @Test func repeatingTimerKeepsFiringWhileEndOfTurnHooksRearmAFarTimer() throws {
        // The driver's pattern on a loop kept busy: every turn (here every inbox wake-up) ends with a hook that
        // cancels and re-schedules a one-shot timer 30 s away. (The hook runs before the loop blocks, when no timer
        // expiry is pending, so this held even before the fix; the two tests above are the ones that lost the timer.)
        let t = LoopThread()
        defer { t.stop() }
        let fired = Locked(0)
        let state = MinervaLoopBound(handingOver: Rearming(far: 30), to: t.loop)
        let loop = t.loop
        let repeating = try t.sync {
            loop.addEndOfTurnHook(order: EndOfTurnOrder.engine) { state.value.rearm(on: loop) }
            return MinervaLoopBound(
                loop.schedule(after: 0.02, repeating: 0.02) { fired.update { $0 += 1 } }, eventLoop: loop)
        }
        let running = Atomic<Bool>(true)
        let feeder = PosixThread {
            while running.load(ordering: .relaxed) {
                loop.execute {}
                usleep(50)
            }
        }
        usleep(2_000_000)
        running.store(false, ordering: .relaxed)
        feeder.join()
        let count = fired.get()
        try t.sync { repeating.value.cancel() }
        #expect(count >= 30, "the 20 ms repeating timer fired only \(count) times in 2 s")
    }
}
