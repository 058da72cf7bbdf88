// One limit on the number of streams shared by the engines of several event loops (issue 9): a stream is counted by
// the engine that creates it, whichever loop that is. One atomic add per stream created or removed, no lock.
import Synchronization

/// A count of live streams against a limit, shared by several engines (each on its own thread).
public final class MinervaStreamBudget: Sendable {
    /// The most streams at once.
    public let limit: Int
    private let used = Atomic<Int>(0)

    /// Creates a budget.
    /// - Parameter limit: the most streams at once (at least 1).
    public init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// The streams counted now.
    public var inUse: Int { used.load(ordering: .relaxed) }

    /// Counts one more stream if the limit allows it.
    /// - Returns: false at the limit (nothing counted).
    public func take() -> Bool {
        let after = used.wrappingAdd(1, ordering: .relaxed).newValue
        if after <= limit { return true }
        used.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    /// Counts one stream fewer.
    public func release() {
        used.wrappingSubtract(1, ordering: .relaxed)
    }
}

/// The memory of strings queued for clients, counted against one limit shared by several engines (issue 12: a global
/// budget, so that many streams each under ``ServerEngineConfiguration/maxQueuedBytesPerStream`` cannot together
/// take the machine's memory). Engines reserve it in chunks of ``chunk`` bytes and give chunks back when their queues
/// shrink, so the atomic is touched about once per chunk of traffic, not per string; the limit can be exceeded by
/// less than one chunk per engine.
public final class MinervaQueuedMemoryBudget: Sendable {
    /// The most memory (bytes plus ``SendQueue/costPerString`` per string) queued on all engines at once.
    public let limit: Int
    /// The unit engines reserve: 1 MiB, or a 64th of a smaller limit.
    public let chunk: Int
    private let used = Atomic<Int>(0)

    /// Creates a budget.
    /// - Parameter limit: the most queued memory at once, in bytes (at least 1).
    public init(limit: Int) {
        self.limit = max(1, limit)
        chunk = max(1, min(1_048_576, self.limit / 64))
    }

    /// The bytes reserved by engines now (at least what they have queued).
    public var reserved: Int { used.load(ordering: .relaxed) }

    /// Reserves one chunk if the limit allows it.
    /// - Returns: false at the limit (nothing reserved).
    func reserveChunk() -> Bool {
        let after = used.wrappingAdd(chunk, ordering: .relaxed).newValue
        if after <= limit { return true }
        used.wrappingSubtract(chunk, ordering: .relaxed)
        return false
    }

    /// Gives one chunk back.
    func releaseChunk() {
        used.wrappingSubtract(chunk, ordering: .relaxed)
    }
}
