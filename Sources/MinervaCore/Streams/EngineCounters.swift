// What an engine has done since it started, for metrics: plain integers on the engine's own thread (no atomics on the
// hot path). An I/O layer reads them now and then (say once a second) and reports the differences.

/// Running totals of one engine. Every field only grows, except `queuedBytes`, the bytes queued now.
public struct EngineCounters: Sendable, Equatable {
    /// Streams created.
    public var streamsCreated = 0
    /// New streams the application's authorizer refused.
    public var streamsRefused = 0
    /// Streams reset by the application (``ServerStream/reset(reason:)``).
    public var resetsByApplication = 0
    /// Streams reset by the peer (a ResetFrame from the client).
    public var resetsByPeer = 0
    /// Streams reset because they were idle too long.
    public var resetsIdle = 0
    /// Streams reset by Minerva for another reason (send queue limit, `streamStarted` threw).
    public var resetsOther = 0
    /// HTTP transports opened.
    public var httpTransportsOpened = 0
    /// Socket transports opened (int32 sockets and WebSockets).
    public var socketTransportsOpened = 0
    /// Strings received from clients and delivered to the application, in order.
    public var stringsReceived = 0
    /// Batches of received strings that left a gap (strings held in the receive window until the missing ones
    /// arrive: the SACK the client gets has a hole).
    public var sackHoles = 0
    /// Strings written to clients for the first time.
    public var stringsSent = 0
    /// Strings written again (on a new transport, after a transport was lost before the client acknowledged them).
    public var stringsRetransmitted = 0
    /// Transports killed, by reason, in ``KillReason/allCases`` order.
    public var kills = [Int](repeating: 0, count: KillReason.allCases.count)
    /// The bytes of strings queued for clients and not yet acknowledged, now.
    public var queuedBytes = 0

    /// All zero.
    public init() {}

    /// Transports killed for `reason`.
    public func kills(_ reason: KillReason) -> Int {
        kills[KillReason.allCases.firstIndex(of: reason)!]
    }

    mutating func countKill(_ reason: KillReason) {
        kills[KillReason.allCases.firstIndex(of: reason)!] += 1
    }
}
