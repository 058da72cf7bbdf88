// The fixed list of a server's event loops, so that any loop can name any other (e.g. the owner of a stream) and
// send it work with `execute`, without asking anyone.

/// The event loops of one server, in a fixed order set before their threads run. Immutable, hence `Sendable`.
///
/// A loop learns its group and its index in it through ``MinervaEventLoop/group`` and
/// ``MinervaEventLoop/indexInGroup``. The group holds its loops; a loop holds its group weakly (whoever starts the
/// loops, e.g. the HTTP server, keeps the group alive while they run).
public final class MinervaLoopGroup: Sendable {
    /// The loops, in order.
    public let loops: [MinervaEventLoop]

    /// Creates the group and tells each loop its place. Call before the loops' threads run (or on their thread).
    /// - Parameter loops: the loops, at least one.
    public init(_ loops: [MinervaEventLoop]) {
        precondition(!loops.isEmpty, "a loop group needs a loop")
        self.loops = loops
        for (index, loop) in loops.enumerated() { loop.joinGroup(self, index: index) }
    }

    /// How many loops.
    public var count: Int { loops.count }
}
