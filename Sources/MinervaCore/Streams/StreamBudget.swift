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
