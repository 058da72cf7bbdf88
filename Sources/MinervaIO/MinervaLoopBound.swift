// The way to carry a loop-confined object across threads: it may travel anywhere, but it opens only on its loop.

/// Wraps a value that is confined to one event loop so it can be captured by `@Sendable` closures.
///
/// The value may be read only on `eventLoop`'s thread (checked with a precondition); typically it is captured on
/// the loop, carried through another thread, and used in a closure given to `eventLoop.execute`.
public struct MinervaLoopBound<Value>: @unchecked Sendable {
    // @unchecked: `_value` is only reached through `value`, which checks that the caller is on `eventLoop`.
    private let _value: Value
    /// The loop the value belongs to.
    public let eventLoop: MinervaEventLoop

    /// Wraps `value`. Call on `eventLoop`'s thread.
    /// - Parameters:
    ///   - value: the loop-confined value.
    ///   - eventLoop: the loop it belongs to.
    public init(_ value: Value, eventLoop: MinervaEventLoop) {
        eventLoop.preconditionInEventLoop()
        self._value = value
        self.eventLoop = eventLoop
    }

    /// Wraps `value` without checking the thread: for values created elsewhere and handed to the loop before
    /// anything else touches them (e.g. set up before the loop's thread starts).
    package init(handingOver value: Value, to eventLoop: MinervaEventLoop) {
        self._value = value
        self.eventLoop = eventLoop
    }

    /// The value. Loop thread only (a precondition checks it).
    public var value: Value {
        eventLoop.preconditionInEventLoop()
        return _value
    }

    /// Runs `body` with the value on its loop (now, if already there is not assumed: always through `execute`).
    /// - Parameter body: the work.
    public func execute(_ body: @escaping @Sendable (Value) -> Void) {
        let bound = self
        eventLoop.execute { body(bound.value) }
    }
}
